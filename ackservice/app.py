"""The ackservice Starlette application: pages, the JSON API, ``/metrics``, ``/healthz``.

Routes (everything needs a login except ``/healthz``, ``/metrics`` and ``/static``):

| route | what |
|---|---|
| ``GET /`` | one row per (host, ip), sortable, issues as links that open a modal |
| ``GET /help`` | what the colours mean (from :mod:`exporter.severity`), the columns |
| ``GET /issues/{ip}/{kind}/{subject}`` | an issue's page (``?fragment=1``: the modal's part) |
| ``POST /issues/{ip}/{kind}/{subject}/ack`` and ``/unack`` | the forms |
| ``GET /api/all``, ``/api/issues``, ``/api/{fqdn}``, ``/api/openapi.json`` | JSON |
| ``POST``/``DELETE /api/issues/{ip}/{kind}/{subject}/ack`` | ack / withdraw, as JSON |
| ``GET /metrics`` | ``mtarep_issue_acknowledged``, ``mtarep_issues_open``, self-health |
| ``GET /healthz`` | 200 when Redis answers, else 503 |

Every response carries a strict Content-Security-Policy (scripts, styles and images
from this site only, no inline script, no framing), ``nosniff`` and
``Referrer-Policy: same-origin``; pages and API answers are ``no-store``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ackservice.api import Api
from ackservice.auth import BasicAuthMiddleware, PasswordFile
from ackservice.csrf import CsrfGuard
from ackservice.pages import Pages, make_templates
from ackservice.refresher import REFRESH_SECONDS, AckCollector, Refresher
from ackservice.service import AckService, issue_url
from ackservice.silences import Silencer
from exporter.config import Config
from exporter.store import Store
from exporter.web import healthz_endpoint

__all__ = ["CONTENT_SECURITY_POLICY", "AuthNotConfigured", "create_app"]

STATIC = Path(__file__).parent / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii")),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
OPEN_PATHS = frozenset({"/healthz", "/metrics"})
OPEN_PREFIXES = ("/static/",)


class AuthNotConfigured(Exception):
    """Neither ``http_auth_file`` nor ``ackservice.anonymous: true``: no way to serve."""


class SecurityHeaders:
    """Adds the security headers to every response (401s and static files too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope["path"]).startswith(OPEN_PREFIXES)
        cache = b"no-cache" if static else b"no-store"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != b"cache-control"
                ]
                headers += [*_SECURITY_HEADERS, (b"cache-control", cache)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    store: Store,
    config: Config,
    *,
    clock: Callable[[], float] = time.time,
    refresh_interval: float = REFRESH_SECONDS,
) -> Starlette:
    """The app; raises :class:`AuthNotConfigured` or ``PasswordFileError`` when it
    cannot know who is logged in."""
    if config.http_auth_file is not None:
        passwords = PasswordFile(config.http_auth_file)
        verify = passwords.verify
    elif config.ackservice.anonymous:
        verify = None
    else:
        raise AuthNotConfigured(
            "http_auth_file: not set, and the ackservice needs logins. Set http_auth_file "
            "to an htpasswd file (user:{SHA}... or bcrypt lines), or set "
            "ackservice.anonymous: true to serve without logins."
        )
    silencer = None
    if config.ackservice.alertmanager_url is not None:
        silencer = Silencer(
            config.ackservice.alertmanager_url, lambda key: issue_url(config, key), clock=clock
        )
    refresher = Refresher(store, config, silencer, clock=clock, interval=refresh_interval)
    service = AckService(
        store=store,
        config=config,
        csrf=CsrfGuard(lambda: store.shared_secret("csrf")),
        refresher=refresher,
        silencer=silencer,
        clock=clock,
    )
    pages = Pages(service, make_templates())
    api = Api(service)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AckCollector(refresher))

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(refresher.run(), name="mtarep-ackservice-refresher")
        try:
            yield
        finally:
            await refresher.stop(task)

    issue = "/issues/{ip}/{kind}/{subject}"
    routes = [
        Route("/", pages.index),
        Route("/help", pages.help),
        Route("/healthz", healthz_endpoint(store)),
        Route("/metrics", metrics),
        Route(issue, pages.issue),
        Route(f"{issue}/ack", pages.acknowledge, methods=["POST"]),
        Route(f"{issue}/unack", pages.withdraw, methods=["POST"]),
        Route("/api/all", api.all_hosts),
        Route("/api/issues", api.issues),
        Route("/api/openapi.json", api.openapi),
        Route(f"/api{issue}/ack", api.acknowledge, methods=["POST"]),
        Route(f"/api{issue}/ack", api.withdraw, methods=["DELETE"]),
        Route("/api/{fqdn}", api.host),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                BasicAuthMiddleware,
                verify=verify,
                open_paths=OPEN_PATHS,
                open_prefixes=OPEN_PREFIXES,
            ),
        ],
    )
    app.state.service = service
    app.state.registry = registry
    return app
