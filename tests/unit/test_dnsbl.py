"""DNSBL judgement: query names, verdicts and the RFC 5782 self-test (shared/REFERENCE.md)."""

import pytest

from exporter.dnsbl import (
    NOT_LISTINGS,
    SPAMHAUS_ZEN_CODES,
    classify,
    code_meanings,
    query_name,
    reverse_name,
    self_test,
)
from exporter.resolver import Answer, Status

ZEN = "zen.spamhaus.org"
ZEN_MEANINGS = code_meanings(ZEN, {})
NXDOMAIN = Answer("nxdomain")


def a(*records: str) -> Answer:
    """An A answer with ``records``."""
    return Answer("answer", records)


# -- query names ---------------------------------------------------------------------


def test_ipv4_reverse_name_is_the_reversed_octets() -> None:
    assert reverse_name("192.0.2.10") == "10.2.0.192"


def test_ipv4_query_name_appends_the_zone() -> None:
    assert query_name(reverse_name("127.0.0.2"), ZEN) == "2.0.0.127.zen.spamhaus.org"


def test_query_name_drops_a_trailing_dot_of_the_zone() -> None:
    assert query_name("2.0.0.127", "zen.spamhaus.org.") == "2.0.0.127.zen.spamhaus.org"


def test_ipv6_reverse_name_is_all_32_nibbles_reversed() -> None:
    name = reverse_name("2001:db8::1")
    nibbles = name.split(".")
    assert len(nibbles) == 32
    assert all(len(nibble) == 1 for nibble in nibbles)
    assert name == "1." + "0." * 23 + "8.b.d.0.1.0.0.2"


def test_ipv6_reverse_name_ignores_the_spelling_of_the_address() -> None:
    assert reverse_name("2001:DB8:0::1") == reverse_name("2001:db8::1")


def test_ipv6_query_name_appends_the_zone() -> None:
    assert query_name(reverse_name("2001:db8::1"), "bl.test") == (
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test"
    )


# -- classify: not listed and listed --------------------------------------------------


@pytest.mark.parametrize("status", ["nxdomain", "nodata"])
def test_nxdomain_or_no_data_is_not_listed(status: Status) -> None:
    verdict = classify(Answer(status), ZEN_MEANINGS)
    assert verdict.state == "not_listed"
    assert verdict.codes == ()
    assert verdict.problem == ""


def test_127_0_0_2_is_listed_with_its_meaning() -> None:
    verdict = classify(a("127.0.0.2"), ZEN_MEANINGS)
    assert verdict.state == "listed"
    assert verdict.codes == ("127.0.0.2",)
    assert verdict.meaning == SPAMHAUS_ZEN_CODES["127.0.0.2"]
    assert verdict.meaning.startswith("SBL")
    assert verdict.problem == ""


def test_several_codes_are_listed_with_every_meaning_sorted_by_address() -> None:
    verdict = classify(a("127.0.0.10", "127.0.0.2", "127.0.0.4"), ZEN_MEANINGS)
    assert verdict.state == "listed"
    assert verdict.codes == ("127.0.0.2", "127.0.0.4", "127.0.0.10")  # numeric, not text order
    assert verdict.meaning == "; ".join(
        SPAMHAUS_ZEN_CODES[code] for code in ("127.0.0.2", "127.0.0.4", "127.0.0.10")
    )


def test_repeated_code_counts_once() -> None:
    verdict = classify(a("127.0.0.2", "127.0.0.2"), ZEN_MEANINGS)
    assert verdict.codes == ("127.0.0.2",)


def test_unnamed_code_is_still_listed_and_says_its_code() -> None:
    verdict = classify(a("127.0.0.2"), {})
    assert verdict.state == "listed"
    assert verdict.meaning == "listed (127.0.0.2)"


# -- classify: unknown ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("127.255.255.252", "mistyped"),
        ("127.255.255.254", "public or open resolver"),
        ("127.255.255.255", "too many queries"),
        ("127.0.1.255", "DBL"),
        ("127.0.0.1", "not a listing"),
    ],
)
def test_non_listing_code_is_unknown_and_says_what_it_means(code: str, says: str) -> None:
    verdict = classify(a(code), ZEN_MEANINGS)
    assert verdict.state == "unknown"
    assert verdict.codes == (code,)
    assert verdict.meaning == ""
    assert code in verdict.problem
    assert NOT_LISTINGS[code] in verdict.problem
    assert says in verdict.problem


def test_non_listing_code_beside_a_listing_code_is_unknown() -> None:
    verdict = classify(a("127.0.0.2", "127.255.255.254"), ZEN_MEANINGS)
    assert verdict.state == "unknown"
    assert "127.255.255.254" in verdict.problem


def test_answer_outside_loopback_is_unknown() -> None:
    verdict = classify(a("192.0.2.1"), ZEN_MEANINGS)
    assert verdict.state == "unknown"
    assert "192.0.2.1" in verdict.problem
    assert "outside 127.0.0.0/8" in verdict.problem


def test_listing_code_mixed_with_an_address_outside_loopback_is_unknown() -> None:
    verdict = classify(a("127.0.0.2", "198.51.100.7"), ZEN_MEANINGS)
    assert verdict.state == "unknown"
    assert verdict.problem.startswith("answer outside 127.0.0.0/8 (198.51.100.7):")


def test_answer_that_is_not_an_ipv4_address_is_unknown() -> None:
    assert classify(a("::1"), ZEN_MEANINGS).state == "unknown"


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (Answer("timeout"), "timed out"),
        (Answer("servfail"), "SERVFAIL"),
        (Answer("refused"), "REFUSED"),
        (Answer("error", detail="connection refused"), "connection refused"),
    ],
)
def test_failed_lookup_is_unknown_and_says_why(answer: Answer, says: str) -> None:
    verdict = classify(answer, ZEN_MEANINGS)
    assert verdict.state == "unknown"
    assert verdict.problem == f"lookup failed: {says}"


# -- code meanings -------------------------------------------------------------------


def test_zen_has_built_in_meanings() -> None:
    assert code_meanings(ZEN, {}) == dict(SPAMHAUS_ZEN_CODES)


def test_zen_meanings_cover_the_documented_codes() -> None:
    meanings = code_meanings(ZEN, {})
    assert meanings["127.0.0.2"].startswith("SBL")
    assert meanings["127.0.0.3"].startswith("CSS")
    assert meanings["127.0.0.4"].startswith("XBL")
    assert meanings["127.0.0.9"].startswith("DROP")
    assert meanings["127.0.0.10"].startswith("PBL")
    assert meanings["127.0.0.11"].startswith("PBL")
    assert meanings["127.0.0.30"].startswith("BCL")


@pytest.mark.parametrize("zone", ["ZEN.Spamhaus.org.", "KEY.zen.dq.spamhaus.net"])
def test_zen_spellings_and_dqs_zone_have_built_in_meanings(zone: str) -> None:
    assert code_meanings(zone, {}) == dict(SPAMHAUS_ZEN_CODES)


def test_configured_codes_override_and_extend_the_built_ins() -> None:
    meanings = code_meanings(ZEN, {"127.0.0.2": "SBL (ours)", "127.0.0.99": "custom"})
    assert meanings["127.0.0.2"] == "SBL (ours)"
    assert meanings["127.0.0.99"] == "custom"
    assert meanings["127.0.0.4"] == SPAMHAUS_ZEN_CODES["127.0.0.4"]


@pytest.mark.parametrize("zone", ["bl.spamcop.net", "dbl.spamhaus.org", "zen.spamhaus.org.evil"])
def test_other_zones_have_no_built_in_meanings(zone: str) -> None:
    assert code_meanings(zone, {}) == {}
    assert code_meanings(zone, {"127.0.0.2": "listed"}) == {"127.0.0.2": "listed"}


# -- self-test -----------------------------------------------------------------------


def test_zone_listing_127_0_0_2_and_not_127_0_0_1_is_healthy() -> None:
    health = self_test("bl.test", a("127.0.0.2"), NXDOMAIN)
    assert health.healthy is True
    assert health.problem == ""


def test_zone_answering_no_data_for_127_0_0_1_is_healthy() -> None:
    assert self_test("bl.test", a("127.0.0.2"), Answer("nodata")).healthy is True


def test_wildcard_zone_listing_127_0_0_1_is_unhealthy() -> None:
    health = self_test("dead.test", a("127.0.0.2"), a("127.0.0.2"))
    assert health.healthy is False
    assert "dead.test" in health.problem
    assert "127.0.0.1" in health.problem
    assert "answers for everything" in health.problem


def test_zone_answering_127_0_0_1_for_everything_is_unhealthy() -> None:
    health = self_test("dead.test", a("127.0.0.1"), a("127.0.0.1"))
    assert health.healthy is False
    assert "127.0.0.2" in health.problem


def test_zone_not_listing_127_0_0_2_is_unhealthy() -> None:
    health = self_test("empty.test", NXDOMAIN, NXDOMAIN)
    assert health.healthy is False
    assert "empty.test" in health.problem
    assert "127.0.0.2" in health.problem
    assert "does not list it" in health.problem


def test_zone_answering_a_refusal_code_is_unhealthy_and_says_why() -> None:
    refused = a("127.255.255.254")
    health = self_test(ZEN, refused, refused)
    assert health.healthy is False
    assert "127.255.255.254" in health.problem
    assert "public or open resolver" in health.problem


def test_zone_answering_a_refusal_code_only_for_127_0_0_1_is_unhealthy() -> None:
    health = self_test(ZEN, a("127.0.0.2"), a("127.255.255.255"))
    assert health.healthy is False
    assert "127.255.255.255" in health.problem


@pytest.mark.parametrize(
    ("listed_probe", "clean_probe"),
    [(Answer("timeout"), NXDOMAIN), (a("127.0.0.2"), Answer("timeout"))],
    ids=["listed-probe", "clean-probe"],
)
def test_zone_timing_out_is_unhealthy(listed_probe: Answer, clean_probe: Answer) -> None:
    health = self_test("slow.test", listed_probe, clean_probe)
    assert health.healthy is False
    assert "timed out" in health.problem


def test_zone_answering_outside_loopback_is_unhealthy() -> None:
    health = self_test("parked.test", a("192.0.2.1"), a("192.0.2.1"))
    assert health.healthy is False
    assert "outside 127.0.0.0/8" in health.problem
