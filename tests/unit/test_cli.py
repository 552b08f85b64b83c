"""``mtarep-exporter --check-config``: exit status, problems on stderr, a summary on stdout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.cli import main

REPO = Path(__file__).parent.parent.parent
INVALID = REPO / "tests" / "configs" / "invalid"
EXPORTER = Path(sys.executable).parent / "mtarep-exporter"


def test_example_config_checks_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check-config", "--config", str(REPO / "mtarep.yml.example")]) == 0
    out = capsys.readouterr().out
    assert "configuration OK" in out
    assert "hosts:     3 (mta1.example.com, mta2.example.com, mta3.example.com)" in out
    assert "dns (rbl, senderscore, fcrdns, helo)" in out
    assert "reputation (brightmail)" in out


def test_broken_config_exits_1_naming_every_key(capsys: pytest.CaptureFixture[str]) -> None:
    path = INVALID / "many_problems.yml"
    assert main(["--check-config", "--config", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{path}: 6 problem(s) in the configuration:" in captured.err
    for key in ("mta_map.mta1.fqdn", "mta_map.mta1.ssh_port", "rbls[0].zone", "interval"):
        assert f": {key}: " in captured.err
    assert f"error: {path}:6: dns.timout: unknown key (did you mean timeout?)" in captured.err


@pytest.mark.parametrize("fixture", sorted(INVALID.glob("*.yml")), ids=lambda path: str(path.stem))
def test_every_broken_fixture_exits_1_naming_its_keys(
    fixture: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--check-config", "--config", str(fixture)]) == 1
    err = capsys.readouterr().err
    for expected in fixture.read_text().splitlines():
        if expected.startswith("# expect: "):
            line, path, message = expected.removeprefix("# expect: ").split(": ", 2)
            where = f"{fixture}:{line}" if line != "-" else str(fixture)
            named = f"{path}: " if path else ""
            assert f"error: {where}: {named}{message}\n" in err


def test_config_path_from_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "elsewhere.yml"
    config.write_text("mta_map: [mx.example.org]\n")
    monkeypatch.setenv("MTAREP_CONFIG", str(config))
    assert main(["--check-config"]) == 0
    assert "mx.example.org" in capsys.readouterr().out


def test_secret_from_env_never_printed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "mtarep.yml"
    config.write_text("mta_map: [mx.example.org]\nredis_url: redis://:topsecret@db:6379/0\n")
    monkeypatch.setenv("MTAREP_SNDS_KEY", "env-snds-secret")
    assert main(["--check-config", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "snds," in out or "snds\n" in out
    assert "env-snds-secret" not in out
    assert "topsecret" not in out
    assert "redis://:***@db:6379/0" in out


def test_skipped_allowlist_is_a_warning_and_not_a_queried_zone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "mtarep.yml"
    config.write_text("mta_map: [mx.example.org]\nrbls: [zen.spamhaus.org, list.dnswl.org]\n")
    assert main(["--check-config", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "rbl zones: 1 (zen.spamhaus.org)\n" in out
    assert f"warning: {config}:2: rbls[1]: list.dnswl.org is skipped (never queried): " in out


@pytest.mark.parametrize(
    ("config", "status"),
    [(REPO / "mtarep.yml.example", 0), (INVALID / "bad_zone.yml", 1)],
)
def test_console_script(config: Path, status: int) -> None:
    """The installed console script, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MTAREP_")}
    result = subprocess.run(
        [str(EXPORTER), "--check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == status, result.stderr
    if status:
        assert "rbls[2].zone: expected a DNS name" in result.stderr


def test_once_and_check_config_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--once", "--check-config", "--config", str(REPO / "mtarep.yml.example")])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_once_with_a_broken_config_exits_1_before_any_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--once", "--config", str(INVALID / "many_problems.yml")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "problem(s) in the configuration" in captured.err
