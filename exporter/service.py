"""The exporter's HTTP face: ``/metrics`` from its own registry and ``/healthz``."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from exporter import __version__
from exporter.store import Store
from exporter.web import healthz_endpoint


def build_registry() -> CollectorRegistry:
    """The exporter's own registry (never the global one)."""
    registry = CollectorRegistry(auto_describe=True)
    build_info = Gauge(
        "mtarep_build_info", "mtarep version, always 1", ["version"], registry=registry
    )
    build_info.labels(version=__version__).set(1)
    return registry


def build_app(store: Store) -> Starlette:
    registry = build_registry()

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[Route("/healthz", healthz_endpoint(store)), Route("/metrics", metrics)]
    )
