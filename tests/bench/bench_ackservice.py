"""How fast does the ackservice answer for a large fleet? ``wrk`` against ``/`` and ``/api/all``.

Run from the repository root with the virtualenv active::

    python -m tests.bench.bench_ackservice                 # 1,000 hosts, 10 s per route
    python -m tests.bench.bench_ackservice --hosts 200 --seconds 5

A real ``redis-server`` and the real ``mtarep-ackservice`` process (one uvicorn
worker, a bcrypt login as the benchmark's user) run on free loopback ports in a
temporary directory and are stopped at the end. The fleet is written through the
exporter's models (tests/harness/ackservice_data.py): one IP per host, every tenth IP
with an issue of every kind, every twentieth blocked by gmail. Before measuring, the
answers are checked (every host in ``/api/all``, every row on ``/``), so it cannot
be fast by being wrong. ``wrk`` uses 2 threads and 4 connections, with a 30 s timeout
so that slow answers are counted, not dropped. Not part of the pytest suite.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import redis.asyncio
import requests

from exporter.config import Config
from exporter.store import Store
from tests.harness import ackservice_data as data
from tests.harness.ackservice_app import bcrypt_line, write_htpasswd
from tests.harness.binaries import find_binary
from tests.harness.mtarep_process import MtarepProcess
from tests.harness.ports import free_port
from tests.harness.redis_server import RedisServer

USER, PASSWORD = "bench", "bench-password"


async def _write_fleet(url: str, hosts: int) -> int:
    snapshot, document = data.fleet_snapshot(hosts)
    config = Config.model_validate(document)
    client = redis.asyncio.from_url(url, decode_responses=True)
    try:
        issues = await data.write_snapshot(Store(client), snapshot, config)
    finally:
        await client.aclose()
    return len(issues)


def _wrk(url: str, seconds: int, header: str) -> dict[str, str]:
    output = subprocess.run(
        ["wrk", "-t2", "-c4", f"-d{seconds}s", "--timeout", "30s", "--latency", "-H", header, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    found = {
        "requests/s": re.search(r"Requests/sec:\s+([\d.]+)", output),
        "p50": re.search(r"\s50%\s+(\S+)", output),
        "p99": re.search(r"\s99%\s+(\S+)", output),
        "errors": re.search(r"Non-2xx or 3xx responses: (\d+)", output),
    }
    return {name: match.group(1) if match else "0" for name, match in found.items()}


def run(hosts: int, seconds: int) -> str:
    with tempfile.TemporaryDirectory(prefix="mtarep-bench-") as tmp:
        base = Path(tmp)
        with RedisServer(base / "redis") as redis_server:
            issues = asyncio.run(_write_fleet(redis_server.url, hosts))
            htpasswd = write_htpasswd(base / "htpasswd", [bcrypt_line(USER, PASSWORD)])
            port = free_port()
            _, document = data.fleet_snapshot(hosts)
            document.update(
                redis_url=redis_server.url,
                http_auth_file=str(htpasswd),
                listen=f"127.0.0.1:{free_port()}",
                ackservice={"listen": f"127.0.0.1:{port}"},
            )
            config_path = base / "mtarep.yml"
            config_path.write_text(data.config_yaml(document))
            with MtarepProcess("mtarep-ackservice", config_path, port, base) as service:
                auth = (USER, PASSWORD)
                every = requests.get(f"{service.base_url}/api/all", auth=auth, timeout=60)
                page = requests.get(f"{service.base_url}/", auth=auth, timeout=60)
                if len(every.json()["success"]) != hosts or page.text.count("<tr id=") != hosts:
                    raise SystemExit("BENCHMARK INVALID: not every host is answered")
                token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                header = f"Authorization: Basic {token}"
                results = {
                    route: _wrk(f"{service.base_url}{route}", seconds, header)
                    for route in (
                        "/",
                        "/api/all",
                        f"/api/{data.fleet_snapshot(1)[0].targets[0].host}",
                    )
                }
                sizes = {"/": len(page.content), "/api/all": len(every.content)}
    lines = [
        f"ackservice, {hosts} hosts x 1 IP, {issues} open issues; "
        f"wrk -t2 -c4 --timeout 30s -d{seconds}s",
        f"python {platform.python_version()}, {platform.machine()}",
    ]
    for route, figures in results.items():
        size = f", {sizes[route] / 1e6:.2f} MB per answer" if route in sizes else ""
        lines.append(
            f"{route}: {figures['requests/s']} requests/s, p50 {figures['p50']}, "
            f"p99 {figures['p99']}, non-2xx {figures['errors']}{size}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args(argv)
    if find_binary("wrk") is None or find_binary("redis-server") is None:
        print("needs wrk and redis-server: apt-get install wrk redis-server", file=sys.stderr)
        return 1
    print(run(args.hosts, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
