"""The ackservice Starlette application: for now ``/healthz``, which says whether Redis answers."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from exporter.store import Store
from exporter.web import healthz_endpoint


def create_app(store: Store) -> Starlette:
    return Starlette(routes=[Route("/healthz", healthz_endpoint(store))])
