"""Request bodies the ackservice accepts: of one content type, and never too large."""

from __future__ import annotations

from starlette.requests import Request

__all__ = ["BodyError", "read_body"]


class BodyError(Exception):
    """A body refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_body(request: Request, content_type: str, limit: int, refusal: str) -> bytes:
    """The body of ``request``: 415 (``refusal``) unless it is ``content_type``, 413 once it
    passes ``limit`` bytes (read no further than that)."""
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if given != content_type:
        raise BodyError(415, refusal)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyError(413, f"the body is larger than {limit} bytes")
    return bytes(body)
