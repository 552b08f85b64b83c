"""The ackservice app on fakeredis, driven by Starlette's TestClient (unit tests).

:class:`AckEnv` holds a fake Redis server, a Store on it with a clock the test moves,
the sample fleet written through the exporter's models (``ackservice_data``), and
the app built by ``create_app``. ``with env.client(user) as client`` runs the app's
lifespan (the refresher task) and logs in as ``user``; ``env.call`` runs a coroutine
on the app's event loop (the store, the refresher) from the test.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import bcrypt
import fakeredis
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ackservice.app import create_app
from ackservice.service import AckService
from exporter.config import Config
from exporter.store import Store
from tests.harness import ackservice_data as data

T = TypeVar("T")

BASE_URL = "http://ackservice.test"
PASSWORDS = {"alice": "alice-secret-1", "bob": "bob pass:with colon", "carol": "carol-2y"}


def sha_line(user: str, password: str) -> str:
    digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
    return f"{user}:{{SHA}}{digest}"


def bcrypt_line(user: str, password: str, prefix: str = "$2y$") -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return f"{user}:{prefix}{hashed[4:]}"


def write_htpasswd(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@dataclass
class Clock:
    now: float = data.T0 + 60

    def __call__(self) -> float:
        return self.now


@dataclass
class AckEnv:
    tmp_path: Path
    config_overrides: dict[str, Any] = field(default_factory=dict)
    server: fakeredis.FakeServer = field(default_factory=fakeredis.FakeServer)
    clock: Clock = field(default_factory=Clock)
    _client: TestClient | None = None

    def __post_init__(self) -> None:
        self.htpasswd = write_htpasswd(
            self.tmp_path / "htpasswd",
            [
                bcrypt_line("alice", PASSWORDS["alice"], "$2b$"),
                sha_line("bob", PASSWORDS["bob"]),
                bcrypt_line("carol", PASSWORDS["carol"], "$2y$"),
            ],
        )
        overrides: dict[str, Any] = {"http_auth_file": str(self.htpasswd), "ackservice": {}}
        overrides.update(self.config_overrides)
        self.config: Config = data.make_config(self.tmp_path, **overrides)
        self.redis = fakeredis.FakeAsyncRedis(decode_responses=True, server=self.server)
        self.store = Store(self.redis, clock=self.clock, description="redis://fake")
        self.app: Starlette = create_app(self.store, self.config, clock=self.clock)

    @property
    def service(self) -> AckService:
        service: AckService = self.app.state.service
        return service

    @contextmanager
    def client(self, user: str | None = "alice") -> Iterator[TestClient]:
        """A logged-in client (``user=None``: no credentials) with the lifespan running."""
        headers = basic(user, PASSWORDS[user]) if user else {}
        with TestClient(self.app, base_url=BASE_URL, headers=headers) as client:
            self._client = client
            try:
                yield client
            finally:
                self._client = None

    def call(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``function(*args)`` on the app's event loop (inside ``client()``)."""
        assert self._client is not None, "call() needs a running client()"
        portal = self._client.portal
        assert portal is not None
        return portal.call(function, *args)

    def write_sample(self, *, hostile: bool = False) -> None:
        self.call(
            data.write_snapshot,
            self.store,
            data.sample_snapshot(data.T0, hostile=hostile),
            self.config,
        )


def form_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "no form token on the page"
    return match.group(1)


SAME_ORIGIN = {"Origin": BASE_URL}
