"""``prometheus/alerts.yml`` and its promtool tests, checked for what promtool cannot see.

promtool checks that the rules parse and that each test case holds; this module
checks the house rules (:func:`rule_problems`): every alert has a severity, the
annotations and a link to an existing dashboard; every alert about an issue carries
the issue's labels, links to its ackservice page and steps aside when the issue is
acknowledged; no threshold is written into an alert expression (they are recording
rules); and the promtool tests exercise every alert: it fires, a series stays quiet,
it resolves, and an acknowledged issue does not alert. Each check is shown to catch
a broken copy. promtool itself runs in tests/integration/test_prometheus_rules.py.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from exporter.config import Thresholds
from exporter.severity import issue_severity
from exporter.store import IssueKind
from tests.harness.monitoring import (
    CONTRACT_METRICS,
    RULE_TESTS_DIR,
    metric_names,
    recording_rule_names,
    rule_groups,
)

ISSUE_KINDS = {"rbl", "provider", "snds", "senderscore", "reputation", "dns"}
DASHBOARD_UIDS = {"mtarep-overview", "mtarep-host", "mtarep-mailflow", "mtarep-health"}
ACK_BY_IP = "unless on(ip, kind, subject) mtarep_issue_acknowledged == 1"
ACK_BY_HOST = "unless on(host, kind, subject) mtarep_issue_acknowledged == 1"
ISSUE_URL = (
    "http://localhost:9726/issues/{{ $labels.ip | urlquery }}/{{ $labels.kind }}/"
    "{{ $labels.subject | urlquery }}"
)
PROVIDER_ISSUE_URL = (
    "http://localhost:9726/issues/{{ $labels.host | urlquery }}/provider/"
    "{{ $labels.subject | urlquery }}"
)
_DASHBOARD_URL = re.compile(r"^http://localhost:3000/d/([\w-]+)(/[\w-]+)?(\?.*)?$")
_KIND = re.compile(r'"kind",\s*"(\w+)"')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NUMBER = re.compile(r"(?<![\w.:\[])\d+(?:\.\d+)?(?![\w.\]])")
_SERIES = re.compile(r"^\s*([\w:]+)\s*(?:\{(.*)\})?\s*$")
_LABEL = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


def _series(text: str) -> tuple[str, dict[str, str]]:
    match = _SERIES.match(text)
    assert match, f"not a series: {text}"
    return match.group(1), dict(_LABEL.findall(match.group(2) or ""))


def _duration_minutes(text: str) -> float:
    units = {"s": 1 / 60, "m": 1, "h": 60}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", text))


def _alert_problems(rule: dict[str, Any], known_metrics: frozenset[str]) -> list[str]:
    name, expr = rule["alert"], rule["expr"]
    annotations = rule.get("annotations", {})
    problems = []
    if rule.get("labels", {}).get("severity") not in ("critical", "warning"):
        problems.append(f"{name}: severity is not critical or warning")
    if "for" not in rule:
        problems.append(f"{name}: no for: duration")
    for key in ("summary", "description", "dashboard_url"):
        if not str(annotations.get(key, "")).strip():
            problems.append(f"{name}: no {key} annotation")
    dashboard = _DASHBOARD_URL.match(annotations.get("dashboard_url", ""))
    if dashboard is None or dashboard.group(1) not in DASHBOARD_UIDS:
        problems.append(f"{name}: dashboard_url is not a link to an mtarep dashboard")
    for metric in sorted(metric_names(expr) - known_metrics):
        problems.append(f"{name}: {metric} is neither a contract metric nor a recording rule")
    numbers = set(_NUMBER.findall(_STRING.sub('""', expr))) - {"0", "1"}
    if numbers:
        problems.append(f"{name}: thresholds {sorted(numbers)} belong in mtarep-thresholds")
    kinds = set(_KIND.findall(expr))
    if not kinds:
        if "issue_url" in annotations:
            problems.append(f"{name}: not about an issue, but has an issue_url")
        return problems
    kind = kinds.pop()
    if kind not in ISSUE_KINDS or kinds:
        problems.append(f"{name}: kind {kind} is not one issue kind")
    if '"subject"' not in expr:
        problems.append(f"{name}: no subject label")
    ack, url = (ACK_BY_HOST, PROVIDER_ISSUE_URL) if kind == "provider" else (ACK_BY_IP, ISSUE_URL)
    if not " ".join(expr.split()).endswith(ack):
        problems.append(f"{name}: does not end with `{ack}`")
    if annotations.get("issue_url") != url:
        problems.append(f"{name}: issue_url is not {url}")
    return problems


def _alert_set(case: dict[str, Any]) -> set[frozenset[tuple[str, str]]]:
    """The label sets a promtool case expects, comparable across cases."""
    return {
        frozenset((k, str(v)) for k, v in alert.get("exp_labels", {}).items())
        for alert in case.get("exp_alerts") or []
    }


def _coverage_problems(rule: dict[str, Any], test_files: list[dict[str, Any]]) -> list[str]:
    """What the promtool tests do not show of ``rule``: firing, quiet, resolved, acked."""
    name = rule["alert"]
    metrics = metric_names(rule["expr"])
    is_issue = bool(_KIND.search(rule["expr"]))
    seen: set[str] = set()
    for test_file in test_files:
        for group in test_file.get("tests", []):
            cases = [c for c in group.get("alert_rule_test", []) if c["alertname"] == name]
            if not cases:
                continue
            firing = [c for c in cases if c.get("exp_alerts")]
            if firing:
                seen.add("fires")
            if any(
                _duration_minutes(later["eval_time"]) > _duration_minutes(f["eval_time"])
                and _alert_set(f) - _alert_set(later)
                for later in cases
                for f in firing
            ):
                seen.add("resolves")
            expected = [a.get("exp_labels", {}) for c in firing for a in c["exp_alerts"]]
            inputs = [_series(s["series"]) for s in group.get("input_series", [])]
            for metric, labels in inputs:
                if metric in metrics and not any(
                    all(str(e.get(k)) == v for k, v in labels.items()) for e in expected
                ):
                    seen.add("quiet")
                if metric == "mtarep_issue_acknowledged" and is_issue and firing:
                    where = "host" if labels.get("kind") == "provider" else "ip"
                    if any(
                        m in metrics and other.get(where) == labels.get(where)
                        for m, other in inputs
                    ) and not any(
                        (str(e.get(where)), e.get("kind"), e.get("subject"))
                        == (labels.get(where), labels.get("kind"), labels.get("subject"))
                        for e in expected
                    ):
                        seen.add("acknowledged")
    wanted = {"fires", "quiet", "resolves"} | ({"acknowledged"} if is_issue else set())
    return [f"{name}: no promtool test shows it {what}" for what in sorted(wanted - seen)]


def rule_problems(groups: list[dict[str, Any]], test_files: list[dict[str, Any]]) -> list[str]:
    """Everything wrong with the rule ``groups`` and their promtool ``test_files``."""
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    known = CONTRACT_METRICS | recorded | {"up"}
    alerts = [rule for group in groups for rule in group["rules"] if "alert" in rule]
    names = [rule["alert"] for rule in alerts]
    problems = [
        f"alert {n} defined twice" for n in sorted({n for n in names if names.count(n) > 1})
    ]
    for rule in alerts:
        problems.extend(_alert_problems(rule, known))
        problems.extend(_coverage_problems(rule, test_files))
    return problems


GROUPS = rule_groups()
TEST_FILES = [yaml.safe_load(path.read_text()) for path in sorted(RULE_TESTS_DIR.glob("*.yml"))]


def test_rules_and_their_tests_have_no_problem() -> None:
    assert rule_problems(GROUPS, TEST_FILES) == []


def test_every_alert_the_issue_asks_for_is_there() -> None:
    alerts = {rule["alert"] for group in GROUPS for rule in group["rules"] if "alert" in rule}
    assert alerts == {
        "MtarepListed",
        "MtarepListedOnCriticalZone",
        "MtarepSenderScoreLow",
        "MtarepSndsFilterRed",
        "MtarepSndsFilterYellow",
        "MtarepSndsTrapHits",
        "MtarepSndsIpBlocked",
        "MtarepProviderBlock",
        "MtarepReputationBad",
        "MtarepDnsCheckFailing",
        "MtarepRblZoneUnhealthy",
        "MtarepSourceFailing",
        "MtarepSourceStale",
        "MtarepMaillogUnreadable",
        "MtarepExporterDown",
        "MtarepAckserviceDown",
    }


def test_thresholds_are_recording_rules_in_the_first_group() -> None:
    first = GROUPS[0]
    assert first["name"] == "mtarep-thresholds"
    thresholds = {
        rule["labels"]["threshold"]: rule["expr"]
        for rule in first["rules"]
        if rule.get("record") == "mtarep:alert_threshold"
    }
    defaults = Thresholds()  # the same numbers as mtarep.yml's thresholds: defaults
    assert thresholds == {
        "senderscore_below": f"vector({defaults.senderscore_below})",
        "snds_trap_hits": f"vector({defaults.snds_trap_hits})",
        "source_stale_seconds": "vector(7200)",
    }
    assert recording_rule_names() == {"mtarep:alert_threshold", "mtarep:rbl_zone:critical"}
    assert all("record" in rule for rule in first["rules"])


# -- every check catches what it is for --------------------------------------------------


def _alert(groups: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(r for g in groups for r in g["rules"] if r.get("alert") == name)


def _no_severity(groups: list[dict[str, Any]], tests: list[dict[str, Any]]) -> None:
    del _alert(groups, "MtarepListed")["labels"]["severity"]


def _no_ack_suppression(groups: list[dict[str, Any]], tests: list[dict[str, Any]]) -> None:
    rule = _alert(groups, "MtarepSenderScoreLow")
    rule["expr"] = rule["expr"].replace(ACK_BY_IP, "")


def _provider_acked_by_ip(groups: list[dict[str, Any]], tests: list[dict[str, Any]]) -> None:
    rule = _alert(groups, "MtarepProviderBlock")
    rule["expr"] = rule["expr"].replace(ACK_BY_HOST, ACK_BY_IP)


def _threshold_in_the_expression(groups: list[dict[str, Any]], tests: list[dict[str, Any]]) -> None:
    _alert(groups, "MtarepSndsTrapHits")["expr"] = "mtarep_snds_trap_hits >= 10"


def _unknown_metric(groups: list[dict[str, Any]], tests: list[dict[str, Any]]) -> None:
    _alert(groups, "MtarepSourceFailing")["expr"] = "mtarep_source_ok == 0"


def _dashboard_that_does_not_exist(
    groups: list[dict[str, Any]], tests: list[dict[str, Any]]
) -> None:
    _alert(groups, "MtarepExporterDown")["annotations"]["dashboard_url"] = (
        "http://localhost:3000/d/mtarep-exporter"
    )


def _issue_url_of_another_form(groups: list[dict[str, Any]], tests: list[dict[str, Any]]) -> None:
    _alert(groups, "MtarepDnsCheckFailing")["annotations"]["issue_url"] = (
        "http://localhost:9726/issues/{{ $labels.ip }}"
    )


def _no_test_that_it_fires(groups: list[dict[str, Any]], tests: list[dict[str, Any]]) -> None:
    for test_file in tests:
        for group in test_file["tests"]:
            for case in group.get("alert_rule_test", []):
                if case["alertname"] == "MtarepSndsIpBlocked":
                    case["exp_alerts"] = []


def _no_test_when_acknowledged(groups: list[dict[str, Any]], tests: list[dict[str, Any]]) -> None:
    for test_file in tests:
        for group in test_file["tests"]:
            group["input_series"] = [
                s
                for s in group.get("input_series", [])
                if not s["series"].startswith("mtarep_issue_acknowledged")
            ]


def _no_test_that_it_resolves(groups: list[dict[str, Any]], tests: list[dict[str, Any]]) -> None:
    for test_file in tests:
        for group in test_file["tests"]:
            group["alert_rule_test"] = [
                case
                for case in group.get("alert_rule_test", [])
                if case["alertname"] != "MtarepMaillogUnreadable" or case["eval_time"] != "50m"
            ]


BREAKAGES: list[tuple[Callable[[list[dict[str, Any]], list[dict[str, Any]]], None], str]] = [
    (_no_severity, "MtarepListed: severity is not critical or warning"),
    (_no_ack_suppression, f"MtarepSenderScoreLow: does not end with `{ACK_BY_IP}`"),
    (_provider_acked_by_ip, f"MtarepProviderBlock: does not end with `{ACK_BY_HOST}`"),
    (_threshold_in_the_expression, "MtarepSndsTrapHits: thresholds ['10']"),
    (_unknown_metric, "mtarep_source_ok is neither a contract metric nor a recording rule"),
    (_dashboard_that_does_not_exist, "MtarepExporterDown: dashboard_url is not a link"),
    (_issue_url_of_another_form, "MtarepDnsCheckFailing: issue_url is not"),
    (_no_test_that_it_fires, "MtarepSndsIpBlocked: no promtool test shows it fires"),
    (_no_test_when_acknowledged, "MtarepListed: no promtool test shows it acknowledged"),
    (_no_test_that_it_resolves, "MtarepMaillogUnreadable: no promtool test shows it resolves"),
]


@pytest.mark.parametrize(
    ("breakage", "expected"), BREAKAGES, ids=[b.__name__.strip("_") for b, _ in BREAKAGES]
)
def test_a_broken_rule_or_test_is_caught(
    breakage: Callable[[list[dict[str, Any]], list[dict[str, Any]]], None], expected: str
) -> None:
    groups, tests = copy.deepcopy(GROUPS), copy.deepcopy(TEST_FILES)
    breakage(groups, tests)

    problems = rule_problems(groups, tests)

    assert any(expected in problem for problem in problems), problems


# One example issue of each issue alert: what the alert is about, as mtarep sees it.
ALERT_ISSUES: dict[str, tuple[IssueKind, str]] = {
    "MtarepListed": ("rbl", "psbl.surriel.com"),
    "MtarepListedOnCriticalZone": ("rbl", "zen.spamhaus.org"),
    "MtarepSenderScoreLow": ("senderscore", "senderscore"),
    "MtarepSndsFilterRed": ("snds", "filter"),
    "MtarepSndsFilterYellow": ("snds", "filter"),
    "MtarepSndsTrapHits": ("snds", "traps"),
    "MtarepSndsIpBlocked": ("snds", "blocked"),
    "MtarepProviderBlock": ("provider", "gmail"),
    "MtarepReputationBad": ("reputation", "brightmail"),
    "MtarepDnsCheckFailing": ("dns", "ptr"),
}


def test_an_alert_pages_exactly_when_its_issue_is_an_error() -> None:
    """critical <=> the ackservice's error (exporter/severity.py), warning <=> warning."""
    expected = {"error": "critical", "warning": "warning"}
    alerts = {
        rule["alert"]: rule
        for group in GROUPS
        for rule in group["rules"]
        if "alert" in rule and _KIND.search(rule["expr"])
    }
    assert set(alerts) == set(ALERT_ISSUES)
    for name, (kind, subject) in ALERT_ISSUES.items():
        assert _KIND.search(alerts[name]["expr"]).group(1) == kind, name  # type: ignore[union-attr]
        severity = issue_severity(kind, subject, Thresholds())
        assert alerts[name]["labels"]["severity"] == expected[severity], name
    critical = re.search(r'rbl=~"(.*)"', GROUPS[0]["rules"][-1]["expr"] or "")
    for zone in Thresholds().error_rbls:  # the zones that page are the error zones
        assert critical is not None
        assert zone.replace(".", "\\\\.") in critical.group(1), zone
