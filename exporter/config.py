"""mtarep.yml: load, validate and normalise the configuration.

The file keeps every key of the old Ruby tool with its old meaning (``redis_server``,
``snds_key``, ``mta_map`` as a list or an alias -> FQDN mapping, plain-string
``rbls``, ``provider_block_strings``, ...) and adds the new keys of
``shared/DESIGN.md``. Validation is strict: unknown keys and wrong types are
errors, every problem is gathered and reported with its key path and line::

    mtarep.yml:14: rbls[2].zone: expected a DNS name like mta1.example.com, got 'x y'

``load_config`` returns a ``LoadedConfig`` (the typed ``Config`` plus warnings)
or raises ``ConfigError`` holding every problem found.
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from exporter.config_types import (
    Bytes,
    DnsName,
    Hostname,
    IpAddress,
    Listen,
    ListenAddress,
    LocalPath,
    Name,
    Port,
    RedisUrl,
    Regex,
    RemotePath,
    Seconds,
    TimeZone,
    Url,
    UserName,
    check_ip,
    check_redis_url,
    dns_name_key,
    duration_between,
    parse_listen,
)
from exporter.config_yaml import PathKey, YamlDocument, YamlSyntaxError, load_yaml
from exporter.logs import redact_url

DEFAULT_CONFIG_PATH = "mtarep.yml"
ENV_CONFIG = "MTAREP_CONFIG"
ENV_SNDS_KEY = "MTAREP_SNDS_KEY"
ENV_REDIS_URL = "MTAREP_REDIS_URL"

DEFAULT_LISTEN = ListenAddress("127.0.0.1", 9725)
DEFAULT_ACKSERVICE_LISTEN = ListenAddress("127.0.0.1", 9726)

DEFAULT_RBLS = (
    "zen.spamhaus.org",
    "bl.spamcop.net",
    "b.barracudacentral.org",
    "bl.mailspike.net",
    "psbl.surriel.com",
    "dnsbl-1.uceprotect.net",
)

# Lists that are gone or answer "listed" for every query (shared/REFERENCE.md).
DEAD_RBLS = {
    "ahbl.org": "AHBL shut down in 2015 and lists every IP",
    "spamcannibal.org": "SpamCannibal shut down in 2019 and lists every IP",
    "njabl.org": "NJABL shut down and lists every IP",
    "dnsbl.cyberlogic.net": "dnsbl.cyberlogic.net answers 'listed' for every query",
    "sorbs.net": "SORBS shut down in June 2024",
    "wpbl.info": "db.wpbl.info is gone",
    "ix.dnsbl.manitu.net": "ix.dnsbl.manitu.net is gone",
    "virbl.bit.nl": "virbl.bit.nl is gone",
    "virbl.dnsbl.bit.nl": "virbl.bit.nl is gone",
}

# Zones whose answers are not listings (shared/REFERENCE.md, "Not listings"): read as a
# blocklist, every answer would count as "listed". Config.rbl_zones leaves them out.
ALLOWLIST_RBLS = {
    "dnswl.org": "list.dnswl.org is an allowlist: its answers mean trusted, never listed",
    "wl.mailspike.net": "wl.mailspike.net is an allowlist: its answers mean good reputation, "
    "never listed",
    "rep.mailspike.net": "rep.mailspike.net is a reputation zone: it answers 127.0.0.10 "
    "(worst) to 127.0.0.20 (best) for every IP it knows, never listed",
}

# Public resolvers that Spamhaus (and others) refuse to answer.
PUBLIC_RESOLVERS = {
    "8.8.8.8",
    "8.8.4.4",
    "1.1.1.1",
    "1.0.0.1",
    "9.9.9.9",
    "149.112.112.112",
    "208.67.222.222",
    "208.67.220.220",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
    "2606:4700:4700::1111",
    "2606:4700:4700::1001",
    "2620:fe::fe",
}

# Old keys whose new spelling an unknown-key error should point at.
RENAMED_KEYS = {
    "block_strings": "provider_block_strings",
    "redis_host": "redis_server (a host name) or redis_url",
}

IGNORED_OLD_KEYS = {
    "basic_submission_fields": "mtarep no longer fills in removal forms automatically; "
    "the removal link is shown on the issue page instead",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class HostSpec(_Model):
    """The long ``mta_map`` form: ``alias: {fqdn, ssh_host, ssh_port, ...}``."""

    fqdn: DnsName
    ssh_host: Hostname | None = None
    ssh_port: Port = 22
    ssh_user: UserName | None = None
    maillog_path: RemotePath | None = None
    ips: list[IpAddress] | None = Field(default=None, min_length=1)


def _by_type(**tags: type) -> Any:
    def pick(value: Any) -> str | None:
        for tag, kind in tags.items():
            if isinstance(value, kind):
                return tag
        return None

    return pick


HostEntry = Annotated[
    Annotated[DnsName, Tag("<fqdn>")] | Annotated[HostSpec, Tag("<host>")],
    Discriminator(
        _by_type(**{"<fqdn>": str, "<host>": dict}),
        custom_error_type="host_entry",
        custom_error_message="expected the host's public FQDN, or a mapping with fqdn, "
        "ssh_host, ssh_port, ssh_user, maillog_path and ips",
    ),
]

MtaMap = Annotated[
    Annotated[list[DnsName], Field(min_length=1), Tag("<list>")]
    | Annotated[dict[Hostname, HostEntry], Field(min_length=1), Tag("<mapping>")],
    Discriminator(
        _by_type(**{"<list>": list, "<mapping>": dict}),
        custom_error_type="mta_map",
        custom_error_message="expected a list of public FQDNs or a mapping of "
        "SSH alias to public FQDN",
    ),
]


class RblSpec(_Model):
    zone: DnsName
    removal_link: Url | None = None
    codes: dict[str, str] = Field(default_factory=dict)

    @field_validator("codes")
    @classmethod
    def _codes_in_loopback(cls, codes: dict[str, str]) -> dict[str, str]:
        for code in codes:
            try:
                in_range = ipaddress.IPv4Address(code) in ipaddress.IPv4Network("127.0.0.0/8")
            except ValueError:
                in_range = False
            if not in_range:
                raise PydanticCustomError(
                    "rbl_code",
                    "return code {code} is not an IPv4 address in 127.0.0.0/8",
                    {"code": repr(code)},
                )
        return codes


RblEntry = Annotated[
    Annotated[DnsName, Tag("<zone>")] | Annotated[RblSpec, Tag("<rbl>")],
    Discriminator(
        _by_type(**{"<zone>": str, "<rbl>": dict}),
        custom_error_type="rbl_entry",
        custom_error_message="expected a zone name or a mapping with zone, removal_link and codes",
    ),
]


class DnsSettings(_Model):
    nameservers: list[IpAddress] | None = Field(default=None, min_length=1)
    port: Port = 53
    timeout: Annotated[Seconds, duration_between(0.05, 60)] = 2.0
    attempts: Annotated[int, Field(ge=1, le=10)] = 2
    concurrency: Annotated[int, Field(ge=1, le=10_000)] = 200


class HeloCheck(_Model):
    enabled: bool = True
    port: Port = 25
    timeout: Annotated[Seconds, duration_between(0.05, 300)] = 5.0


class SndsSettings(_Model):
    key: SecretStr | None = None
    url: Url = "https://sendersupport.olc.protection.outlook.com/snds"
    refresh: Annotated[Seconds, duration_between(60)] = 3600.0
    timeout: Annotated[Seconds, duration_between(1, 300)] = 30.0


Rating = Literal["good", "neutral", "bad"]


def _default_ratings() -> dict[str, Rating]:
    return {"good": "good", "neutral": "neutral", "bad": "bad"}


def _default_rbls() -> list[DnsName | RblSpec]:
    return list(DEFAULT_RBLS)


class ReputationSource(_Model):
    name: Name
    url: Url
    field: Annotated[str, Field(min_length=1, pattern=r"^[^.\s]+(\.[^.\s]+)*$")]
    ratings: dict[str, Rating] = Field(default_factory=_default_ratings)
    timeout: Annotated[Seconds, duration_between(0.1, 300)] = 10.0
    concurrency: Annotated[int, Field(ge=1, le=100)] = 4

    @field_validator("url")
    @classmethod
    def _url_has_ip(cls, url: str) -> str:
        if "{ip}" not in url:
            raise PydanticCustomError(
                "url",
                "the URL must contain {placeholder}, which is replaced by each monitored IP",
                {"placeholder": "{ip}"},
            )
        return url


class MailflowSettings(_Model):
    prefixes: list[Name] | None = Field(default=None, min_length=1)
    timezone: TimeZone | None = None
    """None: the exporter's local time zone decides what "today" is."""
    max_domains: Annotated[int, Field(ge=1, le=10_000)] = 50
    """Without graph_domains: at most this many domains per prefix, the rest as ``other``."""


class MaillogSettings(_Model):
    source: Literal["ssh", "local"] = "ssh"
    known_hosts: LocalPath | None = None
    """None: ``~/.ssh/known_hosts`` of the user running mtarep, found when SSH is used."""
    initial_window: Bytes = 50_000_000
    timeout: Annotated[Seconds, duration_between(1, 3600)] = 60.0
    """Per host and cycle: connecting, reading and parsing its log."""
    timezone: TimeZone | None = None
    """The zone of year-less syslog timestamps (``Feb  8 14:02:11``); None: the exporter's."""
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 20


class AckserviceSettings(_Model):
    listen: Listen = DEFAULT_ACKSERVICE_LISTEN
    alertmanager_url: Url | None = None
    url: Url | None = None
    """How people reach the ackservice (links in alerts and silences); None: http://listen/."""
    anonymous: bool = False
    """Serve without logins. Only when said explicitly: otherwise http_auth_file is required."""
    notice: Annotated[str, Field(max_length=300)] | None = None
    """A line shown at the top of every page (``DEMO``, ``staging``...)."""


class Thresholds(_Model):
    """Where a value becomes an issue, and how bad each issue is (``exporter.severity``)."""

    senderscore_below: Annotated[int, Field(ge=1, le=100)] = 70
    snds_trap_hits: Annotated[int, Field(ge=1)] = 10
    error_rbls: list[DnsName] = Field(
        default_factory=lambda: [
            "spamhaus.org",
            "spamhaus.net",
            "spamcop.net",
            "barracudacentral.org",
        ]
    )
    """A listing on one of these zones (or a zone below one) is an error, others a warning."""


class ShardSettings(_Model):
    index: Annotated[int, Field(ge=0)] = 0
    count: Annotated[int, Field(ge=1, le=1000)] = 1


class Config(_Model):
    """Everything in mtarep.yml, as written (see the properties for resolved views)."""

    # Keys of the old tool, with their old meaning.
    error_log: LocalPath | None = None
    redis_server: Hostname | None = None
    snds_key: SecretStr | None = None
    maillog_path: RemotePath | None = None
    ssh_key: LocalPath | None = None
    ssh_user: UserName | None = None
    http_auth_file: LocalPath | None = None
    graph_domains: list[DnsName] = Field(default_factory=list)
    rbls: list[RblEntry] = Field(default_factory=_default_rbls)
    mta_map: MtaMap
    provider_block_strings: dict[Name, Regex | None] | None = None
    provider_block_patterns: dict[Name, Regex | None] | None = None
    removal_links: dict[str, Url] = Field(default_factory=dict)
    assistance_links: dict[str, Url] = Field(default_factory=dict)
    basic_submission_fields: Any = None

    # New keys.
    redis_url: RedisUrl | None = Field(default=None, repr=False)
    data_dir: LocalPath = Field(default="var", validate_default=True)
    interval: Annotated[Seconds, duration_between(10)] = 900.0
    listen: Listen = DEFAULT_LISTEN
    block_window: Annotated[Seconds, duration_between(60)] = 7200.0
    dns: DnsSettings = DnsSettings()
    helo_check: HeloCheck = HeloCheck()
    snds: SndsSettings = SndsSettings()
    reputation: list[ReputationSource] = Field(default_factory=list)
    mailflow: MailflowSettings = MailflowSettings()
    maillog: MaillogSettings = MaillogSettings()
    ackservice: AckserviceSettings = AckserviceSettings()
    thresholds: Thresholds = Thresholds()
    shard: ShardSettings = ShardSettings()

    # Resolved views -----------------------------------------------------------------

    @property
    def hosts(self) -> tuple[Host, ...]:
        """Every monitored MTA, whichever of the three ``mta_map`` shapes was used."""
        if isinstance(self.mta_map, list):
            entries: list[tuple[str, str | HostSpec]] = [(fqdn, fqdn) for fqdn in self.mta_map]
        else:
            entries = list(self.mta_map.items())
        hosts = []
        for alias, entry in entries:
            spec = HostSpec(fqdn=entry) if isinstance(entry, str) else entry
            hosts.append(
                Host(
                    alias=alias,
                    fqdn=spec.fqdn,
                    ssh_host=spec.ssh_host or alias,
                    ssh_port=spec.ssh_port,
                    ssh_user=spec.ssh_user or self.ssh_user,
                    maillog_path=spec.maillog_path or self.maillog_path,
                    ips=tuple(spec.ips) if spec.ips else None,
                )
            )
        return tuple(hosts)

    @property
    def rbl_zones(self) -> tuple[RblSpec, ...]:
        """Every zone to query, with the old ``removal_links[zone]`` used when it has none
        of its own. Allowlists and reputation zones (``ALLOWLIST_RBLS``) are left out."""
        zones = []
        for entry in self.rbls:
            spec = RblSpec(zone=entry) if isinstance(entry, str) else entry
            if zone_reason(spec.zone, ALLOWLIST_RBLS) is not None:
                continue
            if spec.removal_link is None and spec.zone in self.removal_links:
                spec = spec.model_copy(update={"removal_link": self.removal_links[spec.zone]})
            zones.append(spec)
        return tuple(zones)

    @property
    def provider_patterns(self) -> dict[str, re.Pattern[str] | None]:
        """Provider -> compiled pattern; ``None`` switches a built-in pattern off."""
        given = self.provider_block_patterns or self.provider_block_strings or {}
        return {name: re.compile(text) if text else None for name, text in given.items()}


def zone_reason(zone: str, table: Mapping[str, str]) -> str | None:
    """The reason ``table`` gives for ``zone`` or any domain above it, if it names one."""
    for suffix, why in table.items():
        if zone == suffix or zone.endswith("." + suffix):
            return why
    return None


@dataclass(frozen=True)
class Host:
    alias: str
    fqdn: str
    ssh_host: str
    ssh_port: int
    ssh_user: str | None
    """None: the user running mtarep."""
    maillog_path: str | None
    ips: tuple[str, ...] | None


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) in the configuration."""

    path: str
    message: str
    line: int | None = None
    file: str | None = None

    def __str__(self) -> str:
        where = self.file or "config"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    path: Path
    warnings: tuple[Problem, ...]
    snds_key: str | None = field(repr=False)
    """The effective SNDS key: env MTAREP_SNDS_KEY, else snds.key, else snds_key."""
    redis_url: str | None = field(repr=False)
    """Env MTAREP_REDIS_URL, else redis_url, else redis://redis_server:6379/0; None = embedded."""

    @property
    def redis_description(self) -> str:
        if self.redis_url is None:
            return f"embedded Redis under {self.config.data_dir}"
        return redact_url(self.redis_url)


# Error reporting -------------------------------------------------------------------

_MESSAGES = {
    "missing": "required key is missing",
    "string_type": "expected a string",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "bool_type": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dataclass_type": "expected a mapping",
    "too_short": "must not be empty",
}


_PATTERN_MESSAGES = {
    "field": "expected a dotted path like entityRecord.rep",
    "ssh_user": "expected a user name like mtarep",
    "maillog_path": "expected an absolute path like /var/log/mail.log",
}


def _path_text(loc: PathKey) -> str:
    text = ""
    for part in loc:
        if isinstance(part, bool):
            text += f"[{str(part).lower()}]"
        elif isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            text += f".{part}" if text else part
        else:
            text += f'["{part}"]'
    return text


def _type_name(value: object) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "true/false"}
    if value is None:
        return "nothing"
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return "a number" if isinstance(value, int | float) else type(value).__name__


def _message(error: ErrorDetails, secret: bool) -> str:
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "literal_error":
        return f"expected one of {context.get('expected', '')}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return error["msg"].replace("Input should be", "must be") + f", got {error['input']!r}"
    if kind == "string_pattern_mismatch":
        return _PATTERN_MESSAGES.get(str(error["loc"][-1]), error["msg"])
    if kind in _MESSAGES:
        message = _MESSAGES[kind]
        if kind.endswith("_type") and not secret:
            message += f", got {_type_name(error['input'])}"
        return message
    return error["msg"]


def _problems(error: ValidationError, document: YamlDocument, file: str) -> list[Problem]:
    problems = []
    for detail in error.errors():
        parts: list[Any] = []
        for part in detail["loc"]:
            if part == "[key]":  # the error is about the key itself: show it as given
                parts[-1] = detail["input"]
            elif not (isinstance(part, str) and part.startswith("<")):  # union tags
                parts.append(part)
        loc: PathKey = tuple(parts)
        secret = any(part in ("snds_key", "key") for part in loc)
        message = _message(detail, secret)
        if detail["type"] == "extra_forbidden":
            message += _suggestion(str(loc[-1]))
        if isinstance(detail["input"], bool) and detail["type"] != "bool_type":
            message += " (YAML reads yes/no/on/off as true/false: put it in quotes)"
        line = document.line_of(loc[:-1]) if detail["type"] == "missing" else document.line_of(loc)
        problems.append(Problem(_path_text(loc) or "(top level)", message, line, file))
    return problems


def _all_keys() -> set[str]:
    models: list[type[BaseModel]] = [
        Config,
        HostSpec,
        RblSpec,
        DnsSettings,
        HeloCheck,
        SndsSettings,
        ReputationSource,
        MailflowSettings,
        MaillogSettings,
        AckserviceSettings,
        Thresholds,
        ShardSettings,
    ]
    return {name for model in models for name in model.model_fields}


def _suggestion(key: str) -> str:
    if key in RENAMED_KEYS:
        return f" (the old {key} is now {RENAMED_KEYS[key]})"
    close = difflib.get_close_matches(key, sorted(_all_keys()), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


# Loading --------------------------------------------------------------------------


def load_config(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Read, validate and resolve ``path``; raise ``ConfigError`` listing every problem."""
    environ = os.environ if environ is None else environ
    file_path = Path(path)
    file = str(path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem("", "file not found", None, file)]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([Problem("", f"cannot read the file: {error}", None, file)]) from None
    try:
        document = load_yaml(text)
    except YamlSyntaxError as error:
        raise ConfigError(
            [Problem("", f"invalid YAML: {error.message}", error.line, file)]
        ) from None

    problems = [
        Problem(_path_text(key_path), f"duplicate key (first given on line {first})", line, file)
        for key_path, line, first in document.duplicates
    ]
    data = document.data if document.data is not None else {}
    if not isinstance(data, dict):
        problems.append(
            Problem("(top level)", "expected a mapping of settings like mta_map: ...", 1, file)
        )
        raise ConfigError(problems)

    # Top-level keys starting with "x-" are free: a place for YAML anchors.
    data = {key: value for key, value in data.items() if not str(key).startswith("x-")}
    config: Config | None = None
    context = {"base_dir": file_path.resolve().parent}
    try:
        config = Config.model_validate(data, context=context)
    except ValidationError as error:
        problems.extend(_problems(error, document, file))
    problems += [
        Problem(_path_text(path), message, document.line_of(path), file)
        for path, message in _conflicts(data)
    ]

    redis_url = environ.get(ENV_REDIS_URL) or None
    if redis_url is not None:
        try:
            check_redis_url(redis_url)
        except PydanticCustomError as error:
            problems.append(Problem(f"{ENV_REDIS_URL} (environment)", error.message(), None, file))
    if problems or config is None:
        raise ConfigError(sorted(problems, key=lambda p: (p.line or 0, p.path)))

    if redis_url is None:
        redis_url = config.redis_url
    if redis_url is None and config.redis_server is not None:
        redis_url = f"redis://{_url_host(config.redis_server)}:6379/0"
    snds_secret = config.snds.key or config.snds_key
    snds_key = environ.get(ENV_SNDS_KEY) or (
        snds_secret.get_secret_value() if snds_secret else None
    )
    return LoadedConfig(
        config=config,
        path=file_path,
        warnings=tuple(_warnings(config, document, file)),
        snds_key=snds_key,
        redis_url=redis_url,
    )


def _fqdn_key(value: object) -> str | None:
    return dns_name_key(value) if isinstance(value, str) else None


def _ip_key(value: object) -> str | None:
    try:
        return check_ip(value) if isinstance(value, str) else None
    except PydanticCustomError:
        return None


def _listen_key(value: object) -> str | None:
    try:
        return str(parse_listen(value))
    except PydanticCustomError:
        return None


def _repeats(
    items: Sequence[tuple[PathKey, str | None]], message: str
) -> list[tuple[PathKey, str]]:
    """``message`` (with {value} and {first}) for every value given again."""
    first_at: dict[str, PathKey] = {}
    found = []
    for path, value in items:
        if value is None:
            continue
        if value in first_at:
            found.append((path, message.format(value=value, first=_path_text(first_at[value]))))
        else:
            first_at[value] = path
    return found


def _conflicts(data: dict[str, Any]) -> list[tuple[PathKey, str]]:
    """Problems between keys, found on the raw data so they are reported together with
    every other problem; values of the wrong type are left to validation."""
    found: list[tuple[PathKey, str]] = []
    snds: dict[Any, Any] = data["snds"] if isinstance(data.get("snds"), dict) else {}
    given = {
        ("provider_block_strings",): data.get("provider_block_strings"),
        ("provider_block_patterns",): data.get("provider_block_patterns"),
        ("redis_server",): data.get("redis_server"),
        ("redis_url",): data.get("redis_url"),
        ("snds_key",): data.get("snds_key"),
        ("snds", "key"): snds.get("key"),
    }
    for first, second in (
        (("provider_block_strings",), ("provider_block_patterns",)),
        (("redis_server",), ("redis_url",)),
        (("snds_key",), ("snds", "key")),
    ):
        if given[first] is not None and given[second] is not None:
            found.append((second, f"give {_path_text(first)} or {_path_text(second)}, not both"))

    shard = data.get("shard")
    if isinstance(shard, dict):
        index, count = shard.get("index", 0), shard.get("count", 1)
        if type(index) is int and type(count) is int and 0 < count <= index:
            message = f"must be below shard.count ({count}): replicas are numbered from 0"
            found.append((("shard", "index"), message))

    hosts: list[tuple[PathKey, str | None]] = []
    ips: list[tuple[PathKey, str | None]] = []
    mta_map = data.get("mta_map")
    if isinstance(mta_map, list):
        hosts = [(("mta_map", index), _fqdn_key(entry)) for index, entry in enumerate(mta_map)]
    elif isinstance(mta_map, dict):
        for alias, entry in mta_map.items():
            spec = entry if isinstance(entry, dict) else {"fqdn": entry}
            hosts.append((("mta_map", alias), _fqdn_key(spec.get("fqdn"))))
            if isinstance(spec.get("ips"), list):
                ips += [
                    (("mta_map", alias, "ips", index), _ip_key(ip))
                    for index, ip in enumerate(spec["ips"])
                ]
    found += _repeats(hosts, "{value} is already monitored as {first}")
    found += _repeats(ips, "{value} is already monitored as {first}")

    rbls = data.get("rbls")
    if isinstance(rbls, list):
        zones = [
            (("rbls", index), _fqdn_key(entry.get("zone") if isinstance(entry, dict) else entry))
            for index, entry in enumerate(rbls)
        ]
        found += _repeats(zones, "{value} is already listed as {first}")

    sources = data.get("reputation")
    if isinstance(sources, list):
        names = [
            (("reputation", index, "name"), source.get("name"))
            for index, source in enumerate(sources)
            if isinstance(source, dict) and isinstance(source.get("name"), str)
        ]
        found += _repeats(names, "{value} is already the name of {first}")

    ackservice: dict[Any, Any] = (
        data["ackservice"] if isinstance(data.get("ackservice"), dict) else {}
    )
    exporter_listen = _listen_key(data.get("listen", DEFAULT_LISTEN))
    if exporter_listen == _listen_key(ackservice.get("listen", DEFAULT_ACKSERVICE_LISTEN)):
        here: PathKey = ("listen",)
        there: PathKey = ("ackservice", "listen")
        if "listen" in ackservice:
            here, there = there, here
        message = f"{exporter_listen} is also {_path_text(there)}: the exporter and the "
        found.append((here, message + "ackservice each need their own address"))
    return found


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _warnings(config: Config, document: YamlDocument, file: str) -> list[Problem]:
    found = []

    def warn(path: PathKey, message: str) -> None:
        found.append(Problem(_path_text(path), message, document.line_of(path), file))

    for key, why in IGNORED_OLD_KEYS.items():
        if key in document.data:
            warn((key,), f"accepted but ignored: {why}")
    for index, entry in enumerate(config.rbls):
        zone = entry if isinstance(entry, str) else entry.zone
        where: PathKey = ("rbls", index) if isinstance(entry, str) else ("rbls", index, "zone")
        if (reason := zone_reason(zone, DEAD_RBLS)) is not None:
            warn(where, f"{zone}: {reason}; remove it from rbls")
        elif (reason := zone_reason(zone, ALLOWLIST_RBLS)) is not None:
            warn(where, f"{zone} is skipped (never queried): {reason}; remove it from rbls")
    for index, server in enumerate(config.dns.nameservers or []):
        if server in PUBLIC_RESOLVERS:
            warn(
                ("dns", "nameservers", index),
                f"{server} is a public resolver: Spamhaus and other lists refuse "
                "queries from it (127.255.255.254); use your own recursive resolver",
            )
    if config.snds.refresh < 3600:
        warn(("snds", "refresh"), "SNDS publishes data once a day; fetch at most hourly")
    for field_name in ("ssh_key", "http_auth_file"):
        value = getattr(config, field_name)
        if value is not None and not value.exists():
            warn((field_name,), f"{value} does not exist")
    reads_over_ssh = config.maillog.source == "ssh" and any(h.maillog_path for h in config.hosts)
    known_hosts = config.maillog.known_hosts
    with contextlib.suppress(RuntimeError):  # no home directory: SSH will say so
        known_hosts = known_hosts or Path("~/.ssh/known_hosts").expanduser()
    if reads_over_ssh and known_hosts is not None and not known_hosts.exists():
        warn(
            ("maillog", "known_hosts"),
            f"{known_hosts} does not exist: every MTA's host key will be refused",
        )
    return sorted(found, key=lambda problem: problem.line or 0)
