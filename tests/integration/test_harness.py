"""The test harness itself: each real server starts, answers, and can fail."""

import socket
import sys
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import paramiko
import pytest
import redis

from tests.harness.binaries import ALLOW_MISSING_ENV, require_binary
from tests.harness.nsd_server import NsdFactory, NsdServer, zone_text
from tests.harness.ports import HOST, free_port
from tests.harness.process import CommandFailedError, ManagedProcess, ServerExitedError
from tests.harness.redis_server import RedisServer
from tests.harness.sshd_server import SshServer
from tests.harness.wait import wait_until

pytestmark = pytest.mark.integration

ZONE = "zen.test."
REVERSE_ZONE = "2.0.192.in-addr.arpa."


def _query(server: NsdServer, name: str, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return dns.query.udp(query, server.host, port=server.port, timeout=2.0)


def _answer(server: NsdServer, name: str, rdtype: dns.rdatatype.RdataType) -> list[str]:
    response = _query(server, name, rdtype)
    assert response.rcode() == dns.rcode.NOERROR
    rrset = response.find_rrset(
        response.answer, dns.name.from_text(name), dns.rdataclass.IN, rdtype
    )
    return sorted(rdata.to_text() for rdata in rrset)


def _refused(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((HOST, port)) != 0


# --- helpers -------------------------------------------------------------------


def test_free_port_is_free_for_tcp_and_udp_and_never_repeated() -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    for port in ports:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as sock:
                sock.bind((HOST, port))


def test_wait_until_times_out_with_what_last_error_and_log_tail() -> None:
    def never() -> bool:
        raise ConnectionRefusedError("nobody home")

    with pytest.raises(TimeoutError) as info:
        wait_until(never, 0.05, "widget", log_tail=lambda: "LAST LOG LINE", ignore=(OSError,))
    message = str(info.value)
    assert message.startswith("widget not ready after 0.05s")
    assert "nobody home" in message
    assert "LAST LOG LINE" in message


def test_wait_until_propagates_unexpected_errors() -> None:
    def broken() -> bool:
        raise ValueError("bug in the probe")

    with pytest.raises(ValueError, match="bug in the probe"):
        wait_until(broken, 5.0, "widget", ignore=(OSError,))


def test_require_binary_fails_loudly_or_skips_only_when_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert require_binary("redis-server", "redis-server").endswith("/redis-server")
    monkeypatch.delenv(ALLOW_MISSING_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match="apt-get install no-such-pkg"):
        require_binary("mtarep-no-such-binary", "no-such-pkg")
    monkeypatch.setenv(ALLOW_MISSING_ENV, "1")
    with pytest.raises(pytest.skip.Exception, match="mtarep-no-such-binary not found"):
        require_binary("mtarep-no-such-binary", "no-such-pkg")


def test_process_that_dies_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    code = "import sys; print('boom: bad config', flush=True); sys.exit(3)"
    process = ManagedProcess("dying", [sys.executable, "-c", code], tmp_path / "dying.log")
    process.start()
    try:
        with pytest.raises(ServerExitedError, match=r"(?s)exited with status 3.*boom: bad config"):
            process.wait_ready(lambda: False, "dying server", timeout=10.0)
    finally:
        process.stop()
    assert not process.running


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    log = tmp_path / "stubborn.log"
    process = ManagedProcess("stubborn", [sys.executable, "-c", code], log)
    process.start()
    try:
        process.wait_ready(lambda: "ready" in log.read_text(), "stubborn server")
    finally:
        process.stop(timeout=0.2)
    assert not process.running


# --- redis ---------------------------------------------------------------------


def test_redis_set_get_round_trip(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.host == "127.0.0.1"
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.set("mtarep:test", b"\x00bytes\xff")
        assert client.get("mtarep:test") == b"\x00bytes\xff"


def test_redis_kill_then_restart_keeps_data(redis_server: RedisServer) -> None:
    with redis.Redis.from_url(redis_server.url) as client:
        client.hset("mtarep:h", mapping={"a": "1", "b": "2"})
    redis_server.kill()
    with (
        redis.Redis.from_url(redis_server.url, socket_connect_timeout=1.0) as client,
        pytest.raises(redis.exceptions.ConnectionError),
    ):
        client.ping()
    redis_server.restart()
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.hgetall("mtarep:h") == {b"a": b"1", b"b": b"2"}
    assert any(redis_server.data_dir.rglob("*.aof"))


def test_redis_stop_refuses_connections(redis_server: RedisServer) -> None:
    port = redis_server.port
    redis_server.stop()
    assert not redis_server.running
    assert _refused(port)


# --- nsd -----------------------------------------------------------------------


def _dnsbl_zone(answer: str = "127.0.0.2") -> str:
    return zone_text(
        ZONE,
        [
            f"2.0.0.127 IN A {answer}",
            '2.0.0.127 IN TXT "listed: see https://example.invalid/lookup"',
            "mail IN AAAA 2001:db8::25",
        ],
    )


def test_nsd_answers_a_aaaa_txt_ptr_and_nxdomain(nsd_factory: NsdFactory) -> None:
    reverse = zone_text(REVERSE_ZONE, ["25 IN PTR mail.example.test."])
    server = nsd_factory({ZONE: _dnsbl_zone(), REVERSE_ZONE: reverse})
    assert server.host == "127.0.0.1"
    assert _answer(server, f"2.0.0.127.{ZONE}", dns.rdatatype.A) == ["127.0.0.2"]
    assert _answer(server, f"mail.{ZONE}", dns.rdatatype.AAAA) == ["2001:db8::25"]
    assert _answer(server, f"2.0.0.127.{ZONE}", dns.rdatatype.TXT) == [
        '"listed: see https://example.invalid/lookup"'
    ]
    assert _answer(server, f"25.{REVERSE_ZONE}", dns.rdatatype.PTR) == ["mail.example.test."]
    missing = _query(server, f"3.0.0.127.{ZONE}", dns.rdatatype.A)
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert not missing.answer


def test_nsd_is_not_rate_limited(nsd_factory: NsdFactory) -> None:
    server = nsd_factory({ZONE: _dnsbl_zone()})
    for _ in range(300):
        assert _answer(server, f"2.0.0.127.{ZONE}", dns.rdatatype.A) == ["127.0.0.2"]


def test_nsd_replace_zones_changes_the_answer_on_the_same_port(
    nsd_factory: NsdFactory,
) -> None:
    server = nsd_factory({ZONE: _dnsbl_zone("127.0.0.2")})
    port = server.port
    assert _answer(server, f"2.0.0.127.{ZONE}", dns.rdatatype.A) == ["127.0.0.2"]
    server.replace_zones({ZONE: _dnsbl_zone("127.0.0.4")})
    assert server.port == port
    assert _answer(server, f"2.0.0.127.{ZONE}", dns.rdatatype.A) == ["127.0.0.4"]
    server.replace_zones({ZONE: zone_text(ZONE, [])})
    assert _query(server, f"2.0.0.127.{ZONE}", dns.rdatatype.A).rcode() == dns.rcode.NXDOMAIN


def test_nsd_factory_starts_independent_servers(nsd_factory: NsdFactory) -> None:
    first = nsd_factory({ZONE: _dnsbl_zone("127.0.0.2")})
    second = nsd_factory({ZONE: _dnsbl_zone("127.0.0.3")})
    assert first.port != second.port
    assert _answer(first, f"2.0.0.127.{ZONE}", dns.rdatatype.A) == ["127.0.0.2"]
    assert _answer(second, f"2.0.0.127.{ZONE}", dns.rdatatype.A) == ["127.0.0.3"]


def test_nsd_rejects_a_broken_zone_before_starting(tmp_path: Path) -> None:
    broken = zone_text(ZONE, ["2.0.0.127 IN A not-an-address"])
    server = NsdServer(tmp_path / "nsd", {ZONE: broken})
    with pytest.raises(CommandFailedError, match=r"(?s)nsd-checkzone of zone zen\.test\..*"):
        server.start()
    assert not server.running


# --- sshd ----------------------------------------------------------------------


def _client(known_hosts: Path) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.load_host_keys(str(known_hosts))
    return client


def _connect(client: paramiko.SSHClient, server: SshServer) -> None:
    client.connect(
        server.host,
        port=server.port,
        username=server.user,
        key_filename=str(server.client_key_path),
        look_for_keys=False,
        allow_agent=False,
        timeout=5.0,
        banner_timeout=5.0,
        auth_timeout=5.0,
    )


def test_sshd_runs_a_command_and_returns_exact_bytes(
    sshd_server: SshServer, tmp_path: Path
) -> None:
    payload = bytes(range(256)) * 64 + b"no trailing newline"
    target = tmp_path / "payload.bin"
    target.write_bytes(payload)
    with _client(sshd_server.known_hosts_path) as client:
        _connect(client, sshd_server)
        _stdin, stdout, _stderr = client.exec_command(f"cat {target}")
        data = stdout.read()
        status = stdout.channel.recv_exit_status()
    assert status == 0
    assert data == payload
    assert sshd_server.host_key_path.is_file()


def test_sshd_unknown_host_key_is_refused(sshd_server: SshServer, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with _client(empty) as client, pytest.raises(paramiko.SSHException) as info:
        _connect(client, sshd_server)
    assert not isinstance(info.value, paramiko.BadHostKeyException)
    assert "not found in known_hosts" in str(info.value)


def test_sshd_changed_host_key_is_refused(sshd_server: SshServer, tmp_path: Path) -> None:
    wrong = sshd_server.wrong_known_hosts(tmp_path / "wrong_known_hosts")
    assert wrong.read_text() != sshd_server.known_hosts_path.read_text()
    with _client(wrong) as client, pytest.raises(paramiko.BadHostKeyException):
        _connect(client, sshd_server)


def test_sshd_after_stop_the_port_refuses_connections(sshd_server: SshServer) -> None:
    port = sshd_server.port
    assert not _refused(port)
    sshd_server.stop()
    assert not sshd_server.running
    assert _refused(port)
