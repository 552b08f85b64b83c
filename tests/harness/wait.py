"""Bounded polling for server readiness (never for test results)."""

import time
from collections.abc import Callable

DEFAULT_TIMEOUT = 10.0
_FIRST_INTERVAL = 0.005
_MAX_INTERVAL = 0.05


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    log_tail: Callable[[], str] | None = None,
    ignore: tuple[type[Exception], ...] = (),
) -> None:
    """Poll ``predicate`` until it returns True, at most ``timeout`` seconds.

    The interval starts at 5 ms and doubles up to 50 ms. Exceptions of the types in
    ``ignore`` count as "not ready yet" (the last one is reported); any other exception
    propagates at once (for instance "the server process exited").

    Raises ``TimeoutError("<what> not ready after <timeout>s ...")`` with the last ignored
    error and, when ``log_tail`` is given, the tail of the server's log.
    """
    deadline = time.monotonic() + timeout
    interval = _FIRST_INTERVAL
    last_error: Exception | None = None
    while True:
        try:
            if predicate():
                return
        except ignore as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 2, _MAX_INTERVAL)
    message = f"{what} not ready after {timeout:g}s"
    if last_error is not None:
        message += f"; last error: {type(last_error).__name__}: {last_error}"
    if log_tail is not None:
        message += f"\n--- log tail ---\n{log_tail()}"
    raise TimeoutError(message)
