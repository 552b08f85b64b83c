"""Reading mtarep's dashboards and alert rules for tests: queries, variables, metric names.

The metric contract (the names the exporter and the ackservice export, see
``../shared/DESIGN.md``) is written down here once, for the dashboard and rule tests:
a dashboard or an alert may only use these names (plus Prometheus' own ``up`` and the
recording rules of ``prometheus/alerts.yml`` for alerts).

PromQL is not parsed here in full: :func:`metric_names` and :func:`selectors` strip
strings, label matchers, durations and grouping lists and take what identifiers
remain. That is enough for the expressions we write, and a typo in a metric name
still shows (it stays an identifier that is not in the contract).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "grafana" / "dashboards"
ALERT_RULES = REPO / "prometheus" / "alerts.yml"
RULE_TESTS_DIR = REPO / "prometheus" / "tests"

EXPORTER_METRICS = frozenset(
    {
        # DNS sources and self-health (exported today)
        "mtarep_host_info",
        "mtarep_senderscore",
        "mtarep_rbl_listed",
        "mtarep_rbl_lookup_ok",
        "mtarep_rbl_listings",
        "mtarep_rbl_zone_healthy",
        "mtarep_dns_check_ok",
        "mtarep_collection_success",
        "mtarep_collection_duration_seconds",
        "mtarep_collection_last_success_timestamp_seconds",
        "mtarep_collection_errors_total",
        "mtarep_dns_queries_total",
        "mtarep_build_info",
        # Microsoft SNDS
        "mtarep_snds_filter_result",
        "mtarep_snds_trap_hits",
        "mtarep_snds_complaint_rate",
        "mtarep_snds_message_recipients",
        "mtarep_snds_ip_blocked",
        "mtarep_snds_data_day_timestamp_seconds",
        "mtarep_snds_rows_skipped",
        # HTTP reputation
        "mtarep_reputation",
        "mtarep_reputation_lookup_ok",
        # maillog: provider blocks and deliveries
        "mtarep_provider_blocked",
        "mtarep_provider_block_last_seen_timestamp_seconds",
        "mtarep_maillog_deliveries_total",
        "mtarep_maillog_bytes_read_total",
        "mtarep_maillog_lines_skipped_total",
        "mtarep_maillog_read_success",
        "mtarep_maillog_last_read_timestamp_seconds",
        # mail flow counters
        "mtarep_mailflow_messages",
        "mtarep_mailflow_values_skipped",  # a gauge: today's hashes (DESIGN.md says _total)
    }
)
"""Every metric of the exporter's ``/metrics`` in the contract."""

ACKSERVICE_METRICS = frozenset(
    {
        "mtarep_issue_acknowledged",
        "mtarep_issues_open",
        # its own health: reading the open issues from Redis, syncing Alertmanager silences
        "mtarep_ackservice_refresh_success",
        "mtarep_ackservice_last_refresh_timestamp_seconds",
        "mtarep_ackservice_silence_sync_success",
    }
)
"""Every metric of the ackservice's ``/metrics`` in the contract."""

CONTRACT_METRICS = EXPORTER_METRICS | ACKSERVICE_METRICS

GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
"""Grafana's own variables that a query may use, with the values a test substitutes."""

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_IDENTIFIER = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
    | {"bool", "offset", "atan2", "inf", "nan", "start", "end"}
)
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_]\w*)(?::[^}]*)?\}|([A-Za-z_]\w*))")


def metric_names(expr: str) -> set[str]:
    """The metric (and recording rule) names ``expr`` selects."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS or _is_duration_or_number(name):
            continue
        names.add(name)
    return names


def _is_duration_or_number(token: str) -> bool:
    return re.fullmatch(r"\d.*", token) is not None


def selectors(expr: str) -> set[str]:
    """Every vector selector of ``expr`` as written: ``name`` or ``name{matchers}``."""
    found = set()
    for name in metric_names(expr):
        pattern = re.compile(rf"(?<![\w:]){re.escape(name)}(\{{[^{{}}]*\}})?(?![\w:(])")
        for match in pattern.finditer(expr):
            found.add(match.group(0))
    return found


def variables_in(text: str) -> set[str]:
    """Grafana variables (``$name``, ``${name}``, ``${name:format}``) used in ``text``."""
    return {braced or plain for braced, plain in _VARIABLE.findall(text)}


def substitute(text: str, values: Mapping[str, str]) -> str:
    """``text`` with every Grafana variable in ``values`` replaced by its value."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(replace, text)


# ------------------------------------------------------------------------------ dashboards


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Every ``grafana/dashboards/*.json``, by file name."""
    return {
        path.name: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))
    }


def all_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


@dataclass(frozen=True)
class DashboardQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str
    instant: bool

    @property
    def name(self) -> str:
        return f"{self.dashboard}/{self.panel}/{self.ref_id}"


def dashboard_queries() -> list[DashboardQuery]:
    """Every PromQL query of every panel of every dashboard."""
    queries = []
    for dashboard in load_dashboards().values():
        for panel in all_panels(dashboard):
            for target in panel.get("targets", []):
                queries.append(
                    DashboardQuery(
                        dashboard["uid"],
                        panel["title"],
                        target["refId"],
                        target["expr"],
                        bool(target.get("instant")),
                    )
                )
    return queries


def variable_query(variable: Mapping[str, Any]) -> str:
    """The query of a ``query`` variable (a string, or ``{"query": ...}`` since Grafana 10)."""
    query = variable["query"]
    return str(query["query"] if isinstance(query, Mapping) else query)


LABEL_VALUES = re.compile(r"label_values\(\s*(?:(?P<match>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$")
"""Grafana's ``label_values(metric_or_selector, label)`` variable query."""


# ------------------------------------------------------------------------------ alert rules


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    return groups


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of ``prometheus/alerts.yml`` (anchors resolved)."""
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def recording_rule_names() -> set[str]:
    return {
        rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule
    }
