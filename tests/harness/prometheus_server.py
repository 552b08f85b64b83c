"""A real ``prometheus`` on a free loopback port, scraping test targets every second.

The configuration is mtarep's own ``prometheus/prometheus.yml`` with the test's
addresses in place of the docker-compose ones: the same job names (the alert rules
name them), the real ``prometheus/alerts.yml`` as rule file, no Alertmanager, and a
1s scrape and evaluation interval. Its data lives in the test's temp directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.harness.binaries import require_binary
from tests.harness.ports import HOST, free_port
from tests.harness.process import LoopbackServer, ManagedProcess
from tests.harness.wait import DEFAULT_TIMEOUT

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"
ALERT_RULES = REPO / "prometheus" / "alerts.yml"


class PrometheusQueryError(RuntimeError):
    """Prometheus refused a query (a PromQL error), with its error type and message."""


def config_for_targets(
    targets: Mapping[str, str], rule_files: list[Path], *, source: Path = PROMETHEUS_CONFIG
) -> dict[str, Any]:
    """``source`` with every job's targets replaced by ``targets`` (job -> host:port).

    Jobs of ``source`` not in ``targets`` are dropped; a job in ``targets`` that
    ``source`` does not have is an error (the alert rules rely on the job names).
    """
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    missing = sorted(set(targets) - set(jobs))
    if missing:
        raise ValueError(f"{source} has no scrape job named {', '.join(missing)}")
    config["global"] = {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    config["rule_files"] = [str(path) for path in rule_files]
    config.pop("alerting", None)
    config["scrape_configs"] = [
        {**jobs[name], "static_configs": [{"targets": [address]}]}
        for name, address in targets.items()
    ]
    return config


class PrometheusServer(LoopbackServer):
    """``prometheus`` with ``config`` (a parsed prometheus.yml) on 127.0.0.1."""

    def __init__(self, base_dir: Path, config: Mapping[str, Any], port: int | None = None) -> None:
        binary = require_binary("prometheus", "prometheus")
        self.base_dir = base_dir
        self._port = port if port is not None else free_port()
        self.base_url = f"http://{HOST}:{self._port}"
        self.config_path = base_dir / "prometheus.yml"
        self._config = dict(config)
        self._process = ManagedProcess(
            "prometheus",
            [
                binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={base_dir / 'data'}",
                "--storage.tsdb.retention.time=1h",
                f"--web.listen-address={HOST}:{self._port}",
                "--log.level=info",
            ],
            base_dir / "prometheus.log",
            cwd=base_dir,
        )

    def _ready(self) -> bool:
        return requests.get(f"{self.base_url}/-/ready", timeout=2).status_code == 200

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self._config, sort_keys=False))
        self._launch(
            self._ready,
            f"prometheus on {HOST}:{self._port}",
            timeout,
            ignore=(requests.ConnectionError,),
        )

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``: the ``data`` of a successful answer.

        Raises :class:`PrometheusQueryError` when Prometheus answers with an error.
        """
        response = requests.get(f"{self.base_url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusQueryError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar, as one sample) ``expr`` evaluates to now."""
        data = self.api("query", query=expr)
        if data["resultType"] == "vector":
            result: list[dict[str, Any]] = data["result"]
            return result
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        raise PrometheusQueryError(f"{expr!r} is a {data['resultType']}, not an instant vector")

    def label_values(self, label: str, match: str | None = None) -> list[str]:
        params = {"match[]": match} if match is not None else {}
        values: list[str] = self.api(f"label/{label}/values", **params)
        return values

    def log(self) -> str:
        return self.log_tail(80)
