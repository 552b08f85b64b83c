"""One process using the embedded Redis, driven by ``test_embedded_redis`` over pipes.

Usage: ``python embedded_peer.py DATA_DIR [WATCH_PERIOD]``. It opens the embedded Redis
under DATA_DIR (its watchdog checking every WATCH_PERIOD seconds, default mtarep's) and
prints one JSON line ``{"ready": true, ...}``; then for every JSON request line on stdin
(``{"op": ..., ...}``) it prints one JSON reply line. ``close`` (or the end of stdin)
closes the connection and exits. Warnings are logged to stderr.
"""

import asyncio
import dataclasses
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from exporter.redis_connection import RedisConnection, open_redis
from exporter.store import IssueKey, Store, StoreError


def reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def handle(store: Store, request: dict[str, Any]) -> Any:
    op = request["op"]
    key = IssueKey(*request["key"]) if "key" in request else None
    if op == "open_issue" and key is not None:
        return await store.open_issue(key, request["host"], request["detail"])
    if op == "issue" and key is not None:
        record = await store.issue(key)
        return None if record is None else dataclasses.asdict(record)
    if op == "acknowledge" and key is not None:
        return dataclasses.asdict(await store.acknowledge(key, request["user"], request["note"]))
    if op == "ack" and key is not None:
        ack = await store.ack(key)
        return None if ack is None else dataclasses.asdict(ack)
    raise ValueError(f"unknown request {request!r}")


async def serve(connection: RedisConnection) -> None:
    store = Store(connection.client, description=connection.description)
    info = await connection.client.info("server")
    reply(
        {
            "ready": True,
            "embedded": connection.embedded,
            "description": connection.description,
            "server_pid": int(info["process_id"]),
            # Which /tmp this process sees: a private one has its own device.
            "tmp_device": os.stat("/tmp").st_dev,
            "tempdir": tempfile.gettempdir(),
        }
    )
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        request = json.loads(line)
        if request["op"] == "close":
            return
        try:
            result = await handle(store, request)
        except StoreError as exc:
            reply({"error": type(exc).__name__, "message": str(exc)})
        else:
            reply({"result": result})


async def main(data_dir: Path, watch_period: float | None) -> None:
    if watch_period is None:
        connection = await open_redis(None, data_dir)
    else:
        connection = await open_redis(None, data_dir, watch_period=watch_period)
    try:
        await serve(connection)
    finally:
        await connection.close()
    reply({"closed": True})


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    asyncio.run(main(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else None))
