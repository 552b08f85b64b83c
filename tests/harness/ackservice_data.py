"""What the exporter would have stored, for the ackservice's tests and benchmark.

The data goes through the exporter's own models and rules: per-IP state is built as
:class:`~exporter.snapshot.TargetState`, per-host logs as ``MaillogState``, the
issues and their details come from :func:`exporter.issues.current_issues`, and
everything is written with the same Store calls and document shape as
``exporter.cycle.Collection`` uses. So the fixtures stay true to what the exporter
writes, and a change there shows up here.

The sample fleet has an issue of every kind (``rbl``, ``senderscore``, ``dns``,
``snds`` filter/traps/blocked, ``reputation``, ``provider``), an IPv6 address whose
checks are all unknown, and a host whose maillog could not be read.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from exporter.config import Config
from exporter.cycle import host_results
from exporter.dnsbl import zone_label
from exporter.issues import IssueDetail, current_issues
from exporter.snapshot import (
    CheckState,
    MaillogState,
    ProviderBlock,
    RblState,
    ReputationState,
    Snapshot,
    SndsData,
    SndsFeed,
    SndsState,
    TargetState,
)
from exporter.store import IssueKey, Store

HOST = "mta1.example.com"
HOST2 = "mta2.example.com"
IP = "192.0.2.10"
IP6 = "2001:db8::10"
IP2 = "192.0.2.20"
ZEN = "zen.spamhaus.org"
PSBL = "psbl.surriel.com"
T0 = 1_700_000_000.0

REJECTION = (
    "Nov 14 22:13:20 mta1 postfix/smtp[31892]: 463F01A2EBD: to=<bob@gmail.com>, "
    "relay=gmail-smtp-in.l.google.com[74.125.192.26]:25, delay=1.2, dsn=4.7.28, "
    "status=deferred (host gmail-smtp-in.l.google.com[74.125.192.26] said: 421-4.7.28 "
    "[192.0.2.10 15] Our system has detected an unusual rate of unsolicited mail "
    "originating from your IP address. (in reply to end of DATA command))"
)
TXT_REASON = "Listed by SBL, see https://check.spamhaus.org/sbl/query/SBL123456"
HOSTILE = (
    "550 5.7.1 <script>alert('x')</script> \"onmouseover=alert(1) x=\""
    " <img src=x onerror=alert(2)> \u202egnp.exe\u202c & done"
)
"""Remote text at its worst: markup, an attribute break-out, a bidi override."""

ISSUE_KEYS = {
    "rbl": IssueKey(IP, "rbl", ZEN),
    "senderscore": IssueKey(IP, "senderscore", "senderscore"),
    "dns": IssueKey(IP, "dns", "helo"),
    "snds_filter": IssueKey(IP, "snds", "filter"),
    "snds_traps": IssueKey(IP, "snds", "traps"),
    "snds_blocked": IssueKey(IP, "snds", "blocked"),
    "reputation": IssueKey(IP, "reputation", "brightmail"),
    "provider": IssueKey(IP, "provider", "gmail"),
}
"""Every issue the sample fleet opens."""


def config_document(**overrides: Any) -> dict[str, Any]:
    """The sample fleet's mtarep.yml as a mapping (``overrides`` replace top-level keys)."""
    document: dict[str, Any] = {
        "mta_map": {
            "mta1": {"fqdn": HOST, "ips": [IP, IP6], "maillog_path": "/var/log/mail.log"},
            "mta2": {"fqdn": HOST2, "ips": [IP2], "maillog_path": "/var/log/mail.log"},
        },
        "rbls": [
            {
                "zone": ZEN,
                "removal_link": "https://check.spamhaus.org/listed/?searchterm={ip}",
                "codes": {"127.0.0.2": "SBL"},
            },
            PSBL,
        ],
        "reputation": [
            {"name": "brightmail", "url": "https://rep.example.net/{ip}.json", "field": "rep"}
        ],
        "removal_links": {
            "gmail": "https://support.google.com/mail/contact/bulk_send_new?ip={ip}",
            "snds": "https://olcsupport.office.com/",
        },
        "assistance_links": {"gmail": "https://wiki.example.com/runbooks/gmail"},
        "ackservice": {"anonymous": True},
    }
    document.update(overrides)
    return document


def make_config(base_dir: Path | None = None, **overrides: Any) -> Config:
    context = {"base_dir": base_dir} if base_dir is not None else None
    return Config.model_validate(config_document(**overrides), context=context)


def config_yaml(document: Mapping[str, Any]) -> str:
    """``document`` as mtarep.yml text."""
    import yaml

    return yaml.safe_dump(dict(document), sort_keys=False)


def sample_snapshot(now: float = T0, *, hostile: bool = False) -> Snapshot:
    """Three IPs on two hosts: every kind of issue on :data:`IP`, unknowns on
    :data:`IP6`, a clean :data:`IP2` on a host whose log could not be read."""
    line = HOSTILE if hostile else REJECTION
    reason = HOSTILE if hostile else TXT_REASON
    listed = RblState(
        listed=True,
        lookup_ok=True,
        codes=("127.0.0.2",),
        meaning="SBL",
        reason=reason,
        since=now - 7200,
    )
    clean = RblState(listed=False, lookup_ok=True, since=now - 86400)
    snds_bad = SndsData(
        activity_start=now - 86400,
        activity_end=now - 3600,
        rcpt_commands=1000,
        data_commands=990,
        message_recipients=980,
        color="red",
        complaint_rate=0.12,
        complaint_rate_text="12%",
        trap_start=None,
        trap_end=None,
        trap_hits=12,
        sample_helo="mta1.example.com",
        sample_mail_from="news@example.com",
        comments="",
    )
    troubled = TargetState(
        host=HOST,
        ip=IP,
        ssh_host="mta1",
        senderscore=62,
        rbl={ZEN: listed, PSBL: clean},
        checks={
            "ptr": CheckState(ok=True, detail=f"PTR names {HOST}"),
            "forward": CheckState(ok=True, detail=f"{HOST} resolves to {IP}"),
            "helo": CheckState(ok=False, detail="the greeting names mail.example.org"),
        },
        snds=SndsState(
            data=snds_bad,
            blocked=True,
            block_range=f"{IP}-{IP}",
            block_reason="Junked due to user complaints",
        ),
        reputation={
            "brightmail": ReputationState(
                rating="bad", value="bad", lookup_ok=True, since=now - 600
            )
        },
    )
    unknown = TargetState(
        host=HOST,
        ip=IP6,
        ssh_host="mta1",
        senderscore=None,
        rbl={
            ZEN: RblState(listed=None, lookup_ok=False, problem="SERVFAIL"),
            PSBL: RblState(listed=False, lookup_ok=False, problem="timeout"),
        },
        checks={
            "ptr": CheckState(ok=None, problem="timeout"),
            "forward": CheckState(ok=None, problem="timeout"),
        },
        snds=SndsState(data=None, blocked=False),
        reputation={"brightmail": ReputationState(lookup_ok=False, problem="HTTP 500")},
    )
    good = TargetState(
        host=HOST2,
        ip=IP2,
        ssh_host="mta2",
        senderscore=95,
        rbl={ZEN: clean, PSBL: clean},
        checks={
            "ptr": CheckState(ok=True, detail=f"PTR names {HOST2}"),
            "forward": CheckState(ok=True, detail=f"{HOST2} resolves to {IP2}"),
            "helo": CheckState(ok=True, detail=f"the greeting names {HOST2}"),
        },
        snds=SndsState(
            data=snds_bad.model_copy(update={"color": "green", "trap_hits": 0}), blocked=False
        ),
        reputation={"brightmail": ReputationState(rating="good", value="good", lookup_ok=True)},
    )
    block = ProviderBlock(
        provider="gmail",
        ip=IP,
        ip_named=True,
        first_seen=now - 1800,
        last_seen=now - 60,
        count=17,
        line=line,
        domain="gmail.com",
        dsn="4.7.28",
        relay="gmail-smtp-in.l.google.com[74.125.192.26]:25",
        status="deferred",
        blocked=True,
    )
    return Snapshot(
        taken_at=now,
        targets=(troubled, unknown, good),
        snds=SndsFeed(day="2023-11-13", data_fetched_at=now - 600, rows=3),
        maillog={
            HOST: MaillogState(read_ok=True, read_at=now, blocks={"gmail": {IP: block}}),
            HOST2: MaillogState(read_ok=False, problem="ssh: connection refused"),
        },
    )


def host_documents(snapshot: Snapshot, config: Config) -> dict[str, dict[str, Any]]:
    """Per host, the results document the exporter's cycle saves (the same function)."""
    return {host.fqdn: host_results(snapshot, host) for host in config.hosts}


async def write_snapshot(
    store: Store, snapshot: Snapshot, config: Config
) -> dict[IssueKey, IssueDetail]:
    """Store ``snapshot`` as a cycle would: host results, then its issues opened."""
    for host, document in host_documents(snapshot, config).items():
        await store.save_host_results(host, document)
    zone_specs = {zone_label(spec.zone): spec for spec in config.rbl_zones}
    issues = current_issues(snapshot, config, zone_specs)
    for key, (host, detail) in issues.items():
        await store.open_issue(key, host, detail)
    return issues


def fleet_snapshot(hosts: int, now: float = T0) -> tuple[Snapshot, dict[str, Any]]:
    """A large fleet for the benchmark: ``hosts`` hosts with one IP each, every tenth
    with an RBL listing and every twentieth blocked by gmail; and its config mapping."""
    sample = sample_snapshot(now)
    troubled, _, good = sample.targets
    block = sample.maillog[HOST].blocks["gmail"][IP]
    targets = []
    maillog = {}
    mta_map: dict[str, Any] = {}
    for n in range(hosts):
        fqdn = f"mta{n:04d}.example.com"
        ip = f"198.{18 + n // 65536}.{n // 256 % 256}.{n % 256}"  # 198.18/15: benchmarking
        mta_map[f"m{n:04d}"] = {"fqdn": fqdn, "ips": [ip], "maillog_path": "/var/log/mail.log"}
        template = troubled if n % 10 == 0 else good
        targets.append(template.model_copy(update={"host": fqdn, "ip": ip, "ssh_host": fqdn}))
        blocks = {"gmail": {ip: block.model_copy(update={"ip": ip})}} if n % 20 == 0 else {}
        maillog[fqdn] = MaillogState(read_ok=True, read_at=now, blocks=blocks)
    snapshot = Snapshot(taken_at=now, targets=tuple(targets), snds=sample.snds, maillog=maillog)
    return snapshot, config_document(mta_map=mta_map)
