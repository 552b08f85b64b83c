"""Take the README's screenshots: the demo's page, an issue, and its metrics.

Run from the repository root: ``./dev screenshots`` (``python -m docs.screenshots``).
It starts ``mtarep-exporter demo`` in a temporary directory on free ports, waits for
its first cycle, drives Debian's Chromium (headless, through Playwright) over the
page, and writes
``docs/images/page.png``, ``docs/images/issue.png`` and ``docs/images/metrics.png``
(the last one is the real output of ``curl .../metrics | grep ...``, shown as text).
Then it stops the demo with SIGINT, as Ctrl-C does.
"""

from __future__ import annotations

import contextlib
import html
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from tests.harness.browser import chromium
from tests.harness.ports import free_port
from tests.harness.wait import wait_until

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
METRICS = (
    "mtarep_rbl_listed",
    "mtarep_rbl_zone_healthy",
    "mtarep_senderscore",
    "mtarep_dns_check_ok",
    "mtarep_snds_filter_result",
    "mtarep_provider_blocked",
)


def main() -> int:
    IMAGES.mkdir(parents=True, exist_ok=True)
    exporter, ackservice = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="mtarep-screenshots-") as tmp:
        data_dir = Path(tmp) / "mtarep-demo"
        demo = subprocess.Popen(  # noqa: S603 - our own command, arguments we made
            [
                str(Path(sys.executable).parent / "mtarep-exporter"),
                "demo",
                "--data-dir",
                str(data_dir),
                "--listen",
                f"127.0.0.1:{exporter}",
                "--ackservice-listen",
                f"127.0.0.1:{ackservice}",
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{ackservice}"
            password_file = data_dir / "demo-password"
            wait_until(password_file.exists, 60, "the demo to start")
            auth = ("demo", password_file.read_text().strip())

            def issues_shown() -> bool:
                answer = requests.get(f"{url}/api/issues", auth=auth, timeout=5)
                return answer.ok and len(answer.json()["success"]) >= 10

            wait_until(issues_shown, 60, "the first cycle", ignore=(requests.ConnectionError,))
            metrics = requests.get(f"http://127.0.0.1:{exporter}/metrics", timeout=5).text
            shown = [line for line in metrics.splitlines() if line.startswith(METRICS)]
            with chromium() as browser:
                context = browser.new_context(
                    http_credentials={"username": auth[0], "password": auth[1]},
                    viewport={"width": 1500, "height": 760},
                    device_scale_factor=1,
                )
                page = context.new_page()
                page.set_viewport_size({"width": 1500, "height": 500})
                page.goto(f"{url}/")
                page.screenshot(path=str(IMAGES / "page.png"))
                page.set_viewport_size({"width": 1500, "height": 760})
                page.locator("a.issue-link", has_text="gmail").first.click()
                page.locator("dialog#issue-modal").wait_for(state="visible")
                page.screenshot(path=str(IMAGES / "issue.png"))
                command = f"$ curl -s 127.0.0.1:9725/metrics | grep -E '^({'|'.join(METRICS)})'"
                text = html.escape("\n".join([command, *shown]))
                page.set_content(
                    "<body style='margin:0;background:#111;color:#ddd'>"
                    "<pre style='font:13px/1.35 monospace;padding:12px;display:inline-block;"
                    "margin:0'>" + text + "</pre></body>"
                )
                page.locator("pre").screenshot(path=str(IMAGES / "metrics.png"))
        finally:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(timeout=20)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()
                # Its embedded Redis is a daemon of its own: stop it before its data goes.
                pid_file = data_dir / "redis.pid"
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    for name in ("page.png", "issue.png", "metrics.png"):
        print(f"wrote {IMAGES / name} ({os.path.getsize(IMAGES / name):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
