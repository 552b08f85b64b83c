"""``mtarep-exporter demo``: mtarep on a made-up world, all on this machine."""
