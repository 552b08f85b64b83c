"""The ackservice as a real process, on real Redis, in real Chromium, with a real Alertmanager.

One of each for the module (the tests leave no acknowledgement behind). The data is
the sample fleet (tests/harness/ackservice_data.py) with hostile remote text in the
provider line and the TXT reason, written to Redis through the exporter's models.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
import requests
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, expect

from ackservice.refresher import Refresher
from ackservice.service import issue_path, issue_url
from ackservice.silences import Silencer
from exporter.config import load_config
from exporter.store import IssueKey, Store
from tests.harness import ackservice_data as data
from tests.harness.ackservice_app import bcrypt_line, sha_line, write_htpasswd
from tests.harness.alertmanager_server import AlertmanagerServer
from tests.harness.browser import chromium
from tests.harness.mtarep_process import MtarepProcess
from tests.harness.ports import free_port
from tests.harness.redis_server import RedisServer

pytestmark = pytest.mark.integration

USERS = {"alice": "correct horse", "bob": "battery staple"}
GMAIL = data.ISSUE_KEYS["provider"]
RBL = data.ISSUE_KEYS["rbl"]


@dataclass
class Stack:
    redis: RedisServer
    alertmanager: AlertmanagerServer
    ackservice: MtarepProcess
    config_path: Path

    @property
    def url(self) -> str:
        return self.ackservice.base_url

    def run(self, coroutine_function: Any, *args: Any) -> Any:
        """Run ``coroutine_function(store, *args)`` against the real Redis.

        In a thread of its own: Playwright's sync API keeps an event loop running in
        this one, so ``asyncio.run`` cannot be called here.
        """

        async def main() -> Any:
            client = redis.asyncio.from_url(self.redis.url, decode_responses=True)
            try:
                return await coroutine_function(Store(client), *args)
            finally:
                await client.aclose()

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(lambda: asyncio.run(main())).result()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("ackservice")
    with RedisServer(base / "redis") as redis_server, AlertmanagerServer(base / "am") as am:
        port = free_port()
        htpasswd = write_htpasswd(
            base / "htpasswd",
            [bcrypt_line("alice", USERS["alice"], "$2y$"), sha_line("bob", USERS["bob"])],
        )
        config_path = base / "mtarep.yml"
        document = data.config_document(
            redis_url=redis_server.url,
            http_auth_file=str(htpasswd),
            listen=f"127.0.0.1:{free_port()}",
            ackservice={
                "listen": f"127.0.0.1:{port}",
                "alertmanager_url": am.url,
                "url": f"http://127.0.0.1:{port}",
            },
        )
        config_path.write_text(data.config_yaml(document))
        config = load_config(config_path, environ={}).config
        ackservice = MtarepProcess("mtarep-ackservice", config_path, port, base)
        stack = Stack(redis_server, am, ackservice, config_path)
        snapshot = data.sample_snapshot(data.T0, hostile=True)
        stack.run(lambda store: data.write_snapshot(store, snapshot, config))
        with ackservice:
            yield stack
        assert "Traceback" not in ackservice.log(), ackservice.log()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def new_page(browser: Browser, user: str) -> Page:
    context = browser.new_context(
        http_credentials={"username": user, "password": USERS[user]},
        viewport={"width": 1400, "height": 900},
    )
    return context.new_page()


def watch(page: Page) -> tuple[list[str], list[str]]:
    """Collect JavaScript dialogs (none may fire) and CSP violations (none may happen)."""
    dialogs: list[str] = []
    violations: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    return dialogs, violations


def silences_of(stack: Stack, key: IssueKey, state: str = "active") -> list[dict[str, Any]]:
    marker = f"[mtarep-issue {key.id}]"
    return [
        s
        for s in stack.alertmanager.silences()
        if marker in s["comment"] and s["status"]["state"] == state
    ]


def ip_order(page: Page) -> list[str]:
    return page.locator("#overview tbody td.col-ip").all_inner_texts()


def test_ack_in_the_browser_is_seen_by_a_second_user_who_withdraws_it(
    stack: Stack, browser: Browser
) -> None:
    alice = new_page(browser, "alice")
    dialogs, violations = watch(alice)
    alice.goto(f"{stack.url}/")
    expect(alice.locator("header .who")).to_contain_text("signed in as alice")

    # Sort by Sender Score: no score (IPv6), 62, 95; then the other way round.
    alice.get_by_role("button", name="Sender Score").click()
    assert ip_order(alice) == [data.IP6, data.IP, data.IP2]
    expect(alice.locator("th", has_text="Sender Score")).to_have_attribute("aria-sort", "ascending")
    alice.get_by_role("button", name="Sender Score").click()
    assert ip_order(alice) == [data.IP2, data.IP, data.IP6]

    # The gmail block opens as a modal with the rejection line; acknowledge it there.
    alice.locator("a.issue-link", has_text="gmail").click()
    modal = alice.locator("dialog#issue-modal")
    expect(modal).to_be_visible()
    expect(modal).to_contain_text("Newest rejection, as logged")
    expect(modal).to_contain_text("gmail-smtp-in.l.google.com[74.125.192.26]:25")
    modal.locator("textarea[name=note]").fill("ticket 4711 with Google")
    modal.get_by_role("button", name="Acknowledge").click()
    alice.wait_for_url(f"{stack.url}/")
    expect(alice.locator("#overview .ack-mark")).to_have_text(["ack: alice"])

    (silence,) = silences_of(stack, GMAIL)
    assert silence["createdBy"] == "alice"
    assert sorted((m["name"], m["value"]) for m in silence["matchers"]) == [
        ("host", data.HOST),
        ("kind", "provider"),
        ("subject", "gmail"),
    ]
    assert silence["comment"].startswith("ticket 4711 with Google | ")
    assert issue_path(GMAIL) in silence["comment"]

    # bob, in another browser context, sees it and withdraws it.
    bob = new_page(browser, "bob")
    bob.goto(f"{stack.url}{issue_path(GMAIL)}")
    expect(bob.locator("section.ack")).to_contain_text("Acknowledged by alice at")
    expect(bob.locator("section.ack")).to_contain_text("ticket 4711 with Google")
    expect(bob.locator("section.ack")).to_contain_text("silenced in Alertmanager until")
    bob.get_by_role("button", name="Withdraw").click()
    expect(bob.get_by_role("button", name="Acknowledge")).to_be_visible()
    expect(bob.locator("section.history")).to_contain_text("acknowledgement withdrawn")
    assert silences_of(stack, GMAIL) == []
    assert len(silences_of(stack, GMAIL, "expired")) == 1

    alice.reload()
    expect(alice.locator("#overview .ack-mark")).to_have_count(0)
    assert dialogs == []
    assert violations == []


def test_hostile_remote_text_renders_as_text(stack: Stack, browser: Browser) -> None:
    page = new_page(browser, "bob")
    dialogs, violations = watch(page)
    page.goto(f"{stack.url}/")
    page.locator("a.issue-link", has_text="gmail").click()
    modal = page.locator("dialog#issue-modal")
    expect(modal).to_be_visible()
    line = modal.locator("pre.remote").first
    expect(line).to_contain_text("<script>alert('x')</script>")
    expect(line).to_contain_text('"onmouseover=alert(1) x="')
    expect(line).to_contain_text("<img src=x onerror=alert(2)>")
    page.goto(f"{stack.url}{issue_path(RBL)}")
    expect(page.locator("dl.facts")).to_contain_text("<script>alert('x')</script>")
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 1  # ours, from /static
    assert page.locator("[onmouseover], [onerror]").count() == 0
    assert "\u202e" not in page.content()
    assert dialogs == []
    assert violations == []


def test_api_ack_silence_and_the_silence_of_a_cleared_issue(stack: Stack) -> None:
    auth = ("alice", USERS["alice"])
    url = f"{stack.url}/api{issue_path(RBL)}/ack"
    acked = requests.post(url, json={"note": "delisting requested"}, auth=auth, timeout=10)
    assert acked.status_code == 200, acked.text
    assert acked.json()["success"]["ack"]["user"] == "alice"
    (silence,) = silences_of(stack, RBL)
    assert sorted((m["name"], m["value"]) for m in silence["matchers"]) == [
        ("ip", data.IP),
        ("kind", "rbl"),
        ("subject", data.ZEN),
    ]

    # The exporter clears the issue (delisted): the ack ends with it, and the next
    # background pass expires the silence. Drive that pass here instead of waiting 15 s.
    assert stack.run(lambda store: store.clear_issue(RBL)) is True
    config = load_config(stack.config_path, environ={}).config

    async def one_pass(store: Store) -> bool:
        assert config.ackservice.alertmanager_url is not None
        silencer = Silencer(config.ackservice.alertmanager_url, lambda key: issue_url(config, key))
        return await Refresher(store, config, silencer).refresh()

    assert stack.run(one_pass) is True
    assert silences_of(stack, RBL) == []
    events = stack.run(lambda store: store.events(5, RBL))
    assert [e.type for e in events[:2]] == ["ack_ended", "delisted"]
    page = requests.get(f"{stack.url}{issue_path(RBL)}", auth=auth, timeout=10)
    assert page.status_code == 404
    assert "acknowledgement ended (the issue cleared)" in page.text


def test_logins_and_open_paths(stack: Stack) -> None:
    assert requests.get(f"{stack.url}/", timeout=10).status_code == 401
    wrong = requests.get(f"{stack.url}/api/all", auth=("alice", "nope"), timeout=10)
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == 'Basic realm="mtarep", charset="UTF-8"'
    assert requests.get(f"{stack.url}/healthz", timeout=10).json()["status"] == "ok"
    metrics = requests.get(f"{stack.url}/metrics", timeout=10).text
    assert 'mtarep_issues_open{kind="provider",severity="error"}' in metrics
    host = requests.get(f"{stack.url}/api/{data.HOST}", auth=("bob", USERS["bob"]), timeout=10)
    assert host.json()["success"][data.IP]["provblocks"] == "gmail"


def test_the_process_refuses_to_start_without_logins(tmp_path: Path) -> None:
    config = tmp_path / "mtarep.yml"
    config.write_text(
        data.config_yaml(data.config_document(ackservice={"listen": f"127.0.0.1:{free_port()}"}))
    )
    process = MtarepProcess("mtarep-ackservice", config, free_port(), tmp_path)
    assert process.run_to_exit() == 1
    assert "http_auth_file: not set" in process.log()
