"""The real tools check the monitoring files: promtool, amtool and docker-compose.

- ``promtool check config`` / ``check rules`` / ``test rules`` (Debian's ``prometheus``),
- ``amtool check-config`` and ``amtool config routes test`` (``prometheus-alertmanager``),
- ``docker-compose -f docker-compose.yml config -q`` (Debian's ``docker-compose``; no
  Docker engine needed, nothing is started).

Each check is also run on a broken copy, to show that it fails: the promtool tests
notice a rule that no longer steps aside for acknowledged issues, or a threshold
changed in one place.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness.binaries import require_binary
from tests.harness.monitoring import REPO, alert_rules, recording_rule_names

pytestmark = pytest.mark.integration

PROMETHEUS_DIR = REPO / "prometheus"


def run(argv: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_binary("promtool", "prometheus")


@pytest.fixture(scope="module")
def amtool() -> str:
    return require_binary("amtool", "prometheus-alertmanager")


@pytest.fixture(scope="module")
def docker_compose() -> str:
    return require_binary("docker-compose", "docker-compose")


def test_promtool_check_config(promtool: str) -> None:
    done = run([promtool, "check", "config", "prometheus/prometheus.yml"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: prometheus/prometheus.yml is valid" in done.stdout + done.stderr


def test_promtool_check_rules(promtool: str) -> None:
    done = run([promtool, "check", "rules", "prometheus/alerts.yml"])
    assert done.returncode == 0, done.stdout + done.stderr
    rules = len(alert_rules()) + sum(1 for _ in _recording_rules())
    assert f"SUCCESS: {rules} rules found" in done.stdout


def _recording_rules() -> list[str]:
    text = (PROMETHEUS_DIR / "alerts.yml").read_text()
    return [line for line in text.splitlines() if line.strip().startswith("- record:")]


def test_promtool_test_rules(promtool: str) -> None:
    tests = sorted(str(path.relative_to(REPO)) for path in (PROMETHEUS_DIR / "tests").glob("*.yml"))
    assert tests

    done = run([promtool, "test", "rules", *tests])

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(tests)
    assert recording_rule_names()  # the thresholds the tests rely on are recorded


def _without_acknowledgements(rules: str) -> str:
    lines = rules.splitlines(keepends=True)
    return "".join(line for line in lines if "mtarep_issue_acknowledged == 1" not in line)


def _sender_score_threshold_60(rules: str) -> str:
    return rules.replace("expr: vector(70)", "expr: vector(60)")


def _for_five_minutes(rules: str) -> str:
    return rules.replace("for: 10m", "for: 5m")


@pytest.mark.parametrize(
    ("breakage", "test_file", "noticed_by"),
    [
        (_without_acknowledgements, "listings.yml", "MtarepListedOnCriticalZone"),
        (_without_acknowledgements, "dns_provider.yml", "MtarepProviderBlock"),
        (_sender_score_threshold_60, "scores.yml", "MtarepSenderScoreLow"),
        (_for_five_minutes, "listings.yml", "MtarepListed"),
    ],
    ids=[
        "acknowledged listing alerts",
        "acknowledged provider block alerts",
        "threshold changed",
        "for shortened",
    ],
)
def test_promtool_tests_fail_on_broken_rules(
    promtool: str,
    tmp_path: Path,
    breakage: Callable[[str], str],
    test_file: str,
    noticed_by: str,
) -> None:
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS_DIR, copy)
    rules = copy / "alerts.yml"
    rules.write_text(breakage(rules.read_text()))

    done = run([promtool, "test", "rules", str(copy / "tests" / test_file)], cwd=copy)

    assert done.returncode != 0
    assert f"alertname: {noticed_by}" in done.stdout + done.stderr


def test_amtool_check_config(amtool: str) -> None:
    done = run([amtool, "check-config", "prometheus/alertmanager.yml"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=MtarepListedOnCriticalZone"], "pager"),
        (["severity=warning", "alertname=MtarepListed"], "chat"),
        (["alertname=Unlabelled"], "chat"),
    ],
)
def test_alertmanager_routes_by_severity(amtool: str, labels: list[str], receiver: str) -> None:
    done = run(
        [
            amtool,
            "config",
            "routes",
            "test",
            "--config.file=prometheus/alertmanager.yml",
            f"--verify.receivers={receiver}",
            *labels,
        ]
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == receiver


def test_amtool_rejects_a_broken_config(amtool: str, tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yml"
    text = (PROMETHEUS_DIR / "alertmanager.yml").read_text()
    broken.write_text(text.replace("receiver: pager", "receiver: pagr"))

    done = run([amtool, "check-config", str(broken)])

    assert done.returncode != 0
    assert "pagr" in done.stdout + done.stderr


def test_docker_compose_config(docker_compose: str) -> None:
    done = run([docker_compose, "-f", "docker-compose.yml", "config", "-q"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


def test_docker_compose_rejects_a_broken_file(docker_compose: str, tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    text = (REPO / "docker-compose.yml").read_text()
    broken.write_text(text.replace("    healthcheck:\n", "    healthchek:\n", 1))

    done = run([docker_compose, "-f", str(broken), "config", "-q"], cwd=tmp_path)

    assert done.returncode != 0
    assert "healthchek" in done.stdout + done.stderr
