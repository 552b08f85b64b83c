"""A real HTTP server on a free loopback port whose answers each test scripts.

``ScriptedHttpServer`` runs the standard library's threading HTTP server in a thread.
A test sets ``routes[path] = Answer(...)`` (the path without the query string) and
reads back ``requests`` (every request line, query included) and ``max_in_flight``.
An answer with ``hold=True`` does not come until the server stops: the client's
timeout is what ends the request, no test sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from tests.harness.ports import HOST


@dataclass
class Answer:
    status: int = 200
    body: bytes | str = b""
    content_type: str = "text/plain; charset=utf-8"
    hold: bool = False
    """Hold the answer until the server stops (a server that never answers in time)."""
    gate: threading.Event | None = None
    """Answer only once this is set (to have several requests in flight at once)."""
    trickle: float | None = None
    """Send the body one byte every this many seconds (a server that never finishes)."""
    trickle_headers: float | None = None
    """Send even the status line and headers one byte every this many seconds."""


@dataclass
class _State:
    routes: dict[str, Answer | Callable[[str], Answer]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)


class ScriptedHttpServer:
    def __init__(self) -> None:
        self._state = _State()
        state = self._state

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with state.lock:
                    state.requests.append(self.path)
                    state.in_flight += 1
                    state.max_in_flight = max(state.max_in_flight, state.in_flight)
                try:
                    self._answer()
                finally:
                    with state.lock:
                        state.in_flight -= 1

            def _answer(self) -> None:
                path = urlsplit(self.path).path
                route = state.routes.get(path)
                answer = route(self.path) if callable(route) else route
                if answer is None:
                    answer = Answer(404, b"not found")
                if answer.hold:
                    state.stopping.wait()
                    return
                if answer.gate is not None:
                    answer.gate.wait(timeout=30)
                body = answer.body.encode() if isinstance(answer.body, str) else answer.body
                try:
                    if answer.trickle_headers is not None:
                        head = f"HTTP/1.1 {answer.status} OK\r\nContent-Length: {len(body)}\r\n\r\n"
                        for char in head.encode() + body:
                            self.wfile.write(bytes([char]))
                            self.wfile.flush()
                            if state.stopping.wait(answer.trickle_headers):
                                return
                        return
                    self.send_response(answer.status)
                    self.send_header("Content-Type", answer.content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if answer.trickle is not None:
                        for byte in body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            if state.stopping.wait(answer.trickle):
                                return
                        return
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the tests read ``requests`` instead

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://{HOST}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def routes(self) -> dict[str, Answer | Callable[[str], Answer]]:
        return self._state.routes

    @property
    def requests(self) -> list[str]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def max_in_flight(self) -> int:
        return self._state.max_in_flight

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._state.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
