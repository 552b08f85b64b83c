"""HTTP GETs for the sources that read web services (SNDS, HTTP reputation).

One :class:`HttpFetcher` per source: a ``requests`` session whose connection pool
holds as many connections as the source may use at once, urllib3's own ``Retry``
for one retry of a failed connection or a 5xx answer, a timeout on every request,
and its own threads, so blocking ``requests`` calls never run on the event loop and
one slow source never takes the threads of another. A whole request has a
deadline and a size limit, and a service that stops answering is given up on for
the rest of the cycle after a few failures in a row. Every failure becomes an
:class:`HttpProblem` whose message says what happened in a few words, with the
source's secrets (an SNDS key in the URL) replaced by ``***``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import requests
import requests.adapters
import urllib3.exceptions
from urllib3.util.retry import Retry

from exporter import __version__
from exporter.logs import hide_in_logs, redact_url
from exporter.remote_text import printable

__all__ = ["HttpFetcher", "HttpProblem", "Reply"]

USER_AGENT = f"mtarep/{__version__} (+https://github.com/mtarep/mtarep)"
_RETRY_STATUSES = (500, 502, 503, 504)


class HttpProblem(Exception):
    """A request that gave no usable answer; the message is safe to log and show."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable
        """No answer or no connection at all (not an answer that was wrong)."""


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    content_type: str
    text: str


class HttpFetcher:
    """GETs for one source, at most ``concurrency`` at a time, each within its deadline.

    ``timeout`` bounds every socket operation; a whole request (the retry and a slow
    trickle of a body included) ends after :attr:`deadline` = 3 x ``timeout``, and a
    body larger than ``max_bytes`` is refused. After ``give_up_after`` failures in a
    row (no answer, no connection) the fetcher stops asking until
    :meth:`start_round` (a source calls it once per cycle): a dead service costs a
    few timeouts per cycle, not one per IP.
    """

    def __init__(
        self,
        timeout: float,
        concurrency: int = 1,
        secrets: Sequence[str] = (),
        *,
        max_bytes: int = 64_000_000,
        give_up_after: int | None = None,
    ) -> None:
        self.timeout = timeout
        self.deadline = 3 * timeout
        self.max_bytes = max_bytes
        self.give_up_after = give_up_after
        self._failures_in_a_row = 0
        self._secrets = [secret for secret in secrets if secret]
        for secret in self._secrets:
            hide_in_logs(secret)
        retry = Retry(
            total=1,
            status_forcelist=_RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}),
            backoff_factor=0.5,
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        adapter = requests.adapters.HTTPAdapter(
            max_retries=retry, pool_connections=1, pool_maxsize=concurrency
        )
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._slots = asyncio.Semaphore(concurrency)

    def start_round(self) -> None:
        """Ask again, whatever failed before (the start of a cycle)."""
        self._failures_in_a_row = 0

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact_url(text) if "://" in text else text

    async def get(self, url: str) -> Reply:
        """GET ``url`` in a thread of its own; :class:`HttpProblem` on any failure.

        At most ``concurrency`` requests run at once; a slot is free again only when
        its thread has ended. The answer is awaited for :attr:`deadline` at most,
        headers and body included. The threads are daemons: a request still hanging
        on a dead server never keeps the process from exiting.
        """
        await self._slots.acquire()
        if self.give_up_after is not None and self._failures_in_a_row >= self.give_up_after:
            self._slots.release()
            raise HttpProblem(
                f"not asked: the last {self.give_up_after} requests failed (no answer or "
                "no connection); asked again next cycle"
            )
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Reply] = loop.create_future()

        def settle(reply: Reply | None, error: BaseException | None) -> None:
            # Counted before the slot is free: the next request sees this outcome.
            if isinstance(error, HttpProblem) and error.unreachable:
                self._failures_in_a_row += 1
            elif error is None:
                self._failures_in_a_row = 0
            self._slots.release()
            if not answer.done():
                if error is not None:
                    answer.set_exception(error)
                else:
                    answer.set_result(cast(Reply, reply))

        def work() -> None:
            reply: Reply | None = None
            error: BaseException | None = None
            try:
                reply = self._fetch(url)
            except BaseException as caught:  # handed to the waiting coroutine
                error = caught
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(settle, reply, error)

        threading.Thread(target=work, name="mtarep-http", daemon=True).start()
        try:
            async with asyncio.timeout(self.deadline):
                reply = await asyncio.shield(answer)
        except TimeoutError:
            self._failures_in_a_row += 1
            raise HttpProblem(
                f"the answer took longer than {self.deadline:g}s", unreachable=True
            ) from None
        finally:
            if not answer.done():  # given up on: its late outcome is nobody's error
                answer.add_done_callback(_forget)
        return reply

    def _fetch(self, url: str) -> Reply:
        started = time.monotonic()
        try:
            with self._session.get(url, timeout=self.timeout, stream=True) as response:
                body = bytearray()
                while piece := response.raw.read1(65_536, decode_content=True):
                    body += piece
                    if len(body) > self.max_bytes:
                        raise HttpProblem(f"the answer is larger than {self.max_bytes} bytes")
                    if time.monotonic() - started > self.deadline:
                        raise HttpProblem(
                            f"the answer took longer than {self.deadline:g}s", unreachable=True
                        )
                return Reply(
                    status=response.status_code,
                    reason=printable(response.reason or "", 60),
                    content_type=response.headers.get("Content-Type", ""),
                    text=bytes(body).decode(response.encoding or "utf-8", "replace"),
                )
        except requests.exceptions.RetryError as error:
            raise HttpProblem(self.scrub(f"gave up after a retry: {_innermost(error)}")) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
            chain = _chain(error)
            refused = any(isinstance(e, OSError) and e.errno for e in chain)
            # (urllib3's NewConnectionError is a ConnectTimeoutError: the errno decides.)
            timed_out = any(
                isinstance(e, TimeoutError | urllib3.exceptions.TimeoutError) for e in chain
            )
            if timed_out and not refused:
                raise HttpProblem(f"no answer within {self.timeout:g}s", unreachable=True) from None
            if isinstance(error, requests.ConnectionError) or refused:
                raise HttpProblem(
                    self.scrub(f"cannot connect: {_innermost(error)}"), unreachable=True
                ) from None
            raise HttpProblem(self.scrub(f"request failed: {_innermost(error)}")) from None

    def close(self) -> None:
        self._session.close()


def _forget(answer: asyncio.Future[Reply]) -> None:
    if not answer.cancelled():
        answer.exception()  # retrieved: asyncio does not report it as lost


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and what it wraps: causes, contexts and urllib3's ``reason``."""
    found: list[BaseException] = []
    todo: list[BaseException] = [error]
    while todo:
        current = todo.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        inner = [getattr(current, "reason", None), current.__cause__, current.__context__]
        inner += list(current.args[:1])
        todo += [e for e in inner if isinstance(e, BaseException)]
    return found


def _innermost(error: BaseException) -> str:
    """The most telling reason in ``error``'s chain: the OS' words when there are any
    (``Connection refused``), else the innermost message."""
    chain = _chain(error)
    for cause in chain:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    text = str(chain[-1]) or type(chain[-1]).__name__
    return printable(text.split(": ", 1)[-1] if "Caused by" not in text else text, 200)
