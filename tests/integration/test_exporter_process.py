"""``mtarep-exporter`` as a real process against a real nsd and Redis: cycles and ``--once``."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.mtarep_process import BIN, MtarepProcess, offline_checks
from tests.harness.nsd_server import NsdFactory, zone_text
from tests.harness.ports import HOST, free_port
from tests.harness.redis_server import RedisServer
from tests.harness.wait import wait_until

pytestmark = pytest.mark.integration

LISTED_IP = "192.0.2.10"  # TEST-NET: only ever named in DNS questions to the local nsd
CLEAN_IP = "192.0.2.20"
ZONES = {
    "bl.test": zone_text(
        "bl.test",
        [
            "2.0.0.127 IN A 127.0.0.2",
            "10.2.0.192 IN A 127.0.0.2",
            '10.2.0.192 IN TXT "listed for spam, see https://bl.test/lookup"',
        ],
    ),
    "score.senderscore.com": zone_text(
        "score.senderscore.com", ["10.2.0.192 IN A 127.0.4.62", "20.2.0.192 IN A 127.0.4.91"]
    ),
}


def write_config(directory: Path, extra: str, rbls: str = "[bl.test]") -> Path:
    config = directory / "mtarep.yml"
    config.write_text(
        "mta_map:\n"
        f"  mta1: {{fqdn: mta1.example.test, ips: [{LISTED_IP}, {CLEAN_IP}]}}\n"
        f"rbls: {rbls}\n"
        f"listen: 127.0.0.1:{free_port()}\n"
        "interval: 10s\n" + extra
    )
    return config


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def run_once(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "mtarep-exporter"), "--config", str(config), "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=config.parent,
    )


@pytest.fixture
def silent_dns() -> Iterator[int]:
    """A UDP port on 127.0.0.1 that takes DNS queries and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        yield sock.getsockname()[1]


def test_once_prints_the_cycle_and_stores_it(
    tmp_path: Path, nsd_factory: NsdFactory, redis_server: RedisServer
) -> None:
    nsd = nsd_factory(ZONES)
    config = write_config(tmp_path, offline_checks(nsd.port) + f"redis_url: {redis_server.url}\n")

    done = run_once(config)

    assert done.returncode == 0, done.stderr
    listed = {"host": "mta1.example.test", "ip": LISTED_IP, "rbl": "bl.test"}
    assert value(done.stdout, "mtarep_rbl_listed", **listed) == 1
    assert value(done.stdout, "mtarep_rbl_listed", **{**listed, "ip": CLEAN_IP}) == 0
    assert value(done.stdout, "mtarep_rbl_zone_healthy", rbl="bl.test") == 1
    assert value(done.stdout, "mtarep_senderscore", host="mta1.example.test", ip=LISTED_IP) == 62
    assert value(done.stdout, "mtarep_collection_success", source="store") == 1
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    issue = client.hgetall(f"mtarep:issue:{LISTED_IP}:rbl:bl.test")
    assert issue["host"] == "mta1.example.test"
    assert "listed for spam, see https://bl.test/lookup" in issue["detail"]
    assert client.exists(f"mtarep:issue:{LISTED_IP}:senderscore:senderscore")  # 62 < 70
    assert client.exists("mtarep:snapshot:1of1")
    client.close()


def test_once_reports_a_broken_list_in_the_metrics_and_still_exits_0(
    tmp_path: Path, nsd_factory: NsdFactory, redis_server: RedisServer
) -> None:
    nsd = nsd_factory(ZONES)
    config = write_config(
        tmp_path,
        offline_checks(nsd.port) + f"redis_url: {redis_server.url}\n",
        rbls="[bl.test, not-served.test]",
    )

    done = run_once(config)

    assert done.returncode == 0, done.stderr
    assert value(done.stdout, "mtarep_rbl_zone_healthy", rbl="not-served.test") == 0
    assert value(done.stdout, "mtarep_collection_success", source="rbl") == 0
    assert "rbl.zone_unhealthy rbl=not-served.test" in done.stderr


def test_once_exits_1_when_the_store_is_unusable(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    config = write_config(tmp_path, offline_checks() + f"redis_url: {url}\n")

    done = run_once(config)

    assert done.returncode == 1
    assert f"Redis unavailable ({url})" in done.stderr
    assert done.stdout == ""


def test_exporter_cycles_at_start_and_serves_the_restored_snapshot_after_a_restart(
    tmp_path: Path, nsd_factory: NsdFactory, redis_server: RedisServer, silent_dns: int
) -> None:
    nsd = nsd_factory(ZONES)
    base = f"redis_url: {redis_server.url}\n"
    config = write_config(tmp_path, offline_checks(nsd.port) + base)
    port = int(config.read_text().split("listen: 127.0.0.1:")[1].split()[0])
    listed = {"host": "mta1.example.test", "ip": LISTED_IP, "rbl": "bl.test"}

    first = MtarepProcess("mtarep-exporter", config, port, tmp_path / "first")
    (tmp_path / "first").mkdir()
    try:
        first.start()
        wait_until(
            lambda: value(first.get("/metrics").text, "mtarep_rbl_listed", **listed) == 1,
            10,
            "the first cycle",
            log_tail=first.log,
        )
        response = first.get("/metrics")  # requests asks for gzip, as Prometheus does
        assert response.headers["content-encoding"] == "gzip"
        assert value(response.text, "mtarep_rbl_zone_healthy", rbl="bl.test") == 1
        health = first.get("/healthz").json()
        assert health["status"] == "ok"
        assert health["cycle"]["cycles"] >= 1
    finally:
        assert first.stop() == 0, first.log()

    # Restart against a name server that never answers: the first cycle now takes
    # about 2 x 5 s, and until it ends /metrics serves the snapshot from Redis.
    config.write_text(
        config.read_text().replace(
            f"port: {nsd.port}, timeout: 0.2s, attempts: 1",
            f"port: {silent_dns}, timeout: 5s, attempts: 2",
        )
    )
    (tmp_path / "second").mkdir()
    second = MtarepProcess("mtarep-exporter", config, port, tmp_path / "second")
    try:
        second.start()
        metrics = second.get("/metrics").text
        assert value(metrics, "mtarep_rbl_listed", **listed) == 1
        assert value(metrics, "mtarep_rbl_lookup_ok", **listed) == 1  # from the last cycle
        assert second.get("/healthz").json()["cycle"]["running"] is True
        started = time.monotonic()
    finally:
        status = second.stop()  # SIGTERM in the middle of the slow cycle
    assert status == 0, second.log()
    assert time.monotonic() - started < 3
    assert "snapshot.restored" in second.log()
