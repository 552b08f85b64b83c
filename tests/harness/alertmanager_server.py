"""A real ``prometheus-alertmanager`` on a free loopback port, alone (no cluster).

It routes every alert to a receiver that sends nothing; the tests use its silences
API (v2). Storage (silences, notification log) lives in the test's temp dir.
"""

from pathlib import Path
from typing import Any

import requests

from tests.harness.binaries import require_binary
from tests.harness.ports import HOST, free_port
from tests.harness.process import LoopbackServer, ManagedProcess
from tests.harness.wait import DEFAULT_TIMEOUT

CONFIG = """\
route:
  receiver: nowhere
receivers:
  - name: nowhere
"""


class AlertmanagerServer(LoopbackServer):
    """``prometheus-alertmanager`` on 127.0.0.1 with ``--cluster.listen-address=`` empty."""

    def __init__(self, base_dir: Path, port: int | None = None) -> None:
        binary = require_binary("prometheus-alertmanager", "prometheus-alertmanager")
        self.base_dir = base_dir
        self._port = port if port is not None else free_port()
        self.config_path = base_dir / "alertmanager.yml"
        self._process = ManagedProcess(
            "prometheus-alertmanager",
            [
                binary,
                f"--config.file={self.config_path}",
                f"--storage.path={base_dir / 'data'}",
                f"--web.listen-address={HOST}:{self._port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            base_dir / "alertmanager.log",
            cwd=base_dir,
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._port}"

    def _ready(self) -> bool:
        return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(CONFIG)
        self._launch(
            self._ready,
            f"alertmanager on {HOST}:{self._port}",
            timeout,
            ignore=(requests.ConnectionError, requests.Timeout),
        )

    def silences(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v2/silences", timeout=5)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def active_silences(self) -> list[dict[str, Any]]:
        return [s for s in self.silences() if s["status"]["state"] == "active"]
