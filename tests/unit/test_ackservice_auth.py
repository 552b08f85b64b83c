"""Logins: htpasswd ({SHA} and bcrypt), 401s, a file that changes, bad lines, anonymous."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import bcrypt
import pytest

from ackservice.app import AuthNotConfigured, create_app
from ackservice.auth import REALM, PasswordFile, PasswordFileError, credentials_from_header
from ackservice.cli import main as ackservice_main
from ackservice.service import issue_path
from tests.harness import ackservice_data as data
from tests.harness.ackservice_app import (
    PASSWORDS,
    AckEnv,
    basic,
    bcrypt_line,
    form_token,
    sha_line,
    write_htpasswd,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def env(tmp_path: Path) -> AckEnv:
    return AckEnv(tmp_path)


def test_every_hash_format_logs_in(env: AckEnv) -> None:
    with env.client(None) as client:
        for user in ("alice", "bob", "carol"):  # $2b$, {SHA} (password has a colon), $2y$
            response = client.get("/", headers=basic(user, PASSWORDS[user]))
            assert response.status_code == 200, user
            assert f"signed in as <strong>{user}</strong>" in response.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("alice", "wrong"),
        basic("bob", "wrong"),
        basic("mallory", "alice-secret-1"),
        basic("alice", ""),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic " + "YWxpY2U="},  # "alice" without a colon
    ],
    ids=[
        "none",
        "wrong-bcrypt",
        "wrong-sha",
        "unknown-user",
        "empty",
        "garbage",
        "bearer",
        "nocolon",
    ],
)
def test_no_valid_login_is_a_401_asking_for_basic(env: AckEnv, headers: dict[str, str]) -> None:
    with env.client(None) as client:
        for path in ("/", "/api/all", "/help", "/issues/192.0.2.10/rbl/zen.spamhaus.org"):
            response = client.get(path, headers=headers)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == REALM
            assert REALM == 'Basic realm="mtarep", charset="UTF-8"'
            assert "alice-secret-1" not in response.text


def test_healthz_metrics_and_static_need_no_login(env: AckEnv) -> None:
    with env.client(None) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/static/mtarep.css").status_code == 200
        assert client.get("/static/../api/all").status_code != 200


def test_the_password_is_never_logged(env: AckEnv, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with env.client(None) as client:
        client.get("/", headers=basic("alice", "hunter2-guess"))
        client.get("/", headers=basic("alice", PASSWORDS["alice"]))
    assert "auth.failed user=alice" in caplog.text
    for secret in ("hunter2-guess", PASSWORDS["alice"], "$2b$", "{SHA}"):
        assert secret not in caplog.text


async def test_unknown_users_cost_a_bcrypt_check_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_htpasswd(tmp_path / "htpasswd", [bcrypt_line("alice", "pw")])
    passwords = PasswordFile(path)
    checked: list[bytes] = []
    real = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    assert await passwords.verify("nobody", "pw") is False
    assert len(checked) == 1  # against the dummy hash
    assert checked[0][:7] == b"$2b$04$"  # as costly as the file's own hashes
    assert await passwords.verify("alice", "pw") is True
    assert await passwords.verify("alice", "pw") is True
    assert len(checked) == 2  # the second success came from the process's memory
    assert await passwords.verify("alice", "nope") is False
    assert len(checked) == 3


async def test_a_sha_user_beside_bcrypt_users_costs_a_bcrypt_check_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else a quick refusal would tell an attacker that the user exists (with a {SHA} line)."""
    path = write_htpasswd(
        tmp_path / "htpasswd", [bcrypt_line("alice", "pw"), sha_line("bob", "pw")]
    )
    passwords = PasswordFile(path)
    checked: list[bytes] = []
    real = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    assert await passwords.verify("bob", "wrong") is False
    assert await passwords.verify("bob", "pw") is True
    assert len(checked) == 2


async def test_a_sha_only_file_needs_no_bcrypt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passwords = PasswordFile(write_htpasswd(tmp_path / "htpasswd", [sha_line("bob", "pw")]))

    def no_bcrypt(password: bytes, hashed: bytes) -> bool:
        raise AssertionError("bcrypt was called")

    monkeypatch.setattr(bcrypt, "checkpw", no_bcrypt)
    assert await passwords.verify("bob", "pw") is True
    assert await passwords.verify("nobody", "pw") is False


def test_the_file_is_read_again_when_it_changes(env: AckEnv) -> None:
    with env.client(None) as client:
        assert client.get("/", headers=basic("dave", "new")).status_code == 401
        lines = env.htpasswd.read_text().splitlines()
        write_htpasswd(env.htpasswd, [*lines, sha_line("dave", "new")])
        assert client.get("/", headers=basic("dave", "new")).status_code == 200

        # Same size, same second: only mtime_ns (or the inode) tells.
        stat = env.htpasswd.stat()
        write_htpasswd(env.htpasswd, [*lines, sha_line("dave", "wen")])
        os.utime(env.htpasswd, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
        assert env.htpasswd.stat().st_size == stat.st_size
        assert client.get("/", headers=basic("dave", "new")).status_code == 401
        assert client.get("/", headers=basic("dave", "wen")).status_code == 200

        # Replaced by another file (a new inode), alice gone: her remembered login too.
        replacement = env.tmp_path / "htpasswd.new"
        write_htpasswd(replacement, [sha_line("bob", PASSWORDS["bob"])])
        replacement.replace(env.htpasswd)
        assert client.get("/", headers=basic("alice", PASSWORDS["alice"])).status_code == 401
        assert client.get("/", headers=basic("bob", PASSWORDS["bob"])).status_code == 200


def test_a_file_that_cannot_be_read_lets_nobody_in_until_it_can(
    env: AckEnv, caplog: pytest.LogCaptureFixture
) -> None:
    with env.client(None) as client:
        saved = env.htpasswd.read_text()
        env.htpasswd.unlink()
        assert client.get("/", headers=basic("bob", PASSWORDS["bob"])).status_code == 401
        assert "auth_file.unreadable" in caplog.text
        env.htpasswd.write_text(saved)
        assert client.get("/", headers=basic("bob", PASSWORDS["bob"])).status_code == 200


def test_bad_lines_are_reported_with_their_number_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    lines = [
        "# a comment",
        "",
        "nocolon",
        "md5:$apr1$salt$0123456789abcdefghijkl",
        "badsha:{SHA}not*base64",
        "shortsha:{SHA}c2hvcnQ=",
        "brokenbcrypt:$2y$05$tooshort",
        "plain:secret-in-clear",
        "ctrl\x1buser:" + sha_line("x", "pw").split(":", 1)[1],
        sha_line("bob", "pw"),
        sha_line("bob", "other"),
    ]
    passwords = PasswordFile(write_htpasswd(tmp_path / "htpasswd", lines))

    assert passwords.users == {"bob"}
    skipped = [r.getMessage() for r in caplog.records if "auth_file.line_skipped" in r.getMessage()]
    assert [message.split(" line=")[1].split(" ")[0] for message in skipped] == [
        "3",
        "4",
        "5",
        "6",
        "7",
        "8",
        "9",
        "11",
    ]
    assert "unsupported hash" in skipped[1]
    assert "the first line counts" in skipped[-1]
    for secret in ("$apr1$salt", "not*base64", "secret-in-clear", "tooshort"):
        assert secret not in caplog.text


def test_an_unreadable_file_at_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PasswordFileError, match="cannot read"):
        PasswordFile(tmp_path / "missing")


def test_credentials_keep_colons_in_the_password() -> None:
    header = basic("bob", "a:b:c")["Authorization"]
    assert credentials_from_header(header) == ("bob", "a:b:c")
    assert credentials_from_header("Basic " + "w6k=") is None  # not UTF-8


# -- without logins ------------------------------------------------------------------


def test_anonymous_only_when_configured_and_then_said_on_every_page(tmp_path: Path) -> None:
    env = AckEnv(tmp_path, {"http_auth_file": None, "ackservice": {"anonymous": True}})
    with env.client(None) as client:
        env.write_sample()
        page = client.get("/")
        assert page.status_code == 200
        assert "Logins are off" in page.text
        assert "ackservice.anonymous: true" in page.text
        assert "Logins are off" in client.get("/help").text
        key = data.ISSUE_KEYS["rbl"]
        token = form_token(client.get(issue_path(key)).text)
        response = client.post(
            f"/issues/{key.ip}/rbl/{key.subject}/ack",
            data={"csrf": token, "note": "n"},
            headers={"Origin": "http://ackservice.test"},
            follow_redirects=False,
        )
        assert response.status_code == 303
        ack = env.call(env.store.ack, key)
        assert ack is not None
        assert ack.user == "anonymous"


def test_no_auth_file_and_no_anonymous_refuses_to_build(tmp_path: Path) -> None:
    config = data.make_config(tmp_path, ackservice={})
    with pytest.raises(AuthNotConfigured, match="http_auth_file"):
        create_app(AckEnv(tmp_path).store, config)


def test_the_command_refuses_to_start_without_logins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "mtarep.yml"
    config.write_text(data.config_yaml(data.config_document(ackservice={})))
    assert ackservice_main(["--config", str(config)]) == 1
    error = capsys.readouterr().err
    assert "http_auth_file: not set" in error
    assert "ackservice.anonymous: true" in error

    config.write_text(
        data.config_yaml(data.config_document(ackservice={}, http_auth_file="nowhere/htpasswd"))
    )
    assert ackservice_main(["--config", str(config)]) == 1
    error = capsys.readouterr().err
    assert f"http_auth_file: cannot read {tmp_path / 'nowhere' / 'htpasswd'}" in error
