"""A real Postfix writes the log; the parser and the provider patterns read all of it.

One private Postfix 3.7 (``tests.harness.postfix_server``) relays to a scripted SMTP
responder (``tests.harness.smtp_responder``) that answers like Gmail, Microsoft,
Yahoo, AT&T, Orange, a greylisting server, a mailbox that does not exist, and a
server that hangs up. The module's fixture sends one message per case, waits
(polling the log) until Postfix has logged every outcome, then switches on long
queue ids and a multi-instance ``syslog_name`` (``postfix-out/smtp``) and sends two
more. Every line of the real ``maillog_file`` is parsed.

Run as a script, the same scenario writes the log it produced to a file: that is how
``tests/data/maillog/postfix-3.7-postlog.log`` was made (as root, from the repository)::

    .venv/bin/python -m tests.integration.test_postfix_logs \\
        --capture tests/data/maillog/postfix-3.7-postlog.log
"""

import argparse
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from exporter.postfix_log import (
    Delivery,
    DeliveryStatus,
    Expiry,
    HostReply,
    ParseContext,
    Record,
    SkipReason,
    addresses_in,
    parse_line,
)
from exporter.provider_patterns import providers_matching
from tests.harness.postfix_server import PostfixServer
from tests.harness.smtp_responder import DomainScript, SmtpResponder

pytestmark = pytest.mark.integration

GMAIL_RATE_LIMIT = (
    "421-4.7.28 [127.0.0.1 15] Our system has detected an unusual rate of",
    "421-4.7.28 unsolicited mail originating from your IP address. To protect our",
    "421-4.7.28 users from spam, mail sent from your IP address has been temporarily",
    "421-4.7.28 rate limited. Please visit",
    "421-4.7.28  https://support.google.test/mail/?p=UnsolicitedRateLimitError to",
    "421 4.7.28 review our Bulk Email Senders Guidelines. a1si123456wmb.42 - gsmtp",
)
MICROSOFT_S3150 = (
    "550 5.7.1 Unfortunately, messages from [127.0.0.1] weren't sent. Please contact your"
    " Internet service provider since part of their network is on our block list (S3150)."
    " You can also refer your provider to http://mail.live.test/mail/troubleshooting.aspx#errors."
    " [AM0PR01MB0001.eurprd01.prod.exchangelabs.test 2026-03-03T10:45:35.473Z 08DC3B2A1C7E7E22]",
)
YAHOO_TSS04 = (
    "421 4.7.0 [TSS04] Messages from 127.0.0.1 temporarily deferred due to unexpected volume"
    " or user complaints - 4.16.55.1; see https://postmaster.yahooinc.test/error-codes",
)
ATT_BLOCKED = (
    "554-127.0.0.1 blocked by ldap:ou=rblmx,dc=att,dc=net",
    "554 Error - Blocked for abuse. See http://att.test/blocks",
)
ORANGE_REFUSED = (
    "550 5.7.1 Service refuse. Veuillez essayer plus tard. service refused, please try later."
    " OFR006_102 Ref http://postmaster.orange.test",
)
USER_UNKNOWN = (
    "550 5.1.1 <user@nouser.test>: Recipient address rejected: User unknown in virtual"
    " mailbox table",
)
GREYLISTED = (
    "450 4.2.0 <user@greylist.test>: Recipient address rejected: Greylisted, see"
    " http://postgrey.test/help/greylist.test.html",
)

SCRIPTS = {
    "example.test": DomainScript(),
    "gmail.test": DomainScript(data=GMAIL_RATE_LIMIT, mx_count=2),
    "outlook.test": DomainScript(rcpt=MICROSOFT_S3150),
    "yahoo.test": DomainScript(rcpt=YAHOO_TSS04),
    "nouser.test": DomainScript(rcpt=USER_UNKNOWN),
    "greylist.test": DomainScript(rcpt=GREYLISTED),
    "att.test": DomainScript(greeting=ATT_BLOCKED, mx_count=2),
    "hangup.test": DomainScript(greeting=(), mx_count=2),
    "orange.test": DomainScript(rcpt=ORANGE_REFUSED),
}
TRANSPORTS = {"orange.test": "softbounce", "att.test": "throttling"}
ALIASES = {"postmaster@alias.test": "user@example.test"}
LONG_QUEUE_ID = re.compile(r"[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,24}")
SHORT_QUEUE_ID = re.compile(r"[0-9A-F]{6,20}")


@dataclass(frozen=True)
class Run:
    """What the scenario did: the log, when, and the queue id of each message sent."""

    log: bytes
    started: float
    ended: float
    queue_ids: dict[str, str]
    """Case name -> queue id."""
    responder: SmtpResponder


def _records(log: bytes, now: float) -> list[Record | SkipReason]:
    context = ParseContext(now, tz=None)  # postlog stamps are in Postfix's (our) local zone
    return [parse_line(line, context) for line in log.splitlines()]


def _final_lines_for(server: PostfixServer, queue_ids: dict[str, str], what: str) -> None:
    """Wait until every message has its outcome logged (and the deferred ones expired)."""

    def done(text: str) -> bool:
        records = [r for r in _records(text.encode(), time.time()) if not isinstance(r, SkipReason)]
        delivered = {r.queue_id for r in records if isinstance(r, Delivery)}
        expired = {r.queue_id for r in records if isinstance(r, Expiry)}
        deferred = {
            r.queue_id
            for r in records
            if isinstance(r, Delivery)
            and r.status not in (DeliveryStatus.SENT, DeliveryStatus.BOUNCED)
        }
        wanted = set(queue_ids.values())
        return wanted <= delivered and (deferred & wanted) <= expired

    server.wait_for_log(done, what)


def _notices_due(text: str, queue_ids: dict[str, str]) -> int:
    """How many of our messages bounced or expired (each owes the sender a notice)."""
    records = [r for r in _records(text.encode(), time.time()) if not isinstance(r, SkipReason)]
    failed = {
        r.queue_id
        for r in records
        if isinstance(r, Expiry) or (isinstance(r, Delivery) and r.status == DeliveryStatus.BOUNCED)
    }
    return len(failed & set(queue_ids.values()))


def _notices_sent(text: str) -> int:
    return text.count("to=<sender@example.test>, relay=127.0.0.1[127.0.0.1]:")


def run_scenario(base_dir: Path) -> Run:
    """Start the responder and Postfix under ``base_dir``, send every case, stop both."""
    with SmtpResponder(SCRIPTS) as responder:
        routes = {
            domain: f"{TRANSPORTS.get(domain, 'smtp')}:{responder.nexthop(domain)}"
            for domain in SCRIPTS
        }
        started = time.time()
        with PostfixServer(base_dir / "postfix", routes, aliases=ALIASES) as server:
            queue_ids = {
                "sent": server.send(["user@example.test"]),
                "gmail": server.send(["user@gmail.test"]),
                "microsoft": server.send(["user@outlook.test"]),
                "yahoo": server.send(["user@yahoo.test"]),
                "user_unknown": server.send(["user@nouser.test"]),
                "greylisted": server.send(["user@greylist.test"]),
                "att": server.send(["user@att.test"]),
                "hangup": server.send(["user@hangup.test"]),
                "softbounce": server.send(["user@orange.test"]),
                "alias": server.send(["postmaster@alias.test"]),
            }
            _final_lines_for(server, queue_ids, "every first message's outcome in the log")
            # att.test failed at the greeting: Postfix now holds its mail back.
            queue_ids["suspended"] = server.send(["other@att.test"])
            _final_lines_for(server, queue_ids, "the suspended att.test message in the log")
            # Long queue ids, and the syslog name of a multi-instance Postfix.
            server.reconfigure({"enable_long_queue_ids": "yes", "syslog_name": "postfix-out"})
            queue_ids["long_sent"] = server.send(["long@example.test"])
            queue_ids["long_gmail"] = server.send(["long@gmail.test"])
            _final_lines_for(server, queue_ids, "the long-queue-id messages in the log")
            server.wait_for_log(
                lambda text: _notices_sent(text) == _notices_due(text, queue_ids),
                "a non-delivery notice to the sender for every bounced or expired message",
            )
            log = server.log_path.read_bytes()
        ended = time.time()
    return Run(log, started, ended, queue_ids, responder)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_scenario(tmp_path_factory.mktemp("postfix-logs"))


@pytest.fixture(scope="module")
def parsed(run: Run) -> list[Record | SkipReason]:
    return _records(run.log, run.ended)


def _for(parsed: list[Record | SkipReason], queue_id: str) -> list[Record]:
    return [r for r in parsed if not isinstance(r, SkipReason) and r.queue_id == queue_id]


def _delivery(parsed: list[Record | SkipReason], queue_id: str) -> Delivery:
    found = [r for r in _for(parsed, queue_id) if isinstance(r, Delivery)]
    assert len(found) == 1, found
    return found[0]


def _host_replies(parsed: list[Record | SkipReason], queue_id: str) -> list[HostReply]:
    return [r for r in _for(parsed, queue_id) if isinstance(r, HostReply)]


def test_every_line_is_a_record_or_a_postfix_line_not_read(
    run: Run, parsed: list[Record | SkipReason]
) -> None:
    lines = run.log.splitlines()
    assert len(lines) == len(parsed) > 50
    for line, result in zip(lines, parsed, strict=True):
        assert result in (*(SkipReason.NOT_READ,),) or not isinstance(result, SkipReason), line
        if not isinstance(result, SkipReason):
            assert run.started - 2 <= result.time <= run.ended + 2, line
            assert result.hostname == "mta1"
            assert result.line == line.decode()


def test_multi_part_program_names_are_postfix_lines(
    run: Run, parsed: list[Record | SkipReason]
) -> None:
    submission = [
        result
        for line, result in zip(run.log.splitlines(), parsed, strict=True)
        if b" postfix/submission/smtpd[" in line
    ]
    assert submission
    assert set(submission) == {SkipReason.NOT_READ}


def test_sent(run: Run, parsed: list[Record | SkipReason]) -> None:
    record = _delivery(parsed, run.queue_ids["sent"])
    assert record.status == DeliveryStatus.SENT
    assert (record.recipient, record.domain, record.orig_to) == (
        "user@example.test",
        "example.test",
        None,
    )
    assert (record.relay_host, record.relay_ip) == ("127.0.0.1", "127.0.0.1")
    assert record.relay_port == run.responder.ports["example.test"][0]
    assert record.dsn == "2.0.0"
    assert record.reply == "250 2.0.0 Ok: queued as RESPONDER"
    assert record.program == "postfix/smtp"
    assert record.delay is not None
    assert record.delays is not None
    assert record.delays.count("/") == 3
    assert providers_matching(record.reply) == []


def test_gmail_rate_limit_is_logged_as_said_then_deferred(
    run: Run, parsed: list[Record | SkipReason]
) -> None:
    queue_id = run.queue_ids["gmail"]
    (said,) = _host_replies(parsed, queue_id)
    assert said.kind == "said"
    assert (said.remote_host, said.remote_ip, said.dsn) == ("127.0.0.1", "127.0.0.1", "4.7.28")
    assert said.reply.startswith("host 127.0.0.1[127.0.0.1] said: 421-4.7.28 [127.0.0.1 15]")
    assert "421-4.7.28 unsolicited mail" in said.reply  # the lines, joined as Postfix does
    assert said.reply.endswith("- gsmtp (in reply to end of DATA command)")
    deferred = _delivery(parsed, queue_id)
    assert deferred.status == DeliveryStatus.DEFERRED
    assert deferred.dsn == "4.7.28"
    assert deferred.relay_port == run.responder.ports["gmail.test"][1]  # the last MX
    assert deferred.reply == said.reply + ""  # same text from the final server
    for reply in (said.reply, deferred.reply):
        assert providers_matching(reply) == ["gmail"]
        assert addresses_in(reply) == ["127.0.0.1"]


def test_microsoft_block_bounces(run: Run, parsed: list[Record | SkipReason]) -> None:
    record = _delivery(parsed, run.queue_ids["microsoft"])
    assert record.status == DeliveryStatus.BOUNCED
    assert record.dsn == "5.7.1"
    assert record.domain == "outlook.test"
    assert "(S3150)" in record.reply
    assert record.reply.endswith("08DC3B2A1C7E7E22] (in reply to RCPT TO command)")
    assert providers_matching(record.reply) == ["microsoft"]
    assert addresses_in(record.reply) == ["127.0.0.1"]


def test_yahoo_deferral(run: Run, parsed: list[Record | SkipReason]) -> None:
    record = _delivery(parsed, run.queue_ids["yahoo"])
    assert record.status == DeliveryStatus.DEFERRED
    assert record.dsn == "4.7.0"
    assert "[TSS04] Messages from 127.0.0.1 temporarily deferred" in record.reply
    assert providers_matching(record.reply) == ["yahoo"]
    # Yahoo's own "4.16.55.1" looks like an address: callers compare with their IPs.
    assert addresses_in(record.reply) == ["127.0.0.1", "4.16.55.1"]


def test_user_unknown_bounces_and_is_no_block(run: Run, parsed: list[Record | SkipReason]) -> None:
    record = _delivery(parsed, run.queue_ids["user_unknown"])
    assert record.status == DeliveryStatus.BOUNCED
    assert record.dsn == "5.1.1"
    assert "User unknown" in record.reply
    assert providers_matching(record.reply) == []


def test_greylisting_defers_and_is_no_block(run: Run, parsed: list[Record | SkipReason]) -> None:
    record = _delivery(parsed, run.queue_ids["greylisted"])
    assert record.status == DeliveryStatus.DEFERRED
    assert record.dsn == "4.2.0"
    assert providers_matching(record.reply) == []


def test_every_deferral_expires(run: Run, parsed: list[Record | SkipReason]) -> None:
    for case in ("gmail", "yahoo", "greylisted", "att", "hangup", "softbounce", "suspended"):
        expiries = [r for r in _for(parsed, run.queue_ids[case]) if isinstance(r, Expiry)]
        assert len(expiries) == 1, case
        (expiry,) = expiries
        assert expiry.program == "postfix/qmgr"
        assert expiry.sender == "sender@example.test"
        assert not expiry.forced
    for case in ("sent", "microsoft", "user_unknown", "alias"):
        assert not [r for r in _for(parsed, run.queue_ids[case]) if isinstance(r, Expiry)]


def test_refused_to_talk_then_suspended(run: Run, parsed: list[Record | SkipReason]) -> None:
    (refused,) = _host_replies(parsed, run.queue_ids["att"])
    assert refused.kind == "refused"
    assert refused.reply.startswith("host 127.0.0.1[127.0.0.1] refused to talk to me: 554-")
    assert providers_matching(refused.reply) == ["att"]
    first = _delivery(parsed, run.queue_ids["att"])
    assert first.status == DeliveryStatus.DEFERRED
    assert "refused to talk to me" in first.reply
    later = _delivery(parsed, run.queue_ids["suspended"])
    assert later.status == DeliveryStatus.DEFERRED
    assert later.relay == "none"
    assert (later.relay_ip, later.relay_port) == (None, None)
    assert later.reply.startswith("delivery temporarily suspended: host 127.0.0.1[127.0.0.1]")
    assert providers_matching(later.reply) == ["att"]
    assert addresses_in(later.reply) == ["127.0.0.1"]


def test_lost_connection(run: Run, parsed: list[Record | SkipReason]) -> None:
    (lost,) = _host_replies(parsed, run.queue_ids["hangup"])
    assert lost.kind == "lost_connection"
    assert (lost.remote_host, lost.remote_ip, lost.dsn) == ("127.0.0.1", "127.0.0.1", "")
    assert lost.reply == (
        "lost connection with 127.0.0.1[127.0.0.1] while receiving the initial server greeting"
    )
    assert providers_matching(lost.reply) == []
    assert _delivery(parsed, run.queue_ids["hangup"]).status == DeliveryStatus.DEFERRED


def test_softbounce(run: Run, parsed: list[Record | SkipReason]) -> None:
    record = _delivery(parsed, run.queue_ids["softbounce"])
    assert record.status == DeliveryStatus.SOFTBOUNCE
    assert record.dsn == "4.7.1"  # soft_bounce turns the 5 of the reply's 5.7.1 into a 4
    assert "status=SOFTBOUNCE" in record.line
    assert providers_matching(record.reply) == ["orange"]


def test_orig_to(run: Run, parsed: list[Record | SkipReason]) -> None:
    record = _delivery(parsed, run.queue_ids["alias"])
    assert (record.recipient, record.orig_to) == ("user@example.test", "postmaster@alias.test")
    assert record.status == DeliveryStatus.SENT


def test_long_and_short_queue_ids(run: Run, parsed: list[Record | SkipReason]) -> None:
    assert SHORT_QUEUE_ID.fullmatch(run.queue_ids["sent"])
    for case in ("long_sent", "long_gmail"):
        assert LONG_QUEUE_ID.fullmatch(run.queue_ids[case]), run.queue_ids[case]
        assert not SHORT_QUEUE_ID.fullmatch(run.queue_ids[case])
    sent = _delivery(parsed, run.queue_ids["long_sent"])
    assert sent.status == DeliveryStatus.SENT
    assert sent.program == "postfix-out/smtp"  # after the reload: a multi-instance name
    (said,) = _host_replies(parsed, run.queue_ids["long_gmail"])
    assert said.dsn == "4.7.28"
    assert said.program == "postfix-out/smtp"
    kinds = {type(r) for r in _for(parsed, run.queue_ids["long_gmail"])}
    assert kinds == {Delivery, HostReply, Expiry}


def test_bounces_to_the_sender_are_deliveries_too(
    run: Run, parsed: list[Record | SkipReason]
) -> None:
    ours = set(run.queue_ids.values())
    notices = [
        r
        for r in parsed
        if isinstance(r, Delivery)
        and r.queue_id not in ours
        and r.recipient == "sender@example.test"
    ]
    # One non-delivery notice per bounced or expired message.
    assert len(notices) == 2 + 8
    assert {r.status for r in notices} == {DeliveryStatus.SENT}


def test_the_responder_refuses_malformed_scripts() -> None:
    with pytest.raises(ValueError, match="must start with 421"):
        DomainScript(data=("421-4.7.28 a", "450 4.7.28 b"))
    with pytest.raises(ValueError, match="'-' on all but the last"):
        DomainScript(rcpt=("550 a", "550 b"))
    with pytest.raises(ValueError, match="CR or LF"):
        DomainScript(rcpt=("550 a\r\nRSET",))
    with pytest.raises(ValueError, match="at least one line"):
        DomainScript(rcpt=())


def _capture(out: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="mtarep-postfix-capture-") as base:
        run = run_scenario(Path(base))
    out.write_bytes(run.log)
    print(f"wrote {len(run.log.splitlines())} lines to {out}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capture", type=Path, required=True, help="where to write the log")
    sys.exit(_capture(parser.parse_args().capture))
