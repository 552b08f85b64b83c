"""Sender Score judgement (shared/REFERENCE.md: the last octet of 127.0.4.N)."""

import pytest

from exporter.resolver import Answer, Status
from exporter.senderscore import band, classify_score


def a(*records: str) -> Answer:
    return Answer("answer", records)


@pytest.mark.parametrize(
    ("record", "score"), [("127.0.4.85", 85), ("127.0.4.0", 0), ("127.0.4.100", 100)]
)
def test_last_octet_is_the_score(record: str, score: int) -> None:
    verdict = classify_score(a(record))
    assert verdict.state == "score"
    assert verdict.score == score
    assert verdict.problem == ""


def test_last_octet_above_100_is_unknown() -> None:
    verdict = classify_score(a("127.0.4.101"))
    assert verdict.state == "unknown"
    assert verdict.score is None
    assert "101" in verdict.problem


def test_query_blocked_is_unknown_not_a_score_of_255() -> None:
    verdict = classify_score(a("127.255.255.255"))
    assert verdict.state == "unknown"
    assert verdict.score is None
    assert "blocked" in verdict.problem


@pytest.mark.parametrize("status", ["nxdomain", "nodata"])
def test_no_answer_is_no_score(status: Status) -> None:
    verdict = classify_score(Answer(status))
    assert verdict.state == "no_score"
    assert verdict.score is None
    assert verdict.problem == ""


def test_answer_outside_loopback_is_unknown() -> None:
    verdict = classify_score(a("192.0.2.85"))
    assert verdict.state == "unknown"
    assert verdict.score is None
    assert "outside 127.0.0.0/8" in verdict.problem


def test_two_records_are_unknown() -> None:
    verdict = classify_score(a("127.0.4.85", "127.0.4.60"))
    assert verdict.state == "unknown"
    assert verdict.score is None
    assert "expected one address" in verdict.problem


def test_answer_that_is_not_an_ipv4_address_is_unknown() -> None:
    verdict = classify_score(a("::1"))
    assert verdict.state == "unknown"
    assert "not an IPv4 address" in verdict.problem


@pytest.mark.parametrize(
    ("answer", "says"),
    [(Answer("timeout"), "timed out"), (Answer("servfail"), "SERVFAIL")],
)
def test_failed_lookup_is_unknown(answer: Answer, says: str) -> None:
    verdict = classify_score(answer)
    assert verdict.state == "unknown"
    assert verdict.score is None
    assert verdict.problem == f"lookup failed: {says}"


@pytest.mark.parametrize(
    ("score", "name"),
    [(100, "good"), (80, "good"), (79, "fair"), (70, "fair"), (69, "poor"), (0, "poor")],
)
def test_band_edges(score: int, name: str) -> None:
    assert band(score) == name
