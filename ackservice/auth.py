"""Logins: HTTP Basic against an htpasswd file (``http_auth_file``).

Two hash formats are accepted, one ``user:hash`` per line:

- ``{SHA}`` + base64(SHA-1(password)): the old tool's format (``htpasswd -s``);
- bcrypt ``$2y$``/``$2b$``/``$2a$`` (``htpasswd -B``).

Rules:

- Comparisons are constant-time (``hmac.compare_digest``, bcrypt's own check). An
  unknown user costs the same work as a known one (a check against a dummy hash), so
  timing does not tell which users exist.
- The file is re-read when it changes (its mtime, size or inode, looked at on every
  request): adding or removing a user needs no restart. A file that can no longer be
  read lets nobody in until it can (fail closed).
- A line that cannot be used (no ``:``, an unsupported hash such as ``$apr1$``, a
  broken bcrypt string, a user name with control characters) is logged with its line
  number and skipped; the hash itself is never logged.
- bcrypt is slow on purpose, and Basic auth sends the password with every request:
  a successful check is remembered for the process (keyed by an HMAC of user and
  password under a random per-process key, forgotten when the file changes), and
  checks run in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import bcrypt
from starlette.types import ASGIApp, Receive, Scope, Send

from exporter.logs import event

__all__ = [
    "ANONYMOUS",
    "REALM",
    "BasicAuthMiddleware",
    "PasswordFile",
    "PasswordFileError",
    "credentials_from_header",
]

_LOG = logging.getLogger("mtarep.ackservice.auth")

ANONYMOUS = "anonymous"
"""The user name of every request when logins are off (``ackservice.anonymous: true``)."""
REALM = 'Basic realm="mtarep", charset="UTF-8"'
_BCRYPT = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
_SHA_PREFIX = "{SHA}"
_SHA1_DIGEST_BYTES = 20
_VERIFIED_CACHE_LIMIT = 1000


class PasswordFileError(Exception):
    """The password file cannot be read at all."""


@dataclass(frozen=True)
class _Entry:
    scheme: Literal["sha", "bcrypt"]
    hashed: bytes
    """SHA: the base64 text; bcrypt: the hash with ``$2y$`` read as ``$2b$``."""


def _parse_line(number: int, line: str, path: Path) -> tuple[str, _Entry] | None:
    """One line of the file, or None (logged) when it cannot be used."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    user, colon, hashed = text.partition(":")
    problem = ""
    if not colon or not user:
        problem = "expected user:hash"
    elif any(not char.isprintable() for char in user):
        problem = "the user name has control characters"
    elif hashed.startswith(_SHA_PREFIX):
        digest = hashed[len(_SHA_PREFIX) :]
        try:
            if len(base64.b64decode(digest, validate=True)) == _SHA1_DIGEST_BYTES:
                return user, _Entry("sha", digest.encode("ascii"))
        except (binascii.Error, ValueError):
            pass
        problem = "{SHA} needs base64 of a 20-byte SHA-1 digest"
    elif _BCRYPT.match(hashed):
        normalised = "$2b$" + hashed[4:] if hashed.startswith("$2y$") else hashed
        return user, _Entry("bcrypt", normalised.encode("ascii"))
    elif hashed.startswith("$2"):
        problem = "not a well-formed bcrypt hash"
    else:
        problem = "unsupported hash (use {SHA} or bcrypt: htpasswd -s or htpasswd -B)"
    event(
        _LOG,
        "auth_file.line_skipped",
        logging.WARNING,
        path=path,
        line=number,
        problem=problem,
    )
    return None


class PasswordFile:
    """The users of an htpasswd file, kept in step with the file on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._signature: tuple[int, int, int] | None = None
        self._users: dict[str, _Entry] = {}
        self._dummy: bytes | None = None
        self._verified: set[bytes] = set()
        self._cache_key = secrets.token_bytes(32)
        self._unreadable: str | None = None
        self.load()

    @property
    def users(self) -> frozenset[str]:
        return frozenset(self._users)

    def load(self) -> None:
        """Read the file now; :class:`PasswordFileError` when it cannot be read."""
        try:
            stat = os.stat(self.path)
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise PasswordFileError(f"cannot read {self.path}: {_reason(error)}") from None
        users: dict[str, _Entry] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            parsed = _parse_line(number, line, self.path)
            if parsed is None:
                continue
            user, entry = parsed
            if user in users:
                event(
                    _LOG,
                    "auth_file.line_skipped",
                    logging.WARNING,
                    path=self.path,
                    line=number,
                    problem=f"user {user!r} was given before; the first line counts",
                )
                continue
            users[user] = entry
        self._users = users
        self._signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        self._verified.clear()
        self._dummy = self._dummy_hash()
        if self._unreadable is not None:
            event(_LOG, "auth_file.readable_again", path=self.path)
        self._unreadable = None
        if not users:
            event(_LOG, "auth_file.no_users", logging.WARNING, path=self.path)
        event(_LOG, "auth_file.loaded", path=self.path, users=len(users))

    def _dummy_hash(self) -> bytes | None:
        """A bcrypt hash as costly as the file's own, checked for unknown users.

        None when the file has no bcrypt users: then an unknown user costs a SHA-1
        comparison, as a known one does. Made again only when the cost changes.
        """
        costs = [e.hashed[4:6] for e in self._users.values() if e.scheme == "bcrypt"]
        if not costs:
            return None
        if self._dummy is None or self._dummy[4:6] != costs[0]:
            return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(int(costs[0])))
        return self._dummy

    def refresh(self) -> None:
        """Re-read the file when it changed since the last read (one ``stat``)."""
        try:
            stat = os.stat(self.path)
        except OSError as error:
            self._lock_out(_reason(error))
            return
        if (stat.st_mtime_ns, stat.st_size, stat.st_ino) == self._signature:
            return
        try:
            self.load()
        except PasswordFileError as error:
            self._lock_out(str(error))

    def _lock_out(self, reason: str) -> None:
        if self._unreadable != reason:
            event(_LOG, "auth_file.unreadable", logging.ERROR, path=self.path, error=reason)
        self._unreadable = reason
        self._users = {}
        self._signature = None
        self._verified.clear()

    async def verify(self, user: str, password: str) -> bool:
        """Whether ``password`` is ``user``'s (the file is refreshed first)."""
        self.refresh()
        entry = self._users.get(user)
        candidate = password.encode("utf-8")
        if entry is None:
            # The same work as for a real user, for nothing.
            hmac.compare_digest(_sha_text(candidate), _sha_text(b""))
            if self._dummy is not None:
                await asyncio.to_thread(bcrypt.checkpw, candidate, self._dummy)
            return False
        if entry.scheme == "sha":
            if self._dummy is not None:  # bcrypt users too: an answer as slow as theirs
                await asyncio.to_thread(bcrypt.checkpw, candidate, self._dummy)
            return hmac.compare_digest(_sha_text(candidate), entry.hashed)
        remembered = hmac.new(
            self._cache_key,
            user.encode("utf-8") + b"\0" + candidate + b"\0" + entry.hashed,
            hashlib.sha256,
        ).digest()
        if remembered in self._verified:
            return True
        if not await asyncio.to_thread(bcrypt.checkpw, candidate, entry.hashed):
            return False
        if len(self._verified) >= _VERIFIED_CACHE_LIMIT:
            self._verified.clear()
        self._verified.add(remembered)
        return True


def _sha_text(password: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(password).digest())  # noqa: S324 - the old format


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return type(error).__name__


def credentials_from_header(header: str) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization: Basic ...`` value, or None."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError included
        return None
    user, colon, password = decoded.partition(":")
    if not colon or not user:
        return None
    return user, password


Verifier = Callable[[str, str], Awaitable[bool]]


class BasicAuthMiddleware:
    """Lets a request through with ``scope["state"]["user"]`` set, or answers 401.

    ``open_paths`` (and everything under ``open_prefixes``) need no login. With
    ``verify=None`` logins are off and every request is :data:`ANONYMOUS`.
    """

    def __init__(
        self,
        app: ASGIApp,
        verify: Verifier | None,
        *,
        open_paths: frozenset[str] = frozenset(),
        open_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.verify = verify
        self.open_paths = open_paths
        self.open_prefixes = open_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in self.open_paths or path.startswith(self.open_prefixes):
            await self.app(scope, receive, send)
            return
        user = await self._user(scope)
        if user is None:
            await _unauthorized(send)
            return
        scope.setdefault("state", {})["user"] = user
        await self.app(scope, receive, send)

    async def _user(self, scope: Scope) -> str | None:
        if self.verify is None:
            return ANONYMOUS
        header = next(
            (
                value.decode("latin-1")
                for name, value in scope["headers"]
                if name == b"authorization"
            ),
            None,
        )
        if header is None:
            return None
        credentials = credentials_from_header(header)
        if credentials is None:
            event(_LOG, "auth.malformed_header", logging.WARNING)
            return None
        user, password = credentials
        if await self.verify(user, password):
            return user
        event(_LOG, "auth.failed", logging.WARNING, user=user)
        return None


async def _unauthorized(send: Send) -> None:
    body = b"Login required: sign in with your mtarep user name and password.\n"
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"www-authenticate", REALM.encode("ascii")),
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
