"""Configuration: every kind of mistake gets its exact message; old files still load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.config import ConfigError, LoadedConfig, load_config
from exporter.config_summary import summary
from exporter.config_types import format_duration, parse_duration, parse_size

CONFIGS = Path(__file__).parent.parent / "configs"
REPO = Path(__file__).parent.parent.parent
INVALID = sorted((CONFIGS / "invalid").glob("*.yml"))


def expected_problems(fixture: Path) -> list[str]:
    """The ``# expect: LINE: PATH: MESSAGE`` lines at the end of a fixture."""
    return [
        line.removeprefix("# expect: ")
        for line in fixture.read_text().splitlines()
        if line.startswith("# expect: ")
    ]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mtarep.yml"
    path.write_text(text)
    return path


def test_every_invalid_fixture_states_what_it_expects() -> None:
    assert len(INVALID) >= 30
    for fixture in INVALID:
        assert expected_problems(fixture), f"{fixture.name} has no '# expect:' line"


@pytest.mark.parametrize("fixture", INVALID, ids=[path.stem for path in INVALID])
def test_invalid_config_reports_exact_problems(fixture: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(fixture, environ={})
    found = [
        f"{problem.line or '-'}: {problem.path}: {problem.message}"
        for problem in raised.value.problems
    ]
    assert found == expected_problems(fixture)
    for problem in raised.value.problems:
        assert str(problem).startswith(f"{fixture}:")


@pytest.mark.parametrize("fixture", ["both_snds_keys", "secret_wrong_type"])
def test_secrets_never_appear_in_errors(fixture: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(CONFIGS / "invalid" / f"{fixture}.yml", environ={})
    assert "s3cr3t" not in str(raised.value)


def test_example_config_is_valid_and_documents_every_key() -> None:
    loaded = load_config(REPO / "mtarep.yml.example", environ={})
    config = loaded.config
    assert [host.fqdn for host in config.hosts] == [
        "mta1.example.com",
        "mta2.example.com",
        "mta3.example.com",
    ]
    example = (REPO / "mtarep.yml.example").read_text()
    top_level = set(type(config).model_fields)
    for key in top_level:
        assert re.search(rf"^#? ?{key}:", example, re.MULTILINE), f"{key} is not documented"
    for section in ("dns", "helo_check", "snds", "maillog", "ackservice", "shard", "mailflow"):
        for key in type(getattr(config, section)).model_fields:
            assert re.search(rf"^ +#? ?{key}:", example, re.MULTILINE), f"{section}.{key}"


def test_old_style_file_loads_with_its_old_meaning(tmp_path: Path) -> None:
    loaded = load_config(CONFIGS / "valid" / "old_mtarep.yml", environ={})
    config = loaded.config
    # mta_map as SSH alias -> public FQDN: SSH goes to the alias.
    assert [(h.alias, h.fqdn, h.ssh_host) for h in config.hosts] == [
        ("mta1-internal", "mta1.mydomain.com", "mta1-internal"),
        ("mta2-internal", "mta2.mydomain.com", "mta2-internal"),
    ]
    assert all(h.ssh_user == "mtarep" and h.ssh_port == 22 for h in config.hosts)
    assert all(h.maillog_path == "/var/log/maillog" for h in config.hosts)
    # redis_server is a host name on port 6379, db 0.
    assert loaded.redis_url == "redis://redis.mydomain.com:6379/0"
    assert loaded.snds_key == "c3499c2-729730a7-f807efb8"
    assert config.ssh_key == Path("/home/mtarep/.ssh/mtarep.private")
    assert config.error_log == Path("/var/log/mtarep_errors.log")
    assert config.graph_domains == ["yahoo.com", "hotmail.com", "gmail.com"]
    zones = {rbl.zone: rbl for rbl in config.rbl_zones}
    assert list(zones) == ["b.barracudacentral.org", "bl.spamcop.net", "zen.spamhaus.org"]
    # The old removal_links keyed by zone become the zone's removal link.
    assert zones["zen.spamhaus.org"].removal_link == "http://www.spamhaus.org/query/ip/"
    assert zones["bl.spamcop.net"].removal_link is None
    patterns = config.provider_patterns
    assert set(patterns) == {"att", "comcast", "cox"}
    comcast = patterns["comcast"]
    assert comcast is not None
    assert comcast.search(
        "550 5.7.1 Comcast block for spam.  Please see "
        "http://postmaster.comcast.net/smtp-error-codes.php#BL000000"
    )
    assert config.removal_links["cox"].startswith("http://postmaster.cox.net/")
    assert set(config.assistance_links) == {"hotmail", "spamhaus"}
    assert config.http_auth_file == Path("/etc/mtarep/htpasswd")
    # Everything new has its default.
    assert config.interval == 900
    assert str(config.listen) == "127.0.0.1:9725"
    assert config.block_window == 7200
    warnings = [str(w) for w in loaded.warnings]
    assert any("basic_submission_fields: accepted but ignored" in w for w in warnings)


def test_old_list_form_ssh_goes_to_the_public_name(tmp_path: Path) -> None:
    loaded = load_config(
        write(tmp_path, "mta_map:\n - mailer1.example.com\n - mailer2.example.com\n"), environ={}
    )
    hosts = loaded.config.hosts
    assert [(h.alias, h.fqdn, h.ssh_host) for h in hosts] == [
        ("mailer1.example.com", "mailer1.example.com", "mailer1.example.com"),
        ("mailer2.example.com", "mailer2.example.com", "mailer2.example.com"),
    ]
    assert all(h.ips is None for h in hosts)


def test_long_form_host_settings(tmp_path: Path) -> None:
    text = """
mta_map:
  edge1:
    fqdn: MTA1.Example.COM.
    ssh_host: 10.1.2.3
    ssh_port: 2222
    ssh_user: logs
    maillog_path: /var/log/postfix.log
    ips: [192.0.2.1, "2001:DB8::1"]
ssh_user: mtarep
maillog_path: /var/log/mail.log
"""
    (host,) = load_config(write(tmp_path, text), environ={}).config.hosts
    assert host.fqdn == "mta1.example.com"
    assert (host.ssh_host, host.ssh_port, host.ssh_user) == ("10.1.2.3", 2222, "logs")
    assert host.maillog_path == "/var/log/postfix.log"
    assert host.ips == ("192.0.2.1", "2001:db8::1")


def test_rbls_as_strings_and_mappings(tmp_path: Path) -> None:
    text = """
mta_map: [mta1.example.com]
rbls:
  - bl.spamcop.net
  - zone: zen.spamhaus.org
    removal_link: "https://check.spamhaus.org/listed/?searchterm={ip}"
    codes: {"127.0.0.2": SBL, "127.0.0.10": PBL}
"""
    zones = load_config(write(tmp_path, text), environ={}).config.rbl_zones
    assert [z.zone for z in zones] == ["bl.spamcop.net", "zen.spamhaus.org"]
    assert zones[1].codes == {"127.0.0.2": "SBL", "127.0.0.10": "PBL"}
    assert zones[1].removal_link is not None
    assert "{ip}" in zones[1].removal_link


def test_defaults(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, "mta_map: [mta1.example.com]\n"), environ={})
    config = loaded.config
    assert [z.zone for z in config.rbl_zones][:2] == ["zen.spamhaus.org", "bl.spamcop.net"]
    assert loaded.redis_url is None  # embedded Redis
    assert config.data_dir == tmp_path / "var"  # relative to the config file
    assert (config.dns.nameservers, config.dns.port, config.dns.timeout) == (None, 53, 2.0)
    assert (config.dns.attempts, config.dns.concurrency) == (2, 200)
    assert (config.helo_check.enabled, config.helo_check.port, config.helo_check.timeout) == (
        True,
        25,
        5.0,
    )
    assert config.snds.url == "https://sendersupport.olc.protection.outlook.com/snds"
    assert config.snds.refresh == 3600
    assert loaded.snds_key is None
    assert config.mailflow.prefixes is None
    assert config.maillog.source == "ssh"
    assert config.maillog.known_hosts is None  # ~/.ssh/known_hosts of whoever runs mtarep
    assert config.maillog.initial_window == 50_000_000
    assert str(config.ackservice.listen) == "127.0.0.1:9726"
    assert config.ackservice.alertmanager_url is None
    assert (config.shard.index, config.shard.count) == (0, 1)
    assert config.provider_patterns == {}
    assert loaded.warnings == ()


def test_env_overrides_secrets(tmp_path: Path) -> None:
    path = write(
        tmp_path, "mta_map: [mta1.example.com]\nsnds_key: from-file\nredis_server: redis1\n"
    )
    assert load_config(path, environ={}).snds_key == "from-file"
    assert load_config(path, environ={}).redis_url == "redis://redis1:6379/0"
    loaded = load_config(
        path,
        environ={"MTAREP_SNDS_KEY": "from-env", "MTAREP_REDIS_URL": "redis://:pw@r2:6380/3"},
    )
    assert loaded.snds_key == "from-env"
    assert loaded.redis_url == "redis://:pw@r2:6380/3"
    assert loaded.redis_description == "redis://:***@r2:6380/3"


def test_bad_env_redis_url_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "mta_map: [mta1.example.com]\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={"MTAREP_REDIS_URL": "localhost:6379"})
    assert [p.path for p in raised.value.problems] == ["MTAREP_REDIS_URL (environment)"]


def test_snds_key_never_in_summary_or_repr(tmp_path: Path) -> None:
    path = write(tmp_path, "mta_map: [mta1.example.com]\nsnds: {key: hush-hush-key}\n")
    loaded = load_config(path, environ={})
    assert loaded.snds_key == "hush-hush-key"
    assert "hush-hush" not in summary(loaded)
    assert "hush-hush" not in repr(loaded.config)
    assert "hush-hush" not in repr(loaded)


def test_redis_password_never_in_repr_or_summary(tmp_path: Path) -> None:
    path = write(tmp_path, "mta_map: [mx.example.org]\nredis_url: redis://:s3cr%2Ft@db:6379/1\n")
    loaded = load_config(path, environ={})
    assert loaded.redis_url == "redis://:s3cr%2Ft@db:6379/1"
    for text in (repr(loaded), repr(loaded.config), summary(loaded)):
        assert "s3cr" not in text
    assert "redis://:***@db:6379/1" in summary(loaded)


def test_merge_keys_and_x_anchors(tmp_path: Path) -> None:
    text = """
x-mta-defaults: &defaults {ssh_port: 2222, ssh_user: logs, maillog_path: /var/log/mail.log}
mta_map:
  mta1: {<<: *defaults, fqdn: mta1.example.com}
  mta2:
    <<: *defaults
    fqdn: mta2.example.com
    ssh_port: 22
"""
    hosts = load_config(write(tmp_path, text), environ={}).config.hosts
    assert [(h.fqdn, h.ssh_port, h.ssh_user) for h in hosts] == [
        ("mta1.example.com", 2222, "logs"),
        ("mta2.example.com", 22, "logs"),
    ]


def test_without_a_home_directory_or_passwd_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As under ``docker run --user 54321``: no HOME, no passwd entry."""
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setattr("pwd.getpwuid", _no_passwd_entry)
    loaded = load_config(write(tmp_path, "mta_map: [mx.example.org]\n"), environ={})
    (host,) = loaded.config.hosts
    assert host.ssh_user is None  # the user running mtarep, found when SSH is used
    assert "configuration OK" in summary(loaded)
    with pytest.raises(ConfigError, match=r"ssh_key: cannot expand ~: no home directory"):
        load_config(write(tmp_path, "mta_map: [mx.example.org]\nssh_key: ~/.ssh/k\n"), {})


def _no_passwd_entry(uid: int) -> object:
    raise KeyError(f"getpwuid(): uid not found: {uid}")


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yml", environ={})
    binary = tmp_path / "binary.yml"
    binary.write_bytes(b"mta_map: [\xff\xfe]\n")
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(binary, environ={})


def test_warnings_for_dead_lists_and_public_resolvers(tmp_path: Path) -> None:
    text = """
mta_map: [mta1.example.com]
rbls: [zen.spamhaus.org, dnsbl.sorbs.net, bl.spamcannibal.org]
dns: {nameservers: [127.0.0.1, 8.8.8.8]}
"""
    loaded: LoadedConfig = load_config(write(tmp_path, text), environ={})
    assert [str(w).split(": ", 1)[1] for w in loaded.warnings] == [
        "rbls[1]: dnsbl.sorbs.net: SORBS shut down in June 2024; remove it from rbls",
        "rbls[2]: bl.spamcannibal.org: SpamCannibal shut down in 2019 and lists every IP; "
        "remove it from rbls",
        "dns.nameservers[1]: 8.8.8.8 is a public resolver: Spamhaus and other lists refuse "
        "queries from it (127.255.255.254); use your own recursive resolver",
    ]


def test_allowlists_and_reputation_zones_are_skipped_with_a_warning(tmp_path: Path) -> None:
    text = """
mta_map: [mta1.example.com]
rbls:
  - zen.spamhaus.org
  - list.dnswl.org
  - bl.mailspike.net
  - zone: WL.Mailspike.net.
    removal_link: https://mailspike.org/
  - z.mailspike.net
  - rep.mailspike.net
  - bl.spamcop.net
"""
    loaded = load_config(write(tmp_path, text), environ={})
    assert [f"{w.line}: {w.path}: {w.message}" for w in loaded.warnings] == [
        "5: rbls[1]: list.dnswl.org is skipped (never queried): list.dnswl.org is an "
        "allowlist: its answers mean trusted, never listed; remove it from rbls",
        "7: rbls[3].zone: wl.mailspike.net is skipped (never queried): wl.mailspike.net is "
        "an allowlist: its answers mean good reputation, never listed; remove it from rbls",
        "10: rbls[5]: rep.mailspike.net is skipped (never queried): rep.mailspike.net is a "
        "reputation zone: it answers 127.0.0.10 (worst) to 127.0.0.20 (best) for every IP "
        "it knows, never listed; remove it from rbls",
    ]
    # The real Mailspike blocklists (bl. and z.) are queried; the others keep their order.
    assert [z.zone for z in loaded.config.rbl_zones] == [
        "zen.spamhaus.org",
        "bl.mailspike.net",
        "z.mailspike.net",
        "bl.spamcop.net",
    ]
    assert "rbl zones: 4 (zen.spamhaus.org, bl.mailspike.net, z.mailspike.net, " in summary(loaded)


@pytest.mark.parametrize("zone", ["list.dnswl.org", "dnswl.org", "wl.mailspike.net"])
def test_an_allowlist_alone_is_never_queried(tmp_path: Path, zone: str) -> None:
    loaded = load_config(write(tmp_path, f"mta_map: [mx.example.org]\nrbls: [{zone}]\n"), {})
    assert loaded.config.rbls == [zone]  # as written: an old file keeps loading
    assert loaded.config.rbl_zones == ()
    assert [w.path for w in loaded.warnings] == ["rbls[0]"]
    assert "rbl zones: 0\n" in summary(loaded)
    assert "dns (senderscore, fcrdns, helo)" in summary(loaded)


def test_real_blocklists_are_not_skipped(tmp_path: Path) -> None:
    zones = ["bl.mailspike.net", "z.mailspike.net", "dnsbl.example.org", "notdnswl.org"]
    text = f"mta_map: [mx.example.org]\nrbls: [{', '.join(zones)}]\n"
    loaded = load_config(write(tmp_path, text), environ={})
    assert [z.zone for z in loaded.config.rbl_zones] == zones
    assert loaded.warnings == ()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("2h", 7200),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("1d", 86400),
        (45, 45),
        (1.5, 1.5),
        (" 2H ", 7200),
    ],
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("50MB", 50_000_000), ("512KiB", 524_288), ("1GiB", 2**30), ("1gb", 10**9), (100, 100)],
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(("seconds", "text"), [(900, "15m"), (5400, "1h30m"), (2.5, "2.5s")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
