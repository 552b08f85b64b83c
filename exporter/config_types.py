"""Value types of mtarep.yml: durations, sizes, DNS names, URLs, regexes, listen addresses.

Each type is an ``Annotated`` pydantic type whose validator raises a
``PydanticCustomError`` with a message written for the person editing the file,
so ``config.py`` can print ``rbls[2].zone: expected a DNS name, got 'x y'``.
"""

from __future__ import annotations

import ipaddress
import math
import re
import string
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, PlainValidator, ValidationInfo
from pydantic_core import PydanticCustomError

from exporter.logs import redact_url

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
MAX_DURATION = 30 * 86400.0
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


def _fail(kind: str, message: str, **context: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, message, context)


def _shown(value: object) -> str:
    """A value as the error message shows it: short, quoted, one line, no credentials."""
    if isinstance(value, str) and "@" in value:
        value = redact_url(value) if "://" in value else "(a value containing '@', not shown)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip().lower().replace(" ", "")
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def parse_duration(value: object) -> float:
    """``15m``, ``2h``, ``1h30m``, ``500ms``, ``30s``, ``1d`` or a number of seconds."""
    seconds = _seconds(value)
    if seconds is None or not math.isfinite(seconds):
        raise _fail(
            "duration", "expected a duration like 30s, 15m or 2h, got {got}", got=_shown(value)
        )
    if seconds <= 0:
        raise _fail("duration", "must be longer than zero, got {got}", got=_shown(value))
    if seconds > MAX_DURATION:
        raise _fail("duration", "must be at most 30 days, got {got}", got=_shown(value))
    return seconds


def format_duration(seconds: float) -> str:
    """900 -> ``15m``, 5400 -> ``1h30m``, 2.5 -> ``2.5s``."""
    if seconds < 60 or seconds != int(seconds):
        return f"{seconds:g}s"
    parts = []
    remaining = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if remaining >= size:
            parts.append(f"{remaining // size}{unit}")
            remaining %= size
    return "".join(parts)


def duration_between(low: float, high: float = MAX_DURATION) -> AfterValidator:
    """A bound on a duration, stated in durations (``must be between 10s and 30d``)."""

    def check(seconds: float) -> float:
        if not low <= seconds <= high:
            raise _fail(
                "duration",
                "must be between {low} and {high}, got {got}",
                low=format_duration(low),
                high=format_duration(high),
                got=format_duration(seconds),
            )
        return seconds

    return AfterValidator(check)


def parse_size(value: object) -> int:
    """``50MB`` (10^6), ``512KiB`` (2^10), ``1GB`` or a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        number, unit = match.groups()
        size = int(float(number) * _SIZE_UNITS[(unit or "b").lower()])
    else:
        raise _fail(
            "size", "expected a size like 50MB, 512KiB or 1GB, got {got}", got=_shown(value)
        )
    if size <= 0:
        raise _fail("size", "must be larger than zero, got {got}", got=_shown(value))
    return size


def _labels_ok(name: str) -> bool:
    labels = name.split(".")
    return len(name) <= 253 and all(_LABEL.match(label) for label in labels)


def dns_name_key(value: str) -> str:
    """How two spellings of one DNS name compare equal: ``MTA1.Example.com.`` is
    ``mta1.example.com``."""
    return value.strip().lower().rstrip(".")


def check_dns_name(value: str) -> str:
    """A fully qualified name with at least two labels (a zone or a public FQDN)."""
    name = dns_name_key(value)
    if "." not in name or not _labels_ok(name):
        raise _fail(
            "dns_name", "expected a DNS name like mta1.example.com, got {got}", got=_shown(value)
        )
    return name


def check_hostname(value: str) -> str:
    """A host to connect to: an IP address, or a name (an SSH alias may be one label)."""
    name = value.strip()
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    lowered = dns_name_key(name)
    if not lowered or not _labels_ok(lowered):
        raise _fail("hostname", "expected a host name or IP address, got {got}", got=_shown(value))
    return lowered


def check_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise _fail("ip", "expected an IP address, got {got}", got=_shown(value)) from None


def check_name(value: str) -> str:
    """A short identifier used as a metric label value (provider, source, prefix)."""
    if not _NAME.match(value):
        raise _fail(
            "name",
            "expected a short name of lowercase letters, digits, '.', '_' or '-', got {got}",
            got=_shown(value),
        )
    return value


def check_url(value: str) -> str:
    """An http(s) URL; ``{ip}`` is the only placeholder, filled in with the IP concerned."""
    url = value.strip()
    match = re.match(r"^https?://([^/?#\s]+)", url, re.IGNORECASE)
    if not match or any(c.isspace() for c in url):
        raise _fail("url", "expected an http:// or https:// URL, got {got}", got=_shown(value))
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(url) if name is not None}
    except ValueError:
        raise _fail(
            "url", "unbalanced {brace} in URL {got}", brace="'{' or '}'", got=_shown(value)
        ) from None
    unknown = sorted(fields - {"ip"})
    if unknown:
        raise _fail(
            "url",
            "unknown placeholder {placeholder} in URL: only {ip} is filled in",
            placeholder="{" + unknown[0] + "}",
            ip="{ip}",
        )
    return url


def check_redis_url(value: str) -> str:
    """``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` or ``unix:///path``.

    Never echoes the URL: it may hold a password.
    """
    url = value.strip()
    scheme, _, rest = url.partition("://")
    if scheme not in ("redis", "rediss", "unix") or not rest or any(c.isspace() for c in url):
        raise _fail(
            "redis_url",
            "expected a redis://, rediss:// or unix:// URL, like redis://localhost:6379/0",
        )
    _, at, location = rest.rpartition("@")
    if at and any(c in rest[: len(rest) - len(location) - 1] for c in "/?#"):
        raise _fail(
            "redis_url",
            "a '/', '?' or '#' in the user or password must be percent-encoded (%2F, %3F, %23)",
        )
    try:
        parts = urlsplit(f"{scheme}://{location}")
        port = parts.port
        host = parts.hostname
    except ValueError as error:
        raise _fail("redis_url", "invalid Redis URL: {error}", error=str(error)) from None
    if scheme == "unix":
        if not parts.path.startswith("/"):
            raise _fail("redis_url", "a unix:// URL needs an absolute socket path")
        return url
    if not host:
        raise _fail("redis_url", "the Redis URL names no host")
    if port == 0:
        raise _fail("redis_url", "the port must be from 1 to 65535")
    if parts.path not in ("", "/") and not re.fullmatch(r"/\d+", parts.path):
        raise _fail("redis_url", "the database after the host must be a number, like /0")
    return url


def check_timezone(value: str) -> str:
    """An IANA time zone name like Europe/Berlin or UTC."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _fail(
            "timezone",
            "expected a time zone name like Europe/Berlin or UTC, got {got}",
            got=_shown(value),
        ) from None
    return value


def check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as error:
        raise _fail("regex", "invalid regular expression: {error}", error=str(error)) from None
    return value


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(value: object) -> ListenAddress:
    """``127.0.0.1:9725``, ``[::1]:9725`` or ``localhost:9725``."""
    problem = _fail(
        "listen",
        "expected host:port like 127.0.0.1:9725 or [::1]:9725, got {got}",
        got=_shown(value),
    )
    if isinstance(value, ListenAddress):
        return value
    if not isinstance(value, str):
        raise problem
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^:\[\]\s]+):(\d+)", value.strip())
    if not match:
        raise problem
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 < port < 65536:
        raise problem
    try:
        host = check_hostname(host)
    except PydanticCustomError:
        raise problem from None
    return ListenAddress(host, port)


def resolve_local_path(value: object, info: ValidationInfo) -> Path:
    """A path on the exporter's machine: ``~`` expanded, relative to the config file."""
    if not isinstance(value, str | Path) or not str(value).strip():
        raise _fail("path", "expected a file system path, got {got}", got=_shown(value))
    try:
        path = Path(str(value).strip()).expanduser()
    except RuntimeError:
        raise _fail(
            "path", "cannot expand ~: no home directory is known (set HOME or give a full path)"
        ) from None
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute() and isinstance(base, Path):
        path = base / path
    return path


Seconds = Annotated[float, BeforeValidator(parse_duration)]
Bytes = Annotated[int, BeforeValidator(parse_size)]
DnsName = Annotated[str, AfterValidator(check_dns_name)]
Hostname = Annotated[str, AfterValidator(check_hostname)]
IpAddress = Annotated[str, AfterValidator(check_ip)]
Name = Annotated[str, AfterValidator(check_name)]
Url = Annotated[str, AfterValidator(check_url)]
RedisUrl = Annotated[str, AfterValidator(check_redis_url)]
Regex = Annotated[str, AfterValidator(check_regex)]
TimeZone = Annotated[str, AfterValidator(check_timezone)]
Listen = Annotated[ListenAddress, PlainValidator(parse_listen)]
LocalPath = Annotated[Path, BeforeValidator(resolve_local_path)]
Port = Annotated[int, Field(ge=1, le=65535)]
UserName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")]
RemotePath = Annotated[str, Field(pattern=r"^/[^\x00\n\r]*$")]
"""An absolute path on another machine (an MTA): used as written, never expanded."""
