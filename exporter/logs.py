"""Structured logging: an event name followed by ``key=value`` fields.

``event(log, "cycle.done", source="dns", duration_seconds=1.25)`` writes
``cycle.done source=dns duration_seconds=1.25``. Values that are not plain
words are JSON-quoted, so text a remote party wrote (an SMTP reply, a TXT
record) can never forge a field or a line of its own.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_PLAIN = re.compile(r"^[A-Za-z0-9_.:/@+-]+$")
FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_REDACTED = "***"


def field(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else str(value)
    return text if _PLAIN.match(text) else json.dumps(text, ensure_ascii=True)


def event(log: logging.Logger, name: str, level: int = logging.INFO, **fields: object) -> None:
    if log.isEnabledFor(level):
        parts = [name, *(f"{key}={field(value)}" for key, value in fields.items())]
        log.log(level, " ".join(parts))


_SECRETS: set[str] = set()
_TRACEBACKS = logging.Formatter()


def _scrub(text: str) -> str:
    for known in _SECRETS:
        text = text.replace(known, _REDACTED)
    return text


def _scrubbing(make_record: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def scrubbed(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        message = record.getMessage()
        if any(known in message for known in _SECRETS):
            record.msg, record.args = _scrub(message), None
        if record.exc_info and not record.exc_text:  # a traceback: made now, scrubbed
            record.exc_text = _scrub(_TRACEBACKS.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = _scrub(record.stack_info)
        return record

    scrubbed.mtarep_scrubbing = True  # type: ignore[attr-defined]
    return scrubbed


def hide_in_logs(secret: str) -> None:
    """Replace ``secret`` by ``***`` in every log record from now on, whoever logs it.

    Libraries log what they were given: urllib3 writes request URLs (with an SNDS
    ``?key=``) into its debug lines and retry warnings. A record factory scrubs the
    formatted message, the traceback and the stack of every record as it is made, so
    no handler (a capture in a test included) ever sees the secret.
    """
    if len(secret) < 4:  # too short to hide without mangling every line
        return
    _SECRETS.add(secret)
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "mtarep_scrubbing", False):
        logging.setLogRecordFactory(_scrubbing(factory))


def configure_logging(level: str = "INFO", error_log: Path | None = None) -> None:
    """Log to stderr; with the old ``error_log`` key, warnings and errors go there too."""
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(stderr)
    if error_log is not None:
        error_log.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(error_log, encoding="utf-8")
        to_file.setLevel(logging.WARNING)
        to_file.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(to_file)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (userinfo and ``password=`` query).

    Works on the text, not a URL parser, so a password that is not percent-encoded
    (``/``, ``#``, ``@`` in it) is still hidden: everything up to the last ``@`` is
    user information.

    >>> redact_url("redis://:hunter2@cache:6379/0")
    'redis://:***@cache:6379/0'
    """
    scheme, separator, rest = url.partition("://")
    if separator:
        userinfo, at, location = rest.rpartition("@")
        if at and ":" in userinfo:
            rest = f"{userinfo.partition(':')[0]}:{_REDACTED}@{location}"
        url = f"{scheme}://{rest}"
    return re.sub(r"(?i)([?&][^=&#]*password[^=&#]*=)[^&#]*", rf"\1{_REDACTED}", url)
