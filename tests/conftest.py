"""Shared fixtures: real servers (redis-server, nsd, sshd) on free loopback ports.

Every server is started in the test's own ``tmp_path`` and stopped in the fixture's
teardown, also when the test fails. At the end of the session a check fails loudly if
any process started by the tests is still running.
"""

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import psutil
import pytest

from tests.harness.nsd_server import NsdFactory, NsdServer
from tests.harness.redis_server import RedisServer
from tests.harness.sshd_server import SshServer

LEFTOVER_GRACE = 3.0


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio, as mtarep does."""
    return "asyncio"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started ``redis-server`` (append-only persistence), stopped after the test."""
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def nsd_factory(tmp_path: Path) -> Iterator[NsdFactory]:
    """Call with ``{zone name: zone text}`` (and ``NsdServer``'s ``servfail_zones``,
    ``ipv6``) to start an ``nsd``; all are stopped after."""
    started: list[NsdServer] = []

    def start(
        zones: Mapping[str, str], *, servfail_zones: Sequence[str] = (), ipv6: bool = False
    ) -> NsdServer:
        server = NsdServer(
            tmp_path / f"nsd{len(started)}", zones, servfail_zones=servfail_zones, ipv6=ipv6
        )
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        errors: list[BaseException] = []
        for server in started:
            try:
                server.stop()
            except Exception as exc:  # stop the others anyway
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def sshd_server(tmp_path: Path) -> Iterator[SshServer]:
    """A started ``sshd`` with its own host and client keys, stopped after the test."""
    with SshServer(tmp_path / "sshd") as server:
        yield server


def _describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid} [{proc.status()}] {' '.join(proc.cmdline()) or proc.name()}"
    except psutil.Error:
        return f"pid {proc.pid} (gone)"


def _working_in(directory: Path) -> list[psutil.Process]:
    """Processes whose working directory is inside ``directory``.

    Daemons (the embedded redis-server) are not our children once they detach, but
    they work in the test's temp dir.
    """
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE and proc.cwd().startswith(str(directory)):
                found.append(proc)
    return found


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fail the session loudly when a process the tests started is still running."""
    me = psutil.Process()
    before = {proc.pid for proc in me.children(recursive=True)}
    yield
    candidates = [proc for proc in me.children(recursive=True) if proc.pid not in before]
    known = {proc.pid for proc in candidates}
    basetemp = tmp_path_factory.getbasetemp()
    candidates += [proc for proc in _working_in(basetemp) if proc.pid not in known]
    # Short grace: e.g. sshd's per-connection child exits just after the client closes.
    _gone, alive = psutil.wait_procs(candidates, timeout=LEFTOVER_GRACE)
    if not alive:
        return
    listing = "\n".join(_describe(proc) for proc in alive)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=LEFTOVER_GRACE)
    pytest.fail(
        "processes started by the tests are still running at the end of the session "
        f"(killed now; some fixture or test does not stop what it starts):\n{listing}",
        pytrace=False,
    )
