"""Protection against cross-site requests: a form token, and the Origin of every POST.

Browsers send a cached Basic login with any request to our site, also one that a
page elsewhere makes them send; so every request that changes something must prove
it came from our own pages:

- **Origin check** (every POST and DELETE): the ``Origin`` header, or failing that
  the ``Referer``, must name this site: the host the request was sent to (its
  ``Host`` header, any scheme, so a TLS proxy in front changes nothing) or the
  configured ``ackservice.url``. A form POST with neither header is refused
  (browsers always send ``Origin`` on a POST). A JSON API call with neither is let
  through: it comes from a program such as curl, not a browser page, and a page
  elsewhere cannot send ``Content-Type: application/json`` to us without a CORS
  preflight, which we never grant.
- **Form token**: an HMAC of the logged-in user under a secret shared through Redis
  (:meth:`exporter.store.Store.shared_secret`), so every replica accepts every other
  replica's forms. A page elsewhere cannot read it, so it cannot forge a form.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.requests import Request

__all__ = ["CsrfGuard", "origin_problem"]

_TOKEN_CONTEXT = b"mtarep-ackservice-form\0"


def _netloc(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.netloc.lower()


def origin_problem(
    request: Request, public_url: str | None, *, header_required: bool
) -> str | None:
    """Why ``request`` is not from one of our pages, or None when it is.

    ``header_required``: refuse a request with neither Origin nor Referer (forms).
    """
    allowed = set()
    host = request.headers.get("host")
    if host:
        allowed.add(host.lower())
    if public_url:
        configured = _netloc(public_url)
        if configured:
            allowed.add(configured)
    origin = request.headers.get("origin")
    referer = request.headers.get("referer")
    if origin is not None and origin != "null":
        source, claimed = "Origin", origin
    elif referer:
        source, claimed = "Referer", referer
    elif origin == "null":
        return "the request came from an opaque origin (Origin: null)"
    elif header_required:
        return "the request has neither an Origin nor a Referer header"
    else:
        return None
    if _netloc(claimed) in allowed:
        return None
    return f"cross-site request refused ({source} is not this site)"


class CsrfGuard:
    """Makes and checks form tokens; the secret is fetched once, then kept."""

    def __init__(self, secret: Callable[[], Awaitable[str]]) -> None:
        self._fetch_secret = secret
        self._secret: bytes | None = None

    async def _key(self) -> bytes:
        if self._secret is None:
            self._secret = (await self._fetch_secret()).encode("ascii")
        return self._secret

    async def token(self, user: str) -> str:
        """The form token of ``user`` (raises the store's error when Redis is away)."""
        digest = hmac.new(await self._key(), _TOKEN_CONTEXT + user.encode("utf-8"), hashlib.sha256)
        return digest.hexdigest()

    async def valid(self, user: str, token: str) -> bool:
        """Whether ``token`` is ``user``'s (constant-time)."""
        expected = (await self.token(user)).encode("ascii")
        return hmac.compare_digest(expected, token.encode("utf-8", "surrogateescape"))
