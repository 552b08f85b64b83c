"""The Postfix log parser: real Postfix output, hand-written syslog samples, hostile input.

``tests/data/maillog/postfix-3.7-postlog.log`` is what a real Postfix 3.7 logged
through ``maillog_file`` (made by ``tests/integration/test_postfix_logs.py``); the
``classic-syslog.log`` and ``rsyslog-rfc3339.log`` samples are hand-written from the
examples of ../shared/REFERENCE.md (the same lines, two timestamp styles).
"""

from __future__ import annotations

import calendar
import os
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from exporter.postfix_log import (
    MAX_ADDRESSES,
    MAX_LINE_BYTES,
    RECORD_MARKERS,
    Delivery,
    DeliveryStatus,
    Expiry,
    HostReply,
    ParseContext,
    Record,
    SkipReason,
    addresses_in,
    parse,
    parse_line,
    reply_dsn,
)
from exporter.remote_text import printable

DATA = Path(__file__).resolve().parent.parent / "data" / "maillog"
CAPTURED = DATA / "postfix-3.7-postlog.log"
CLASSIC = DATA / "classic-syslog.log"
RFC3339 = DATA / "rsyslog-rfc3339.log"

CAPTURE_READ_AT = datetime(2026, 12, 1, 18, 30, tzinfo=UTC)
SAMPLES_READ_AT = datetime(2026, 3, 1, tzinfo=UTC)
HEAD = "Feb  8 14:02:11 mx1 postfix/smtp[2211]: 3F1A52A0B1C: "
"""A classic syslog header with a queue id, for lines made up in a test."""
SENT = (
    "to=<alice@example.com>, relay=mx.example.com[192.0.2.10]:25, delay=1.2, "
    "delays=0.1/0/0.6/0.5, dsn=2.0.0, status=sent (250 2.0.0 OK)"
)


def utc(*parts: int) -> float:
    """Unix seconds of (year, month, day[, hour, minute, second]) in UTC."""
    return float(calendar.timegm((*parts, *(0,) * (9 - len(parts)))))


def context(now: datetime = SAMPLES_READ_AT, tz: ZoneInfo | None = None) -> ParseContext:
    return ParseContext(now, tz=tz if tz is not None else ZoneInfo("UTC"))


def parse_text(line: str, ctx: ParseContext | None = None) -> Record | SkipReason:
    return parse_line(line.encode(), ctx or context())


def record(line: str, ctx: ParseContext | None = None) -> Record:
    result = parse_text(line, ctx)
    assert not isinstance(result, SkipReason), (result, line)
    return result


def delivery(line: str, ctx: ParseContext | None = None) -> Delivery:
    result = record(line, ctx)
    assert isinstance(result, Delivery)
    return result


def parse_file(path: Path, now: datetime) -> list[Record | SkipReason]:
    ctx = context(now)
    with path.open("rb") as lines:
        return [parse_line(line, ctx) for line in lines]


def by_queue_id(results: list[Record | SkipReason]) -> dict[str, list[Record]]:
    found: dict[str, list[Record]] = {}
    for result in results:
        if not isinstance(result, SkipReason):
            found.setdefault(result.queue_id, []).append(result)
    return found


# The real Postfix log ------------------------------------------------------------------


def test_captured_log_every_line_is_read_or_a_postfix_line_not_read() -> None:
    results = parse_file(CAPTURED, CAPTURE_READ_AT)
    kinds = Counter(
        type(result).__name__ if not isinstance(result, SkipReason) else result.value
        for result in results
    )
    # Counted from the file: every to= line, every expiry, every no-to= soft error.
    text = CAPTURED.read_text()
    assert kinds["Delivery"] == text.count(": to=<") == 23
    assert kinds["Expiry"] == text.count("status=expired, returned to sender") == 8
    assert kinds["HostReply"] == 4
    assert kinds["not_read"] == len(results) - 35
    assert set(kinds) == {"Delivery", "Expiry", "HostReply", "not_read"}
    for result in results:
        if not isinstance(result, SkipReason):
            assert utc(2026, 12, 1, 18, 21, 5) <= result.time <= utc(2026, 12, 1, 18, 21, 8)
            assert (result.hostname, result.pid > 0) == ("mta1", True)


def _captured() -> tuple[dict[str, Delivery], dict[str, list[Record]]]:
    """The captured log's deliveries by recipient (the first of each), and all records by
    queue id (the capture's queue ids change with every capture; recipients do not)."""
    results = parse_file(CAPTURED, CAPTURE_READ_AT)
    deliveries: dict[str, Delivery] = {}
    for result in results:
        if isinstance(result, Delivery):
            deliveries.setdefault(result.recipient, result)
    return deliveries, by_queue_id(results)


def test_captured_log_records() -> None:
    deliveries, records = _captured()
    sent = deliveries["user@example.test"]
    assert records[sent.queue_id] == [sent]
    assert (sent.program, sent.recipient, sent.domain, sent.orig_to) == (
        "postfix/smtp",
        "user@example.test",
        "example.test",
        None,
    )
    assert (sent.relay_host, sent.relay_ip) == ("127.0.0.1", "127.0.0.1")
    assert sent.relay_port is not None
    assert sent.relay.endswith(f":{sent.relay_port}")
    assert (sent.dsn, sent.status) == ("2.0.0", DeliveryStatus.SENT)
    assert sent.delay is not None
    assert sent.delays is not None
    assert sent.delays.count("/") == 3
    assert sent.reply == "250 2.0.0 Ok: queued as RESPONDER"
    assert sent.time == utc(2026, 12, 1, 18, 21, 5)
    assert sent.line.startswith("Dec 01 18:21:05 mta1 postfix/smtp[")

    gmail = deliveries["user@gmail.test"]
    said, deferred, expired = records[gmail.queue_id]
    assert isinstance(said, HostReply)
    assert (said.kind, said.remote_ip, said.dsn) == ("said", "127.0.0.1", "4.7.28")
    assert deferred == gmail
    assert (gmail.status, gmail.dsn) == (DeliveryStatus.DEFERRED, "4.7.28")
    assert gmail.reply.endswith("- gsmtp (in reply to end of DATA command)")
    assert isinstance(expired, Expiry)
    assert (expired.program, expired.sender, expired.forced) == (
        "postfix/qmgr",
        "sender@example.test",
        False,
    )

    bounced = deliveries["user@nouser.test"]
    assert (bounced.status, bounced.dsn) == (DeliveryStatus.BOUNCED, "5.1.1")
    microsoft = deliveries["user@outlook.test"]
    assert (microsoft.status, microsoft.dsn) == (DeliveryStatus.BOUNCED, "5.7.1")
    aliased = [
        r for found in records.values() for r in found if isinstance(r, Delivery) and r.orig_to
    ]
    assert [(r.recipient, r.orig_to) for r in aliased] == [
        ("user@example.test", "postmaster@alias.test")
    ]
    softbounce = deliveries["user@orange.test"]
    assert (softbounce.status, softbounce.dsn) == (DeliveryStatus.SOFTBOUNCE, "4.7.1")

    suspended = deliveries["other@att.test"]
    assert (suspended.program, suspended.relay, suspended.relay_ip) == (
        "postfix/error",
        "none",
        None,
    )
    assert suspended.reply.startswith("delivery temporarily suspended: host 127.0.0.1[127.0.0.1]")
    refused = records[deliveries["user@att.test"].queue_id][0]
    assert isinstance(refused, HostReply)
    assert refused.kind == "refused"
    lost = records[deliveries["user@hangup.test"].queue_id][0]
    assert isinstance(lost, HostReply)
    assert lost.kind == "lost_connection"

    long_gmail = deliveries["long@gmail.test"]
    assert long_gmail.program == "postfix-out/smtp"  # a multi-instance syslog_name
    assert len(long_gmail.queue_id) == 15  # a long queue id
    assert [type(r) for r in records[long_gmail.queue_id]] == [HostReply, Delivery, Expiry]
    assert deliveries["long@example.test"].time == utc(2026, 12, 1, 18, 21, 8)


def test_the_bounce_notices_have_the_null_sender_and_are_deliveries() -> None:
    results = parse_file(CAPTURED, CAPTURE_READ_AT)
    notices = [
        r for r in results if isinstance(r, Delivery) and r.recipient == "sender@example.test"
    ]
    assert len(notices) == 10
    assert {r.status for r in notices} == {DeliveryStatus.SENT}


def test_captured_log_postlog_stamps_and_programs() -> None:
    lines = CAPTURED.read_bytes().splitlines()
    ctx = context(CAPTURE_READ_AT)
    # postlog pads the day with a zero; a/b/c daemon names all are Postfix lines
    assert lines[0].startswith(b"Dec 01 18:21:05 mta1 postfix/postfix-script[")
    submission = [line for line in lines if b" postfix/submission/smtpd[" in line]
    assert submission
    assert {parse_line(line, ctx) for line in submission} == {SkipReason.NOT_READ}


def test_every_record_line_has_a_marker_and_most_others_do_not() -> None:
    ctx = context(CAPTURE_READ_AT)
    lines = [
        line for path in (CAPTURED, CLASSIC, RFC3339) for line in path.read_bytes().splitlines()
    ]
    records = 0
    unmarked = 0
    for line in lines:
        marked = any(marker in line for marker in RECORD_MARKERS)
        if not isinstance(parse_line(line, ctx), SkipReason):
            records += 1
            assert marked, line
        unmarked += not marked
    assert records == 35 + 2 * 15
    assert unmarked > len(lines) // 2  # the filter is worth having


# The hand-written samples: classic syslog and RFC 3339 -----------------------------------


@pytest.mark.parametrize("path", [CLASSIC, RFC3339], ids=["classic", "rfc3339"])
def test_samples_read_the_same_in_both_timestamp_styles(path: Path) -> None:
    results = parse_file(path, SAMPLES_READ_AT)
    assert [r.value if isinstance(r, SkipReason) else type(r).__name__ for r in results] == [
        "Delivery",
        "Delivery",
        "not_postfix",  # sshd
        "not_read",  # connect from
        "not_read",  # NOQUEUE: reject
        "not_read",  # from=<>, size=, nrcpt= (queue active)
        "not_read",  # removed
        "not_read",  # postfix-out/submission/smtpd connect from
        "Delivery",
        "Delivery",
        "Expiry",
        "Expiry",
        "Delivery",
        "HostReply",
        "Delivery",
        "not_read",  # anvil statistics
        "not_read",  # warning:
        "HostReply",
        "Delivery",
        "Delivery",
        "HostReply",
        "Delivery",
        "HostReply",
        "not_postfix",  # rsyslogd: last message repeated
    ]
    records = by_queue_id(results)

    (first,) = records["3F1A52A0B1C"]
    assert isinstance(first, Delivery)
    assert (first.recipient, first.domain, first.status) == (
        "alice@example.com",
        "example.com",
        DeliveryStatus.SENT,
    )
    assert first.reply == "250 2.0.0 OK 1707400931 a1si123 - gsmtp"

    (multi,) = records["4BC01A2EBD"]
    assert isinstance(multi, Delivery)
    assert multi.program == "postfix-out/smtp"  # a multi-instance Postfix
    assert (multi.recipient, multi.domain, multi.orig_to) == (
        "Bob@Example.NET",
        "example.net",
        "info@example.org",
    )
    assert (multi.relay_host, multi.relay_ip, multi.relay_port) == (
        "mx.example.net",
        "2001:db8::25",
        25,
    )
    assert multi.conn_use == 2

    (local,) = records["7A1B2C3D4E"]
    assert isinstance(local, Delivery)
    assert (local.relay, local.relay_host, local.relay_ip, local.relay_port) == (
        "local",
        "local",
        None,
        None,
    )
    assert (local.orig_to, local.reply) == ("root", "delivered to mailbox")

    (lmtp,) = records["8A1B2C3D4F"]
    assert isinstance(lmtp, Delivery)
    assert (lmtp.relay_host, lmtp.relay_ip, lmtp.relay_port) == ("mail.example.org", None, None)
    assert lmtp.relay == "mail.example.org[private/dovecot-lmtp]"

    (expired,) = records["3Pt2mN2VXxznjll"]  # REFERENCE's long queue id
    assert isinstance(expired, Expiry)
    assert (expired.sender, expired.forced) == ("news@example.com", False)
    (forced,) = records["4BC01A2EBE"]
    assert isinstance(forced, Expiry)
    assert (forced.sender, forced.forced) == ("", True)

    (yahoo,) = records["3Pt2mN2VXyznjlm"]
    assert isinstance(yahoo, Delivery)
    assert yahoo.program == "postfix-out/relay/smtp"
    assert (yahoo.status, yahoo.dsn, yahoo.delay) == (DeliveryStatus.DEFERRED, "4.7.0", 4000.0)

    (timed_out,) = records["9C0FFEE1234"]
    assert isinstance(timed_out, HostReply)
    assert (timed_out.kind, timed_out.remote_host, timed_out.remote_ip, timed_out.dsn) == (
        "timed_out",
        "mx2.example.net",
        "198.51.100.26",
        "",
    )

    said, gmail = records["463F01A2EBD"]
    assert isinstance(said, HostReply)
    assert (said.kind, said.remote_host, said.remote_ip, said.dsn) == (
        "said",
        "gmail-smtp-in.l.google.com",
        "74.125.192.26",
        "4.7.28",
    )
    assert said.reply.startswith("host gmail-smtp-in.l.google.com[74.125.192.26] said: 421-")
    assert said.reply.endswith("(in reply to end of DATA command)")
    assert isinstance(gmail, Delivery)
    assert gmail.reply == (
        "host alt1.gmail-smtp-in.l.google.com[142.250.153.26] said: 421-4.7.28 "
        "[192.99.55.226 15] Our system has detected an unusual rate of 421-4.7.28 unsolicited "
        "mail originating from your IP address. ... (in reply to end of DATA command)"
    )

    (att,) = records["5D2E81A2EC0"]
    assert isinstance(att, Delivery)
    assert (att.relay, att.dsn, att.status) == ("none", "4.0.0", DeliveryStatus.DEFERRED)
    assert att.reply.startswith("delivery temporarily suspended: host gateway-f1.isp.att.net")
    assert att.reply.endswith("See http://att.net/blocks")
    (refused,) = records["5D2E81A2EC1"]
    assert isinstance(refused, HostReply)
    assert (refused.kind, refused.remote_ip, refused.dsn) == ("refused", "204.127.217.16", "")

    (lost,) = records["5D2E81A2EC3"]
    assert isinstance(lost, HostReply)
    assert lost.reply == "lost connection with mx.example.org[192.0.2.31] while sending RCPT TO"


def test_sample_times_classic_and_rfc3339() -> None:
    classic = [r for r in parse_file(CLASSIC, SAMPLES_READ_AT) if not isinstance(r, SkipReason)]
    rfc = [r for r in parse_file(RFC3339, SAMPLES_READ_AT) if not isinstance(r, SkipReason)]
    assert classic[0].time == utc(2026, 2, 8, 14, 2, 11)
    assert rfc[0].time == utc(2026, 2, 8, 14, 2, 11) + 0.473746
    # +01:00: an hour earlier in UTC than the same wall clock in the classic file.
    assert classic[2].time == utc(2026, 2, 9, 3, 0, 1)
    assert rfc[2].time == utc(2026, 2, 9, 2, 0, 1)
    assert rfc[4].time == utc(2026, 2, 10, 14, 2, 13)  # Z
    assert rfc[6].time == utc(2026, 2, 11, 13, 15, 0) + 0.123456  # -05:00, 9 digits
    for one, other in zip(classic, rfc, strict=True):
        assert one._replace(time=0.0, line="") == other._replace(time=0.0, line="")


# Timestamps and the year ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "now", "expected"),
    [
        # Read on New Year's Day: yesterday's line is last year's.
        ("Dec 31 23:59:59", datetime(2027, 1, 1, 0, 0, 30, tzinfo=UTC), (2026, 12, 31, 23, 59, 59)),
        # Read a minute before midnight: a line stamped just after it comes from an MTA
        # whose clock is a little ahead, not from a year ago.
        ("Jan  1 00:00:01", datetime(2026, 12, 31, 23, 59, tzinfo=UTC), (2027, 1, 1, 0, 0, 1)),
        ("Feb  8 14:02:11", datetime(2026, 2, 8, 10, 0, tzinfo=UTC), (2026, 2, 8, 14, 2, 11)),
        # Exactly a day ahead is still this year; more than a day is last year.
        ("Feb  9 10:00:00", datetime(2026, 2, 8, 10, 0, tzinfo=UTC), (2026, 2, 9, 10, 0, 0)),
        ("Feb  9 10:01:00", datetime(2026, 2, 8, 10, 0, tzinfo=UTC), (2025, 2, 9, 10, 1, 0)),
        ("Feb 10 14:02:11", datetime(2026, 2, 8, 10, 0, tzinfo=UTC), (2025, 2, 10, 14, 2, 11)),
        ("Dec  1 00:00:00", datetime(2026, 11, 30, 0, 0, 1, tzinfo=UTC), (2026, 12, 1, 0, 0, 0)),
        ("Dec  2 00:00:00", datetime(2026, 11, 30, 0, 0, 1, tzinfo=UTC), (2025, 12, 2, 0, 0, 0)),
        # Feb 29 goes back to the latest leap year.
        ("Feb 29 12:00:00", datetime(2026, 3, 1, tzinfo=UTC), (2024, 2, 29, 12, 0, 0)),
        ("Feb 29 12:00:00", datetime(2028, 2, 29, 13, 0, tzinfo=UTC), (2028, 2, 29, 12, 0, 0)),
        # postlog pads with a zero, some syslogs not at all.
        ("Feb 08 14:02:11", datetime(2026, 3, 1, tzinfo=UTC), (2026, 2, 8, 14, 2, 11)),
        ("Feb 8 14:02:11", datetime(2026, 3, 1, tzinfo=UTC), (2026, 2, 8, 14, 2, 11)),
    ],
)
def test_year_of_a_yearless_stamp(stamp: str, now: datetime, expected: tuple[int, ...]) -> None:
    line = f"{stamp} mx1 postfix/smtp[1]: 3F1A52A0B1C: {SENT}"
    assert record(line, context(now)).time == utc(*expected)


def test_yearless_stamps_in_the_configured_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    ctx = ParseContext(datetime(2026, 8, 1, tzinfo=UTC), tz=berlin)
    summer = record(f"Jul  1 12:00:00 mx1 postfix/smtp[1]: 3F1A52A0B1C: {SENT}", ctx)
    winter = record(f"Jan 15 12:00:00 mx1 postfix/smtp[1]: 3F1A52A0B1C: {SENT}", ctx)
    assert summer.time == utc(2026, 7, 1, 10, 0, 0)  # CEST, UTC+2
    assert winter.time == utc(2026, 1, 15, 11, 0, 0)  # CET, UTC+1
    # A stamp with an offset keeps it; one without takes the zone.
    iso = record(f"2026-07-01T12:00:00 mx1 postfix/smtp[1]: 3F1A52A0B1C: {SENT}", ctx)
    assert iso.time == utc(2026, 7, 1, 10, 0, 0)
    iso_utc = record(f"2026-07-01T12:00:00+00:00 mx1 postfix/smtp[1]: 3F1A52A0B1C: {SENT}", ctx)
    assert iso_utc.time == utc(2026, 7, 1, 12, 0, 0)


def test_the_year_is_chosen_in_the_configured_zone() -> None:
    # 2027-01-01 00:30 in Tokyo is still 2026 in UTC: "Jan  1 00:10" is this (Tokyo) year's.
    tokyo = ZoneInfo("Asia/Tokyo")
    ctx = ParseContext(datetime(2026, 12, 31, 15, 30, tzinfo=UTC), tz=tokyo)
    line = record(f"Jan  1 00:10:00 mx1 postfix/smtp[1]: 3F1A52A0B1C: {SENT}", ctx)
    assert line.time == datetime(2027, 1, 1, 0, 10, tzinfo=tokyo).timestamp()


@pytest.fixture
def new_york_local_time() -> Iterator[None]:
    """This process's local zone is America/New_York for the test."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.mark.usefixtures("new_york_local_time")
def test_no_zone_means_the_local_zone_with_its_dst() -> None:
    ctx = ParseContext(datetime(2026, 8, 1, tzinfo=UTC), tz=None)
    summer = record(f"Jul  1 12:00:00 mx1 postfix/smtp[1]: 3F1A52A0B1C: {SENT}", ctx)
    winter = record(f"Jan 15 12:00:00 mx1 postfix/smtp[1]: 3F1A52A0B1C: {SENT}", ctx)
    assert summer.time == utc(2026, 7, 1, 16, 0, 0)  # EDT, UTC-4
    assert winter.time == utc(2026, 1, 15, 17, 0, 0)  # EST, UTC-5


def test_context_now_as_datetime_or_unix_seconds() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert ParseContext(now).now == ParseContext(now.timestamp()).now == now.timestamp()
    assert ParseContext(now.astimezone(ZoneInfo("Asia/Tokyo"))).now == now.timestamp()
    with pytest.raises(ValueError, match="aware datetime"):
        ParseContext(datetime(2026, 3, 1))  # naive: refused


@pytest.mark.parametrize(
    "stamp",
    [
        "Feb 30 14:02:11",
        "Feb 31 00:00:00",
        "Feb  0 14:02:11",
        "Feb  8 25:02:11",
        "Feb  8 14:60:11",
        "Feb  8 14:02:61",
        "Foo  8 14:02:11",
        "2026-02-30T14:02:11+00:00",
        "2026-13-01T14:02:11Z",
    ],
)
def test_impossible_times(stamp: str) -> None:
    assert parse_text(f"{stamp} mx1 postfix/smtp[1]: 3F1A52A0B1C: {SENT}") == SkipReason.BAD_TIME


# Line kinds and fields -------------------------------------------------------------------


def test_recipient_domains() -> None:
    def domain(address: str) -> str | None:
        line = HEAD + SENT.replace("alice@example.com", address)
        return delivery(line).domain

    assert domain("Alice@Example.COM") == "example.com"
    assert domain("alice@example.com.") == "example.com"
    assert domain('"john@doe"@example.org') == "example.org"
    assert domain("root") is None
    assert domain("") is None
    assert domain("@example.com") is None
    empty = delivery(HEAD + SENT.replace("alice@example.com", ""))
    assert (empty.recipient, empty.domain) == ("", None)


def test_all_the_optional_fields() -> None:
    line = (
        HEAD + "to=<a@example.com>, orig_to=<b@example.com>, relay=mx.example.com[192.0.2.1]:2525, "
        "conn_use=17, delay=0.25, delays=0.01/0.02/0.1/0.12, "
        "tls=TLSv1.3:TLS_AES_256_GCM_SHA384:256, dsn=2.0.0, status=sent (250 Ok)"
    )
    found = delivery(line)
    assert (found.recipient, found.orig_to, found.relay_port, found.conn_use) == (
        "a@example.com",
        "b@example.com",
        2525,
        17,
    )
    assert (found.delay, found.delays, found.dsn, found.reply) == (
        0.25,
        "0.01/0.02/0.1/0.12",
        "2.0.0",
        "250 Ok",
    )


def test_a_reply_with_parentheses_is_kept_whole() -> None:
    reply = (
        "host mx.example.com[192.0.2.1] said: 550 5.7.1 (S3150) (part (of) a (block)) "
        "(in reply to RCPT TO command)"
    )
    line = (
        HEAD + "to=<a@example.com>, relay=mx.example.com[192.0.2.1]:25, delay=1, "
        f"delays=0/0/0/1, dsn=5.7.1, status=bounced ({reply})"
    )
    found = delivery(line)
    assert (found.status, found.reply) == (DeliveryStatus.BOUNCED, reply)


def test_records_are_immutable_and_typed() -> None:
    found = delivery(HEAD + SENT)
    with pytest.raises(AttributeError):
        found.status = DeliveryStatus.BOUNCED  # type: ignore[misc]
    assert isinstance(found.status, DeliveryStatus)
    assert found.status == "sent"  # a StrEnum: the value is the label-safe word


def test_line_endings_and_the_none_helper() -> None:
    for ending in ("\n", "\r\n", ""):
        assert delivery(HEAD + SENT + ending).line == HEAD + SENT
    assert parse((HEAD + SENT).encode(), context()) == delivery(HEAD + SENT)
    assert parse(b"garbage\n", context()) is None


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        ("postfix/smtp", "postfix/smtp"),
        ("postfix-out/smtp", "postfix-out/smtp"),
        ("postfix/submission/smtpd", "postfix/submission/smtpd"),
        ("postfix-2.mx/relay/smtp", "postfix-2.mx/relay/smtp"),
        ("postfixx/smtp", SkipReason.NOT_POSTFIX),
        ("postfix", SkipReason.NOT_POSTFIX),
        ("sendmail", SkipReason.NOT_POSTFIX),
        ("postfix/smtp ", SkipReason.NOT_POSTFIX),
    ],
)
def test_program_names(program: str, expected: str | SkipReason) -> None:
    result = parse_text(f"Feb  8 14:02:11 mx1 {program}[2211]: 3F1A52A0B1C: {SENT}")
    if isinstance(expected, SkipReason):
        assert result == expected
    else:
        assert not isinstance(result, SkipReason)
        assert result.program == expected


@pytest.mark.parametrize(
    ("queue_id", "read"),
    [
        ("463F01A2EBD", True),
        ("3F1A52", True),
        ("3Pt2mN2VXxznjll", True),
        ("4jf88y46GgzJ9YM", True),
        ("463f01a2ebd", False),  # short ids are upper-case hex
        ("warning", False),
        ("NOQUEUE", False),
        ("statistics", False),
        ("ABC", False),
    ],
)
def test_queue_ids(queue_id: str, read: bool) -> None:
    result = parse_text(f"Feb  8 14:02:11 mx1 postfix/smtp[2211]: {queue_id}: {SENT}")
    if read:
        assert not isinstance(result, SkipReason)
        assert result.queue_id == queue_id
    else:
        assert result == SkipReason.NOT_READ


@pytest.mark.parametrize(
    "message",
    [
        "connect from unknown[192.0.2.7]",
        "3F1A52A0B1C: client=unknown[192.0.2.7]",
        "3F1A52A0B1C: message-id=<x@example.com>",
        "3F1A52A0B1C: from=<a@example.com>, size=2048, nrcpt=1 (queue active)",
        "3F1A52A0B1C: from=<a@example.com>, status=bogus, returned to sender",
        "3F1A52A0B1C: removed",
        "3F1A52A0B1C: sender non-delivery notification: 4BC01A2EBD",
        "3F1A52A0B1C: host mx.example.com[192.0.2.1] greeted me with my own hostname",
        "3F1A52A0B1C: to=<a@example.com>, relay=mx.example.com[192.0.2.1]:25, delay=1, "
        "delays=0/0/0/1, dsn=2.1.5, status=deliverable (250 2.1.5 Ok)",
        "NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 554 5.7.1 Relay access denied",
        "warning: hostname does not resolve",
    ],
)
def test_postfix_lines_mtarep_does_not_read(message: str) -> None:
    assert parse_text(f"Feb  8 14:02:11 mx1 postfix/smtp[2211]: {message}") == SkipReason.NOT_READ


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", SkipReason.EMPTY),
        (b"\n", SkipReason.EMPTY),
        (b"\r\n", SkipReason.EMPTY),
        (b"x" * (MAX_LINE_BYTES + 1), SkipReason.TOO_LONG),
        (HEAD.encode() + b"to=<a\x00b@example.com>" + SENT[27:].encode(), SkipReason.BINARY),
        (b"\x00" * 100, SkipReason.BINARY),
        (HEAD.encode() + SENT.encode().replace(b"OK", b"\xff\xfe"), SkipReason.INVALID_UTF8),
        (b"\xc3\x28 invalid", SkipReason.INVALID_UTF8),
        (b"Feb  8 14:02:11 mx1 sshd[999]: Accepted publickey for root", SkipReason.NOT_POSTFIX),
        (b"Feb  8 14:02:11 mx1 kernel: [12345.678] eth0: link up", SkipReason.NOT_POSTFIX),
        (b"random text", SkipReason.NOT_POSTFIX),
        (b"postfix/smtp[1]: 3F1A52A0B1C: to=<a@example.com>", SkipReason.NOT_POSTFIX),
        (b"\x1b[31mFeb  8 14:02:11 mx1 postfix/smtp[1]: x", SkipReason.NOT_POSTFIX),
    ],
)
def test_skip_reasons(raw: bytes, reason: SkipReason) -> None:
    assert parse_line(raw, context()) == reason


def test_a_truncated_delivery_line_is_never_a_wrong_record() -> None:
    line = (
        HEAD + "to=<a@example.com>, orig_to=<b@example.com>, relay=mx.example.com[192.0.2.1]:25, "
        "delay=1, delays=0/0/0/1, dsn=4.7.28, status=deferred (host mx.example.com[192.0.2.1] "
        "said: 421-4.7.28 rate limited (in reply to end of DATA command))"
    )
    full = delivery(line)
    start = len(HEAD) + len("to=<")
    for cut in range(start, len(line)):
        result = parse_text(line[:cut])
        if line[:cut].endswith(")"):
            # Cut after a closing parenthesis of the reply: indistinguishable from a
            # whole line, but never anything but a shorter reply.
            assert isinstance(result, Delivery), cut
            assert full.reply.startswith(result.reply)
            assert result._replace(reply=full.reply, line=line) == full
        else:
            assert result == SkipReason.TRUNCATED, (cut, line[:cut])


def test_a_truncated_expiry_line() -> None:
    line = HEAD + "from=<a@example.com>, status=expired, returned to sender"
    assert isinstance(record(line), Expiry)
    for cut in range(line.index("expired") + len("expired"), len(line)):
        assert parse_text(line[:cut]) == SkipReason.TRUNCATED, line[:cut]


def test_delivery_lines_with_broken_fields() -> None:
    assert parse_text(HEAD + SENT.replace("dsn=2.0.0", "dsn=2.0")) == SkipReason.TRUNCATED
    assert parse_text(HEAD + SENT.replace("dsn=2.0.0", "dsn=x")) == SkipReason.TRUNCATED
    assert parse_text(HEAD + SENT.replace(", relay=", ", relay=, ")) == SkipReason.TRUNCATED
    # Fields that do not parse are left out, not guessed.
    odd = delivery(HEAD + SENT.replace("delay=1.2", "delay=inf").replace("0.1/0/0.6/0.5", ""))
    assert (odd.delay, odd.delays) == (None, "")
    odd = delivery(HEAD + SENT.replace("delay=1.2", "delay=-1"))
    assert odd.delay is None


# Hostile input -------------------------------------------------------------------------


def test_remote_text_is_kept_as_logged_and_printable_makes_it_safe() -> None:
    reply = (
        "host mx.example.com[192.0.2.1] said: 550 5.7.1 <script>alert(1)</script> "
        "\x1b[31mred\x1b[0m $(rm -rf /); `id` | tee /etc/passwd && echo \u202eevil "
        "(in reply to RCPT TO command)"
    )
    line = (
        HEAD + "to=<a@example.com>, relay=mx.example.com[192.0.2.1]:25, delay=1, "
        f"delays=0/0/0/1, dsn=5.7.1, status=bounced ({reply})"
    )
    found = delivery(line)
    assert found.reply == reply  # nothing interpreted, nothing lost
    safe = printable(found.reply, 1000)
    assert "\x1b" not in safe
    assert "\u202e" not in safe
    assert "<script>alert(1)</script>" in safe  # escaping is the page's job


def _timed(function: object, *args: object) -> tuple[object, float]:
    assert callable(function)
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def test_a_one_megabyte_line_is_skipped_without_reading_it() -> None:
    line = (HEAD + "to=<" + ">, orig_to=<" * 100_000).encode()
    assert len(line) > 1_000_000
    result, seconds = _timed(parse_line, line, context())
    assert result == SkipReason.TOO_LONG
    assert seconds < 1.0


@pytest.mark.parametrize(
    "body",
    [
        "to=<" + ">, orig_to=<" * 3000,
        "to=<a>, relay=" + ", dsn=" * 5000,
        "to=<a>, relay=x, dsn=2.0.0" + ", status=" * 3000,
        "to=<a>, relay=x, dsn=2.0.0, status=sent" + " (" * 15000,
        "host " + "[" * 30000,
        "host a[1.2.3.4] said: " + "421-4.7.28 " * 2900,
        "lost connection with " + "a" * 30000,
        "from=<" + ">, status=" * 3000,
        "to=<" + "a" * 32000,
    ],
    ids=lambda body: repr(body[:30]),
)
def test_hostile_lines_just_under_the_limit_parse_in_bounded_time(body: str) -> None:
    line = (HEAD + body).encode()[:MAX_LINE_BYTES]
    result, seconds = _timed(parse_line, line, context())
    assert isinstance(result, SkipReason | Delivery | HostReply | Expiry)
    assert seconds < 1.0


def test_addresses_in_hostile_text_in_bounded_time() -> None:
    for text in (
        "1." * 500_000,
        "1:" * 500_000,
        ":" * 1_000_000,
        "ffff:" * 200_000,
        "1.2.3.4 " * 125_000,
        "::ffff:1.2.3.4 " * 60_000,
    ):
        result, seconds = _timed(addresses_in, text)
        assert isinstance(result, list)
        assert len(result) <= MAX_ADDRESSES
        assert seconds < 3.0, text[:20]


# Addresses in a reply, and the reply's DSN -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "host gmail-smtp-in.l.google.com[74.125.192.26] said: 421-4.7.28 "
            "[192.99.55.226 15] Our system has detected an unusual rate",
            ["74.125.192.26", "192.99.55.226"],
        ),
        ("421 4.7.0 [TSS04] Messages from 203.0.113.9 temporarily deferred", ["203.0.113.9"]),
        ("550 5.7.1 Unfortunately, messages from [203.0.113.9] weren't sent.", ["203.0.113.9"]),
        ("550-89.238.221.142 blocked by ldap:ou=rblmx,dc=att,dc=net", ["89.238.221.142"]),
        ("from 2001:DB8:0::0:1 and [2001:db8::1] again", ["2001:db8::1"]),
        ("mapped ::ffff:192.0.2.1 and 192.0.2.1", ["192.0.2.1"]),
        ("IPv6 literal [IPv6:2001:db8::2].", ["2001:db8::2"]),
        ("ends a sentence 192.0.2.5. Next", ["192.0.2.5"]),
        ("version 1.2.3.4.5 and 256.1.1.1 and 01.2.3.4", []),
        ("at 10:45:35 on 2026-03-03T10:45:35.473Z", []),
        ("Error::Blocked :: dc=att,dc=net http://x.test/a:b", []),
        ("", []),
    ],
)
def test_addresses_in(text: str, expected: list[str]) -> None:
    assert addresses_in(text) == expected


def test_addresses_in_gives_at_most_the_limit() -> None:
    text = " ".join(f"192.0.2.{n}" for n in range(100))
    assert addresses_in(text) == [f"192.0.2.{n}" for n in range(MAX_ADDRESSES)]


@pytest.mark.parametrize(
    ("text", "dsn"),
    [
        ("host x[192.0.2.1] said: 421-4.7.28 [192.0.2.2 15] rate", "4.7.28"),
        ("host x[192.0.2.1] said: 550 5.1.1 <a@example.com>: unknown", "5.1.1"),
        ("host x[192.0.2.1] refused to talk to me: 554 Blocked 5.7.1", ""),
        ("host x[192.0.2.1] said: 421 Service not available", ""),
    ],
)
def test_reply_dsn(text: str, dsn: str) -> None:
    assert reply_dsn(text) == dsn


def test_a_context_is_reusable_across_many_minutes() -> None:
    ctx = context(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    start = datetime(2026, 1, 2, tzinfo=UTC)  # January 1st at 00:00 would be 2027's
    for minutes in range(0, 524_000, 997):
        stamp = start + timedelta(minutes=minutes)
        line = (
            f"{stamp:%b} {stamp.day:2d} {stamp:%H:%M:%S} mx1 postfix/smtp[1]: 3F1A52A0B1C: {SENT}"
        )
        assert record(line, ctx).time == stamp.timestamp()
