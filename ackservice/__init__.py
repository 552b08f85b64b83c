"""mtarep ackservice: issue detail, acknowledgements and the per-host JSON API."""
