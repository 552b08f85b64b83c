"""Acknowledging through the forms: who/when/note for everyone, CSRF, Redis down, metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from ackservice.service import issue_path
from exporter.store import IssueKey, StoreUnavailable
from tests.harness import ackservice_data as data
from tests.harness.ackservice_app import BASE_URL, SAME_ORIGIN, AckEnv, basic, form_token

pytestmark = pytest.mark.anyio

KEY = data.ISSUE_KEYS["provider"]


@pytest.fixture
def env(tmp_path: Path) -> AckEnv:
    return AckEnv(tmp_path)


def post_ack(
    client: TestClient,
    key: IssueKey,
    fields: dict[str, str],
    headers: dict[str, str] | None = None,
    action: str = "ack",
) -> Any:
    return client.post(
        f"{issue_path(key)}/{action}",
        data=fields,
        headers=SAME_ORIGIN if headers is None else headers,
        follow_redirects=False,
    )


def test_an_ack_is_seen_by_everyone_and_can_be_withdrawn(env: AckEnv) -> None:
    with env.client("alice") as client:
        env.write_sample()
        page = client.get(issue_path(KEY)).text
        assert "Acknowledge" in page
        assert "Acknowledged by" not in page
        env.clock.now = data.T0 + 300
        response = client.post(
            f"{issue_path(KEY)}/ack",
            data={
                "csrf": form_token(page),
                "note": "  opened a ticket with Google\x00 ",
                "next": "/",
            },
            headers=SAME_ORIGIN,
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/"

        ack = env.call(env.store.ack, KEY)
        assert ack is not None
        assert (ack.user, ack.at, ack.note) == (
            "alice",
            data.T0 + 300,
            "opened a ticket with Google",
        )

        # bob sees alice's ack, on the issue page and on the overview.
        bob = basic("bob", "bob pass:with colon")
        seen = client.get(issue_path(KEY), headers=bob).text
        assert (
            "Acknowledged by <strong>alice</strong> at <time>2023-11-14 22:18:20 UTC</time>" in seen
        )
        assert "opened a ticket with Google" in seen
        assert 'value="Acknowledge"' not in seen
        assert ">Acknowledge</button>" not in seen
        assert ">Withdraw</button>" in seen
        assert "ack: alice" in client.get("/", headers=bob).text

        # bob withdraws it.
        withdrawn = client.post(
            f"{issue_path(KEY)}/unack",
            data={"csrf": form_token(seen)},
            headers={**bob, **SAME_ORIGIN},
            follow_redirects=False,
        )
        assert withdrawn.status_code == 303
        assert withdrawn.headers["location"] == issue_path(KEY)
        assert env.call(env.store.ack, KEY) is None
        page = client.get(issue_path(KEY)).text
        assert ">Acknowledge</button>" in page
        assert "acknowledgement withdrawn" in page
        events = env.call(env.store.events, 10, KEY)
        assert [(e.type, e.user) for e in events[:2]] == [("unack", "bob"), ("ack", "alice")]


def test_the_next_field_only_goes_to_this_site(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        token = form_token(client.get(issue_path(KEY)).text)
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            response = post_ack(client, KEY, {"csrf": token, "next": target})
            assert response.headers["location"] == issue_path(KEY), target


@pytest.mark.parametrize(
    ("fields", "headers", "why"),
    [
        ({}, SAME_ORIGIN, "form token is missing or wrong"),
        ({"csrf": "0" * 64}, SAME_ORIGIN, "form token is missing or wrong"),
        ({"csrf": "\u00e9t\u00e9"}, SAME_ORIGIN, "form token is missing or wrong"),
        ({"csrf": "TOKEN"}, {"Origin": "https://evil.example"}, "Origin is not this site"),
        ({"csrf": "TOKEN"}, {"Origin": "null"}, "opaque origin"),
        ({"csrf": "TOKEN"}, {"Referer": "https://evil.example/page"}, "Referer is not this site"),
        ({"csrf": "TOKEN"}, {}, "neither an Origin nor a Referer"),
        ({"csrf": "TOKEN"}, {"Origin": "http://ackservice.test.evil.example"}, "Origin is not"),
    ],
    ids=[
        "no-token",
        "wrong-token",
        "non-ascii-token",
        "cross-origin",
        "null-origin",
        "cross-referer",
        "no-origin",
        "lookalike",
    ],
)
def test_cross_site_and_tokenless_posts_change_nothing(
    env: AckEnv, fields: dict[str, str], headers: dict[str, str], why: str
) -> None:
    with env.client() as client:
        env.write_sample()
        token = form_token(client.get(issue_path(KEY)).text)
        sent = {name: token if value == "TOKEN" else value for name, value in fields.items()}
        for action in ("ack", "unack"):
            response = post_ack(client, KEY, {**sent, "note": "x"}, headers, action)
            assert response.status_code == 403, action
            assert why in response.text
        assert env.call(env.store.ack, KEY) is None
        assert [e.type for e in env.call(env.store.events, 10, KEY)] == ["block_seen"]


def test_a_token_is_the_users_own(env: AckEnv) -> None:
    with env.client("alice") as client:
        env.write_sample()
        alices = form_token(client.get(issue_path(KEY)).text)
        bob = basic("bob", "bob pass:with colon")
        response = post_ack(client, KEY, {"csrf": alices}, {**bob, **SAME_ORIGIN})
        assert response.status_code == 403
        assert env.call(env.store.ack, KEY) is None


def test_a_same_site_referer_is_enough_without_origin(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        token = form_token(client.get(issue_path(KEY)).text)
        response = post_ack(client, KEY, {"csrf": token}, {"Referer": f"{BASE_URL}/"})
        assert response.status_code == 303


def test_the_configured_public_url_is_this_site_too(tmp_path: Path) -> None:
    env = AckEnv(tmp_path, {"ackservice": {"url": "https://mtarep.example.com/"}})
    with env.client() as client:
        env.write_sample()
        token = form_token(client.get(issue_path(KEY)).text)
        response = post_ack(client, KEY, {"csrf": token}, {"Origin": "https://mtarep.example.com"})
        assert response.status_code == 303


def test_tokens_from_another_replica_are_accepted(env: AckEnv, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    other = AckEnv(tmp_path / "other", server=env.server)
    with env.client() as client:
        env.write_sample()
        token = form_token(client.get(issue_path(KEY)).text)
    with other.client() as client:
        assert post_ack(client, KEY, {"csrf": token}).status_code == 303


def test_redis_down_refuses_the_ack_visibly_and_writes_nothing(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        token = form_token(client.get(issue_path(KEY)).text)
        env.server.connected = False
        response = post_ack(client, KEY, {"csrf": token, "note": "my careful note"})
        withdraw = post_ack(client, KEY, {"csrf": token}, action="unack")
        env.server.connected = True
        assert response.status_code == 503
        text = response.text
        assert "Your acknowledgement was NOT saved" in text
        assert "Redis unavailable (redis://fake)" in text
        assert "my careful note" in text  # shown back, not lost
        assert withdraw.status_code == 503
        assert "NOT withdrawn" in withdraw.text
        assert env.call(env.store.ack, KEY) is None
        assert [e.type for e in env.call(env.store.events, 10, KEY)] == ["block_seen"]


def test_an_ack_saved_then_unreadable_says_it_was_saved(
    env: AckEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    with env.client() as client:
        env.write_sample()
        token = form_token(client.get(issue_path(KEY)).text)

        async def gone(key: IssueKey) -> None:
            raise StoreUnavailable("Redis unavailable (redis://fake): Connection reset")

        monkeypatch.setattr(env.store, "issue", gone)
        response = post_ack(client, KEY, {"csrf": token, "note": "on it"})
        assert response.status_code == 503
        assert "Your acknowledgement was saved" in response.text
        assert "NOT saved" not in response.text
        monkeypatch.undo()
        ack = env.call(env.store.ack, KEY)
        assert ack is not None
        assert ack.note == "on it"


def test_redis_down_before_the_secret_is_known_refuses_too(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        env.server.connected = False
        response = post_ack(client, KEY, {"csrf": "0" * 64, "note": "n"})
        env.server.connected = True
    assert response.status_code == 503
    assert "nothing was saved" in response.text


def test_acknowledging_an_issue_that_is_not_open(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        token = form_token(client.get(issue_path(KEY)).text)
        env.call(env.store.clear_issue, KEY)
        response = post_ack(client, KEY, {"csrf": token})
        assert response.status_code == 404
        assert "not open any more" in response.text
        assert env.call(env.store.ack, KEY) is None


def test_bad_forms_are_refused(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        token = form_token(client.get(issue_path(KEY)).text)
        long_note = post_ack(client, KEY, {"csrf": token, "note": "x" * 1001})
        assert long_note.status_code == 400
        assert "at most 1000 characters" in long_note.text
        as_json = client.post(f"{issue_path(KEY)}/ack", json={"csrf": token}, headers=SAME_ORIGIN)
        assert as_json.status_code == 415
        huge = client.post(
            f"{issue_path(KEY)}/ack",
            content=b"note=" + b"x" * 70_000,
            headers={**SAME_ORIGIN, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert huge.status_code == 413
        assert env.call(env.store.ack, KEY) is None


def test_metrics_follow_acks(env: AckEnv) -> None:
    registry = env.app.state.registry
    labels = {"host": data.HOST, "ip": data.IP, "kind": "provider", "subject": "gmail"}
    with env.client() as client:
        env.call(env.service.refresher.refresh)
        assert (
            registry.get_sample_value("mtarep_issues_open", {"kind": "rbl", "severity": "error"})
            == 0
        )
        env.write_sample()
        token = form_token(client.get(issue_path(KEY)).text)
        assert post_ack(client, KEY, {"csrf": token}).status_code == 303
        assert env.call(env.service.refresher.refresh) is True
        text = client.get("/metrics").text
        assert registry.get_sample_value("mtarep_issue_acknowledged", labels) == 1
        assert (
            'mtarep_issue_acknowledged{host="mta1.example.com",ip="192.0.2.10",'
            'kind="provider",subject="gmail"} 1.0'
        ) in text
        open_counts = {
            (kind, severity): registry.get_sample_value(
                "mtarep_issues_open", {"kind": kind, "severity": severity}
            )
            for kind in ("rbl", "provider", "snds", "senderscore", "reputation", "dns")
            for severity in ("warning", "error")
        }
        assert open_counts == {
            ("rbl", "warning"): 0,
            ("rbl", "error"): 1,
            ("provider", "warning"): 0,
            ("provider", "error"): 1,
            ("snds", "warning"): 2,
            ("snds", "error"): 1,
            ("senderscore", "warning"): 1,
            ("senderscore", "error"): 0,
            ("reputation", "warning"): 0,
            ("reputation", "error"): 1,
            ("dns", "warning"): 0,
            ("dns", "error"): 1,
        }
        assert registry.get_sample_value("mtarep_ackservice_refresh_success") == 1

        assert post_ack(client, KEY, {"csrf": token}, action="unack").status_code == 303
        env.call(env.service.refresher.refresh)
        assert registry.get_sample_value("mtarep_issue_acknowledged", labels) is None

        env.server.connected = False
        assert env.call(env.service.refresher.refresh) is False
        env.server.connected = True
        assert registry.get_sample_value("mtarep_ackservice_refresh_success") == 0
        # The last good snapshot is still served.
        assert (
            registry.get_sample_value("mtarep_issues_open", {"kind": "rbl", "severity": "error"})
            == 1
        )


def test_metrics_are_absent_until_known_and_a_scrape_needs_no_redis(env: AckEnv) -> None:
    registry = env.app.state.registry
    assert (
        registry.get_sample_value("mtarep_issues_open", {"kind": "rbl", "severity": "error"})
        is None
    )
    assert registry.get_sample_value("mtarep_ackservice_refresh_success") == 0
    with env.client() as client:
        env.call(env.service.refresher.refresh)
        env.server.connected = False
        scrape = client.get("/metrics")  # from memory: Redis is not asked
        env.server.connected = True
    assert scrape.status_code == 200
    assert 'mtarep_issues_open{kind="rbl",severity="error"} 0.0' in scrape.text
