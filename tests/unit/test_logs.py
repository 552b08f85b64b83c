"""Structured log lines: remote text can never forge a field or a line; secrets redacted."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from exporter.logs import configure_logging, event, field, hide_in_logs, redact_url


def test_plain_values_stay_plain() -> None:
    assert field("zen.spamhaus.org") == "zen.spamhaus.org"
    assert field(1.25) == "1.25"
    assert field(True) == "true"
    assert field("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("hostile", "rendered"),
    [
        ("550 blocked\nfake.event user=root", '"550 blocked\\nfake.event user=root"'),
        ('say "hi" key=value', '"say \\"hi\\" key=value"'),
        ("", '""'),
        ("<script>alert(1)</script>", '"<script>alert(1)</script>"'),
        ("caf\u00e9 \u202e", '"caf\\u00e9 \\u202e"'),
        ("\x1b[31mred", '"\\u001b[31mred"'),
    ],
)
def test_remote_text_is_quoted_on_one_line(hostile: str, rendered: str) -> None:
    assert field(hostile) == rendered
    assert "\n" not in field(hostile)


def test_event_line(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("mtarep.test")
    with caplog.at_level(logging.INFO):
        event(log, "rbl.listed", zone="bl.spamcop.net", reason="Blocked - see\r\nhttp://x")
    assert caplog.messages == [
        'rbl.listed zone=bl.spamcop.net reason="Blocked - see\\r\\nhttp://x"'
    ]


def test_error_log_gets_warnings_only(tmp_path: Path) -> None:
    error_log = tmp_path / "logs" / "mtarep_errors.log"
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        configure_logging("DEBUG", error_log)
        log = logging.getLogger("mtarep.test")
        event(log, "cycle.done", duration_seconds=1.5)
        event(log, "source.failed", logging.WARNING, source="snds", error="HTTP 500")
        for handler in root.handlers:
            handler.flush()
        text = error_log.read_text()
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        root.setLevel(saved[0])
        for handler in saved[1]:
            root.addHandler(handler)
    assert 'source.failed source=snds error="HTTP 500"' in text
    assert "cycle.done" not in text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://user:s3cret@cache.example:6380/2", "rediss://user:***@cache.example:6380/2"),
        ("redis://:s3c:r@et@cache:6379/0", "redis://:***@cache:6379/0"),
        ("unix:///run/redis.sock?db=1&password=s3cret", "unix:///run/redis.sock?db=1&password=***"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("redis://user@cache:6379/0", "redis://user@cache:6379/0"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert "s3c" not in redact_url(url)


def test_a_hidden_secret_never_reaches_a_handler(caplog: pytest.LogCaptureFixture) -> None:
    hide_in_logs("s3cr3t-snds-key")
    library = logging.getLogger("urllib3.connectionpool")
    with caplog.at_level(logging.DEBUG):
        library.debug(
            '%s://%s:%s "%s %s %s" %s',
            "https",
            "h",
            443,
            "GET",
            "/d?key=s3cr3t-snds-key",
            "HTTP/1.1",
            200,
        )
        library.warning("Retrying after %r: %s", "boom", "/snds/data.aspx?key=s3cr3t-snds-key")
        event(logging.getLogger("mtarep.test"), "x.y", url="https://h/d?key=s3cr3t-snds-key")
    assert len(caplog.records) == 3
    assert "s3cr3t-snds-key" not in caplog.text
    assert caplog.text.count("key=***") == 3


def test_a_very_short_secret_is_not_hidden_everywhere() -> None:
    hide_in_logs("ab")  # would turn every "ab" of every line into ***
    record = logging.getLogger("mtarep.test").makeRecord(
        "t", logging.INFO, "f", 1, "about", (), None
    )
    assert record.getMessage() == "about"


def test_a_hidden_secret_is_scrubbed_from_tracebacks_too(caplog: pytest.LogCaptureFixture) -> None:
    hide_in_logs("tr4ceb4ck-secret")
    log = logging.getLogger("mtarep.test")
    with caplog.at_level(logging.ERROR):
        try:
            raise ValueError("GET /data.aspx?key=tr4ceb4ck-secret failed")
        except ValueError:
            log.exception("fetch.failed")
        _log_with_a_secret_in_the_stack(log)
    assert "ValueError: GET /data.aspx?key=*** failed" in caplog.text
    assert "Stack (most recent call last)" in caplog.text
    assert "# where *** leaks into a stack" in caplog.text  # its source line, scrubbed
    assert "tr4ceb4ck-secret" not in caplog.text


def _log_with_a_secret_in_the_stack(log: logging.Logger) -> None:
    log.error("where", stack_info=True)  # where tr4ceb4ck-secret leaks into a stack
