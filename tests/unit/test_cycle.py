"""A collection cycle end to end with fakes: DNS answers from a dict, fakeredis, a fake clock.

The fakes are in tests/unit/cycle_env.py. Nothing here touches the network or sleeps.
"""

from collections import Counter
from collections.abc import Sequence
from typing import cast

import pytest

from exporter.dns_source import collect
from exporter.dnsbl import query_name, reverse_name
from exporter.metrics import build_registry, render_snapshot
from exporter.resolver import Answer, Query, Resolver, Status
from exporter.senderscore import SENDERSCORE_ZONE
from exporter.snapshot import Snapshot, SourceReport, TargetState
from exporter.store import IssueKey
from tests.unit.cycle_env import (
    ASSISTANCE,
    HOST,
    IP,
    IP6,
    OTHER_ZONE,
    RBL_KEY,
    SCORE_KEY,
    SENDERSCORE_ISSUE_BELOW,
    T0,
    TXT,
    ZONE,
    Env,
    hosts_by_shard,
    ips_of,
    make_config,
    only,
    ptr_name,
    rbl_name,
)

pytestmark = pytest.mark.anyio

# -- queries ---------------------------------------------------------------------------


async def test_cycle_asks_the_expected_names(env: Env) -> None:
    await env.cycle(env.collection())
    assert set(env.dns.asked) >= {
        ("2.0.0.127.bl.test", "A"),
        ("1.0.0.127.bl.test", "A"),
        ("10.2.0.192.bl.test", "A"),
        ("10.2.0.192.score.senderscore.com", "A"),
        ("10.2.0.192.in-addr.arpa.", "PTR"),
        (HOST, "A"),
        (HOST, "AAAA"),
    }
    # No TXT lookup for an IP that is not listed.
    assert not [query for query in env.dns.asked if query[1] == "TXT"]


# -- RBL listings ----------------------------------------------------------------------


async def test_listed_ip_opens_an_rbl_issue_with_its_detail(env: Env) -> None:
    env.dns.list_ip(IP, ZONE, txt=TXT)
    await env.cycle(env.collection())

    record = await env.issue(RBL_KEY)
    assert record is not None
    assert record.host == HOST
    assert record.detail == {
        "summary": "listed on bl.test: spam source",
        "severity": "warning",
        "zone": ZONE,
        "codes": ["127.0.0.2"],
        "meaning": "spam source",
        "reason": TXT,
        "removal_link": "https://bl.test/remove?ip=192.0.2.10",
        "assistance_link": ASSISTANCE,
        "lookup_ok": True,
        "since": env.clock.now,
    }
    assert [(e.type, e.key, e.host) for e in await env.events()] == [("listed", RBL_KEY, HOST)]


async def test_listed_ip_in_the_snapshot(env: Env) -> None:
    env.dns.list_ip(IP, ZONE, "127.0.0.3", "127.0.0.2", txt=TXT)
    snapshot = await env.cycle(env.collection())

    state = only(snapshot).rbl[ZONE]
    assert state.listed is True
    assert state.lookup_ok is True
    assert state.codes == ("127.0.0.2", "127.0.0.3")
    assert state.meaning == "spam source; listed (127.0.0.3)"
    assert state.reason == TXT
    assert state.since == env.clock.now
    assert only(snapshot).listings == [ZONE]


async def test_listed_ipv6_target_is_looked_up_by_its_nibbles(env: Env) -> None:
    config = make_config(mta_map={"mx1": {"fqdn": HOST, "ips": [IP6]}})
    env.dns.host(HOST, IP6)
    env.dns.list_ip(IP6, ZONE)
    snapshot = await env.cycle(env.collection(config))

    assert (rbl_name(IP6, ZONE), "A") in env.dns.asked
    assert rbl_name(IP6, ZONE).endswith(".0.1.0.0.2.bl.test")
    assert only(snapshot, ip=IP6).rbl[ZONE].listed is True
    assert await env.issue(IssueKey(IP6, "rbl", ZONE)) is not None


async def test_delisted_ip_clears_the_issue(env: Env) -> None:
    collection = env.collection()
    env.dns.list_ip(IP, ZONE, txt=TXT)
    await env.cycle(collection)
    env.dns.delist(IP, ZONE)
    snapshot = await env.cycle(collection)

    assert await env.issue(RBL_KEY) is None
    assert [e.type for e in await env.events(RBL_KEY)] == ["listed", "delisted"]
    state = only(snapshot).rbl[ZONE]
    assert (state.listed, state.lookup_ok, state.reason) == (False, True, "")
    assert state.since == env.clock.now


async def test_delisting_shows_in_the_metrics(env: Env) -> None:
    collection = env.collection(make_config(rbls=[ZONE, OTHER_ZONE]))
    registry = build_registry(lambda: collection.snapshot)
    labels = {"host": HOST, "ip": IP}
    env.dns.list_ip(IP, ZONE)
    env.dns.list_ip(IP, OTHER_ZONE)
    await env.cycle(collection)
    assert registry.get_sample_value("mtarep_rbl_listed", {**labels, "rbl": ZONE}) == 1
    assert registry.get_sample_value("mtarep_rbl_listings", labels) == 2

    env.dns.delist(IP, ZONE)
    await env.cycle(collection)
    assert registry.get_sample_value("mtarep_rbl_listed", {**labels, "rbl": ZONE}) == 0
    assert registry.get_sample_value("mtarep_rbl_listed", {**labels, "rbl": OTHER_ZONE}) == 1
    assert registry.get_sample_value("mtarep_rbl_listings", labels) == 1


async def test_still_listed_keeps_since_and_first_seen(env: Env) -> None:
    collection = env.collection()
    env.dns.list_ip(IP, ZONE)
    await env.cycle(collection)
    listed_at = env.clock.now
    snapshot = await env.cycle(collection)

    assert only(snapshot).rbl[ZONE].since == listed_at
    record = await env.issue(RBL_KEY)
    assert record is not None
    assert (record.first_seen, record.last_seen) == (listed_at, env.clock.now)
    assert [e.type for e in await env.events(RBL_KEY)] == ["listed"]


# -- a failed lookup never flips the verdict -------------------------------------------


async def test_timeout_after_a_listing_keeps_it_listed(env: Env) -> None:
    collection = env.collection()
    env.dns.list_ip(IP, ZONE, txt=TXT)
    await env.cycle(collection)
    listed_at = env.clock.now
    env.dns.fail_rbl(IP, ZONE, "timeout")
    snapshot = await env.cycle(collection)

    state = only(snapshot).rbl[ZONE]
    assert state.listed is True
    assert state.lookup_ok is False
    assert state.problem == "lookup failed: timed out"
    assert (state.codes, state.reason, state.since) == (("127.0.0.2",), TXT, listed_at)
    record = await env.issue(RBL_KEY)
    assert record is not None
    assert record.detail["lookup_ok"] is False
    assert [e.type for e in await env.events(RBL_KEY)] == ["listed"]
    assert snapshot.sources["rbl"].success is False


async def test_a_failed_txt_lookup_keeps_the_reason_of_a_listing(env: Env) -> None:
    collection = env.collection()
    env.dns.list_ip(IP, ZONE, txt=TXT)
    await env.cycle(collection)
    env.dns.set(rbl_name(IP, ZONE), "TXT", Answer("timeout"))
    snapshot = await env.cycle(collection)

    assert only(snapshot).rbl[ZONE].reason == TXT
    record = await env.issue(RBL_KEY)
    assert record is not None
    assert record.detail["reason"] == TXT


async def test_servfail_after_a_clean_answer_keeps_it_not_listed(env: Env) -> None:
    collection = env.collection()
    await env.cycle(collection)
    env.dns.fail_rbl(IP, ZONE, "servfail")
    snapshot = await env.cycle(collection)

    state = only(snapshot).rbl[ZONE]
    assert (state.listed, state.lookup_ok) == (False, False)
    assert state.problem == "lookup failed: SERVFAIL"
    assert await env.issue(RBL_KEY) is None
    registry = build_registry(lambda: snapshot)
    labels = {"host": HOST, "ip": IP, "rbl": ZONE}
    assert registry.get_sample_value("mtarep_rbl_listed", labels) == 0
    assert registry.get_sample_value("mtarep_rbl_lookup_ok", labels) == 0


async def test_unknown_before_any_verdict_is_neither_listed_nor_clean(env: Env) -> None:
    env.dns.fail_rbl(IP, ZONE, "timeout")
    snapshot = await env.cycle(env.collection())

    state = only(snapshot).rbl[ZONE]
    assert (state.listed, state.lookup_ok) == (None, False)
    registry = build_registry(lambda: snapshot)
    labels = {"host": HOST, "ip": IP, "rbl": ZONE}
    assert registry.get_sample_value("mtarep_rbl_listed", labels) is None
    assert registry.get_sample_value("mtarep_rbl_lookup_ok", labels) == 0


async def test_refusal_code_for_one_ip_is_unknown_not_listed(env: Env) -> None:
    env.dns.list_ip(IP, ZONE, "127.255.255.254")
    snapshot = await env.cycle(env.collection())

    state = only(snapshot).rbl[ZONE]
    assert (state.listed, state.lookup_ok) == (None, False)
    assert "public or open resolver" in state.problem
    assert await env.issue(RBL_KEY) is None


# -- zone self-test --------------------------------------------------------------------


async def test_wildcard_zone_is_unhealthy_and_lists_nobody(env: Env) -> None:
    wildcard = Answer("answer", ("127.0.0.2",))
    for ip in ("127.0.0.2", "127.0.0.1", IP):
        env.dns.set(rbl_name(ip, ZONE), "A", wildcard)
    snapshot = await env.cycle(env.collection())

    assert snapshot.zones[ZONE].healthy is False
    assert "answers for everything" in snapshot.zones[ZONE].problem
    state = only(snapshot).rbl[ZONE]
    assert (state.listed, state.lookup_ok) == (None, False)
    assert only(snapshot).listings == []
    assert await env.store.open_issues() == []
    assert snapshot.sources["rbl"].success is False
    registry = build_registry(lambda: snapshot)
    assert registry.get_sample_value("mtarep_rbl_zone_healthy", {"rbl": ZONE}) == 0
    assert registry.get_sample_value("mtarep_rbl_listings", {"host": HOST, "ip": IP}) == 0


async def test_zone_answering_a_refusal_code_is_unhealthy_and_lists_nobody(env: Env) -> None:
    refused = Answer("answer", ("127.255.255.254",))
    for ip in ("127.0.0.2", "127.0.0.1", IP):
        env.dns.set(rbl_name(ip, ZONE), "A", refused)
    snapshot = await env.cycle(env.collection())

    assert snapshot.zones[ZONE].healthy is False
    assert "127.255.255.254" in snapshot.zones[ZONE].problem
    assert only(snapshot).rbl[ZONE].listed is None
    assert await env.store.open_issues() == []


async def test_zone_turning_unhealthy_keeps_the_last_verdict(env: Env) -> None:
    collection = env.collection()
    env.dns.list_ip(IP, ZONE)
    await env.cycle(collection)
    env.dns.records("1.0.0.127." + ZONE, "A", "127.0.0.2")  # now answers for everything
    snapshot = await env.cycle(collection)

    state = only(snapshot).rbl[ZONE]
    assert (state.listed, state.lookup_ok) == (True, False)
    assert state.problem == snapshot.zones[ZONE].problem
    assert await env.issue(RBL_KEY) is not None


async def test_healthy_zone_is_healthy(env: Env) -> None:
    snapshot = await env.cycle(env.collection())
    assert snapshot.zones == {ZONE: snapshot.zones[ZONE]}
    assert snapshot.zones[ZONE].healthy is True
    assert snapshot.sources["rbl"].success is True


# -- Sender Score ----------------------------------------------------------------------


async def test_low_sender_score_opens_an_issue(env: Env) -> None:
    env.dns.score(IP, 55)
    snapshot = await env.cycle(env.collection())

    assert only(snapshot).senderscore == 55
    record = await env.issue(SCORE_KEY)
    assert record is not None
    assert record.detail == {
        "summary": "Sender Score 55 is below 70",
        "severity": "warning",
        "removal_link": None,
        "assistance_link": None,
        "score": 55,
        "band": "poor",
        "threshold": SENDERSCORE_ISSUE_BELOW,
    }
    assert [e.type for e in await env.events(SCORE_KEY)] == ["issue_opened"]


async def test_sender_score_at_the_threshold_opens_no_issue(env: Env) -> None:
    env.dns.score(IP, SENDERSCORE_ISSUE_BELOW)
    await env.cycle(env.collection())
    assert await env.issue(SCORE_KEY) is None


async def test_recovered_sender_score_clears_the_issue(env: Env) -> None:
    collection = env.collection()
    env.dns.score(IP, 55)
    await env.cycle(collection)
    env.dns.score(IP, 85)
    await env.cycle(collection)

    assert await env.issue(SCORE_KEY) is None
    assert [e.type for e in await env.events(SCORE_KEY)] == [
        "issue_opened",
        "changed",
        "issue_cleared",
    ]


async def test_sender_score_crossing_a_band_records_a_change(env: Env) -> None:
    collection = env.collection()
    env.dns.score(IP, 85)
    await env.cycle(collection)
    env.dns.score(IP, 62)
    await env.cycle(collection)

    changes = [e for e in await env.events(SCORE_KEY) if e.type == "changed"]
    assert [(e.detail, e.host, e.at) for e in changes] == [
        ("senderscore 85 (good) -> 62 (poor)", HOST, env.clock.now)
    ]


async def test_sender_score_moving_inside_a_band_records_no_change(env: Env) -> None:
    collection = env.collection()
    env.dns.score(IP, 85)
    await env.cycle(collection)
    env.dns.score(IP, 81)
    await env.cycle(collection)
    assert await env.events(SCORE_KEY) == []


async def test_no_sender_score_is_absent(env: Env) -> None:
    env.dns.forget(rbl_name(IP, SENDERSCORE_ZONE), "A")
    snapshot = await env.cycle(env.collection())

    assert only(snapshot).senderscore is None
    assert only(snapshot).senderscore_problem == ""
    assert snapshot.sources["senderscore"].success is True
    registry = build_registry(lambda: snapshot)
    assert registry.get_sample_value("mtarep_senderscore", {"host": HOST, "ip": IP}) is None


async def test_unknown_sender_score_keeps_the_last_score(env: Env) -> None:
    collection = env.collection()
    env.dns.score(IP, 85)
    await env.cycle(collection)
    env.dns.records(rbl_name(IP, SENDERSCORE_ZONE), "A", "127.255.255.255")
    snapshot = await env.cycle(collection)

    assert only(snapshot).senderscore == 85
    assert "blocked" in only(snapshot).senderscore_problem
    assert snapshot.sources["senderscore"].success is False


async def test_ipv6_target_has_no_sender_score_lookup(env: Env) -> None:
    env.dns.host(HOST, IP6)
    snapshot = await env.cycle(
        env.collection(make_config(mta_map={"mx1": {"fqdn": HOST, "ips": [IP6]}}))
    )

    assert only(snapshot, ip=IP6).senderscore is None
    assert not [name for name, _ in env.dns.asked if name.endswith(SENDERSCORE_ZONE)]


# -- FCrDNS and HELO -------------------------------------------------------------------


async def test_matching_dns_passes_every_check(env: Env) -> None:
    snapshot = await env.cycle(env.collection())

    checks = only(snapshot).checks
    assert {name: state.ok for name, state in checks.items()} == {
        "ptr": True,
        "forward": True,
        "helo": True,
    }
    assert await env.store.open_issues() == []


async def test_ptr_mismatch_opens_a_dns_issue(env: Env) -> None:
    env.dns.records(ptr_name(IP), "PTR", "static.10.2.0.192.isp.example")
    snapshot = await env.cycle(env.collection())

    assert only(snapshot).checks["ptr"].ok is False
    record = await env.issue(IssueKey(IP, "dns", "ptr"))
    assert record is not None
    assert record.detail == {
        "summary": "the PTR record does not name the host",
        "severity": "error",
        "removal_link": None,
        "assistance_link": None,
        "check": "ptr",
        "detail": f"PTR names static.10.2.0.192.isp.example, expected {HOST}",
    }
    registry = build_registry(lambda: snapshot)
    labels = {"host": HOST, "ip": IP, "check": "ptr"}
    assert registry.get_sample_value("mtarep_dns_check_ok", labels) == 0


async def test_ptr_with_other_case_and_trailing_dot_passes(env: Env) -> None:
    env.dns.records(ptr_name(IP), "PTR", HOST.upper() + ".")
    snapshot = await env.cycle(env.collection())
    assert only(snapshot).checks["ptr"].ok is True


async def test_forward_mismatch_opens_a_dns_issue(env: Env) -> None:
    env.dns.records(HOST, "A", "198.51.100.7")
    snapshot = await env.cycle(env.collection())

    assert only(snapshot).checks["forward"].ok is False
    record = await env.issue(IssueKey(IP, "dns", "forward"))
    assert record is not None
    assert record.detail["detail"] == f"{HOST} resolves to 198.51.100.7, not {IP}"


async def test_failed_ptr_lookup_keeps_the_last_result(env: Env) -> None:
    collection = env.collection()
    await env.cycle(collection)
    env.dns.set(ptr_name(IP), "PTR", Answer("timeout"))
    snapshot = await env.cycle(collection)

    ptr = only(snapshot).checks["ptr"]
    assert ptr.ok is True
    assert (ptr.detail, ptr.problem) == (
        "PTR names mx1.example.test",
        "PTR lookup failed: timed out",
    )
    assert snapshot.sources["fcrdns"].success is False


async def test_helo_failure_opens_a_dns_issue(env: Env) -> None:
    env.helo.results[IP] = (False, "the MTA announces localhost")
    snapshot = await env.cycle(env.collection())

    assert env.helo.calls == [(IP, HOST, 25, 5.0)]
    assert only(snapshot).checks["helo"].ok is False
    record = await env.issue(IssueKey(IP, "dns", "helo"))
    assert record is not None
    assert record.detail == {
        "summary": "the SMTP greeting does not name the host",
        "severity": "error",
        "removal_link": None,
        "assistance_link": None,
        "check": "helo",
        "detail": "the MTA announces localhost",
    }


async def test_no_greeting_is_unknown_keeps_the_last_result_and_is_a_source_error(
    env: Env,
) -> None:
    collection = env.collection()
    env.helo.results[IP] = (False, "banner names localhost, expected mx1.example.test")
    await env.cycle(collection)
    env.helo.results[IP] = (None, "no SMTP greeting: connection refused")
    snapshot = await env.cycle(collection)

    helo = only(snapshot).checks["helo"]
    assert (helo.ok, helo.detail, helo.problem) == (
        False,
        "banner names localhost, expected mx1.example.test",
        "no SMTP greeting: connection refused",
    )
    record = await env.issue(IssueKey(IP, "dns", "helo"))  # still failing, for the same reason
    assert record is not None
    assert record.detail["detail"] == "banner names localhost, expected mx1.example.test"
    assert snapshot.sources["helo"].success is False
    assert "connection refused" in snapshot.sources["helo"].error


async def test_no_greeting_on_the_first_cycle_opens_no_issue(env: Env) -> None:
    env.helo.results[IP] = (None, "no SMTP greeting: timed out after 5s connecting")
    snapshot = await env.cycle(env.collection())

    assert only(snapshot).checks["helo"].ok is None
    assert await env.issue(IssueKey(IP, "dns", "helo")) is None


async def test_helo_check_uses_the_configured_port_and_timeout(env: Env) -> None:
    config = make_config(helo_check={"port": 2525, "timeout": "10s"})
    await env.cycle(env.collection(config))
    assert env.helo.calls == [(IP, HOST, 2525, 10.0)]


async def test_helo_disabled_runs_no_helo_check(env: Env) -> None:
    env.helo.results[IP] = (False, "would fail")
    snapshot = await env.cycle(env.collection(make_config(helo_check={"enabled": False})))

    assert env.helo.calls == []
    assert "helo" not in only(snapshot).checks
    assert await env.issue(IssueKey(IP, "dns", "helo")) is None


# -- hosts -----------------------------------------------------------------------------


async def test_given_ips_are_monitored_whatever_the_host_resolves_to(env: Env) -> None:
    env.dns.host(HOST, "198.51.100.7")
    snapshot = await env.cycle(env.collection())

    assert ips_of(snapshot) == [IP]
    assert only(snapshot).ssh_host == "mx1"
    assert only(snapshot).checks["forward"].ok is False


async def test_host_without_ips_is_monitored_on_its_a_and_aaaa(env: Env) -> None:
    env.dns.host(HOST, IP, IP6)
    snapshot = await env.cycle(env.collection(make_config(mta_map=[HOST])))

    assert ips_of(snapshot) == [IP, IP6]
    assert only(snapshot).ssh_host == HOST
    for ip in (IP, IP6):
        assert only(snapshot, ip=ip).checks["forward"].ok is True
    assert snapshot.sources["hosts"].success is True


async def test_unresolvable_host_keeps_the_previous_ips(env: Env) -> None:
    collection = env.collection(make_config(mta_map=[HOST]))
    await env.cycle(collection)
    env.dns.set(HOST, "A", Answer("timeout"))
    snapshot = await env.cycle(collection)

    assert ips_of(snapshot) == [IP]
    assert only(snapshot).checks["forward"].ok is True  # unknown: the last result stays
    hosts = snapshot.sources["hosts"]
    assert (hosts.success, hosts.errors_total) == (False, 1)
    assert hosts.error == f"cannot resolve {HOST}: timed out"


async def test_unresolvable_dual_stack_host_keeps_both_families(env: Env) -> None:
    collection = env.collection(make_config(mta_map=[HOST]))
    env.dns.host(HOST, IP, IP6)
    await env.cycle(collection)
    env.dns.set(HOST, "A", Answer("timeout"))
    snapshot = await env.cycle(collection)

    assert sorted(ips_of(snapshot)) == sorted([IP, IP6])
    assert snapshot.sources["hosts"].success is False


async def test_collect_keeps_the_previous_ips_of_an_unresolvable_host(env: Env) -> None:
    previous = Snapshot(targets=(TargetState(host=HOST, ip="192.0.2.99", ssh_host=HOST),))
    env.dns.set(HOST, "A", Answer("servfail"))
    results = await collect(
        make_config(mta_map=[HOST]),
        make_config(mta_map=[HOST]).hosts,
        cast(Resolver, env.dns),
        previous,
        clock=env.clock,
        helo_checker=env.helo,
    )

    assert [t.ip for t in results.targets] == ["192.0.2.99"]
    assert results.reports["hosts"].errors == 1
    assert results.reports["hosts"].problems == [f"cannot resolve {HOST}: SERVFAIL"]


async def test_host_without_any_address_is_an_error(env: Env) -> None:
    env.dns.forget(HOST, "A")
    env.dns.forget(HOST, "AAAA")
    snapshot = await env.cycle(env.collection(make_config(mta_map=[HOST])))

    assert snapshot.targets == ()
    assert snapshot.sources["hosts"].error == f"{HOST} has no A or AAAA record"


async def test_host_results_are_stored(env: Env) -> None:
    env.dns.list_ip(IP, ZONE)
    await env.cycle(env.collection())

    stored = await env.store.host_results(HOST)
    assert stored is not None
    assert stored["updated_at"] == env.clock.now
    results = stored["results"]
    assert (results["alias"], results["ssh_host"]) == ("mx1", "mx1")
    assert results["ips"][IP]["rbl"][ZONE]["listed"] is True
    assert results["ips"][IP]["senderscore"] == 90


# -- configuration changes and shards --------------------------------------------------


async def test_removed_zone_clears_its_issues_but_not_another_shards(env: Env) -> None:
    shards = hosts_by_shard()
    mine, theirs = shards[0], shards[1]
    their_ip = "192.0.2.20"
    mta_map = {"mine": {"fqdn": mine, "ips": [IP]}, "theirs": {"fqdn": theirs, "ips": [their_ip]}}
    shard = {"index": 0, "count": 2}
    before = make_config(mta_map=mta_map, rbls=[ZONE, OTHER_ZONE], shard=shard)
    after = make_config(mta_map=mta_map, rbls=[ZONE], shard=shard)
    env.dns.host(mine, IP)
    env.dns.list_ip(IP, OTHER_ZONE)
    their_key = IssueKey(their_ip, "rbl", OTHER_ZONE)
    await env.store.open_issue(their_key, theirs, {"zone": OTHER_ZONE})  # shard 1 opened it
    first = env.collection(before)
    assert [host.fqdn for host in first.hosts] == [mine]
    await env.cycle(first)
    assert await env.issue(IssueKey(IP, "rbl", OTHER_ZONE)) is not None

    restarted = env.collection(after)
    assert await restarted.restore() is True
    snapshot = await env.cycle(restarted)

    assert await env.issue(IssueKey(IP, "rbl", OTHER_ZONE)) is None
    assert await env.issue(their_key) is not None
    assert OTHER_ZONE not in only(snapshot, host=mine).rbl
    assert OTHER_ZONE not in snapshot.zones


async def test_issues_of_a_host_removed_from_the_config_are_cleared(env: Env) -> None:
    gone = IssueKey("192.0.2.99", "rbl", ZONE)
    await env.store.open_issue(gone, "gone.example.test", {})
    await env.cycle(env.collection())
    assert await env.issue(gone) is None


async def test_an_issue_of_a_source_no_longer_configured_is_cleared(env: Env) -> None:
    provider = IssueKey(IP, "provider", "gmail")  # the host has no maillog_path
    await env.store.open_issue(provider, HOST, {})
    await env.cycle(env.collection())
    assert await env.issue(provider) is None


# -- Redis unavailable -----------------------------------------------------------------


async def test_store_down_still_publishes_the_snapshot(env: Env) -> None:
    collection = env.collection()
    env.dns.list_ip(IP, ZONE)
    env.server.connected = False
    snapshot = await env.cycle(collection)

    assert collection.snapshot is snapshot
    assert only(snapshot).rbl[ZONE].listed is True
    assert snapshot.taken_at == env.clock.now
    store = snapshot.sources["store"]
    assert store.success is False
    assert store.error.startswith("Redis unavailable")
    assert store.errors_total == 1
    assert snapshot.sources["rbl"].success is True


async def test_store_lost_in_the_middle_of_a_cycle_still_publishes_the_snapshot(
    env: Env,
) -> None:
    collection = env.collection()
    await env.cycle(collection)
    env.dns.list_ip(IP, ZONE)

    def lose_redis() -> None:
        env.server.connected = False

    env.helo.during = lose_redis
    snapshot = await env.cycle(collection)

    assert collection.snapshot is snapshot
    assert only(snapshot).rbl[ZONE].listed is True
    assert snapshot.sources["store"].success is False
    assert snapshot.sources["store"].last_success == env.clock.now - 900
    env.server.connected = True
    assert await env.issue(RBL_KEY) is None  # nothing of that cycle was written


async def test_store_back_gets_everything_on_the_next_cycle(env: Env) -> None:
    collection = env.collection()
    env.dns.list_ip(IP, ZONE)
    env.server.connected = False
    await env.cycle(collection)
    env.server.connected = True
    snapshot = await env.cycle(collection)

    assert await env.issue(RBL_KEY) is not None
    assert await env.store.host_results(HOST) is not None
    assert await env.store.snapshot("1of1") is not None
    store = snapshot.sources["store"]
    assert (store.success, store.errors_total, store.error) == (True, 1, "")
    assert store.last_success == env.clock.now


# -- restore ---------------------------------------------------------------------------


async def test_restore_loads_the_snapshot_a_previous_collection_saved(env: Env) -> None:
    env.dns.list_ip(IP, ZONE)
    saved = await env.cycle(env.collection())

    restarted = env.collection()
    assert await restarted.restore() is True
    restored = restarted.snapshot
    assert restored == saved  # the store's own result of that cycle included
    assert restored.sources["store"].success is True


async def test_restored_snapshot_is_the_previous_one_of_the_next_cycle(env: Env) -> None:
    env.dns.list_ip(IP, ZONE)
    await env.cycle(env.collection())
    listed_at = env.clock.now
    restarted = env.collection()
    await restarted.restore()
    env.dns.fail_rbl(IP, ZONE, "timeout")
    snapshot = await env.cycle(restarted)

    state = only(snapshot).rbl[ZONE]
    assert (state.listed, state.since) == (True, listed_at)


async def test_restore_without_a_saved_snapshot_is_false(env: Env) -> None:
    collection = env.collection()
    assert await collection.restore() is False
    assert collection.snapshot == Snapshot()


@pytest.mark.parametrize(
    "raw",
    ["{not json", '["a", "list"]', '{"targets": "not a list"}'],
    ids=["json", "list", "shape"],
)
async def test_restore_of_garbage_is_false(env: Env, raw: str) -> None:
    await env.client.set("mtarep:snapshot:1of1", raw)
    collection = env.collection()
    assert await collection.restore() is False
    assert collection.snapshot == Snapshot()


async def test_restore_with_the_store_down_is_false(env: Env) -> None:
    await env.cycle(env.collection())
    env.server.connected = False
    assert await env.collection().restore() is False


async def test_each_shard_restores_its_own_snapshot(env: Env) -> None:
    await env.cycle(env.collection())
    other_shard = env.collection(make_config(shard={"index": 1, "count": 2}))
    assert other_shard.name == "2of2"
    assert await other_shard.restore() is False


# -- self-health of the sources --------------------------------------------------------


async def test_source_errors_accumulate_and_last_success_is_kept(env: Env) -> None:
    collection = env.collection()
    await env.cycle(collection)
    succeeded_at = env.clock.now
    env.dns.fail_rbl(IP, ZONE, "timeout")
    second = await env.cycle(collection)
    third = await env.cycle(collection)

    assert (second.sources["rbl"].success, second.sources["rbl"].errors_total) == (False, 1)
    rbl = third.sources["rbl"]
    assert (rbl.success, rbl.errors_total, rbl.last_success) == (False, 2, succeeded_at)
    assert rbl.error == f"{ZONE} for {IP}: lookup failed: timed out"
    registry = build_registry(lambda: third)
    assert registry.get_sample_value("mtarep_collection_errors_total", {"source": "rbl"}) == 2
    assert registry.get_sample_value("mtarep_collection_success", {"source": "rbl"}) == 0
    assert (
        registry.get_sample_value(
            "mtarep_collection_last_success_timestamp_seconds", {"source": "rbl"}
        )
        == succeeded_at
    )


def test_source_error_summary_keeps_five_problems_and_counts_them_all() -> None:
    report = SourceReport()
    for n in range(7):
        report.fail(f"problem {n}")
    state = report.state(None, T0)

    assert (state.success, state.errors_total, state.last_success) == (False, 7, None)
    assert state.error == "problem 0; problem 1; problem 2; problem 3; problem 4 ..."


async def test_every_source_reports_after_a_cycle(env: Env) -> None:
    snapshot = await env.cycle(env.collection())
    assert set(snapshot.sources) == {
        "hosts",
        "rbl",
        "senderscore",
        "fcrdns",
        "helo",
        "mailflow",
        "store",
    }
    for name, state in snapshot.sources.items():
        assert (state.success, state.errors_total, state.last_success) == (
            True,
            0,
            env.clock.now,
        ), name


async def test_dns_lookup_counts_accumulate_across_cycles(env: Env) -> None:
    collection = env.collection()
    first = await env.cycle(collection)
    per_cycle = dict(first.dns_lookups)
    assert sum(per_cycle.values()) == len(env.dns.asked)
    assert env.dns.counts == Counter()
    second = await env.cycle(collection)

    assert second.dns_lookups == {status: 2 * count for status, count in per_cycle.items()}
    registry = build_registry(lambda: second)
    assert registry.get_sample_value("mtarep_dns_queries_total", {"result": "nxdomain"}) == (
        2 * per_cycle["nxdomain"]
    )


# -- what the review found: history must survive unknowns, broken names and outages ----


async def test_unknown_verdict_without_a_snapshot_leaves_an_open_issue_alone(env: Env) -> None:
    env.dns.list_ip(IP, ZONE)
    await env.cycle(env.collection())
    await env.store.acknowledge(RBL_KEY, "alice", "on it")

    restarted = env.collection()  # no restore(): nothing known before this cycle
    env.dns.fail_rbl(IP, ZONE, "timeout")
    snapshot = await env.cycle(restarted)

    assert only(snapshot).rbl[ZONE].listed is None
    record = await env.issue(RBL_KEY)
    assert record is not None
    assert record.ack is not None
    assert [e.type for e in await env.events(RBL_KEY)] == ["listed", "ack"]


async def test_unknown_check_without_a_snapshot_leaves_its_issue_open(env: Env) -> None:
    env.helo.results[IP] = (False, "banner names localhost, expected mx1.example.test")
    await env.cycle(env.collection())
    env.helo.results[IP] = (None, "no SMTP greeting: timed out after 5s connecting")

    await env.cycle(env.collection())

    assert await env.issue(IssueKey(IP, "dns", "helo")) is not None


async def test_unknown_score_without_a_snapshot_leaves_its_issue_open(env: Env) -> None:
    env.dns.score(IP, 55)
    await env.cycle(env.collection())
    env.dns.set(rbl_name(IP, SENDERSCORE_ZONE), "A", Answer("servfail"))

    await env.cycle(env.collection())

    assert await env.issue(SCORE_KEY) is not None


@pytest.mark.parametrize("status", ["nxdomain", "nodata"])
async def test_a_host_whose_name_stops_resolving_keeps_its_addresses_and_issues(
    env: Env, status: Status
) -> None:
    config = make_config(mta_map=[HOST])
    collection = env.collection(config)
    env.dns.list_ip(IP, ZONE)
    await env.cycle(collection)
    env.dns.set(HOST, "A", Answer(status))
    env.dns.set(HOST, "AAAA", Answer("nodata"))

    snapshot = await env.cycle(collection)

    assert ips_of(snapshot) == [IP]
    assert only(snapshot).rbl[ZONE].listed is True
    assert await env.issue(RBL_KEY) is not None
    assert [e.type for e in await env.events(RBL_KEY)] == ["listed"]
    assert snapshot.sources["hosts"].success is False
    assert snapshot.sources["hosts"].error == "mx1.example.test has no A or AAAA record"


async def test_a_score_change_while_redis_is_away_is_recorded_when_it_is_back(env: Env) -> None:
    collection = env.collection()
    await env.cycle(collection)  # 90: good
    env.dns.score(IP, 75)
    env.server.connected = False
    await env.cycle(collection)
    env.server.connected = True

    await env.cycle(collection)

    [change] = [e for e in await env.events(SCORE_KEY) if e.type == "changed"]
    assert change.detail == "senderscore 90 (good) -> 75 (fair)"


async def test_a_crashing_helo_check_is_unknown_and_spares_the_other_verdicts(env: Env) -> None:
    def crash() -> None:
        raise UnicodeError("surprise")

    env.helo.during = crash
    env.dns.list_ip(IP, ZONE)
    snapshot = await env.cycle(env.collection())

    assert only(snapshot).rbl[ZONE].listed is True
    assert only(snapshot).checks["helo"].problem == "the check failed: UnicodeError"
    assert snapshot.sources["helo"].success is False


async def test_the_zone_self_test_is_never_answered_from_the_cache(env: Env) -> None:
    calls: list[tuple[list[Query], bool]] = []
    lookup_many = env.dns.lookup_many

    async def recording(queries: Sequence[Query], *, cached: bool = True) -> list[Answer]:
        calls.append((list(queries), cached))
        return await lookup_many(queries, cached=cached)

    env.dns.lookup_many = recording  # type: ignore[method-assign]
    await env.cycle(env.collection())

    uncached = [queries for queries, cached in calls if not cached]
    assert uncached == [
        [
            (query_name(reverse_name(test_ip), zone), "A")
            for zone in (ZONE,)
            for test_ip in ("127.0.0.2", "127.0.0.1")
        ]
    ]


async def test_a_spamhaus_dqs_key_stays_out_of_labels_issues_and_logs(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    zone = "s3cr3tk3y.zen.dq.spamhaus.net"
    env.dns.healthy_zone(zone)
    env.dns.list_ip(IP, zone, "127.0.0.4")
    env.dns.list_ip("192.0.2.99", zone, "127.255.255.254")  # a refusal, logged
    config = make_config(mta_map={"mx1": {"fqdn": HOST, "ips": [IP, "192.0.2.99"]}}, rbls=[zone])
    snapshot = await env.cycle(env.collection(config))

    assert set(only(snapshot).rbl) == {"zen.dq.spamhaus.net"}
    assert set(snapshot.zones) == {"zen.dq.spamhaus.net"}
    record = await env.issue(IssueKey(IP, "rbl", "zen.dq.spamhaus.net"))
    assert record is not None
    assert record.detail["meaning"] == "XBL: exploited or infected host"
    assert "s3cr3tk3y" not in caplog.text
    assert "s3cr3tk3y" not in render_snapshot(snapshot).decode()
    assert not [k for k in await env.client.keys("*") if "s3cr3tk3y" in k]
