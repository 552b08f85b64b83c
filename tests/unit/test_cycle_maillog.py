"""A cycle with the maillog source: provider block issues, delivery counters, failures.

Reads come from a fake reader (the real reader runs against real files and a real
sshd in tests/integration/test_maillog_reading.py); DNS, Redis and time are the
fakes of tests/unit/cycle_env.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from exporter.cycle import Collection
from exporter.maillog_reader import Chunk, LogRead, ReadFailed
from exporter.maillog_source import MaillogSource
from exporter.metrics import build_registry
from exporter.store import IssueKey
from tests.unit.cycle_env import HOST, IP, Env, make_config

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()
REJECTION = (
    "{stamp} mx1 postfix/smtp[3190]: 463F01A2EBD: to=<fan@gmail.com>, "
    "relay=gmail-smtp-in.l.google.com[74.125.192.26]:25, delay=1, delays=0/0/0.5/0.5, "
    "dsn=4.7.28, status=deferred (host gmail-smtp-in.l.google.com[74.125.192.26] said: "
    "421-4.7.28 [" + IP + " 15] Our system has detected an unusual rate of 421-4.7.28 "
    "unsolicited mail originating from your IP address. (in reply to end of DATA command))"
)
SENT = (
    "{stamp} mx1 postfix/smtp[3191]: 563F01A2EBD: to=<fan@gmail.com>, "
    "relay=gmail-smtp-in.l.google.com[74.125.192.26]:25, delay=1, delays=0/0/0.5/0.5, "
    "dsn=2.0.0, status=sent (250 2.0.0 OK)"
)
GMAIL = IssueKey(IP, "provider", "gmail")


def stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%b %e %H:%M:%S")


@dataclass
class FakeLog:
    """A log that grows as the test writes; reads return what was added since."""

    lines: list[str] = field(default_factory=list)
    failure: str | None = None
    asked: list[tuple[str, str, int]] = field(default_factory=list)

    async def __call__(self, path: str, file_id: str, offset: int, budget: int) -> LogRead:
        self.asked.append((path, file_id, offset))
        if self.failure is not None:
            raise ReadFailed(self.failure)
        new = [line.encode() for line in self.lines[offset:]]
        chunk = Chunk("1:2", offset, new, consumed=len(new), seen=len(new), kept=len(new))
        return LogRead("1:2", len(self.lines), [chunk])


def collection(env: Env, log: FakeLog) -> Collection:
    config = make_config(
        mta_map={"mx1": {"fqdn": HOST, "ips": [IP], "maillog_path": "/var/log/mail.log"}},
        maillog={"source": "local", "timezone": "UTC"},
        graph_domains=["gmail.com"],
    )
    env.clock.now = T0
    return Collection(
        config,
        env.dns,  # type: ignore[arg-type]
        env.store,
        clock=env.clock,
        helo_checker=env.helo,
        maillog=MaillogSource(config, local=log),
    )


async def test_a_rejection_within_the_window_is_a_provider_issue(env: Env) -> None:
    log = FakeLog([SENT.format(stamp=stamp(T0 - 60)), REJECTION.format(stamp=stamp(T0 + 100))])
    snapshot = await env.cycle(collection(env, log))

    record = await env.store.issue(GMAIL)
    assert record is not None
    assert record.host == HOST
    assert record.detail["severity"] == "error"
    assert record.detail["line"] == REJECTION.format(stamp=stamp(T0 + 100))
    assert (record.detail["domain"], record.detail["dsn"]) == ("gmail.com", "4.7.28")
    assert record.detail["relay"] == "gmail-smtp-in.l.google.com[74.125.192.26]:25"
    assert record.detail["ip_named"] is True
    assert [e.type for e in await env.events(GMAIL)] == ["block_seen"]

    registry = build_registry(lambda: snapshot)
    labels = {"host": HOST, "provider": "gmail"}
    assert registry.get_sample_value("mtarep_provider_blocked", labels) == 1
    assert registry.get_sample_value(
        "mtarep_provider_block_last_seen_timestamp_seconds", labels
    ) == pytest.approx(T0 + 100)
    counted = {"host": HOST, "domain": "gmail.com"}
    assert (
        registry.get_sample_value("mtarep_maillog_deliveries_total", {**counted, "status": "sent"})
        == 1
    )
    assert (
        registry.get_sample_value(
            "mtarep_maillog_deliveries_total", {**counted, "status": "deferred"}
        )
        == 1
    )
    assert registry.get_sample_value("mtarep_maillog_read_success", {"host": HOST}) == 1
    assert snapshot.sources["maillog"].success is True


async def test_each_cycle_reads_on_where_the_last_stopped(env: Env) -> None:
    log = FakeLog([SENT.format(stamp=stamp(T0))])
    run = collection(env, log)
    await env.cycle(run)
    log.lines.append(SENT.format(stamp=stamp(T0 + 600)))
    snapshot = await env.cycle(run)
    assert [offset for _, _, offset in log.asked] == [0, 1]
    assert snapshot.maillog[HOST].deliveries == {"gmail.com": {"sent": 2}}


async def test_the_block_clears_when_the_window_passes(env: Env) -> None:
    log = FakeLog([REJECTION.format(stamp=stamp(T0))])
    run = collection(env, log)
    await env.cycle(run)
    assert await env.store.issue(GMAIL) is not None
    env.clock.advance(2 * 3600)
    snapshot = await env.cycle(run)
    assert await env.store.issue(GMAIL) is None
    assert [e.type for e in await env.events(GMAIL)] == ["block_seen", "block_cleared"]
    registry = build_registry(lambda: snapshot)
    assert (
        registry.get_sample_value("mtarep_provider_blocked", {"host": HOST, "provider": "gmail"})
        == 0
    )


async def test_an_unreadable_log_keeps_its_issue_and_fails_the_source(env: Env) -> None:
    log = FakeLog([REJECTION.format(stamp=stamp(T0))])
    run = collection(env, log)
    await env.cycle(run)
    log.failure = "mx1: cannot connect: Connection refused"
    env.clock.advance(3 * 3600)  # the window has passed, but nobody could look
    snapshot = await env.cycle(run)

    assert await env.store.issue(GMAIL) is not None
    state = snapshot.maillog[HOST]
    assert state.read_ok is False
    assert "Connection refused" in state.problem
    assert state.blocks["gmail"][IP].blocked is True  # unknown: as it was
    assert snapshot.sources["maillog"].success is False
    registry = build_registry(lambda: snapshot)
    assert registry.get_sample_value("mtarep_maillog_read_success", {"host": HOST}) == 0


async def test_the_position_survives_a_restart(env: Env) -> None:
    log = FakeLog([SENT.format(stamp=stamp(T0))])
    await env.cycle(collection(env, log))
    restarted = collection(env, log)
    assert await restarted.restore() is True
    log.lines.append(SENT.format(stamp=stamp(T0 + 60)))
    snapshot = await env.cycle(restarted)
    assert log.asked[-1] == ("/var/log/mail.log", "1:2", 1)
    assert snapshot.maillog[HOST].deliveries == {"gmail.com": {"sent": 2}}


async def test_a_log_not_read_to_its_end_keeps_its_blocks_open(env: Env) -> None:
    log = FakeLog([REJECTION.format(stamp=stamp(T0))])
    run = collection(env, log)
    await env.cycle(run)
    behind = FakeLog(log.lines)

    async def with_backlog(path: str, file_id: str, offset: int, budget: int) -> LogRead:
        read = await behind(path, file_id, offset, budget)
        return LogRead(read.file_id, 10_000_000, read.chunks)  # far more than was read

    assert run.maillog is not None
    run.maillog.local = with_backlog
    env.clock.advance(3 * 3600)  # the window has passed in what was read
    snapshot = await env.cycle(run)
    assert snapshot.maillog[HOST].caught_up is False
    assert await env.store.issue(GMAIL) is not None  # newer lines may be in the backlog


async def test_a_host_whose_ips_are_unknown_is_not_read_yet(env: Env) -> None:
    env.dns.forget(HOST, "A")  # no address, nothing configured: no IP to put a block on
    env.dns.forget(HOST, "AAAA")
    log = FakeLog([REJECTION.format(stamp=stamp(T0))])
    config = make_config(
        mta_map={"mx1": {"fqdn": HOST, "maillog_path": "/var/log/mail.log"}},
        maillog={"source": "local", "timezone": "UTC"},
    )
    env.clock.now = T0
    run = Collection(
        config,
        env.dns,  # type: ignore[arg-type]
        env.store,
        clock=env.clock,
        helo_checker=env.helo,
        maillog=MaillogSource(config, local=log),
    )
    snapshot = await env.cycle(run)
    assert log.asked == []  # the lines wait: nothing is read past them
    assert snapshot.maillog[HOST].read_ok is False
    assert "its IPs are not known" in snapshot.maillog[HOST].problem


async def test_a_line_still_being_written_does_not_make_a_backlog(env: Env) -> None:
    log = FakeLog([REJECTION.format(stamp=stamp(T0))])

    async def unfinished(path: str, file_id: str, offset: int, budget: int) -> LogRead:
        read = await log(path, file_id, offset, budget)
        return LogRead(read.file_id, read.size + 300, read.chunks)  # half a line more

    run = collection(env, log)
    assert run.maillog is not None
    run.maillog.local = unfinished
    await env.cycle(run)
    env.clock.advance(3 * 3600)
    snapshot = await env.cycle(run)
    assert snapshot.maillog[HOST].caught_up is True
    assert await env.store.issue(GMAIL) is None  # the window passed: cleared as usual
