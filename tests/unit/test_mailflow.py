"""Today's mail flow counters: which day, which domains, what is skipped. No Redis here
(tests/integration/test_mailflow_redis.py reads real keys)."""

from datetime import UTC, datetime

from exporter.mailflow import mailflow_day, tally
from exporter.snapshot import OTHER_DOMAIN

ZERO = {"sent": 0, "bounced": 0, "expired": 0, "fbl": 0}


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_today_is_in_the_configured_time_zone() -> None:
    late_utc = at("2026-12-01T23:30:00+00:00")
    assert mailflow_day(late_utc, "UTC") == "20261201"
    assert mailflow_day(late_utc, "Europe/Berlin") == "20261202"
    assert mailflow_day(late_utc, "America/New_York") == "20261201"
    assert mailflow_day(at("2027-01-01T03:00:00+00:00"), "America/Los_Angeles") == "20261231"


def test_the_local_zone_when_none_is_configured() -> None:
    now = at("2026-12-01T12:00:00+00:00")
    assert mailflow_day(now, None) == datetime.fromtimestamp(now).strftime("%Y%m%d")
    assert datetime.fromtimestamp(now, UTC).strftime("%Y%m%d") == "20261201"


def test_graph_domains_only_missing_ones_zero_the_rest_as_other() -> None:
    hashes = {
        "sent": {"gmail.com": "120", "yahoo.com": "30", "example.org": "5", "other.net": "2"},
        "bounced": {"gmail.com": "3"},
        "fbl": {"yahoo.com": "1"},
    }
    counts, skipped, capped = tally(hashes, ["gmail.com", "yahoo.com", "aol.com"], 50)
    assert counts == {
        "gmail.com": {**ZERO, "sent": 120, "bounced": 3},
        "yahoo.com": {**ZERO, "sent": 30, "fbl": 1},
        "aol.com": ZERO,
        OTHER_DOMAIN: {**ZERO, "sent": 7},
    }
    assert (skipped, capped) == (0, False)


def test_without_graph_domains_every_domain_up_to_the_cap() -> None:
    hashes = {"sent": {f"d{n}.example": str(n) for n in range(1, 8)}}
    counts, _, capped = tally(hashes, [], 3)
    assert list(counts) == ["d7.example", "d6.example", "d5.example", OTHER_DOMAIN]
    assert counts[OTHER_DOMAIN]["sent"] == 1 + 2 + 3 + 4
    assert capped is True
    counts, _, capped = tally(hashes, [], 50)
    assert len(counts) == 7
    assert OTHER_DOMAIN not in counts
    assert capped is False


def test_odd_values_and_fields_are_skipped_and_counted() -> None:
    hashes = {
        "sent": {
            "gmail.com": "10",
            "yahoo.com": "lots",
            "aol.com": "-4",
            "comcast.net": "1.5",
            "<script>": "3",
            "": "1",
            "GMAIL.COM.": "5",  # another spelling of gmail.com
        }
    }
    counts, skipped, _ = tally(hashes, [], 50)
    assert counts == {"gmail.com": {**ZERO, "sent": 15}}
    assert skipped == 5


def test_no_keys_today_shows_the_graph_domains_at_zero() -> None:
    counts, skipped, _ = tally({}, ["gmail.com"], 50)
    assert counts == {"gmail.com": ZERO, OTHER_DOMAIN: ZERO}
    assert skipped == 0
