"""mtarep's own console scripts run as real processes, as a user or systemd runs them."""

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import requests

from tests.harness.ports import free_port
from tests.harness.process import LoopbackServer, ManagedProcess
from tests.harness.wait import DEFAULT_TIMEOUT

BIN = Path(sys.executable).parent


def offline_checks(dns_port: int | None = None) -> str:
    """Config lines that keep a test exporter's checks on this machine.

    Lookups go to ``dns_port`` on 127.0.0.1 (a test name server, or by default a free
    port where nothing answers) and the HELO check is off: no test sends a query to
    the system resolver or connects to port 25 anywhere.
    """
    port = dns_port if dns_port is not None else free_port()
    return (
        f"dns: {{nameservers: [127.0.0.1], port: {port}, timeout: 0.2s, attempts: 1}}\n"
        "helo_check: {enabled: false}\n"
    )


class MtarepProcess(LoopbackServer):
    """``mtarep-exporter`` or ``mtarep-ackservice`` with a config file, serving on ``port``.

    The environment is the test's, minus any ``MTAREP_*`` variable, plus ``env``.
    """

    def __init__(
        self,
        command: str,
        config: Path,
        port: int,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._port = port
        self.base_url = f"http://{self.host}:{port}"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("MTAREP_")}
        environment.update(env or {})
        self._process = ManagedProcess(
            command,
            [str(BIN / command), "--config", str(config)],
            log_dir / f"{command}.log",
            cwd=config.parent,
            env=environment,
        )

    def _listening(self) -> bool:
        requests.get(f"{self.base_url}/healthz", timeout=2)  # any status: it answers
        return True

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._launch(
            self._listening,
            f"{self._process.name} on port {self._port}",
            timeout,
            ignore=(requests.ConnectionError,),
        )

    def run_to_exit(self, timeout: float = 30.0) -> int | None:
        """Start a process that is expected to give up on its own; its exit status."""
        self._process.start()
        self._process.wait(timeout)
        return self.stop()

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.base_url}{path}", timeout=10)

    def log(self) -> str:
        return self.log_tail(200)
