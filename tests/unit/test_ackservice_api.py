"""The JSON API: the old tool's fields and conventions, 404s, acks, and its OpenAPI document.

Every answer checked here is also validated against the schema the OpenAPI document
gives for that route and status, so the document and the API cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec
from starlette.routing import Mount, Route

from ackservice.openapi import document
from ackservice.service import issue_path
from tests.harness import ackservice_data as data
from tests.harness.ackservice_app import SAME_ORIGIN, AckEnv

pytestmark = pytest.mark.anyio

KEY = data.ISSUE_KEYS["rbl"]
ACK_PATH = "/api" + issue_path(KEY) + "/ack"
DOC = document()


@pytest.fixture
def env(tmp_path: Path) -> AckEnv:
    return AckEnv(tmp_path)


def conforms(route: str, method: str, response: Any) -> Any:
    """``response``'s JSON, after checking it against the document's schema for it."""
    operation = DOC["paths"][route][method]
    described = operation["responses"][str(response.status_code)]
    schema = described["content"]["application/json"]["schema"]
    body = response.json()
    OAS31Validator({**schema, "components": DOC["components"]}).validate(body)
    return body


def test_the_document_is_valid_openapi_and_describes_every_api_route(env: AckEnv) -> None:
    validate_spec(document())
    served: set[tuple[str, str]] = set()
    for route in env.app.routes:
        if isinstance(route, Route) and route.path.startswith("/api"):
            methods = (route.methods or set()) - {"HEAD"}
            served |= {(route.path, method.lower()) for method in methods}
        assert not (isinstance(route, Mount) and route.path.startswith("/api"))
    described = {
        (path, method)
        for path, item in DOC["paths"].items()
        for method in item
        if method in ("get", "post", "delete", "put", "patch")
    }
    assert served == described
    with env.client() as client:
        assert client.get("/api/openapi.json").json() == DOC


def test_one_host_keeps_the_old_fields_and_conventions(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        body = conforms("/api/{fqdn}", "get", client.get(f"/api/{data.HOST}"))["success"]
        other = conforms("/api/{fqdn}", "get", client.get(f"/api/{data.HOST2.upper()}."))["success"]
    old = (
        "hostname",
        "dns",
        "senderscore",
        "sndscolor",
        "sndstraps",
        "brightmail",
        "provblocks",
        "listings",
    )
    assert {ip: {f: v[f] for f in old} for ip, v in body.items()} == {
        data.IP: {
            "hostname": data.HOST,
            "dns": False,
            "senderscore": 62,
            "sndscolor": "red",
            "sndstraps": 12,
            "brightmail": "bad",
            "provblocks": "gmail",
            "listings": "zen.spamhaus.org",
        },
        data.IP6: {
            "hostname": data.HOST,
            "dns": None,  # no trustworthy answer: not true, not false
            "senderscore": "no score",
            "sndscolor": "no data",
            "sndstraps": "no data",
            "brightmail": "unknown",
            "provblocks": "no blocks",
            "listings": "unknown",
        },
    }
    assert {f: other[data.IP2][f] for f in old} == {
        "hostname": data.HOST2,
        "dns": True,
        "senderscore": 95,
        "sndscolor": "green",
        "sndstraps": 0,
        "brightmail": "good",
        "provblocks": "unknown",  # the log could not be read
        "listings": "unlisted",
    }
    troubled = body[data.IP]
    assert troubled["status"] == "error"
    assert troubled["alias"] == "mta1"
    assert troubled["state"]["rbl"]["zen.spamhaus.org"]["reason"] == data.TXT_REASON
    assert sorted(issue["kind"] + "/" + issue["subject"] for issue in troubled["issues"]) == sorted(
        f"{key.kind}/{key.subject}" for key in data.ISSUE_KEYS.values()
    )
    gmail = next(issue for issue in troubled["issues"] if issue["kind"] == "provider")
    assert gmail["detail"]["line"] == data.REJECTION
    assert gmail["url"] == "/issues/192.0.2.10/provider/gmail"
    assert gmail["ack"] is None


def test_a_host_with_nothing_known_yet(tmp_path: Path) -> None:
    env = AckEnv(tmp_path, {"reputation": []})
    with env.client() as client:
        env.call(
            env.store.save_host_results,
            data.HOST2,
            {
                "alias": "mta2",
                "ips": {data.IP2: {"host": data.HOST2, "ip": data.IP2, "ssh_host": "mta2"}},
                "maillog": None,
            },
        )
        fields = conforms("/api/{fqdn}", "get", client.get(f"/api/{data.HOST2}"))["success"]
    assert {
        f: v
        for f, v in fields[data.IP2].items()
        if f
        in ("dns", "senderscore", "sndscolor", "sndstraps", "brightmail", "provblocks", "listings")
    } == {
        "dns": None,  # no check has answered
        "senderscore": "no score",
        "sndscolor": "no data",
        "sndstraps": "no data",
        "brightmail": "no data",  # no reputation source configured
        "provblocks": "no data",  # the host's log is not read
        "listings": "unknown",  # no zone has answered yet
    }


def test_unknown_host_is_a_404_with_an_error(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        response = client.get("/api/nope.example.com")
    assert response.status_code == 404
    assert conforms("/api/{fqdn}", "get", response) == {
        "error": "unknown host 'nope.example.com': mtarep has no results for it"
    }


def test_all_hosts_and_open_issues(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        everything = conforms("/api/all", "get", client.get("/api/all"))["success"]
        issues = conforms("/api/issues", "get", client.get("/api/issues"))["success"]
    assert sorted(everything) == [data.HOST, data.HOST2]
    assert sorted(everything[data.HOST]) == [data.IP, data.IP6]
    assert sorted(issue["id"] for issue in issues) == sorted(k.id for k in data.ISSUE_KEYS.values())
    severities = {issue["kind"] + "/" + issue["subject"]: issue["severity"] for issue in issues}
    assert severities["rbl/zen.spamhaus.org"] == "error"
    assert severities["senderscore/senderscore"] == "warning"


def test_ack_and_withdraw_through_the_api(env: AckEnv) -> None:
    with env.client("bob") as client:
        env.write_sample()
        acked = client.post(ACK_PATH, json={"note": "delisting requested"})  # like curl: no Origin
        body = conforms("/api/issues/{ip}/{kind}/{subject}/ack", "post", acked)["success"]
        assert acked.status_code == 200
        assert body["ack"] == {"user": "bob", "at": env.clock.now, "note": "delisting requested"}
        listed = client.get("/api/issues").json()["success"]
        assert next(i for i in listed if i["id"] == KEY.id)["ack"]["user"] == "bob"

        empty = client.post(ACK_PATH, content=b"", headers={"Content-Type": "application/json"})
        assert empty.status_code == 200
        assert empty.json()["success"]["ack"]["note"] == ""

        withdrawn = client.request("DELETE", ACK_PATH, json={}, headers=SAME_ORIGIN)
        assert conforms("/api/issues/{ip}/{kind}/{subject}/ack", "delete", withdrawn) == {
            "success": {"id": KEY.id, "withdrawn": True}
        }
        again = client.request("DELETE", ACK_PATH, json={})
        assert again.json() == {"success": {"id": KEY.id, "withdrawn": False}}
        assert env.call(env.store.ack, KEY) is None


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"data": {"note": "x"}}, 415, "Content-Type: application/json"),
        (
            {"content": b"note=x", "headers": {"Content-Type": "text/plain"}},
            415,
            "application/json",
        ),
        ({"json": {"note": "x"}, "headers": {"Origin": "https://evil.example"}}, 403, "cross-site"),
        (
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "not valid JSON",
        ),
        ({"json": ["note"]}, 400, "must be a JSON object"),
        ({"json": {"note": 5}}, 400, "the note must be text"),
        ({"json": {"note": "x" * 1001}}, 400, "at most 1000"),
    ],
    ids=["form", "text", "cross-origin", "bad-json", "array", "note-type", "long-note"],
)
def test_refused_api_acks_change_nothing(
    env: AckEnv, kwargs: dict[str, Any], status: int, message: str
) -> None:
    with env.client() as client:
        env.write_sample()
        response = client.post(ACK_PATH, **kwargs)
    assert response.status_code == status
    assert message in conforms("/api/issues/{ip}/{kind}/{subject}/ack", "post", response)["error"]
    with env.client() as client:
        assert env.call(env.store.ack, KEY) is None


def test_api_ack_of_an_issue_that_is_not_open_is_a_404(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        missing = client.post("/api/issues/192.0.2.99/rbl/zen.spamhaus.org/ack", json={})
        bad_kind = client.post("/api/issues/192.0.2.10/nokind/x/ack", json={})
    assert missing.status_code == 404
    assert (
        "is not open" in conforms("/api/issues/{ip}/{kind}/{subject}/ack", "post", missing)["error"]
    )
    assert bad_kind.status_code == 404


def test_api_ack_with_redis_down_is_a_503_and_nothing_written(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        env.server.connected = False
        response = client.post(ACK_PATH, json={"note": "n"})
        reads = [client.get(path) for path in ("/api/all", "/api/issues", f"/api/{data.HOST}")]
        env.server.connected = True
        assert response.status_code == 503
        error = conforms("/api/issues/{ip}/{kind}/{subject}/ack", "post", response)["error"]
        assert error.startswith("the acknowledgement was NOT saved: Redis unavailable")
        assert [r.status_code for r in reads] == [503, 503, 503]
        assert env.call(env.store.ack, KEY) is None
        assert [e.type for e in env.call(env.store.events, 10, KEY)] == ["listed"]
