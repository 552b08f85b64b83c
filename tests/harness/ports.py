"""Free loopback ports for the servers started by the test harness."""

import socket
import threading

HOST = "127.0.0.1"

_lock = threading.Lock()
_handed_out: set[int] = set()


def _tcp_and_udp_free(port: int) -> bool:
    """True when ``port`` can be bound on ``HOST`` for both TCP and UDP right now."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """Return a high port that is free on 127.0.0.1 for TCP *and* UDP (nsd needs both).

    The kernel picks the port (bind to port 0); the same port is never handed out twice
    in one test session, so two servers started back to back cannot be given the same one.
    There is an unavoidable race with unrelated programs between this check and the
    server's own bind; the servers fail loudly (with their log) if they lose it.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((HOST, 0))
            port: int = probe.getsockname()[1]
        with _lock:
            if port in _handed_out:
                continue
            if _tcp_and_udp_free(port):
                _handed_out.add(port)
                return port
    raise RuntimeError(f"no port free for both TCP and UDP on {HOST} after 100 tries")
