"""The docker-compose stack, its image and its files agree with each other and with mtarep.

No Docker engine is needed (nor started): these read docker-compose.yml, the
Dockerfile, the Grafana provisioning, Prometheus' config and docker/mtarep.yml, and
check what must line up: the services and their healthchecks, what is published and
where, the ports mtarep listens on and the ports Prometheus scrapes, the mounts and
the paths the processes read. ``docker-compose config -q`` itself runs in
tests/integration/test_prometheus_rules.py.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from exporter.config import load_config

REPO = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
MTAREP_SERVICES = ("exporter", "ackservice")
_DEFAULT = re.compile(r"\$\{\w+:-([^}]*)\}")


def _default(text: str) -> str:
    """``text`` as compose reads it when no variable is set (``${VAR:-default}``)."""
    return _DEFAULT.sub(lambda match: match.group(1), text)


def _mounts(service: str) -> dict[str, tuple[str, bool]]:
    """target -> (source, read-only) for both volume syntaxes."""
    mounts = {}
    for volume in SERVICES[service].get("volumes", []):
        if isinstance(volume, dict):
            mounts[volume["target"]] = (_default(volume["source"]), bool(volume.get("read_only")))
        else:
            source, target, *mode = volume.split(":")
            mounts[target] = (_default(source), mode == ["ro"])
    return mounts


def test_the_stack_has_its_six_services_each_with_a_healthcheck() -> None:
    assert set(SERVICES) == {
        "redis",
        "exporter",
        "ackservice",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    for name, service in SERVICES.items():
        test = service.get("healthcheck", {}).get("test")
        assert test, f"{name}: no healthcheck"
        assert test[0] == "CMD", name


def test_only_grafana_and_the_ackservice_are_published_on_loopback_by_default() -> None:
    published = {name: service["ports"] for name, service in SERVICES.items() if "ports" in service}
    assert published == {
        "ackservice": ["${MTAREP_BIND:-127.0.0.1}:9726:9726"],
        "grafana": ["${MTAREP_BIND:-127.0.0.1}:3000:3000"],
    }
    for name, service in SERVICES.items():
        assert "network_mode" not in service, name


def test_redis_keeps_its_data_in_an_append_only_file_on_a_named_volume() -> None:
    redis = SERVICES["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert _mounts("redis")["/data"] == ("redis-data", False)
    assert "redis-data" in COMPOSE["volumes"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


@pytest.mark.parametrize("name", MTAREP_SERVICES)
def test_mtarep_services_share_one_image_redis_and_read_only_configuration(name: str) -> None:
    service = SERVICES[name]
    assert service["build"] == "."
    assert service["command"] == [f"mtarep-{name}"]
    assert service["environment"]["MTAREP_REDIS_URL"] == "redis://redis:6379/0"
    assert service["environment"]["MTAREP_CONFIG"] == "/etc/mtarep/mtarep.yml"
    mounts = _mounts(name)
    assert mounts["/etc/mtarep/mtarep.yml"] == ("./docker/mtarep.yml", True)
    assert mounts["/etc/mtarep/htpasswd"] == ("./docker/htpasswd", True)
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_compose_configuration_is_valid_for_mtarep_and_listens_where_probed() -> None:
    loaded = load_config(str(REPO / "docker" / "mtarep.yml"))
    config = loaded.config
    assert (config.listen.host, config.listen.port) == ("0.0.0.0", 9725)
    assert (config.ackservice.listen.host, config.ackservice.listen.port) == ("0.0.0.0", 9726)
    assert config.ackservice.alertmanager_url == "http://alertmanager:9093"
    assert str(config.http_auth_file) == "/etc/mtarep/htpasswd"
    assert str(config.data_dir) == "/var/lib/mtarep"
    for name, port in (("exporter", 9725), ("ackservice", 9726)):
        probe = " ".join(SERVICES[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/healthz" in probe
    prometheus = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus["scrape_configs"]
    }
    assert targets["mtarep-exporter"] == ["exporter:9725"]
    assert targets["mtarep-ackservice"] == ["ackservice:9726"]
    alertmanagers = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["alertmanager:9093"]


def test_the_example_logins_are_a_bcrypt_line_for_postmaster() -> None:
    lines = (REPO / "docker" / "htpasswd.example").read_text().splitlines()
    assert len(lines) == 1
    user, hashed = lines[0].split(":", 1)
    assert user == "postmaster"
    assert bcrypt.checkpw(b"change-me", hashed.encode())


def test_prometheus_and_alertmanager_read_the_committed_files() -> None:
    assert _mounts("prometheus")["/etc/prometheus/prometheus.yml"] == (
        "./prometheus/prometheus.yml",
        True,
    )
    assert _mounts("prometheus")["/etc/prometheus/alerts.yml"] == ("./prometheus/alerts.yml", True)
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]
    assert _mounts("alertmanager")["/etc/alertmanager/alertmanager.yml"] == (
        "./prometheus/alertmanager.yml",
        True,
    )


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboards() -> None:
    mounts = _mounts("grafana")
    assert mounts["/etc/grafana/provisioning"] == ("./grafana/provisioning", True)
    dashboards_dir = "/etc/grafana/dashboards"
    assert mounts[dashboards_dir] == ("./grafana/dashboards", True)
    provider = yaml.safe_load((REPO / "grafana/provisioning/dashboards/mtarep.yml").read_text())
    assert [p["options"]["path"] for p in provider["providers"]] == [dashboards_dir]
    sources = yaml.safe_load((REPO / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert (source["type"], source["url"], source["uid"]) == (
        "prometheus",
        "http://prometheus:9090",
        "mtarep-prometheus",
    )
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dashboards_dir + "/")
    assert (REPO / "grafana" / "dashboards" / Path(home).name).is_file()


def test_the_image_installs_mtarep_with_pip_and_runs_it_unprivileged() -> None:
    text = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert stages == ["python:3.11-slim", "python:3.11-slim"]
    assert re.search(r"^RUN pip wheel --wheel-dir /wheels \.$", text, re.MULTILINE)
    assert "pip install --no-index --find-links /wheels mtarep" in text
    assert re.search(r"^USER mtarep$", text, re.MULTILINE)
    assert text.rstrip().endswith('CMD ["mtarep-exporter"]')


def test_the_build_context_holds_only_what_pip_installs() -> None:
    """``.dockerignore`` lets in only the package: no logins, keys or local state."""
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    assert {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")} == {
        "pyproject.toml",
        "README.md",
        "exporter",
        "ackservice",
    }


def _package_data_globs() -> dict[str, list[str]]:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs: dict[str, list[str]] = pyproject["tool"]["setuptools"].get("package-data", {})
    return globs


@pytest.mark.parametrize("package", ["exporter", "ackservice"])
def test_pip_install_ships_every_file_the_package_reads(package: str) -> None:
    """The image installs with ``pip install`` (not editable): templates, static files
    and ``py.typed`` must be package data, or the installed ackservice has no pages."""
    root = REPO / package
    globs = _package_data_globs().get(package, [])
    missing = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d != "__pycache__"]
        for name in files:
            relative = (Path(directory) / name).relative_to(root).as_posix()
            if name.endswith((".py", ".pyc")):
                continue
            if not any(fnmatch.fnmatch(relative, pattern) for pattern in globs):
                missing.append(relative)
    assert not missing, (
        f"not in [tool.setuptools.package-data] {package} of pyproject.toml: {sorted(missing)}"
    )
