"""``mtarep-exporter demo`` as a newcomer runs it: one command, then the page and /metrics.

The demo runs as a real process in the test's directory on free ports. The test
waits for its first cycle, checks that the page and ``/metrics`` show the demo's
issues (the listing, the PTR mismatch, the provider blocks, the SNDS colours),
acknowledges one on the page in real Chromium, stops the demo with SIGINT (as
Ctrl-C does), starts it again and finds the acknowledgement still there.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, expect

from ackservice.service import issue_path
from exporter.store import IssueKey
from tests.harness.browser import chromium
from tests.harness.mtarep_process import BIN
from tests.harness.ports import HOST, free_port
from tests.harness.process import ManagedProcess
from tests.harness.wait import wait_until

pytestmark = pytest.mark.integration

LISTING = IssueKey("192.0.2.12", "rbl", "bl.demo.mtarep.test")
EXPECTED_ISSUES = {
    LISTING,
    IssueKey("192.0.2.13", "dns", "ptr"),
    IssueKey("192.0.2.11", "provider", "gmail"),
    IssueKey("192.0.2.12", "provider", "yahoo"),
    IssueKey("192.0.2.13", "provider", "microsoft"),
    IssueKey("192.0.2.12", "snds", "filter"),
    IssueKey("192.0.2.13", "snds", "filter"),
}


class Demo:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        exporter, ackservice = free_port(), free_port()
        self.metrics_url = f"http://{HOST}:{exporter}/metrics"
        self.url = f"http://{HOST}:{ackservice}"
        self.process = ManagedProcess(
            "mtarep demo",
            [
                str(BIN / "mtarep-exporter"),
                "demo",
                "--data-dir",
                str(data_dir),
                "--listen",
                f"{HOST}:{exporter}",
                "--ackservice-listen",
                f"{HOST}:{ackservice}",
                "--log-level",
                "INFO",
            ],
            data_dir.parent / "demo.log",
        )

    @property
    def password(self) -> str:
        return (self.data_dir / "demo-password").read_text().strip()

    def api(self, path: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", auth=("demo", self.password), timeout=10)

    def open_issues(self) -> set[IssueKey]:
        answer = self.api("/api/issues")
        if answer.status_code != 200:
            return set()
        return {
            IssueKey(issue["ip"], issue["kind"], issue["subject"])
            for issue in answer.json()["success"]
        }

    def start(self) -> None:
        self.process.start()
        wait_until(
            lambda: self.open_issues() >= EXPECTED_ISSUES,
            60,
            "the demo's first cycle and its issues",
            log_tail=self.process.log_tail,
            ignore=(requests.ConnectionError, FileNotFoundError),
        )

    def interrupt(self) -> int | None:
        """Ctrl-C: SIGINT, then the exit status (the harness kills it if it hangs)."""
        return self.process.stop(sig=signal.SIGINT)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path / "mtarep-demo")
    try:
        yield running
    finally:
        running.process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_the_demo_shows_its_issues_keeps_an_ack_across_a_restart(
    demo: Demo, browser: Browser
) -> None:
    demo.start()

    metrics = requests.get(demo.metrics_url, timeout=10).text
    for line in (
        'mtarep_rbl_listed{host="mta2.demo.mtarep.test",ip="192.0.2.12",'
        'rbl="bl.demo.mtarep.test"} 1.0',
        'mtarep_dns_check_ok{check="ptr",host="mta3.demo.mtarep.test",ip="192.0.2.13"} 0.0',
        'mtarep_provider_blocked{host="mta1.demo.mtarep.test",provider="gmail"} 1.0',
        'mtarep_snds_filter_result{color="red",host="mta2.demo.mtarep.test",ip="192.0.2.12"} 1.0',
        'mtarep_rbl_zone_healthy{rbl="dead.demo.mtarep.test"} 0.0',
        'mtarep_rbl_zone_healthy{rbl="refusing.demo.mtarep.test"} 0.0',
    ):
        assert line in metrics, line
    assert 'mtarep_mailflow_messages{domain="gmail.com",source="demo",status="sent"}' in metrics

    context = browser.new_context(
        http_credentials={"username": "demo", "password": demo.password},
        viewport={"width": 1400, "height": 900},
    )
    page = context.new_page()
    page.goto(f"{demo.url}/")
    expect(page.locator(".banner-notice")).to_contain_text("DEMO")
    expect(page.locator("#overview")).to_contain_text("mta3.demo.mtarep.test")
    page.locator("a.issue-link", has_text="bl.demo.mtarep.test").first.click()
    modal = page.locator("dialog#issue-modal")
    expect(modal).to_be_visible()
    expect(modal).to_contain_text("Demo listing: spam trap hits from this IP")
    modal.locator("textarea[name=note]").fill("looking into the demo listing")
    modal.get_by_role("button", name="Acknowledge").click()
    page.wait_for_url(f"{demo.url}/")
    expect(page.locator("#overview .ack-mark")).to_have_text(["ack: demo"])

    assert demo.interrupt() == 0, demo.process.log_tail()
    assert "mtarep demo stopped" in demo.process.log_tail()

    demo.start()  # the same directory: the same Redis, the same login
    page.goto(f"{demo.url}{issue_path(LISTING)}")
    expect(page.locator("section.ack")).to_contain_text("Acknowledged by demo at")
    expect(page.locator("section.ack")).to_contain_text("looking into the demo listing")
    context.close()
    assert demo.interrupt() == 0
    assert "Traceback" not in demo.process.log_tail(400)
