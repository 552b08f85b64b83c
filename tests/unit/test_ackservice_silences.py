"""Silences for acknowledged issues, against an in-memory Alertmanager (API v2 semantics).

The real Alertmanager is in tests/integration/test_ackservice.py; here the clock is
ours, so extension and expiry are checked without waiting.
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pytest

from ackservice.service import issue_path
from ackservice.silences import AlertmanagerError, Silencer
from tests.harness import ackservice_data as data
from tests.harness.ackservice_app import SAME_ORIGIN, AckEnv, form_token

pytestmark = pytest.mark.anyio

RBL = data.ISSUE_KEYS["rbl"]
GMAIL = data.ISSUE_KEYS["provider"]


def _time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class FakeAlertmanager:
    """The three calls mtarep makes, with Alertmanager's answers; ``down`` refuses all."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.silences: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.down = False
        self._ids = (f"s{n}" for n in itertools.count(1))

    def state(self, silence: dict[str, Any]) -> str:
        if silence.get("expired") or _time(silence["endsAt"]) <= self.clock():
            return "expired"
        return "active"

    def request(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append((method, path))
        if self.down:
            raise AlertmanagerError(f"{method} {path}: connection refused or unreachable")
        if (method, path) == ("GET", "/api/v2/silences"):
            return [{**s, "status": {"state": self.state(s)}} for s in self.silences.values()]
        if (method, path) == ("POST", "/api/v2/silences"):
            silence_id = body.get("id") or next(self._ids)
            self.silences[silence_id] = {**body, "id": silence_id}
            return {"silenceID": silence_id}
        if method == "DELETE" and path.startswith("/api/v2/silence/"):
            self.silences[path.rsplit("/", 1)[1]]["expired"] = True
            return None
        raise AssertionError(f"unexpected call {method} {path}")

    def active(self) -> list[dict[str, Any]]:
        return [s for s in self.silences.values() if self.state(s) == "active"]


@pytest.fixture
def env(tmp_path: Path) -> AckEnv:
    return AckEnv(
        tmp_path,
        {
            "ackservice": {
                "alertmanager_url": "http://127.0.0.1:9",
                "url": "https://mtarep.example.com",
            }
        },
    )


@pytest.fixture
def alertmanager(env: AckEnv, monkeypatch: pytest.MonkeyPatch) -> FakeAlertmanager:
    fake = FakeAlertmanager(env.clock)
    silencer = env.service.silencer
    assert silencer is not None
    monkeypatch.setattr(silencer, "_request", fake.request)
    return fake


def ack(env: AckEnv, client: Any, key: Any, note: str = "") -> Any:
    token = form_token(client.get(issue_path(key)).text)
    return client.post(
        f"{issue_path(key)}/ack",
        data={"csrf": token, "note": note},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )


def test_an_ack_silences_exactly_its_issue(env: AckEnv, alertmanager: FakeAlertmanager) -> None:
    with env.client("alice") as client:
        env.write_sample()
        assert ack(env, client, RBL, "asked Spamhaus").status_code == 303
        assert ack(env, client, GMAIL).status_code == 303
    by_kind = {s["matchers"][0]["value"]: s for s in alertmanager.active()}
    assert sorted(by_kind) == ["provider", "rbl"]
    rbl = by_kind["rbl"]
    assert rbl["matchers"] == [
        {"name": "kind", "value": "rbl", "isRegex": False, "isEqual": True},
        {"name": "subject", "value": "zen.spamhaus.org", "isRegex": False, "isEqual": True},
        {"name": "ip", "value": "192.0.2.10", "isRegex": False, "isEqual": True},
    ]
    assert by_kind["provider"]["matchers"][2] == {
        "name": "host",
        "value": "mta1.example.com",
        "isRegex": False,
        "isEqual": True,
    }
    assert rbl["createdBy"] == "alice"
    assert rbl["comment"] == (
        "asked Spamhaus | https://mtarep.example.com/issues/192.0.2.10/rbl/zen.spamhaus.org "
        "[mtarep-issue 192.0.2.10:rbl:zen.spamhaus.org]"
    )
    assert _time(rbl["endsAt"]) == pytest.approx(env.clock.now + 24 * 3600, abs=1)


def test_the_page_says_when_alerts_are_silenced(
    env: AckEnv, alertmanager: FakeAlertmanager
) -> None:
    with env.client() as client:
        env.write_sample()
        ack(env, client, RBL)
        page = client.get(issue_path(RBL)).text
    assert (
        "Its alerts are silenced in Alertmanager until <time>2023-11-15 22:14:20 UTC</time>" in page
    )


def test_silences_are_kept_extended_and_expired_with_the_ack(
    env: AckEnv, alertmanager: FakeAlertmanager
) -> None:
    refresher = env.service.refresher
    with env.client() as client:
        env.write_sample()
        ack(env, client, RBL)
        (first,) = alertmanager.active()
        posts = alertmanager.calls.count(("POST", "/api/v2/silences"))

        env.call(refresher.refresh)  # nothing to change
        assert alertmanager.calls.count(("POST", "/api/v2/silences")) == posts

        env.clock.now += 13 * 3600  # less than 12 h left: extended, same silence
        env.call(refresher.refresh)
        (extended,) = alertmanager.active()
        assert extended["id"] == first["id"]
        assert _time(extended["endsAt"]) == pytest.approx(env.clock.now + 24 * 3600, abs=1)

        token = form_token(client.get(issue_path(RBL)).text)
        client.post(f"{issue_path(RBL)}/unack", data={"csrf": token}, headers=SAME_ORIGIN)
        assert alertmanager.active() == []
        assert ("DELETE", f"/api/v2/silence/{first['id']}") in alertmanager.calls


def test_a_cleared_issue_loses_its_silence_at_the_next_pass(
    env: AckEnv, alertmanager: FakeAlertmanager
) -> None:
    with env.client() as client:
        env.write_sample()
        ack(env, client, RBL)
        ack(env, client, GMAIL)
        assert len(alertmanager.active()) == 2
        env.call(env.store.clear_issue, RBL)  # the exporter: delisted; the ack ends with it
        env.call(env.service.refresher.refresh)
    (left,) = alertmanager.active()
    assert "[mtarep-issue 192.0.2.10:provider:gmail]" in left["comment"]


def test_alertmanager_down_costs_no_ack_and_is_retried(
    env: AckEnv, alertmanager: FakeAlertmanager
) -> None:
    with env.client("carol") as client:
        env.write_sample()
        alertmanager.down = True
        assert ack(env, client, RBL, "on it").status_code == 303
        ack_saved = env.call(env.store.ack, RBL)
        assert ack_saved is not None
        assert ack_saved.user == "carol"
        page = client.get(issue_path(RBL)).text
        assert "The Alertmanager silence could not be made" in page
        assert "connection refused or unreachable" in page
        assert "retried every 15 seconds" in page
        assert env.call(env.service.refresher.refresh) is True  # Redis is fine
        assert (
            env.app.state.registry.get_sample_value("mtarep_ackservice_silence_sync_success") == 0
        )

        alertmanager.down = False
        env.call(env.service.refresher.refresh)
        assert (
            env.app.state.registry.get_sample_value("mtarep_ackservice_silence_sync_success") == 1
        )
        (made,) = alertmanager.active()
        assert made["createdBy"] == "carol"
        assert "could not be made" not in client.get(issue_path(RBL)).text


async def test_duplicates_are_expired_and_foreign_silences_left_alone(tmp_path: Path) -> None:
    clock = lambda: data.T0  # noqa: E731
    fake = FakeAlertmanager(clock)
    silencer = Silencer("http://127.0.0.1:9", lambda key: f"https://m/{key.id}", clock=clock)
    silencer._request = fake.request  # type: ignore[method-assign]
    env = AckEnv(tmp_path)
    future = "2099-01-01T00:00:00Z"
    for silence_id, comment in (
        ("a", f"x [mtarep-issue {RBL.id}]"),
        ("b", f"y [mtarep-issue {RBL.id}]"),
        ("human", "maintenance window"),
        ("stale", "z [mtarep-issue 192.0.2.99:rbl:old.example]"),
    ):
        fake.silences[silence_id] = {
            "id": silence_id,
            "matchers": [{"name": "kind", "value": "rbl", "isRegex": False, "isEqual": True}],
            "startsAt": "2020-01-01T00:00:00Z",
            "endsAt": future,
            "createdBy": "someone",
            "comment": comment,
        }
    await data.write_snapshot(env.store, data.sample_snapshot(), env.config)
    await env.store.acknowledge(RBL, "alice", "")
    record = await env.store.issue(RBL)
    assert record is not None
    assert await silencer.sync({RBL.id: record}) is True
    active = {s["id"]: s for s in fake.active()}
    assert "human" in active  # not ours: untouched
    assert "stale" not in active  # ours, its issue is not acknowledged: expired
    ours = [s for s in active.values() if RBL.id in s["comment"]]
    assert len(ours) == 1  # the two with the wrong matchers went, a right one was made
    assert ours[0]["createdBy"] == "alice"
