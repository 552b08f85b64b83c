"""The committed Grafana dashboards, checked structurally (no Grafana needed).

:func:`dashboard_problems` lists everything wrong with one dashboard; the real
dashboards must have none, and every kind of mistake it looks for is shown to be
caught on a broken copy. What a query returns is checked against a real Prometheus
in ``tests/integration/test_dashboard_queries.py``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.harness.monitoring import (
    CONTRACT_METRICS,
    DASHBOARD_DIR,
    GRAFANA_BUILTINS,
    LABEL_VALUES,
    all_panels,
    load_dashboards,
    metric_names,
    variable_query,
    variables_in,
)

EXPECTED_UIDS = {"mtarep-overview", "mtarep-host", "mtarep-mailflow", "mtarep-health"}
"""Stable: alert annotations and the dashboards' own links point at these."""

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
ISSUE_KINDS = {"rbl", "provider", "snds", "senderscore", "reputation", "dns"}
LINK_BUILTINS = {"__data", "__field", "__value", "__series", "__url_time_range", "__from", "__to"}
_ISSUE_LINK = re.compile(r"^\$\{ackservice_url\}/issues/([^/]+)/([^/]+)/([^/]+)$")
_VALUE_FIELD = re.compile(r"^Value #([A-Z])$")


def _links(panel: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every data link of a panel: its own, its field defaults', its overrides'."""
    yield from panel.get("links", [])
    field_config = panel.get("fieldConfig", {})
    yield from field_config.get("defaults", {}).get("links", [])
    for override in field_config.get("overrides", []):
        for prop in override.get("properties", []):
            if prop.get("id") == "links":
                yield from prop["value"]


def _overlaps(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def _variable_problems(dashboard: dict[str, Any]) -> list[str]:
    problems = []
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    source = variables.get("datasource")
    if source is None or (source.get("type"), source.get("query")) != ("datasource", "prometheus"):
        problems.append("no $datasource variable of type datasource/prometheus")
    for name, variable in variables.items():
        if variable.get("type") != "query":
            continue
        if variable.get("datasource") != DATASOURCE:
            problems.append(f"variable {name}: not on ${{datasource}}")
        query = variable_query(variable)
        match = LABEL_VALUES.match(query)
        if match is None:
            problems.append(f"variable {name}: {query!r} is not label_values(...)")
            continue
        for metric in metric_names(match["match"] or ""):
            if metric not in CONTRACT_METRICS:
                problems.append(f"variable {name}: {metric} is not a contract metric")
    host = variables.get("host")
    if host is not None and variable_query(host) != "label_values(mtarep_host_info, host)":
        problems.append("variable host: not label_values(mtarep_host_info, host)")
    return problems


def _link_problems(where: str, link: dict[str, Any], variables: set[str]) -> list[str]:
    url = link.get("url", "")
    problems = [
        f"{where}: link {url!r} uses ${name}, which is not defined"
        for name in variables_in(url) - variables - LINK_BUILTINS
        if not name.startswith("__data") and not name.startswith("__field")
    ]
    if "/issues/" not in url:
        return problems
    match = _ISSUE_LINK.match(url)
    if match is None:
        return [*problems, f"{where}: issue link {url!r} is not ${{ackservice_url}}/issues/a/b/c"]
    target, kind, _subject = match.groups()
    if not kind.startswith("${") and kind not in ISSUE_KINDS:
        problems.append(f"{where}: issue link {url!r}: {kind} is not an issue kind")
    if kind == "provider" and "host" not in target:
        problems.append(f"{where}: provider link {url!r} must use the host form")
    if kind not in ("provider",) and not kind.startswith("${") and "ip" not in target:
        problems.append(f"{where}: issue link {url!r} must name the IP")
    return problems


def _panel_problems(panel: dict[str, Any], variables: set[str]) -> list[str]:
    where = f"panel {panel.get('title')!r}"
    problems = []
    targets = panel.get("targets", [])
    if panel.get("datasource") != DATASOURCE:
        problems.append(f"{where}: datasource is not ${{datasource}}")
    if not targets:
        problems.append(f"{where}: no query")
    ref_ids = [target.get("refId") for target in targets]
    if len(set(ref_ids)) != len(ref_ids):
        problems.append(f"{where}: refIds repeat: {ref_ids}")
    for target in targets:
        what = f"{where}/{target.get('refId')}"
        if target.get("datasource") != DATASOURCE:
            problems.append(f"{what}: datasource is not ${{datasource}}")
        expr = target.get("expr", "")
        if not expr.strip():
            problems.append(f"{what}: empty query")
        for metric in sorted(metric_names(expr) - CONTRACT_METRICS):
            problems.append(f"{what}: {metric} is not a contract metric")
        for name in sorted(variables_in(expr) - variables - set(GRAFANA_BUILTINS)):
            problems.append(f"{what}: ${name} is not defined")
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        matched = _VALUE_FIELD.match(str(override.get("matcher", {}).get("options", "")))
        if matched and matched.group(1) not in ref_ids:
            problems.append(f"{where}: override of {matched.group(0)}, which no query makes")
    for link in _links(panel):
        problems.extend(_link_problems(where, link, variables))
    return problems


def dashboard_problems(dashboard: dict[str, Any]) -> list[str]:
    """Everything wrong with ``dashboard``, one message each."""
    problems = _variable_problems(dashboard)
    if "mtarep" not in dashboard.get("tags", []):
        problems.append("not tagged mtarep")
    if dashboard.get("id") is not None:
        problems.append("id must be null (Grafana assigns it)")
    variables = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
    panels = list(all_panels(dashboard))
    ids = [panel.get("id") for panel in panels]
    if len(set(ids)) != len(ids) or None in ids:
        problems.append(f"panel ids missing or repeated: {ids}")
    titles = [str(panel.get("title")) for panel in panels if panel.get("type") != "row"]
    repeated = sorted({title for title in titles if titles.count(title) > 1})
    if repeated:
        problems.append(f"panel titles repeat: {repeated}")
    placed: list[tuple[str, dict[str, int]]] = []
    for panel in panels:
        title, grid = str(panel.get("title")), panel.get("gridPos", {})
        if not all(isinstance(grid.get(key), int) for key in ("x", "y", "w", "h")):
            problems.append(f"panel {title!r}: gridPos {grid} incomplete")
            continue
        if grid["x"] < 0 or grid["y"] < 0 or grid["w"] < 1 or grid["h"] < 1:
            problems.append(f"panel {title!r}: gridPos {grid} out of range")
        if grid["x"] + grid["w"] > 24:
            problems.append(f"panel {title!r}: gridPos {grid} wider than the 24 columns")
        problems.extend(
            f"panels {other!r} and {title!r} overlap"
            for other, other_grid in placed
            if _overlaps(grid, other_grid)
        )
        placed.append((title, grid))
        if panel.get("type") != "row":
            problems.extend(_panel_problems(panel, variables))
    if any("/issues/" in link.get("url", "") for p in panels for link in _links(p)):
        ack = next(
            (v for v in dashboard["templating"]["list"] if v["name"] == "ackservice_url"), None
        )
        if ack is None or ack.get("type") not in ("textbox", "constant"):
            problems.append("issue links but no ackservice_url textbox/constant variable")
    return problems


DASHBOARDS = load_dashboards()


def test_the_dashboards_are_the_four_with_stable_uids() -> None:
    assert {d["uid"] for d in DASHBOARDS.values()} == EXPECTED_UIDS
    for name, dashboard in DASHBOARDS.items():
        assert name == f"{dashboard['uid']}.json"
    titles = [d["title"] for d in DASHBOARDS.values()]
    assert len(set(titles)) == len(titles)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_has_no_problem(name: str) -> None:
    assert dashboard_problems(DASHBOARDS[name]) == []


def test_every_file_is_json_with_two_space_indentation() -> None:
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        text = path.read_text()
        assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n", path


def test_issue_cells_link_to_the_ackservice_issue_pages() -> None:
    overview = DASHBOARDS["mtarep-overview.json"]
    links = {
        link["url"]
        for panel in all_panels(overview)
        if panel.get("title") == "MTAs"
        for link in _links(panel)
    }
    ip = '${__data.fields["ip"]:percentencode}'
    assert {
        f"${{ackservice_url}}/issues/{ip}/senderscore/senderscore",
        f"${{ackservice_url}}/issues/{ip}/snds/filter",
        f"${{ackservice_url}}/issues/{ip}/snds/traps",
        f"${{ackservice_url}}/issues/{ip}/snds/blocked",
        f'${{ackservice_url}}/issues/{ip}/dns/${{__data.fields["check"]:percentencode}}',
        f'${{ackservice_url}}/issues/{ip}/reputation/${{__data.fields["source"]:percentencode}}',
        f'${{ackservice_url}}/issues/{ip}/rbl/${{__data.fields["rbl"]:percentencode}}',
        '${ackservice_url}/issues/${__data.fields["host"]:percentencode}/provider/'
        '${__data.fields["provider"]:percentencode}',
    } <= links


# -- every check catches what it is for --------------------------------------------------


def _first_panel(dashboard: dict[str, Any], kind: str = "stat") -> dict[str, Any]:
    return next(p for p in all_panels(dashboard) if p.get("type") == kind)


def _no_datasource_variable(d: dict[str, Any]) -> None:
    d["templating"]["list"] = [v for v in d["templating"]["list"] if v["name"] != "datasource"]


def _panel_on_a_fixed_datasource(d: dict[str, Any]) -> None:
    _first_panel(d)["datasource"] = {"type": "prometheus", "uid": "prometheus"}


def _target_on_a_fixed_datasource(d: dict[str, Any]) -> None:
    _first_panel(d)["targets"][0]["datasource"] = {"type": "prometheus", "uid": "P1"}


def _unknown_metric(d: dict[str, Any]) -> None:
    _first_panel(d)["targets"][0]["expr"] = 'rate(mtarep_snds_traps_total{host="$host"}[5m])'


def _undefined_variable(d: dict[str, Any]) -> None:
    _first_panel(d)["targets"][0]["expr"] = 'mtarep_senderscore{host="$hots"}'


def _overlapping_panels(d: dict[str, Any]) -> None:
    panels = [p for p in all_panels(d) if p.get("type") != "row"]
    panels[1]["gridPos"] = dict(panels[0]["gridPos"])


def _too_wide(d: dict[str, Any]) -> None:
    _first_panel(d)["gridPos"]["w"] = 30


def _repeated_panel_id(d: dict[str, Any]) -> None:
    panels = list(all_panels(d))
    panels[1]["id"] = panels[0]["id"]


def _link_to_another_site(d: dict[str, Any]) -> None:
    table = next(p for p in all_panels(d) if p.get("title") == "MTAs")
    table["fieldConfig"]["overrides"][0]["properties"].append(
        {"id": "links", "value": [{"title": "x", "url": "https://example.com/issues/1/rbl/x"}]}
    )


def _provider_link_by_ip(d: dict[str, Any]) -> None:
    table = next(p for p in all_panels(d) if p.get("title") == "MTAs")
    url = '${ackservice_url}/issues/${__data.fields["ip"]}/provider/gmail'
    table["fieldConfig"]["overrides"][0]["properties"].append(
        {"id": "links", "value": [{"title": "x", "url": url}]}
    )


def _override_of_a_missing_query(d: dict[str, Any]) -> None:
    table = next(p for p in all_panels(d) if p.get("title") == "MTAs")
    table["fieldConfig"]["overrides"].append(
        {"matcher": {"id": "byName", "options": "Value #Z"}, "properties": []}
    )


def _host_from_another_metric(d: dict[str, Any]) -> None:
    host = next(v for v in d["templating"]["list"] if v["name"] == "host")
    host["query"] = {"query": "label_values(mtarep_senderscore, host)", "refId": "A"}


def _no_ackservice_variable(d: dict[str, Any]) -> None:
    d["templating"]["list"] = [v for v in d["templating"]["list"] if v["name"] != "ackservice_url"]


def _untagged(d: dict[str, Any]) -> None:
    d["tags"] = []


def _repeated_title(d: dict[str, Any]) -> None:
    panels = [p for p in all_panels(d) if p.get("type") != "row"]
    panels[1]["title"] = panels[0]["title"]


BREAKAGES: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (_no_datasource_variable, "no $datasource variable"),
    (_panel_on_a_fixed_datasource, "datasource is not ${datasource}"),
    (_target_on_a_fixed_datasource, "/A: datasource is not ${datasource}"),
    (_unknown_metric, "mtarep_snds_traps_total is not a contract metric"),
    (_undefined_variable, "$hots is not defined"),
    (_overlapping_panels, "overlap"),
    (_too_wide, "wider than the 24 columns"),
    (_repeated_panel_id, "panel ids missing or repeated"),
    (_link_to_another_site, "is not ${ackservice_url}/issues/a/b/c"),
    (_provider_link_by_ip, "must use the host form"),
    (_override_of_a_missing_query, "override of Value #Z, which no query makes"),
    (_host_from_another_metric, "not label_values(mtarep_host_info, host)"),
    (_no_ackservice_variable, "issue links but no ackservice_url"),
    (_untagged, "not tagged mtarep"),
    (_repeated_title, "panel titles repeat"),
]


@pytest.mark.parametrize(
    ("breakage", "expected"), BREAKAGES, ids=[b.__name__.strip("_") for b, _ in BREAKAGES]
)
def test_a_broken_dashboard_is_caught(
    breakage: Callable[[dict[str, Any]], None], expected: str
) -> None:
    broken = copy.deepcopy(DASHBOARDS["mtarep-overview.json"])
    breakage(broken)

    problems = dashboard_problems(broken)

    assert any(expected in problem for problem in problems), problems
