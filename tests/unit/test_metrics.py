"""``/metrics``: the snapshot rendered as the metric contract of shared/DESIGN.md."""

import gzip

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter import __version__, metrics
from exporter.metrics import MetricsPage, build_registry, render
from exporter.snapshot import (
    CheckState,
    RblState,
    Snapshot,
    SourceState,
    TargetState,
    ZoneState,
)

HOST = "mta1.example.com"
IP = "192.0.2.10"
PAIR = {"host": HOST, "ip": IP}
ZEN = "zen.spamhaus.org"
SPAMCOP = "bl.spamcop.net"


def target(
    *,
    host: str = HOST,
    ip: str = IP,
    ssh_host: str = "mta1",
    senderscore: int | None = None,
    rbl: dict[str, RblState] | None = None,
    checks: dict[str, CheckState] | None = None,
) -> TargetState:
    return TargetState(
        host=host,
        ip=ip,
        ssh_host=ssh_host,
        senderscore=senderscore,
        rbl=rbl or {},
        checks=checks or {},
    )


def listed(*, lookup_ok: bool = True) -> RblState:
    return RblState(listed=True, lookup_ok=lookup_ok, codes=("127.0.0.2",), meaning="SBL")


def clean() -> RblState:
    return RblState(listed=False, lookup_ok=True)


class Scrape:
    """A registry over a snapshot the test can swap between scrapes."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.registry = build_registry(lambda: self.snapshot)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.registry.get_sample_value(name, labels or {})


def scrape(snapshot: Snapshot) -> Scrape:
    return Scrape(snapshot)


def rbl_labels(zone: str, host: str = HOST, ip: str = IP) -> dict[str, str]:
    return {"host": host, "ip": ip, "rbl": zone}


# -- targets -------------------------------------------------------------------------


def test_host_info_is_one_per_host_and_ip() -> None:
    s = scrape(Snapshot(targets=(target(), target(ip="2001:db8::1"))))
    assert s.value("mtarep_host_info", {**PAIR, "ssh_host": "mta1"}) == 1
    assert s.value("mtarep_host_info", {"host": HOST, "ip": "2001:db8::1", "ssh_host": "mta1"}) == 1


def test_senderscore_is_the_score() -> None:
    s = scrape(Snapshot(targets=(target(senderscore=85),)))
    assert s.value("mtarep_senderscore", PAIR) == 85


def test_senderscore_of_zero_is_present() -> None:
    s = scrape(Snapshot(targets=(target(senderscore=0),)))
    assert s.value("mtarep_senderscore", PAIR) == 0


def test_senderscore_is_absent_when_the_ip_has_none() -> None:
    s = scrape(Snapshot(targets=(target(senderscore=None),)))
    assert s.value("mtarep_senderscore", PAIR) is None
    assert b"mtarep_senderscore{" not in render(s.registry)


def test_rbl_listed_and_lookup_ok() -> None:
    s = scrape(Snapshot(targets=(target(rbl={ZEN: listed(), SPAMCOP: clean()}),)))
    assert s.value("mtarep_rbl_listed", rbl_labels(ZEN)) == 1
    assert s.value("mtarep_rbl_listed", rbl_labels(SPAMCOP)) == 0
    assert s.value("mtarep_rbl_lookup_ok", rbl_labels(ZEN)) == 1
    assert s.value("mtarep_rbl_lookup_ok", rbl_labels(SPAMCOP)) == 1


def test_listed_with_a_failed_lookup_stays_listed_with_lookup_ok_0() -> None:
    s = scrape(Snapshot(targets=(target(rbl={ZEN: listed(lookup_ok=False)}),)))
    assert s.value("mtarep_rbl_listed", rbl_labels(ZEN)) == 1
    assert s.value("mtarep_rbl_lookup_ok", rbl_labels(ZEN)) == 0


def test_rbl_listed_is_absent_until_known_but_lookup_ok_0_is_present() -> None:
    unknown = RblState(listed=None, lookup_ok=False, problem="lookup failed: timed out")
    s = scrape(Snapshot(targets=(target(rbl={ZEN: unknown}),)))
    assert s.value("mtarep_rbl_listed", rbl_labels(ZEN)) is None
    assert s.value("mtarep_rbl_lookup_ok", rbl_labels(ZEN)) == 0


def test_listings_counts_the_zones_listing_the_ip() -> None:
    zones = {ZEN: listed(), SPAMCOP: listed(lookup_ok=False), "psbl.surriel.com": clean()}
    s = scrape(Snapshot(targets=(target(rbl=zones),)))
    assert s.value("mtarep_rbl_listings", PAIR) == 2


def test_listings_is_0_for_a_clean_ip() -> None:
    s = scrape(Snapshot(targets=(target(),)))
    assert s.value("mtarep_rbl_listings", PAIR) == 0


def test_dns_checks_pass_and_fail() -> None:
    checks = {
        "ptr": CheckState(ok=True, detail="PTR names it"),
        "forward": CheckState(ok=False, detail="resolves elsewhere"),
    }
    s = scrape(Snapshot(targets=(target(checks=checks),)))
    assert s.value("mtarep_dns_check_ok", {**PAIR, "check": "ptr"}) == 1
    assert s.value("mtarep_dns_check_ok", {**PAIR, "check": "forward"}) == 0


def test_dns_check_is_absent_while_unknown() -> None:
    checks = {"helo": CheckState(ok=None, detail="timed out")}
    s = scrape(Snapshot(targets=(target(checks=checks),)))
    assert s.value("mtarep_dns_check_ok", {**PAIR, "check": "helo"}) is None


def test_zone_health() -> None:
    zones = {ZEN: ZoneState(healthy=True), "dead.test": ZoneState(healthy=False, problem="x")}
    s = scrape(Snapshot(zones=zones))
    assert s.value("mtarep_rbl_zone_healthy", {"rbl": ZEN}) == 1
    assert s.value("mtarep_rbl_zone_healthy", {"rbl": "dead.test"}) == 0


# -- self-health and internals -------------------------------------------------------


def test_collection_states_of_every_source() -> None:
    sources = {
        "rbl": SourceState(
            success=True, duration_seconds=1.5, last_success=1_700_000_000.0, errors_total=3
        ),
        "store": SourceState(success=False, duration_seconds=0.25, errors_total=7, error="down"),
    }
    s = scrape(Snapshot(sources=sources))
    rbl, store = {"source": "rbl"}, {"source": "store"}
    assert s.value("mtarep_collection_success", rbl) == 1
    assert s.value("mtarep_collection_duration_seconds", rbl) == 1.5
    assert s.value("mtarep_collection_last_success_timestamp_seconds", rbl) == 1_700_000_000.0
    assert s.value("mtarep_collection_errors_total", rbl) == 3
    assert s.value("mtarep_collection_success", store) == 0
    assert s.value("mtarep_collection_duration_seconds", store) == 0.25
    assert s.value("mtarep_collection_last_success_timestamp_seconds", store) is None
    assert s.value("mtarep_collection_errors_total", store) == 7


def test_collection_errors_is_a_counter() -> None:
    s = scrape(Snapshot(sources={"rbl": SourceState(errors_total=2)}))
    families = {f.name: f for f in text_string_to_metric_families(render(s.registry).decode())}
    assert families["mtarep_collection_errors"].type == "counter"
    assert families["mtarep_dns_queries"].type == "counter"


def test_source_not_run_yet_has_no_series() -> None:
    s = scrape(Snapshot())
    assert s.value("mtarep_collection_success", {"source": "rbl"}) is None


def test_dns_queries_by_result() -> None:
    s = scrape(Snapshot(dns_lookups={"answer": 10, "nxdomain": 90, "timeout": 2}))
    assert s.value("mtarep_dns_queries_total", {"result": "answer"}) == 10
    assert s.value("mtarep_dns_queries_total", {"result": "nxdomain"}) == 90
    assert s.value("mtarep_dns_queries_total", {"result": "timeout"}) == 2


def test_build_info() -> None:
    s = scrape(Snapshot())
    assert s.value("mtarep_build_info", {"version": __version__}) == 1


def test_empty_snapshot_renders() -> None:
    text = render(scrape(Snapshot()).registry).decode()
    assert "mtarep_build_info" in text


# -- no stale series -----------------------------------------------------------------


def test_delisted_ip_is_0_on_the_next_scrape() -> None:
    s = scrape(Snapshot(targets=(target(rbl={ZEN: listed()}),)))
    assert s.value("mtarep_rbl_listed", rbl_labels(ZEN)) == 1
    s.snapshot = Snapshot(targets=(target(rbl={ZEN: clean()}),))
    assert s.value("mtarep_rbl_listed", rbl_labels(ZEN)) == 0
    assert s.value("mtarep_rbl_listings", PAIR) == 0


def test_removed_zone_is_gone_on_the_next_scrape() -> None:
    s = scrape(
        Snapshot(
            targets=(target(rbl={ZEN: listed(), SPAMCOP: listed()}),),
            zones={ZEN: ZoneState(healthy=True), SPAMCOP: ZoneState(healthy=True)},
        )
    )
    s.snapshot = Snapshot(
        targets=(target(rbl={ZEN: listed()}),), zones={ZEN: ZoneState(healthy=True)}
    )
    assert s.value("mtarep_rbl_listed", rbl_labels(SPAMCOP)) is None
    assert s.value("mtarep_rbl_lookup_ok", rbl_labels(SPAMCOP)) is None
    assert s.value("mtarep_rbl_zone_healthy", {"rbl": SPAMCOP}) is None
    assert s.value("mtarep_rbl_listings", PAIR) == 1
    assert SPAMCOP not in render(s.registry).decode()


def test_removed_host_is_gone_on_the_next_scrape() -> None:
    other = "mta2.example.com"
    checks = {"ptr": CheckState(ok=True)}
    s = scrape(
        Snapshot(
            targets=(
                target(senderscore=90, rbl={ZEN: listed()}, checks=checks),
                target(host=other, ip="192.0.2.11", senderscore=80),
            )
        )
    )
    s.snapshot = Snapshot(targets=(target(host=other, ip="192.0.2.11", senderscore=80),))
    assert s.value("mtarep_host_info", {**PAIR, "ssh_host": "mta1"}) is None
    assert s.value("mtarep_senderscore", PAIR) is None
    assert s.value("mtarep_rbl_listed", rbl_labels(ZEN)) is None
    assert s.value("mtarep_rbl_listings", PAIR) is None
    assert s.value("mtarep_dns_check_ok", {**PAIR, "check": "ptr"}) is None
    assert HOST not in render(s.registry).decode()
    assert s.value("mtarep_senderscore", {"host": other, "ip": "192.0.2.11"}) == 80


def test_score_that_became_unknown_disappears() -> None:
    s = scrape(Snapshot(targets=(target(senderscore=85),)))
    s.snapshot = Snapshot(targets=(target(senderscore=None),))
    assert s.value("mtarep_senderscore", PAIR) is None


# -- escaping ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hostile",
    [
        'quote " inside',
        "back\\slash",
        "new\nline",
        'all "of\\ them\n together',
        "Ünïcödé 日本語 📨",
        '} mtarep_rbl_listed{rbl="forged"} 1\n',
    ],
    ids=["quote", "backslash", "newline", "mixed", "unicode", "injection"],
)
def test_hostile_label_values_render_escaped_and_parse_back(hostile: str) -> None:
    snapshot = Snapshot(
        targets=(target(host=hostile, ip=hostile, ssh_host=hostile, rbl={hostile: listed()}),),
        zones={hostile: ZoneState(healthy=True)},
        sources={"rbl": SourceState(success=True)},
    )
    text = render(scrape(snapshot).registry).decode("utf-8")
    samples = [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in ("mtarep_rbl_listed", "mtarep_rbl_zone_healthy", "mtarep_host_info")
    ]
    assert {sample.name: sample.labels for sample in samples} == {
        "mtarep_host_info": {"host": hostile, "ip": hostile, "ssh_host": hostile},
        "mtarep_rbl_listed": {"host": hostile, "ip": hostile, "rbl": hostile},
        "mtarep_rbl_zone_healthy": {"rbl": hostile},
    }
    assert all(sample.value == 1 for sample in samples)
    # One line per sample: a newline in a label never starts a line of its own.
    assert not any(line.startswith('mtarep_rbl_listed{rbl="forged"') for line in text.splitlines())


# -- the /metrics page: rendered once per snapshot, off the event loop ------------------


@pytest.mark.anyio
async def test_page_renders_each_snapshot_once_and_follows_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renders: list[Snapshot] = []
    original = metrics.render_snapshot

    def counting(snapshot: Snapshot) -> bytes:
        renders.append(snapshot)
        return original(snapshot)

    monkeypatch.setattr(metrics, "render_snapshot", counting)
    current = Snapshot(targets=(target(rbl={ZEN: listed()}),))
    page = MetricsPage(lambda: current)

    first = await page.body()
    assert await page.body() is first  # the same bytes, not rendered again
    assert len(renders) == 1
    assert (
        b'mtarep_rbl_listed{host="mta1.example.com",ip="192.0.2.10",rbl="zen.spamhaus.org"} 1.0'
        in first
    )

    current = Snapshot(targets=(target(rbl={ZEN: clean()}),))  # the next cycle delists it
    second = await page.body()
    assert len(renders) == 2
    listed_series = (
        b'mtarep_rbl_listed{host="mta1.example.com",ip="192.0.2.10",rbl="zen.spamhaus.org"}'
    )
    assert listed_series + b" 0.0" in second
    assert listed_series + b" 1.0" not in second


@pytest.mark.anyio
async def test_page_gzip_body_is_the_same_exposition() -> None:
    snapshot = Snapshot(targets=(target(senderscore=91),))
    page = MetricsPage(lambda: snapshot)

    compressed = await page.body("gzip")

    assert gzip.decompress(compressed) == await page.body()
    assert await page.body("gzip") is compressed
