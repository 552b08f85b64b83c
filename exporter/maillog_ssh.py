"""Run the maillog reader on an MTA over SSH (paramiko), with host keys checked.

Host keys must be in ``maillog.known_hosts`` (default ``~/.ssh/known_hosts``; a
non-22 port is written ``[host]:port``): an unknown host key or one that changed is
refused with a clear error, there is no "accept anything" mode. Authentication uses
``ssh_key`` when it is set (and nothing else), otherwise the agent and the default
keys of the user running mtarep. Each read is one connection and one ``exec``;
paramiko blocks, so reads run in a thread pool of ``maillog.concurrency`` threads;
a read that is cancelled (the caller's timeout) has its connection closed under it,
and every socket operation has ``maillog.timeout`` too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import getpass
import threading
from dataclasses import dataclass
from pathlib import Path

import paramiko

from exporter.config import Host
from exporter.maillog_reader import LogRead, ReadFailed, parse_output, remote_command

__all__ = ["SshReader", "SshSettings"]

CONNECT_TIMEOUT = 10.0
"""Seconds to connect, get the banner and log in (the read itself gets maillog.timeout)."""
_MAX_OUTPUT = 512 * 1024 * 1024
"""More output than this from one read means something is wrong: refuse it."""


@dataclass(frozen=True)
class SshSettings:
    known_hosts: Path
    key: Path | None
    timeout: float
    concurrency: int


def _where(host: Host) -> str:
    return host.ssh_host if host.ssh_port == 22 else f"[{host.ssh_host}]:{host.ssh_port}"


class _Connection:
    """One SSH connection that another thread may close (the timeout)."""

    def __init__(self) -> None:
        self.client = paramiko.SSHClient()
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()
        self.client.close()


class SshReader:
    def __init__(self, settings: SshSettings) -> None:
        self.settings = settings
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.concurrency, thread_name_prefix="mtarep-ssh"
        )

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def read(self, host: Host, path: str, last_id: str, offset: int, budget: int) -> LogRead:
        """The reader's result for ``host``; :class:`ReadFailed` with the reason."""
        connection = _Connection()
        loop = asyncio.get_running_loop()
        command = remote_command(path, last_id, offset, budget)
        try:
            output = await loop.run_in_executor(self._threads, self._run, connection, host, command)
        except asyncio.CancelledError:  # the caller's timeout: unblock the thread
            connection.close()
            raise
        return parse_output(output)

    def _run(self, connection: _Connection, host: Host, command: str) -> bytes:
        where = _where(host)
        settings = self.settings
        client = connection.client
        try:
            try:
                client.load_host_keys(str(settings.known_hosts))
            except OSError as error:
                raise ReadFailed(
                    f"cannot read known_hosts {settings.known_hosts}: {error.strerror or error}"
                ) from None
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            client.connect(
                host.ssh_host,
                port=host.ssh_port,
                username=host.ssh_user or getpass.getuser(),
                key_filename=str(settings.key) if settings.key else None,
                look_for_keys=settings.key is None,
                allow_agent=settings.key is None,
                timeout=min(CONNECT_TIMEOUT, settings.timeout),
                banner_timeout=min(CONNECT_TIMEOUT, settings.timeout),
                auth_timeout=min(CONNECT_TIMEOUT, settings.timeout),
            )
            if connection.closed.is_set():  # cancelled while connecting: do not run it
                raise ReadFailed(f"{where}: closed after the timeout")
            _stdin, stdout, stderr = client.exec_command(command, timeout=settings.timeout)
            _stdin.close()
            output = stdout.read(_MAX_OUTPUT + 1)
            if len(output) > _MAX_OUTPUT:
                raise ReadFailed(f"{where}: the reader sent more than {_MAX_OUTPUT} bytes")
            status = stdout.channel.recv_exit_status()
            if status != 0:
                message = stderr.read(2000).decode(errors="replace").strip()
                last = message.splitlines()[-1][:200] if message else "no message"
                raise ReadFailed(f"{where}: the reader exited with {status}: {last}")
            return output
        except ReadFailed:
            raise
        except paramiko.BadHostKeyException:
            raise ReadFailed(
                f"{where}: its host key does not match {settings.known_hosts} "
                "(changed, or someone in between): refused"
            ) from None
        except paramiko.AuthenticationException:
            user = host.ssh_user or getpass.getuser()
            raise ReadFailed(f"{where}: authentication failed for user {user}") from None
        except paramiko.SSHException as error:
            text = str(error)
            if "not found in known_hosts" in text:
                raise ReadFailed(
                    f"{where}: its host key is not in {settings.known_hosts}: refused "
                    f"(check it, then add it: ssh-keyscan -p {host.ssh_port} {host.ssh_host})"
                ) from None
            if connection.closed.is_set():
                raise ReadFailed(f"{where}: closed after the timeout") from None
            raise ReadFailed(f"{where}: SSH failed: {text[:200]}") from None
        except TimeoutError:
            raise ReadFailed(f"{where}: timed out") from None
        except paramiko.ssh_exception.NoValidConnectionsError as error:
            reasons = {
                (e.strerror if isinstance(e, OSError) else None) or str(e)
                for e in error.errors.values()
            }
            raise ReadFailed(f"{where}: cannot connect: {', '.join(sorted(reasons))}") from None
        except OSError as error:
            if connection.closed.is_set():
                raise ReadFailed(f"{where}: closed after the timeout") from None
            raise ReadFailed(f"{where}: cannot connect: {error.strerror or error}") from None
        finally:
            client.close()
