"""A scripted SMTP server on 127.0.0.1 that answers each recipient domain as told.

Not a mail server: it plays the receiving side of big mailbox providers for a real
Postfix, so the replies Postfix logs are the ones a test chose. Every
:class:`DomainScript` gets its own listening ports (``mx_count`` of them): Postfix
keeps one delivery queue per destination, so one domain greeting with ``554`` can
never hold up another, and a domain with two ports, named as a list of next hops
(:meth:`SmtpResponder.nexthop`), makes the first one a *non-final* server, whose soft
errors Postfix logs as ``QID: host X[ip] said: ...`` lines without ``to=``.

The server runs its own asyncio loop in a thread, so a synchronous test can poll a
log meanwhile. It speaks just enough SMTP for Postfix's client: ``EHLO``/``HELO``
(no PIPELINING, no STARTTLS), ``MAIL``, ``RCPT``, ``DATA``, ``RSET``, ``NOOP``,
``QUIT``. Replies are given as the exact wire lines (``421-...`` continuation lines
then a last ``421 ...`` line); what every session did is kept in :attr:`transcript`.
"""

import asyncio
import contextlib
import functools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from tests.harness.ports import HOST, free_port

Reply = tuple[str, ...]
"""The lines of one SMTP reply, without CRLF: ``("421-4.7.28 a", "421 4.7.28 b")``."""

OK_GREETING: Reply = ("220 mx.responder.test ESMTP mtarep test responder",)
OK_MAIL: Reply = ("250 2.1.0 Ok",)
OK_RCPT: Reply = ("250 2.1.5 Ok",)
OK_DATA: Reply = ("250 2.0.0 Ok: queued as RESPONDER",)
START_DATA: Reply = ("354 End data with <CR><LF>.<CR><LF>",)
MAX_LINE = 10_000
START_TIMEOUT = 10.0


@dataclass(frozen=True)
class DomainScript:
    """How the responder answers mail for one recipient domain.

    - ``greeting``: the connect reply; a non-220 one makes Postfix log ``refused to
      talk to me``, an empty one hangs up at once (``lost connection``);
    - ``rcpt``: the reply to ``RCPT TO`` for this domain's recipients;
    - ``data``: the reply to the end of ``DATA``;
    - ``mx_count``: how many listening ports serve the domain.
    """

    greeting: Reply = OK_GREETING
    rcpt: Reply = OK_RCPT
    data: Reply = OK_DATA
    mx_count: int = 1

    def __post_init__(self) -> None:
        if self.greeting:
            check_reply(self.greeting, "greeting")
        check_reply(self.rcpt, "rcpt")
        check_reply(self.data, "data")
        if self.mx_count < 1:
            raise ValueError("mx_count must be at least 1")


def check_reply(reply: Reply, what: str) -> None:
    """Raise ``ValueError`` unless ``reply`` is well-formed SMTP (so a typo fails loudly)."""
    if not reply:
        raise ValueError(f"{what}: a reply needs at least one line")
    code = reply[0][:3]
    for number, line in enumerate(reply, start=1):
        last = number == len(reply)
        separator = " " if last else "-"
        if not (line[:3] == code and code.isdigit() and line[3:4] in (separator, "")):
            raise ValueError(
                f"{what}: line {number} {line!r} must start with {code}{separator!r}"
                " (same code on every line, '-' on all but the last)"
            )
        if "\r" in line or "\n" in line:
            raise ValueError(f"{what}: line {number} contains CR or LF")


@dataclass
class Session:
    """What one connection did: the port, the commands received, the replies' codes."""

    port: int
    domain: str
    commands: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    messages: int = 0


class SmtpResponder:
    """``with SmtpResponder({"gmail.test": DomainScript(...)}) as responder:``.

    :meth:`nexthop` gives the Postfix transport next hop of a domain; :attr:`transcript`
    the sessions so far (read it after the traffic of interest is over).
    """

    def __init__(self, domains: Mapping[str, DomainScript], *, host: str = HOST) -> None:
        if not domains:
            raise ValueError("SmtpResponder needs at least one domain")
        self.host = host
        self.domains = {name.lower(): script for name, script in domains.items()}
        self.ports: dict[str, tuple[int, ...]] = {
            name: tuple(free_port() for _ in range(script.mx_count))
            for name, script in self.domains.items()
        }
        self._port_domain = {port: name for name, ports in self.ports.items() for port in ports}
        self._lock = threading.Lock()
        self._sessions: list[Session] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    # Public side -----------------------------------------------------------------

    def nexthop(self, domain: str) -> str:
        """``[127.0.0.1]:p1, [127.0.0.1]:p2``: the domain's ports, in order, for Postfix."""
        return ", ".join(f"[{self.host}]:{port}" for port in self.ports[domain.lower()])

    @property
    def transcript(self) -> list[Session]:
        with self._lock:
            return list(self._sessions)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("SmtpResponder is already running")
        self._thread = threading.Thread(target=self._run, name="smtp-responder", daemon=True)
        self._thread.start()
        if not self._started.wait(START_TIMEOUT):
            raise TimeoutError(f"SMTP responder not listening after {START_TIMEOUT:g}s")
        if self._start_error is not None:
            self._thread.join(START_TIMEOUT)
            self._thread = None
            raise RuntimeError("SMTP responder failed to start") from self._start_error

    def stop(self) -> None:
        """Close the listeners and every open connection; idempotent."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        thread.join(START_TIMEOUT)
        if thread.is_alive():  # pragma: no cover - a hung loop
            raise RuntimeError("SMTP responder thread did not stop")
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # The loop thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._start_error = exc
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            for port in self._port_domain:
                server = await asyncio.start_server(
                    functools.partial(self._serve, port=port), self.host, port, limit=MAX_LINE
                )
                self._servers.append(server)
            self._started.set()
            await self._stop.wait()
        finally:
            for server in self._servers:
                server.close()
            for server in self._servers:
                await server.wait_closed()
            for task in self._handlers:
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, port: int
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        script = self.domains[self._port_domain[port]]
        session = Session(port=port, domain=self._port_domain[port])
        with self._lock:
            self._sessions.append(session)
        try:
            if script.greeting:
                await self._say(writer, session, script.greeting)
            if script.greeting and script.greeting[0].startswith("220"):
                await self._dialogue(reader, writer, session)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away or misbehaved: end the session
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _say(self, writer: asyncio.StreamWriter, session: Session, reply: Reply) -> None:
        session.codes.append(reply[-1][:3])
        writer.write("".join(line + "\r\n" for line in reply).encode())
        await writer.drain()

    async def _dialogue(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session: Session
    ) -> None:
        accepted: list[str] = []
        while line := await reader.readline():
            command = line.decode("utf-8", "replace").rstrip("\r\n")
            session.commands.append(command)
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                await self._say(writer, session, ("250-mx.responder.test", "250 8BITMIME"))
            elif verb == "MAIL":
                accepted = []
                await self._say(writer, session, OK_MAIL)
            elif verb == "RCPT":
                reply = self._rcpt_reply(command)
                if reply[-1].startswith("2"):
                    accepted.append(command)
                await self._say(writer, session, reply)
            elif verb == "DATA":
                await self._data(reader, writer, session, accepted)
            elif verb in ("RSET", "NOOP"):
                accepted = [] if verb == "RSET" else accepted
                await self._say(writer, session, ("250 2.0.0 Ok",))
            elif verb == "QUIT":
                await self._say(writer, session, ("221 2.0.0 Bye",))
                return
            else:
                await self._say(writer, session, ("502 5.5.2 Error: command not recognized",))

    def _rcpt_reply(self, command: str) -> Reply:
        address = command.partition(":")[2].strip().strip("<>").split(">")[0]
        domain = address.rpartition("@")[2].lower()
        script = self.domains.get(domain)
        return script.rcpt if script is not None else ("550 5.1.2 unknown domain",)

    async def _data(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        session: Session,
        accepted: Sequence[str],
    ) -> None:
        if not accepted:
            await self._say(writer, session, ("554 5.5.1 Error: no valid recipients",))
            return
        await self._say(writer, session, START_DATA)
        while (line := await reader.readline()) not in (b".\r\n", b".\n"):
            if not line:
                raise ConnectionResetError("client closed during DATA")
        session.messages += 1
        first = accepted[0]
        session.recipients.extend(accepted)
        domain = first.partition(":")[2].strip().strip("<>").split(">")[0].rpartition("@")[2]
        script = self.domains.get(domain.lower())
        await self._say(writer, session, script.data if script is not None else OK_DATA)
