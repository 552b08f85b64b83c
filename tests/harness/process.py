"""Process-management core shared by the real servers of the test harness.

A :class:`ManagedProcess` starts one foreground server with its stdout and stderr
appended to a log file, waits for readiness while checking that the process is still
alive, and stops it: SIGTERM, then SIGKILL after a bounded wait, then the same for
every descendant it had (sshd's per-connection children, nsd's workers), so nothing
outlives the test. Every failure message carries the tail of the server's logs.
"""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self

import psutil

from tests.harness.ports import HOST
from tests.harness.wait import DEFAULT_TIMEOUT, wait_until

STOP_TIMEOUT = 5.0
LOG_TAIL_LINES = 40


class ServerExitedError(RuntimeError):
    """The server process exited while it was expected to run."""


class CommandFailedError(RuntimeError):
    """A helper command (config check, key generation) failed."""


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``path`` (or a note that it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def run_checked(argv: Sequence[str], what: str, *, timeout: float = 30.0) -> str:
    """Run a short helper command; raise :class:`CommandFailedError` with its output."""
    result = subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise CommandFailedError(
            f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n{output}"
        )
    return output


def _signal_all(procs: Sequence[psutil.Process], sig: int) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)


class ManagedProcess:
    """One foreground server process with its log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        extra_logs: Sequence[Path] = (),
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.extra_logs = list(extra_logs)
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        parts = [f"== {self.log_path} ==\n{tail(self.log_path, lines)}"]
        parts.extend(f"== {path} ==\n{tail(path, lines)}" for path in self.extra_logs)
        return "\n".join(parts)

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self._reap()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- mtarep test harness: starting {' '.join(self.argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,  # own process group: Ctrl-C goes to pytest only
            )

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` for the process to exit on its own; its status, or None."""
        if self._popen is None:
            return None
        try:
            return self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def check_alive(self) -> None:
        """Raise :class:`ServerExitedError` (with the log tail) when the process has exited."""
        if self._popen is None:
            raise ServerExitedError(f"{self.name} was never started")
        code = self._popen.poll()
        if code is not None:
            raise ServerExitedError(
                f"{self.name} exited with status {code} while starting\n"
                f"--- log tail ---\n{self.log_tail()}"
            )

    def wait_ready(
        self,
        probe: Callable[[], bool],
        what: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ignore: tuple[type[Exception], ...] = (OSError,),
    ) -> None:
        """Poll ``probe`` until True; fail at once if the process exits meanwhile."""

        def ready() -> bool:
            self.check_alive()
            return probe()

        wait_until(ready, timeout, what, log_tail=self.log_tail, ignore=ignore)

    def _descendants(self) -> list[psutil.Process]:
        if self._popen is None:
            return []
        try:
            children: list[psutil.Process] = psutil.Process(self._popen.pid).children(
                recursive=True
            )
        except psutil.NoSuchProcess:
            return []
        return children

    def _reap(self) -> None:
        if self._popen is not None and self._popen.poll() is not None:
            self._popen = None

    def stop(self, timeout: float = STOP_TIMEOUT, sig: int = signal.SIGTERM) -> int | None:
        """``sig`` (SIGTERM), then SIGKILL after ``timeout``; the same for the descendants.

        Returns the exit status (negative: killed by that signal), None when not running.
        Idempotent.
        """
        return self._terminate(sig, timeout)

    def kill(self) -> None:
        """SIGKILL the process and its descendants at once (a crash, not a shutdown)."""
        self._terminate(signal.SIGKILL, STOP_TIMEOUT)

    def _terminate(self, sig: int, timeout: float) -> int | None:
        popen = self._popen
        if popen is None:
            return None
        descendants = self._descendants()
        try:
            unreaped = popen.returncode is None  # its pid (and group id) is still ours
            if unreaped and not _exited(popen.pid, 0):
                popen.send_signal(sig)
                if not _exited(popen.pid, timeout):
                    popen.kill()
                    _exited(popen.pid, timeout)
            leftovers = [proc for proc in descendants if _alive(proc)]
            _signal_all(leftovers, sig)
            alive = _wait_gone(leftovers, timeout)
            _signal_all(alive, signal.SIGKILL)
            _wait_gone(alive, timeout)
            if unreaped:
                # The leader is not reaped yet (a zombie), so its pid cannot have been
                # reused: killing its process group safely ends anything it left behind.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(popen.pid, signal.SIGKILL)
        finally:
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:  # pragma: no cover - unkillable process
                popen.kill()
                popen.wait(timeout=timeout)
            self._popen = None
        return popen.returncode


class LoopbackServer:
    """What every harness server shares: one :class:`ManagedProcess` on ``HOST:port``.

    Subclasses set ``_process`` and ``_port`` and start with :meth:`_launch`.
    """

    _process: ManagedProcess
    _port: int

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._port

    @property
    def running(self) -> bool:
        return self._process.running

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _launch(
        self,
        probe: Callable[[], bool],
        what: str,
        timeout: float,
        ignore: tuple[type[Exception], ...] = (OSError,),
    ) -> None:
        """Start the process and wait until ``probe`` says it serves; stop it on failure."""
        self._process.start()
        try:
            self._process.wait_ready(probe, what, timeout=timeout, ignore=ignore)
        except BaseException:
            self._process.stop()
            raise

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """``sig`` (SIGKILL after a bounded wait), also to its children; the exit status."""
        return self._process.stop(sig=sig)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return self._process.log_tail(lines)


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a zombie is dead; only its parent or init reaps it)."""
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _wait_gone(procs: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until none of ``procs`` is alive; return those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [proc for proc in procs if _alive(proc)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.005)


def _exited(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` (our child) has exited, without reaping it; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
