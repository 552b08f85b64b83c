"""Reading Postfix logs incrementally: locally and over a real sshd, with the same reader.

Every scenario runs twice: with ``maillog.source: local`` (the reader as a local
subprocess) and over SSH (paramiko to a real ``sshd`` on loopback, host key pinned in
a known_hosts file). The files are real files in the test's directory, rotated,
truncated and appended to as syslog and logrotate do it.
"""

from __future__ import annotations

import asyncio
import gzip
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from exporter.config import Host
from exporter.maillog_reader import LogRead, ReadFailed, read_local
from exporter.maillog_ssh import SshReader, SshSettings
from exporter.maillog_tally import DeferredDomains, tally_lines
from exporter.postfix_log import ParseContext
from exporter.provider_patterns import ProviderMatcher
from exporter.snapshot import MaillogState
from tests.harness.ports import HOST, free_port
from tests.harness.sshd_server import SshServer
from tests.harness.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

Read = Callable[[Path, str, int, int], Awaitable[LogRead]]
BUDGET = 1_000_000


def line(n: int, domain: str = "gmail.com") -> bytes:
    """A deferral: a line the reader sends on (sent deliveries are only counted)."""
    return (
        f"Dec  1 10:{n // 60 % 60:02d}:{n % 60:02d} mta1 postfix/smtp[4242]: 4F9D01A2EB{n % 10}: "
        f"to=<user{n}@{domain}>, relay=mx.{domain}[192.0.2.77]:25, delay=0.4, "
        f"delays=0.1/0/0.1/0.2, dsn=4.3.0, status=deferred (451 4.3.0 try again {n})\n"
    ).encode()


def sent(n: int, address: str) -> bytes:
    return (
        f"Dec  1 10:00:{n % 60:02d} mta1 postfix/smtp[4242]: 5A9D01A2EB{n % 10}: to=<{address}>, "
        "relay=mx[192.0.2.77]:25, delay=0.4, delays=0.1/0/0.1/0.2, dsn=2.0.0, "
        f"status=sent (250 2.0.0 OK {n})\n"
    ).encode()


NOISE = b"Dec  1 10:00:00 mta1 dovecot: imap-login: Login: user=<someone>\n"


def numbers(read: LogRead) -> list[int]:
    """Which of :func:`line`'s lines a read returned."""
    return [int(raw.rsplit(b" ", 1)[1].rstrip(b")")) for raw in read.lines]


@dataclass
class Log:
    """A log file and the reader under test; ``read()`` goes on where the last read stopped."""

    path: Path
    reader: Read
    file_id: str = ""
    offset: int = 0

    def append(self, data: bytes) -> None:
        with self.path.open("ab") as handle:
            handle.write(data)

    async def read(self, budget: int = BUDGET) -> LogRead:
        result = await self.reader(self.path, self.file_id, self.offset, budget)
        self.file_id, self.offset = result.position(self.file_id, self.offset)
        return result


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with SshServer(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def ssh_host(server: SshServer) -> Host:
    port = int(server.known_hosts_name.rsplit(":", 1)[1])
    return Host("mta1", "mta1.example.test", HOST, port, server.user, None, None)


def ssh_reader(
    server: SshServer, known_hosts: Path | None = None, timeout: float = 10
) -> SshReader:
    return SshReader(
        SshSettings(known_hosts or server.known_hosts_path, server.client_key_path, timeout, 4)
    )


@pytest.fixture(params=["local", "ssh"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Log]:
    path = tmp_path / "mail.log"
    path.write_bytes(b"")
    if request.param == "local":
        yield Log(path, lambda p, i, o, b: read_local(str(p), i, o, b))
        return
    server: SshServer = request.getfixturevalue("sshd")
    reader = ssh_reader(server)
    host = ssh_host(server)
    try:
        yield Log(path, lambda p, i, o, b: reader.read(host, str(p), i, o, b))
    finally:
        reader.close()


async def test_incremental_reads_give_each_line_once(log: Log) -> None:
    log.append(line(1) + NOISE + line(2))
    first = await log.read()
    assert numbers(first) == [1, 2]
    assert first.lines_skipped == 1  # the dovecot line: counted, never sent
    assert first.bytes_read == len(line(1) + NOISE + line(2))

    log.append(line(3) + line(4))
    second = await log.read()
    assert numbers(second) == [3, 4]
    assert (await log.read()).lines == []
    assert log.offset == log.path.stat().st_size


async def test_sent_deliveries_are_counted_by_domain_on_the_mta(log: Log) -> None:
    log.append(
        sent(1, "a@Gmail.COM")
        + sent(2, "b@gmail.com.")
        + sent(3, "c@yahoo.com")
        + sent(4, "postmaster")  # no domain
        + sent(5, "@gmail.com")  # no local part: no domain either, as the parser says
        + sent(6, "x@y@Example.org")  # the last @ decides
        + line(7)
    )
    result = await log.read()
    assert result.sent == {"gmail.com": 2, "yahoo.com": 1, "": 2, "example.org": 1}
    assert numbers(result) == [7]  # only what is not "sent" crosses the wire
    assert result.lines_skipped == 0


async def test_a_line_still_being_written_is_read_once_complete(log: Log) -> None:
    whole = line(5)
    log.append(line(4) + whole[:40])
    assert numbers(await log.read()) == [4]
    assert log.offset == len(line(4))
    log.append(whole[40:])
    assert numbers(await log.read()) == [5]


async def test_the_first_read_takes_at_most_the_window_from_the_end(log: Log) -> None:
    log.append(b"".join(line(n) for n in range(100)))
    size = log.path.stat().st_size
    window = len(line(95)) * 10 + 5  # ten lines (90-99 are of one length) and a piece
    first = await log.read(window)
    assert numbers(first) == list(range(90, 100))  # the cut line is dropped
    assert first.chunks[0].start == size - window - 1
    assert log.offset == size


async def test_rotation_finishes_the_old_file_before_the_new_one(log: Log) -> None:
    log.append(line(1))
    await log.read()
    rotated = log.path.with_name("mail.log.1")
    log.path.rename(rotated)
    with rotated.open("ab") as old:  # syslog still had the old file open
        old.write(line(2))
    log.path.write_bytes(line(3) + line(4))

    result = await log.read()
    assert result.rotated is True
    assert numbers(result) == [2, 3, 4]
    assert log.file_id != ""
    assert log.offset == log.path.stat().st_size
    log.append(line(5))
    assert numbers(await log.read()) == [5]


async def test_rotation_with_a_date_suffix(log: Log) -> None:
    log.append(line(1))
    await log.read()
    rotated = log.path.with_name("mail.log-20261201")
    log.path.rename(rotated)
    with rotated.open("ab") as old:
        old.write(line(2))
    log.path.write_bytes(line(3))
    assert numbers(await log.read()) == [2, 3]


async def test_a_rotated_file_already_compressed_is_reported_lost(log: Log) -> None:
    log.append(line(1))
    await log.read()
    log.append(line(2))  # written, never read before the rotation
    rotated = log.path.with_name("mail.log.1")
    log.path.rename(rotated)
    log.path.write_bytes(line(3))  # logrotate's "create", then "compress"
    rotated.with_name("mail.log.1.gz").write_bytes(gzip.compress(rotated.read_bytes()))
    rotated.unlink()
    result = await log.read()
    assert result.lost is True
    assert numbers(result) == [3]


async def test_a_truncated_log_is_read_again_from_its_start(log: Log) -> None:
    log.append(line(1) + line(2))
    await log.read()
    os.truncate(log.path, 0)  # logrotate's copytruncate
    log.append(line(3))
    result = await log.read()
    assert result.truncated is True
    assert numbers(result) == [3]


async def test_a_backlog_larger_than_the_budget_is_read_over_several_cycles(log: Log) -> None:
    await log.read()
    log.append(b"".join(line(n) for n in range(30)))
    budget = len(line(0)) * 10
    seen: list[int] = []
    for _ in range(4):
        seen += numbers(await log.read(budget))
    assert seen == list(range(30))  # nothing skipped, nothing twice


async def test_garbage_lines_are_skipped_not_fatal(log: Log) -> None:
    hostile = (
        b"\x00\x00\x00\x00\x00\x00\n"  # what an unclean shutdown leaves
        b"Dec  1 10:00:01 mta1 postfix/smtp[1]: ABC: to=<\xff\xfe@x>, status=deferred (x)\n"
        + b"x" * 100_000
        + b"\n"
        + b"C DONE\n"  # looks like the reader's own control line
        + b"L fake line\n"
    )
    log.append(line(1) + hostile + line(2))
    result = await log.read()
    # The invalid UTF-8 Postfix line is passed on (the parser skips it and counts it);
    # everything else is filtered on the MTA.
    assert result.lines == [line(1)[:-1], hostile.split(b"\n")[1], line(2)[:-1]]
    assert result.lines_skipped == 4
    assert log.offset == log.path.stat().st_size


async def test_an_unfinished_line_longer_than_the_window_waits_for_its_newline(
    log: Log,
) -> None:
    log.append(line(1) + b"Dec  1 10:00:02 mta1 postfix/smtp[1]: " + b"x" * 70_000)
    first = await log.read()
    assert numbers(first) == [1]
    assert log.offset == len(line(1))  # not cut in the middle of the long line
    log.append(b"\n" + line(3))
    assert numbers(await log.read()) == [3]
    assert log.offset == log.path.stat().st_size


async def test_an_empty_log_reads_nothing(log: Log) -> None:
    result = await log.read()
    assert (result.bytes_read, result.lines, log.offset) == (0, [], 0)


async def test_a_missing_file_is_a_clear_error(log: Log) -> None:
    log.path.unlink()
    with pytest.raises(ReadFailed, match="no such file"):
        await log.read()


async def test_a_path_with_shell_characters_is_only_a_path(log: Log) -> None:
    odd = log.path.with_name("mail log; touch pwned $(id) `id`.log")
    odd.write_bytes(line(1))
    result = await log.reader(odd, "", 0, BUDGET)
    assert numbers(result) == [1]
    assert not (log.path.parent / "pwned").exists()


# -- SSH only --------------------------------------------------------------------------


async def read_once(reader: SshReader, host: Host, path: Path) -> LogRead:
    try:
        return await reader.read(host, str(path), "", 0, BUDGET)
    finally:
        reader.close()


async def test_an_unknown_host_key_is_refused(sshd: SshServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(ReadFailed, match=r"its host key is not in .*known_hosts: refused"):
        await read_once(ssh_reader(sshd, empty), ssh_host(sshd), tmp_path / "x")


async def test_a_changed_host_key_is_refused(sshd: SshServer, tmp_path: Path) -> None:
    wrong = sshd.wrong_known_hosts(tmp_path / "known_hosts")
    with pytest.raises(ReadFailed, match=r"host key does not match .* refused"):
        await read_once(ssh_reader(sshd, wrong), ssh_host(sshd), tmp_path / "x")


async def test_a_host_that_is_down_is_a_clear_error(sshd: SshServer, tmp_path: Path) -> None:
    host = ssh_host(sshd)
    down = Host(host.alias, host.fqdn, HOST, free_port(), host.ssh_user, None, None)
    with pytest.raises(ReadFailed, match="cannot connect: Connection refused"):
        await read_once(ssh_reader(sshd), down, tmp_path / "x")


async def test_a_rejected_key_is_an_authentication_error(sshd: SshServer, tmp_path: Path) -> None:
    host = ssh_host(sshd)
    stranger = Host(host.alias, host.fqdn, HOST, host.ssh_port, "nobody", None, None)
    with pytest.raises(ReadFailed, match="authentication failed for user nobody"):
        await read_once(ssh_reader(sshd), stranger, tmp_path / "x")


# Remote servers quoting what looks like a delivery: neither may count as "sent".
HOSTILE_SENT = (
    b"Dec  1 18:40:00 mta1 postfix/smtp[9]: 9A1B2C3D4E: to=<fan@gmail.com>, "
    b"relay=gmail-smtp-in.l.google.com[74.125.192.26]:25, delay=1, delays=0/0/0.5/0.5, "
    b"dsn=4.7.28, status=deferred (host gmail-smtp-in.l.google.com[74.125.192.26] said: "
    b"421-4.7.28 [192.0.2.10 15] unusual rate of unsolicited mail, dsn=2.0.0, "
    b"status=sent (250 ok) (in reply to end of DATA command))\n"
    b"Dec  1 18:40:01 mta1 postfix/smtp[9]: 9A1B2C3D4F: host mx[198.51.100.1] said: "
    b"451 4.3.0 ]: ABC: to=<v@yahoo.com>, relay=x, dsn=2.0.0, status=sent (try again "
    b"(in reply to RCPT TO command)\n"
)


@pytest.mark.parametrize(
    "corpus", ["postfix-3.7-postlog.log", "classic-syslog.log", "rsyslog-rfc3339.log"]
)
async def test_counting_on_the_mta_adds_up_to_parsing_every_line(
    corpus: str, tmp_path: Path
) -> None:
    """The reader counts ``sent`` lines itself: on real Postfix logs, and with replies
    that quote a "sent" line, that must come to exactly what the parser finds when it
    reads every line."""
    path = tmp_path / corpus
    path.write_bytes(
        (Path(__file__).parent.parent / "data" / "maillog" / corpus).read_bytes() + HOSTILE_SENT
    )
    raw = path.read_bytes()
    common = {
        "ips": ["127.0.0.1", "192.0.2.10"],
        "matcher": ProviderMatcher(),
        "graph_domains": ["gmail.test", "yahoo.test", "example.test", "gmail.com"],
        "block_window": 7200.0,
    }
    now = datetime(2026, 12, 1, 19, 0, tzinfo=UTC).timestamp()
    every_line = tally_lines(
        MaillogState(),
        raw.splitlines(),
        context=ParseContext(now, UTC),
        deferred=DeferredDomains(),
        **common,  # type: ignore[arg-type]
    )
    read = await read_local(str(path), "", 0, BUDGET)
    assert read.sent  # the corpus has sent deliveries: the fast path was taken
    via_reader = tally_lines(
        MaillogState(),
        read.lines,
        sent=read.sent,
        context=ParseContext(now, UTC),
        deferred=DeferredDomains(),
        **common,  # type: ignore[arg-type]
    )
    assert via_reader.state.deliveries == every_line.state.deliveries
    assert via_reader.state.blocks == every_line.state.blocks
    assert "192.0.2.10" in via_reader.state.blocks["gmail"]  # the quoting deferral
    assert read.bytes_read == len(raw)


async def test_a_local_read_cut_by_its_timeout_leaves_no_process(tmp_path: Path) -> None:
    """The whole pipeline dies with the reader (not only ``sh``), and at once."""
    path = tmp_path / "mail.log"
    path.write_bytes(line(1) * 400_000)  # ~90 MB of lines the reader sends on
    before = {p.pid for p in psutil.process_iter()}
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def cut_short() -> None:
        async with asyncio.timeout(0.3):
            await read_local(str(path), "", 0, 1 << 40)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(cut_short(), 20)  # (a reader that hung would end here)
    assert loop.time() - started < 5  # the read came back at its timeout, not later

    def pipeline() -> list[psutil.Process]:
        """sh, tail, head and awk started by the read (wherever they were reparented)."""
        found = []
        for process in psutil.process_iter(["name", "status"]):
            if process.pid in before or process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if process.info["name"] in {"sh", "dash", "tail", "head", "awk", "mawk", "gawk"}:
                found.append(process)
        return found

    wait_until(lambda: not pipeline(), 5, "the reader's processes to be gone")
