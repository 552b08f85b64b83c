"""Judging an HTTP reputation answer: the JSON field, mapped to good / neutral / bad."""

import json

import pytest

from exporter.reputation import RatingVerdict, judge
from exporter.snapshot import Rating

BRIGHTMAIL: dict[str, Rating] = {"good": "good", "neutral": "neutral", "bad": "bad"}
FIELD = "entityRecord.rep"


def answer(rep: object) -> str:
    return json.dumps({"entityRecord": {"ip": "192.0.2.10", "rep": rep}})


@pytest.mark.parametrize("rep", ["good", "neutral", "bad"])
def test_the_old_brightmail_answer(rep: Rating) -> None:
    assert judge(200, answer(rep), FIELD, BRIGHTMAIL) == RatingVerdict("rated", rep, rep)


def test_values_compare_without_case_and_numbers_as_text() -> None:
    ratings: dict[str, Rating] = {
        "HIGH": "good",
        "medium": "neutral",
        "Low": "bad",
        "BAD": "bad",
        "3": "bad",
    }
    assert judge(200, answer("high"), FIELD, ratings).rating == "good"
    assert judge(200, answer(" LOW "), FIELD, ratings).rating == "bad"
    assert judge(200, answer(3), FIELD, ratings).rating == "bad"


def test_a_list_index_in_the_path() -> None:
    body = json.dumps({"results": [{"rating": "bad"}]})
    assert judge(200, body, "results.0.rating", BRIGHTMAIL).rating == "bad"


@pytest.mark.parametrize(
    ("status", "body", "problem"),
    [
        (500, "oops", "HTTP 500"),
        (403, "", "HTTP 403"),
        (200, "<html>captcha</html>", "the answer is not JSON"),
        (200, json.dumps({"entityRecord": {}}), "no entityRecord.rep in the answer (at 'rep')"),
        (200, json.dumps([1, 2]), "no entityRecord.rep in the answer (at 'entityRecord')"),
        (200, answer({"nested": "object"}), "entityRecord.rep is not a single value"),
        (200, answer("suspicious"), "'suspicious' is not in ratings"),
    ],
)
def test_anything_else_is_unknown_with_the_reason(status: int, body: str, problem: str) -> None:
    verdict = judge(status, body, FIELD, BRIGHTMAIL)
    assert (verdict.state, verdict.rating, verdict.problem) == ("unknown", None, problem)


def test_not_found_or_null_is_no_data_not_a_failure() -> None:
    assert judge(404, "", FIELD, BRIGHTMAIL).state == "no_data"
    assert judge(200, answer(None), FIELD, BRIGHTMAIL).state == "no_data"


def test_a_hostile_value_is_kept_printable_and_short() -> None:
    verdict = judge(200, answer("\u202e<script>" + "x" * 500), FIELD, BRIGHTMAIL)
    assert verdict.state == "unknown"
    assert verdict.value.startswith("<script>")
    assert len(verdict.value) == 80
