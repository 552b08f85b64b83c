"""mtarep exporter: collects MTA reputation data and serves it to Prometheus."""

__version__ = "0.1.0"
