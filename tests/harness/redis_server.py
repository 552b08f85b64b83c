"""A real ``redis-server`` on a free loopback port, with its data in a temp dir."""

from pathlib import Path

import redis

from tests.harness.binaries import require_binary
from tests.harness.ports import HOST, free_port
from tests.harness.process import LoopbackServer, ManagedProcess
from tests.harness.wait import DEFAULT_TIMEOUT


class RedisServer(LoopbackServer):
    """``redis-server`` bound to 127.0.0.1 with an append-only file in ``base_dir``.

    ``kill()`` simulates Redis going away mid-cycle (SIGKILL); ``restart()`` starts it
    again on the same port and data dir, so everything written before comes back
    (``appendfsync always``: no write acknowledged to a client is lost by a SIGKILL).
    """

    def __init__(self, base_dir: Path, port: int | None = None) -> None:
        self._binary = require_binary("redis-server", "redis-server")
        self.base_dir = base_dir
        self._port = port if port is not None else free_port()
        self._data_dir = base_dir / "data"
        self.config_path = base_dir / "redis.conf"
        self.log_path = base_dir / "redis.log"
        self._process = ManagedProcess(
            "redis-server",
            [self._binary, str(self.config_path)],
            base_dir / "redis.stdout.log",
            extra_logs=[self.log_path],
            cwd=base_dir,
        )

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self._port}/0"

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    def _write_config(self) -> None:
        self._data_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"bind {HOST}",
            f"port {self._port}",
            "protected-mode yes",
            "daemonize no",
            f'dir "{self._data_dir}"',
            f'logfile "{self.log_path}"',
            'save ""',
            "appendonly yes",
            "appendfsync always",
            "databases 16",
            "hz 100",  # SIGTERM is handled on the next cron tick: 10 ms instead of 100 ms
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def _ping(self) -> bool:
        with redis.Redis(
            host=HOST, port=self._port, socket_timeout=0.5, socket_connect_timeout=0.5
        ) as client:
            return bool(client.ping())

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Start it and wait until it answers PING (after loading its append-only file)."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._launch(
            self._ping,
            f"redis-server on {HOST}:{self._port}",
            timeout,
            ignore=(OSError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError),
        )

    def kill(self) -> None:
        """SIGKILL: Redis vanishes without a shutdown, as in a crash."""
        self._process.kill()

    def restart(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Stop if running, then start on the same port and data dir."""
        self._process.stop()
        self.start(timeout=timeout)
