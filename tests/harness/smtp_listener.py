"""A tiny SMTP greeter on a free loopback port, run in the test's own event loop.

Not a mail server: it sends a greeting chosen by the test, answers ``QUIT`` with
``221`` and anything else with ``502``, and records what the client did.
"""

import asyncio
import contextlib
from types import TracebackType

from tests.harness.ports import HOST, free_port

POSTFIX_GREETING = b"220 mta1.example.com ESMTP Postfix\r\n"


class SmtpListener:
    """``async with SmtpListener(greeting) as listener:`` serves on ``listener.port``.

    * ``greeting``: bytes sent as they are on each connection (one or several
      ``220`` lines, garbage, one very long line...); ``None`` sends nothing, so
      the client waits until it gives up;
    * ``hang_up``: close the connection right after the greeting (with ``None``:
      at once).

    ``connected`` is set when a client connects, ``disconnected`` when a client has
    closed its end; ``quit_received`` tells whether a client sent ``QUIT``. Leaving
    the block closes the server and every connection still open.
    """

    def __init__(
        self, greeting: bytes | None = POSTFIX_GREETING, *, host: str = HOST, hang_up: bool = False
    ) -> None:
        self.host = host
        self.port = free_port()
        self.quit_received = False
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self._greeting = greeting
        self._hang_up = hang_up
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> "SmtpListener":
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connected.set()
        try:
            if self._greeting:
                writer.write(self._greeting)
                await writer.drain()
            if not self._hang_up:
                await self._commands(reader, writer)
        except ConnectionError:
            pass  # the client went away mid-write: that is its right
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _commands(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            if line.strip().upper() == b"QUIT":
                self.quit_received = True
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            writer.write(b"502 5.5.2 Error: command not recognized\r\n")
            await writer.drain()
        self.disconnected.set()
