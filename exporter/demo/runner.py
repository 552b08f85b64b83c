"""``mtarep-exporter demo``: the whole of mtarep on one machine, in one terminal.

It starts, all on 127.0.0.1 and in this process:

- the embedded Redis, with its data under the demo directory (``./mtarep-demo``),
  so a second run goes on with the data, acknowledgements included, of the first;
- the demo world's authoritative DNS server (:mod:`exporter.demo.dns_server`), its
  SNDS and reputation services (:mod:`exporter.demo.endpoints`), on free ports;
- three Postfix logs that grow while it runs (:class:`~exporter.demo.world.MailMaker`),
  rotated when they pass 2 MB, and today's mail flow counters, incremented as
  other tools would;
- the exporter (a cycle every 30 s) and the ackservice, with a login ``demo`` whose
  password is made once and printed.

The demo's ``mtarep.yml`` is written again at every start (the ports change); the
login, the logs and Redis stay. Ctrl-C (or SIGTERM) stops every part. Nothing is
sent off this machine: the demo MTAs' addresses are documentation addresses that
only the demo's own DNS server is asked about, and the HELO check is off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import secrets
import signal
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bcrypt
import redis.asyncio
import uvicorn
import yaml

from ackservice.app import create_app
from exporter.config import ConfigError, LoadedConfig, load_config
from exporter.config_types import ListenAddress, parse_listen
from exporter.demo import world
from exporter.demo.dns_server import DemoDnsServer
from exporter.demo.endpoints import endpoints_app
from exporter.logs import configure_logging, event
from exporter.mailflow import mailflow_day
from exporter.redis_connection import RedisConnection, open_redis
from exporter.service import build_app
from exporter.store import Store, StoreError, mailflow_key
from exporter.web import QuietServer

__all__ = ["main"]

_LOG = logging.getLogger("mtarep.demo")

USER = "demo"
MAILFLOW_TIMEZONE = "UTC"
"""The demo's "today", for the counters it writes and the exporter reads alike."""
INTERVAL = "30s"
FEED_EVERY = 3.0
"""Seconds between two additions to the logs and the counters."""
ROTATE_AT = 2_000_000
"""A demo log is rotated (renamed to ``.1``) when it grows past this many bytes."""
NOTICE = (
    "DEMO: a made-up world (demo.mtarep.test, documentation IPs) served by "
    "mtarep-exporter demo. Nothing here is a real MTA."
)


def _listen(text: str) -> ListenAddress:
    try:
        return parse_listen(text)
    except Exception as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtarep-exporter demo",
        description="Run mtarep on a made-up world, all on this machine (127.0.0.1).",
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("MTAREP_DEMO_DIR", "mtarep-demo"),
        help="where the demo keeps Redis, logs and its config [./mtarep-demo]",
    )
    parser.add_argument("--listen", type=_listen, default=_listen("127.0.0.1:9725"))
    parser.add_argument("--ackservice-listen", type=_listen, default=_listen("127.0.0.1:9726"))
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def _password(data_dir: Path) -> str:
    """The demo login's password: made at the first run, kept in the demo directory."""
    path = data_dir / "demo-password"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    password = secrets.token_urlsafe(12)
    path.touch(mode=0o600)
    path.write_text(password + "\n", encoding="utf-8")
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    htpasswd = data_dir / "htpasswd"
    htpasswd.touch(mode=0o600)
    htpasswd.write_text(f"{USER}:{hashed}\n", encoding="utf-8")
    return password


def _config(
    data_dir: Path, dns_port: int, http_port: int, listen: ListenAddress, ack: ListenAddress
) -> dict[str, object]:
    http = f"http://127.0.0.1:{http_port}"
    return {
        "mta_map": {
            host.alias: {
                "fqdn": host.fqdn,
                "maillog_path": str(data_dir / "logs" / f"{host.alias}.log"),
            }
            for host in world.HOSTS
        },
        "rbls": [
            {
                "zone": world.LISTING_ZONE,
                "removal_link": f"https://{world.LISTING_ZONE}/remove?ip={{ip}}",
                "codes": {"127.0.0.2": "demo: spam source"},
            },
            world.REFUSING_ZONE,
            world.DEAD_ZONE,
        ],
        "data_dir": str(data_dir),
        "http_auth_file": str(data_dir / "htpasswd"),
        "interval": INTERVAL,
        "listen": str(listen),
        "dns": {"nameservers": ["127.0.0.1"], "port": dns_port, "timeout": "1s", "attempts": 2},
        "helo_check": {"enabled": False},
        "snds": {"key": world.SNDS_KEY, "url": f"{http}/snds"},
        "reputation": [
            {
                "name": "brightmail",
                "url": f"{http}/reputation/{{ip}}.json",
                "field": "entityRecord.rep",
            }
        ],
        "graph_domains": list(world.GRAPH_DOMAINS),
        "mailflow": {"prefixes": [world.MAILFLOW_PREFIX], "timezone": MAILFLOW_TIMEZONE},
        "maillog": {"source": "local", "timezone": "UTC", "initial_window": "5MB"},
        "removal_links": {
            "gmail": "https://support.google.com/mail/contact/bulk_send_new",
            "yahoo": "https://senders.yahooinc.com/contact",
            "microsoft": "https://olcsupport.office.com/",
        },
        "assistance_links": {"gmail": "https://wiki.example.com/runbooks/gmail-blocks"},
        "ackservice": {"listen": str(ack), "url": f"http://{ack}", "notice": NOTICE},
    }


class _Feeder:
    """Grows the demo logs and the mail flow counters, as MTAs and other tools would."""

    def __init__(self, data_dir: Path, client: redis.asyncio.Redis) -> None:
        self.logs = data_dir / "logs"
        self.client = client
        self.maker = world.MailMaker()
        self.random = random.Random()  # noqa: S311 - made-up counts, not a secret
        self.logs.mkdir(parents=True, exist_ok=True)

    def write(self, at: datetime, messages: int = 2) -> None:
        for host in world.HOSTS:
            path = self.logs / f"{host.alias}.log"
            if path.exists() and path.stat().st_size > ROTATE_AT:
                path.replace(path.with_name(path.name + ".1"))  # the reader finishes it first
            with path.open("a", encoding="utf-8") as log:
                log.writelines(line + "\n" for line in self.maker.lines(host, at, messages))

    def backlog(self, now: datetime) -> None:
        """Ten minutes of mail before the first cycle, for logs that are new."""
        if any((self.logs / f"{h.alias}.log").exists() for h in world.HOSTS):
            return
        for step in range(20, 0, -1):
            self.write(now - timedelta(seconds=30 * step), messages=3)

    async def count(self, now: datetime) -> None:
        day = mailflow_day(now.timestamp(), MAILFLOW_TIMEZONE)
        rng = self.random

        def key(status: str) -> str:
            return mailflow_key(world.MAILFLOW_PREFIX, day, status)

        async with self.client.pipeline(transaction=False) as pipe:
            for domain in (*world.GRAPH_DOMAINS, "example.org"):
                pipe.hincrby(key("sent"), domain, rng.randint(5, 30))
                pipe.hincrby(key("bounced"), domain, rng.randint(0, 2))
                pipe.hincrby(key("expired"), domain, int(rng.random() < 0.1))
                pipe.hincrby(key("fbl"), domain, int(rng.random() < 0.2))
            await pipe.execute()

    async def run(self) -> None:
        while True:
            now = datetime.now(UTC)
            await asyncio.to_thread(self.write, now)
            try:
                await self.count(now)
            except redis.exceptions.RedisError as error:
                event(_LOG, "demo.counters_failed", logging.WARNING, error=str(error))
            await asyncio.sleep(FEED_EVERY)


def _bound(address: ListenAddress) -> socket.socket:
    """A listening TCP socket on ``address`` (port 0: a free one)."""
    sock = socket.socket(socket.AF_INET6 if ":" in address.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address.host, address.port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _banner(loaded: LoadedConfig, data_dir: Path, password: str) -> str:
    config = loaded.config
    page = f"http://{config.ackservice.listen}"
    exporter = f"http://{config.listen}"
    return "\n".join(
        [
            "",
            "mtarep demo: everything runs on this machine (127.0.0.1); nothing is sent anywhere.",
            f"  the page    {page}/   (user {USER}, password {password})",
            f"  metrics     {exporter}/metrics   health {exporter}/healthz",
            f"  the API     curl -u {USER}:{password} {page}/api/all",
            f"  Prometheus  scrape {config.listen} (exporter) and {config.ackservice.listen} "
            "(ackservice);",
            "              Grafana, Prometheus and Alertmanager together: docker compose up "
            "(see README)",
            f"  data        {data_dir} (Redis, the demo logs, mtarep.yml)",
            "The first cycle runs now, then every 30s; the logs and counters grow meanwhile.",
            "Ctrl-C stops it all; run it again to go on with the same data and acknowledgements.",
            "",
        ]
    )


async def run(args: argparse.Namespace) -> int:
    # Ctrl-C from the first moment on ends the demo cleanly, also while it starts.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(stop_signal, stop.set)
    try:
        return await _start(args, stop)
    finally:
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(stop_signal)


async def _start(args: argparse.Namespace, stop: asyncio.Event) -> int:
    data_dir = Path(args.data_dir).expanduser().resolve()
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    configure_logging(args.log_level)
    password = _password(data_dir)
    dns = DemoDnsServer(world.dns_zones(), world.dns_records(), world.wildcards())
    dns_port = await dns.start()
    endpoints_socket = _bound(ListenAddress("127.0.0.1", 0))
    try:
        http_port = endpoints_socket.getsockname()[1]
        config_path = data_dir / "mtarep.yml"
        document = _config(data_dir, dns_port, http_port, args.listen, args.ackservice_listen)
        config_path.write_text(
            "# Written by mtarep-exporter demo at every start: changes are overwritten.\n"
            + yaml.safe_dump(document, sort_keys=False),
            encoding="utf-8",
        )
        loaded = load_config(config_path)
        connection = await open_redis(None, loaded.config.data_dir)
    except ConfigError as error:
        dns.close()
        endpoints_socket.close()
        for problem in error.problems:
            print(f"mtarep demo cannot start: {problem.path}: {problem.message}", file=sys.stderr)
        return 1
    except (StoreError, OSError) as error:
        dns.close()
        endpoints_socket.close()
        print(f"mtarep demo cannot start: {error}", file=sys.stderr)
        return 1
    try:
        if stop.is_set():
            print("mtarep demo stopped before it started.", flush=True)
            return 0
        return await _serve(loaded, data_dir, password, connection, endpoints_socket, stop=stop)
    finally:
        dns.close()
        endpoints_socket.close()
        await connection.close()


async def _serve(
    loaded: LoadedConfig,
    data_dir: Path,
    password: str,
    connection: RedisConnection,
    endpoints_socket: socket.socket,
    *,
    stop: asyncio.Event,
) -> int:
    config = loaded.config
    store = Store(connection.client, description=connection.description)
    feeder = _Feeder(data_dir, connection.client)
    now = datetime.now(UTC)
    await asyncio.to_thread(feeder.backlog, now)
    await feeder.count(now)

    def server(app: object, address: ListenAddress | None) -> QuietServer:
        return QuietServer(
            uvicorn.Config(
                app,  # type: ignore[arg-type]
                host=address.host if address else "127.0.0.1",
                port=address.port if address else 0,
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=5,
                lifespan="on" if address else "off",
            )
        )

    servers = {
        "exporter": server(build_app(store, loaded), config.listen),
        "ackservice": server(create_app(store, config), config.ackservice.listen),
        "endpoints": server(endpoints_app(), None),
    }
    failed: list[str] = []

    async def serve(name: str, instance: QuietServer) -> None:
        try:
            if name == "endpoints":
                await instance.serve(sockets=[endpoints_socket])
            else:
                await instance.serve()
        except SystemExit:  # uvicorn could not listen (it logged why)
            failed.append(name)
        stop.set()

    async with asyncio.TaskGroup() as group:
        for name, instance in servers.items():
            group.create_task(serve(name, instance))
        feeding = group.create_task(feeder.run())
        await _started(servers, stop)
        if not stop.is_set():
            print(_banner(loaded, data_dir, password), flush=True)
        await stop.wait()
        feeding.cancel()
        for instance in servers.values():
            instance.should_exit = True
    if failed:
        where = {"exporter": config.listen, "ackservice": config.ackservice.listen}
        for name in failed:
            print(
                f"mtarep demo: the {name} cannot listen on {where.get(name)}: is something "
                "else there? (--listen / --ackservice-listen)",
                file=sys.stderr,
            )
        return 1
    print("mtarep demo stopped; run it again to go on.", flush=True)
    return 0


async def _started(servers: dict[str, QuietServer], stop: asyncio.Event) -> None:
    """Wait until every server listens (or one gave up)."""
    while not stop.is_set() and not all(s.started for s in servers.values()):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


def main(argv: Sequence[str] | None = None) -> int:
    args = argument_parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:  # Ctrl-C before the demo's own handler was in place
        print("mtarep demo stopped before it started.", file=sys.stderr)
        return 130
