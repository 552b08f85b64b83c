"""The exporter's HTTP face: ``/metrics`` from its own registry and ``/healthz``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, make_asgi_app
from starlette.applications import Starlette
from starlette.routing import Mount, Route

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
    return Starlette(
        routes=[
            Route("/healthz", healthz_endpoint(store)),
            Mount("/metrics", app=make_asgi_app(build_registry())),
        ]
    )
