"""Built-in provider block patterns, the configuration merged over them, hostile input.

Positive texts follow ../shared/REFERENCE.md "What providers say when they block or
throttle an IP" (with documentation addresses); negatives are what must never count
as a block: unknown users, full mailboxes, greylisting, a plain 250.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest

from exporter.config import load_config
from exporter.postfix_log import Delivery, HostReply, ParseContext, parse
from exporter.provider_patterns import (
    BUILTIN_PATTERNS,
    BUILTIN_PROVIDERS,
    MAX_MATCH_CHARS,
    ProviderMatcher,
    merged_patterns,
    providers_matching,
    unfold_reply,
)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
MAILLOG = Path(__file__).resolve().parent.parent / "data" / "maillog"

POSITIVE: list[tuple[str, str]] = [
    (
        "gmail",
        "host gmail-smtp-in.l.google.com[74.125.192.26] said: 421-4.7.28 [192.0.2.1 15] Our "
        "system has detected an unusual rate of 421-4.7.28 unsolicited mail originating from "
        "your IP address. To protect our 421-4.7.28 users from spam, mail sent from your IP "
        "address has been temporarily 421 4.7.28 rate limited. - gsmtp "
        "(in reply to end of DATA command)",
    ),
    (
        "gmail",
        "550-5.7.1 [192.0.2.1] Our system has detected that this message is 550-5.7.1 likely "
        "unsolicited mail. To reduce the amount of spam sent to Gmail, 550 5.7.1 this message "
        "has been blocked. - gsmtp",
    ),
    (
        "gmail",
        "421-4.7.0 [192.0.2.1] Our system has detected that this message is suspicious due to "
        "the very low reputation of the sending domain. - gsmtp",
    ),
    (
        "gmail",
        "550-5.7.26 This mail has been blocked because the sender is unauthenticated. 550-5.7.26 "
        "Gmail requires all senders to authenticate with either SPF or DKIM. - gsmtp",
    ),
    (
        "gmail",
        "550-5.7.26 Unauthenticated email from example.com is not accepted due to 550-5.7.26 "
        "domain's DMARC policy. - gsmtp",
    ),
    (
        "microsoft",
        "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your "
        "Internet service provider since part of their network is on our block list (S3150).",
    ),
    (
        "microsoft",
        "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your "
        "Internet service provider since part of their network is on our block list (S3140).",
    ),
    (
        "microsoft",
        "550 5.7.606 Access denied, banned sending IP [192.0.2.1]. To request removal from this "
        "list please visit https://sender.office.com/ and follow the directions.",
    ),
    ("microsoft", "550 5.7.649 Access denied, this IP is not allowed to send"),
    (
        "microsoft",
        "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP "
        "reputation.",
    ),
    ("microsoft", "421 4.7.651 The mail server [192.0.2.1] has been temporarily rate limited"),
    ("microsoft", "550 5.7.1 Service unavailable, Client host [192.0.2.1] blocked (S844)"),
    (
        "yahoo",
        "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume "
        "or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
    ),
    (
        "yahoo",
        "421 4.7.0 [TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying "
        "will NOT succeed. See https://postmaster.yahooinc.com/error-codes",
    ),
    ("yahoo", "421 4.7.0 [TSS11] Excessive unknown recipients - possible phishing/spam"),
    (
        "yahoo",
        "553 5.7.2 [BL21] Connections will not be accepted from 192.0.2.1, because the ip is in "
        "Spamhaus's list; see https://postmaster.yahooinc.com/error-codes",
    ),
    ("yahoo", "553 5.7.2 [BL23] Connections not accepted from IP addresses on our list"),
    (
        "comcast",
        "554 resimta-po-21v.sys.comcast.net resimta-po-21v.sys.comcast.net 192.0.2.1 found on one "
        "or more DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL000010",
    ),
    (
        "comcast",
        "550 5.7.1 Comcast block for spam. Please see "
        "http://postmaster.comcast.net/smtp-error-codes.php#BL000000",
    ),
    (
        "comcast",
        "421 4.7.0 192.0.2.1 rate limited, see "
        "https://postmaster.comcast.net/smtp-error-codes.php#RL000001",
    ),
    (
        "apple",
        "554 5.7.1 [CS01] Message rejected due to local policy. Please visit "
        "https://support.apple.com/en-us/HT204137",
    ),
    (
        "att",
        "delivery temporarily suspended: host gateway-f1.isp.att.net[204.127.217.16] refused to "
        "talk to me: 550-89.238.221.142 blocked by ldap:ou=rblmx,dc=att,dc=net 550 Error - "
        "Blocked for abuse. See http://att.net/blocks",
    ),
    (
        "att",
        "553 5.3.0 flph829 DNSBL:ATTRBL 521< 192.0.2.1 >_is_blocked.For assistance forward this "
        "email to abuse_rbl@abuse-att.net",
    ),
    ("spectrum", "554 5.7.1 - ERROR: Mail refused - <192.0.2.1> - AUP#1000"),
    ("spectrum", "554 5.7.1 - ERROR: Mail refused - Cloudmark - AUP#1205"),
    ("spectrum", "554 5.7.1 - ERROR: Mail refused - Spamhaus - AUP#1230"),
    ("spectrum", "421 4.7.0 - Too many connections from <192.0.2.1> - AUP#1490"),
    ("cox", "554 5.7.1 192.0.2.1 rejected by Cox. AUP#CDRBL"),
    (
        "cloudmark",
        "550 5.7.1 Your IP 192.0.2.1 is blocked by Cloudmark Sender Intelligence. Please see "
        "https://csi.cloudmark.com/reset-request/?ip=192.0.2.1",
    ),
    ("proofpoint", "554 5.7.1 Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.1"),
    ("proofpoint", "521 Proofpoint Dynamic Reputation: connection rejected from 192.0.2.1"),
    ("proofpoint", "554 5.7.1 Rejected - see https://prs.proofpoint.com/?ip=192.0.2.1"),
    (
        "mimecast",
        "554 Local CT IP Reputation - (reject) https://community.mimecast.com/docs/DOC-1369#554",
    ),
    (
        "gmx",
        "host mx00.emig.gmx.net[212.227.15.9] refused to talk to me: 554-gmx.net (mxgmx017) "
        "Nemesis ESMTP Service not available 554-No SMTP service 554-IP address is block listed."
        " 554 For explanation visit https://postmaster.gmx.net/en/case?c=r0301&i=ip&v=192.0.2.1",
    ),
    ("gmx", "554 web.de (mxweb112) IP address is blocklisted."),
    (
        "orange",
        "421 mwinf5c01 ME Service refuse. Veuillez essayer plus tard. Service refused, please try "
        "later. OFR005_104 [104]",
    ),
    ("orange", "550 5.7.1 Service refuse. OFR006_102"),
    (
        "mailru",
        "550 spam message rejected. Please visit https://help.mail.ru/notspam-support/id?c=AbC "
        "or report details to abuse@corp.mail.ru.",
    ),
    ("yandex", "554 5.7.1 [2] Message rejected under suspicion of SPAM; https://ya.cc/1IrBc"),
]

SEVERAL: list[tuple[list[str], str]] = [
    (
        ["cox", "cloudmark"],  # Cox quoting Cloudmark: both, in table order
        "554 5.7.1 cdptpa-ibmxa-001.mail.cox.net cox.net 192.0.2.1 rejected. IPBL1000 - see "
        "https://csi.cloudmark.com/reset-request/?ip=192.0.2.1 AUP#CDRBL",
    ),
    (
        ["apple", "proofpoint"],  # iCloud's Proofpoint text, from an icloud.com server
        "host mx01.mail.icloud.com[17.57.154.6] said: 550 5.7.0 Blocked - see "
        "https://ipcheck.proofpoint.com/?ip=192.0.2.1 (in reply to MAIL FROM command)",
    ),
    (
        ["cloudmark", "orange"],
        "550 5.7.1 Service refuse. Veuillez essayer plus tard. service refused, please try "
        "later. OFR006_102 Ref http://csi.cloudmark.com/reset-request",
    ),
]

NEGATIVE: list[str] = [
    "550 5.1.1 <x@example.com>: Recipient address rejected: User unknown in local recipient table",
    "host gmail-smtp-in.l.google.com[74.125.192.26] said: 550-5.1.1 The email account that you "
    "tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient's email "
    "address for typos or 550-5.1.1 unnecessary spaces. For more information, go to 550 5.1.1  "
    "https://support.google.com/mail/?p=NoSuchUser a1si123 - gsmtp (in reply to RCPT TO command)",
    "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). "
    "[AM0PR01MB0001.eurprd01.prod.exchangelabs.com]",
    "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [DB5EUR03FT001.eop.com]",
    "554 delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0] - "
    "mta1234.mail.ne1.yahoo.com",
    "452-4.2.2 The email account that you tried to reach is over quota. Please direct 452 4.2.2 "
    "the recipient to https://support.google.com/mail/?p=OverQuotaTemp a1si123 - gsmtp",
    "552 5.2.2 <x@example.com>: Recipient address rejected: Mailbox full",
    "450 4.2.0 <x@example.com>: Recipient address rejected: Greylisted, see "
    "http://postgrey.schweikert.ch/help/example.com.html",
    "451 4.7.1 Please try again later (greylisting)",
    "250 2.0.0 OK 1707400931 a1si123 - gsmtp",
    "250 2.0.0 Ok: queued as 4jf88y43FkzJ9LG",
    "lost connection with mx.example.com[192.0.2.10] while receiving the initial server greeting",
    "connect to mx.example.com[192.0.2.10]:25: Connection timed out",
    "554 5.7.1 - ERROR: Mail refused - AUP#1260",  # Spectrum code outside the blocking ranges
    "550 5.7.1 Message rejected: content looks like spam",
    "421 4.3.2 Service not available, closing transmission channel",
    "550 5.7.1 <x@example.com>: Relay access denied",
    "550 Requested action not taken: mailbox unavailable",
]


@pytest.mark.parametrize(("provider", "reply"), POSITIVE, ids=[p for p, _ in POSITIVE])
def test_every_builtin_recognises_its_provider(provider: str, reply: str) -> None:
    assert providers_matching(reply) == [provider]


def test_every_builtin_has_a_positive_example() -> None:
    assert {provider for provider, _ in POSITIVE} == set(BUILTIN_PATTERNS)
    assert list(BUILTIN_PATTERNS) == [
        "gmail",
        "microsoft",
        "yahoo",
        "comcast",
        "apple",
        "att",
        "spectrum",
        "cox",
        "cloudmark",
        "proofpoint",
        "mimecast",
        "gmx",
        "orange",
        "mailru",
        "yandex",
    ]
    for provider in BUILTIN_PROVIDERS:
        assert provider.matches
        assert provider.hints
        assert all(hint == hint.lower() for hint in provider.hints)


@pytest.mark.parametrize(("providers", "reply"), SEVERAL)
def test_a_reply_naming_several_gives_all_in_table_order(providers: list[str], reply: str) -> None:
    assert providers_matching(reply) == providers


@pytest.mark.parametrize("reply", NEGATIVE)
def test_no_builtin_matches_what_is_not_a_block(reply: str) -> None:
    assert providers_matching(reply) == []


def test_case_does_not_matter() -> None:
    assert providers_matching("550 PART OF THEIR NETWORK IS ON OUR BLOCK LIST") == ["microsoft"]
    assert providers_matching("421 [tss04] messages from 192.0.2.1 deferred") == ["yahoo"]


# Multi-line replies ---------------------------------------------------------------------


def test_unfold_reply() -> None:
    assert unfold_reply("421-4.7.28 rate of 421-4.7.28 unsolicited 421 4.7.28 mail. - gsmtp") == (
        "421-4.7.28 rate of unsolicited mail. - gsmtp"
    )
    assert unfold_reply(
        "host x[192.0.2.1] refused to talk to me: 554-192.0.2.1 blocked by ldap 554 Error"
    ) == ("host x[192.0.2.1] refused to talk to me: 554-192.0.2.1 blocked by ldap Error")
    assert unfold_reply("250 2.0.0 Ok") == "250 2.0.0 Ok"
    assert unfold_reply("no code at all") == "no code at all"
    # Other numbers stay: only the reply's own code is a line marker.
    assert unfold_reply("550-5.7.1 see 421 and 554 550 5.7.1 end") == (
        "550-5.7.1 see 421 and 554 end"
    )


def test_a_phrase_broken_across_reply_lines_still_matches() -> None:
    # Postfix joins the lines; a configured phrase matches the unfolded text.
    configured = {"gmail": re.compile(r"unusual rate of unsolicited mail")}
    matcher = ProviderMatcher.from_config(configured)
    reply = (
        "421-4.7.28 [192.0.2.1 15] Our system has detected an unusual rate of 421-4.7.28 "
        "unsolicited mail originating from your IP address."
    )
    assert matcher.providers_matching(reply) == ["gmail"]
    # ...and a configured pattern written for the logged form matches that form.
    literal = ProviderMatcher.from_config({"gmail": re.compile(r"rate of 421-4\.7\.28 unsol")})
    assert literal.providers_matching(reply) == ["gmail"]


# The configuration over the built-ins -----------------------------------------------------


def test_merged_patterns_replace_remove_add() -> None:
    mine = re.compile("my gmail text")
    custom = re.compile("rejected by example")
    merged = merged_patterns({"gmail": mine, "yahoo": None, "example": custom})
    assert merged["gmail"] is mine
    assert "yahoo" not in merged
    assert merged["example"] is custom
    names = list(merged)
    assert names[0] == "gmail"  # a replaced built-in keeps its place
    assert names[-1] == "example"  # a new one comes last
    assert merged_patterns(None) == dict(BUILTIN_PATTERNS)
    assert merged_patterns({"not-a-builtin": None}) == dict(BUILTIN_PATTERNS)


def test_matcher_with_the_configuration() -> None:
    matcher = ProviderMatcher.from_config(
        {"gmail": re.compile("my gmail text"), "yahoo": None, "example": re.compile("ExAmPlE")}
    )
    assert "yahoo" not in matcher.providers
    # The built-in gmail pattern is gone: its text no longer matches.
    assert matcher.providers_matching(POSITIVE[0][1]) == []
    assert matcher.providers_matching("550 my gmail text here") == ["gmail"]
    assert matcher.providers_matching("421 [TSS04] deferred") == []
    # Configured patterns are searched as written (case-sensitive unless they say (?i)).
    assert matcher.providers_matching("554 ExAmPlE") == ["example"]
    assert matcher.providers_matching("554 example") == []


def test_the_old_tools_configuration_overrides_the_builtins() -> None:
    config = load_config(CONFIGS / "valid" / "old_mtarep.yml", environ={}).config
    matcher = ProviderMatcher.from_config(config.provider_patterns)
    # Its cox pattern ("Error Code: CXBL") replaces the built-in one...
    assert matcher.providers_matching("554 rejected. Error Code: CXBL") == ["cox"]
    assert matcher.providers_matching("554 192.0.2.1 rejected by Cox. AUP#CDRBL") == []
    # ...its comcast one only knows BL0 codes; the built-ins it does not name stay.
    assert matcher.providers_matching(POSITIVE[0][1]) == ["gmail"]
    att = "550 Error - Blocked for abuse. For_information_see_http://att.net/blocks"
    assert matcher.providers_matching(att) == ["att"]


def test_hints_never_change_the_answer() -> None:
    with_hints = ProviderMatcher()
    without = ProviderMatcher(use_hints=False)
    texts = [reply for _, reply in POSITIVE] + [reply for _, reply in SEVERAL] + NEGATIVE
    context = ParseContext(time.time())
    for path in sorted(MAILLOG.glob("*.log")):
        for line in path.read_bytes().splitlines():
            found = parse(line, context)
            if isinstance(found, Delivery | HostReply):
                texts.append(found.reply)
    # Random mixtures of every pattern's pieces, in random case and spacing.
    pieces = [
        piece
        for _, reply in POSITIVE + [(None, reply) for _, reply in SEVERAL]
        for piece in reply.split(" ")
    ]
    rng = random.Random(5)
    for _ in range(3000):
        words = rng.sample(pieces, rng.randint(1, 12))
        text = rng.choice([" ", "  ", " 421-4.7.28 ", "\t"]).join(words)
        texts.append(text.upper() if rng.random() < 0.2 else text)
    assert len(texts) > 3000
    for text in texts:
        assert with_hints.providers_matching(text) == without.providers_matching(text), text


def test_only_the_start_of_a_huge_reply_is_searched() -> None:
    block = "part of their network is on our block list (S3150)"
    assert providers_matching("x" * (MAX_MATCH_CHARS - len(block)) + block) == ["microsoft"]
    assert providers_matching("x" * MAX_MATCH_CHARS + block) == []


# Hostile input --------------------------------------------------------------------------

HOSTILE_SIZE = 100_000


def _hostile_texts() -> list[str]:
    """100 KB texts built from each pattern's own prefixes, repeated: the worst inputs for
    a backtracking engine (each almost-match restarts), and some generic ones."""
    prefixes = [
        "5.7.26 ",
        ".icloud.com[192.0.2.1] ",
        ".icloud.com[",
        "AUP#1",
        "(S31",
        "[TSS",
        "unusual rate of ",
        "unusual   ",
        "very low reputation of the sending ",
        "421-4.7.28 ",
        "421 ",
        "Blocked - see ",
        "smtp-error-codes.php#BL",
        "IP address is block",
        "Nemesis ESMTP Service not ",
        "OFR00",
        "5.7.6",
        "4.7.65",
        "a",
        " ",
        "(",
        "[",
    ]
    return [(prefix * (HOSTILE_SIZE // len(prefix) + 1))[:HOSTILE_SIZE] for prefix in prefixes]


@pytest.mark.parametrize("provider", BUILTIN_PROVIDERS, ids=lambda provider: provider.name)
def test_builtin_patterns_run_in_bounded_time_on_hostile_input(provider: object) -> None:
    assert hasattr(provider, "pattern")
    pattern = provider.pattern
    assert isinstance(pattern, re.Pattern)
    start = time.perf_counter()
    for text in _hostile_texts():
        pattern.search(text)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"{provider}: {elapsed:.2f}s over {len(_hostile_texts())} texts"


def test_the_matcher_runs_in_bounded_time_on_hostile_input() -> None:
    matcher = ProviderMatcher(use_hints=False)  # every pattern, every time
    start = time.perf_counter()
    for text in _hostile_texts():
        matcher.providers_matching(text)
        unfold_reply(text)
    assert time.perf_counter() - start < 10.0
