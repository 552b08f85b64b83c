"""The HELO banner check against a real (tiny) SMTP greeter, and its name matching."""

import asyncio
import socket
import time
import unicodedata

import pytest

from exporter.helo import (
    MAX_GREETING_CHARS,
    Banner,
    check_helo,
    helo_matches,
    read_greeting,
)
from exporter.remote_text import MAX_DETAIL_CHARS
from tests.harness.ports import HOST, free_port
from tests.harness.smtp_listener import SmtpListener

FQDN = "mta1.example.com"
TIMEOUT = 2.0
SHORT_TIMEOUT = 0.3


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(char).startswith("C") for char in text)


@pytest.mark.parametrize(
    ("greeting", "fqdn", "expected"),
    [
        ("220 mta1.example.com ESMTP Postfix", FQDN, True),
        ("220 MTA1.Example.COM ESMTP", FQDN, True),
        ("220 mta1.example.com. ESMTP", FQDN, True),
        ("220 mta1.example.com ESMTP", "mta1.example.com.", True),
        ("220-mta1.example.com ESMTP 220 ready", FQDN, True),
        ("220 mta1.example.com", FQDN, True),
        ("220 localhost ESMTP", FQDN, False),
        ("220 mta2.example.com ESMTP", FQDN, False),
        ("220 mta1.example.com.evil ESMTP", FQDN, False),
        ("220 ESMTP mta1.example.com", FQDN, False),
        ("220", FQDN, False),
        ("220mta1.example.com", FQDN, False),
        ("554 mta1.example.com go away", FQDN, False),
        ("220 . ESMTP", ".", False),
        ("", FQDN, False),
    ],
)
def test_helo_matches(greeting: str, fqdn: str, expected: bool) -> None:
    assert helo_matches(greeting, fqdn) is expected


def test_a_banner_is_a_greeting_or_an_error() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Banner()
    with pytest.raises(ValueError, match="exactly one"):
        Banner(greeting="220 x", error="y")


@pytest.mark.integration
@pytest.mark.anyio
class TestAgainstAListener:
    async def test_right_name_is_ok_and_quit_is_sent(self) -> None:
        async with SmtpListener(b"220 mta1.example.com ESMTP Postfix\r\n") as listener:
            ok, detail = await check_helo(HOST, FQDN, listener.port, TIMEOUT)
        assert (ok, detail) == (True, "banner names mta1.example.com")
        assert listener.quit_received

    async def test_wrong_name_is_named_with_the_expected_one(self) -> None:
        async with SmtpListener(b"220 localhost ESMTP\r\n") as listener:
            ok, detail = await check_helo(HOST, FQDN, listener.port, TIMEOUT)
        assert (ok, detail) == (False, "banner names localhost, expected mta1.example.com")
        assert listener.quit_received

    async def test_multi_line_greeting(self) -> None:
        greeting = b"220-mta1.example.com ESMTP\r\n220-no UCE\r\n220 ready\r\n"
        async with SmtpListener(greeting) as listener:
            banner = await read_greeting(HOST, listener.port, TIMEOUT)
            ok, detail = await check_helo(HOST, FQDN, listener.port, TIMEOUT)
        assert banner == Banner(greeting="220-mta1.example.com ESMTP 220-no UCE 220 ready")
        assert (ok, detail) == (True, "banner names mta1.example.com")

    async def test_silence_times_out_within_the_timeout(self) -> None:
        async with SmtpListener(None) as listener:
            started = time.monotonic()
            ok, detail = await check_helo(HOST, FQDN, listener.port, SHORT_TIMEOUT)
            elapsed = time.monotonic() - started
            await asyncio.wait_for(listener.disconnected.wait(), TIMEOUT)
        assert (ok, detail) == (
            None,
            "no SMTP greeting: timed out after 0.3s waiting for the greeting",
        )
        assert SHORT_TIMEOUT <= elapsed < SHORT_TIMEOUT + 1.0
        assert not listener.quit_received

    async def test_connection_refused(self) -> None:
        ok, detail = await check_helo(HOST, FQDN, free_port(), TIMEOUT)
        assert (ok, detail) == (None, "no SMTP greeting: connection refused")

    async def test_closed_at_once(self) -> None:
        async with SmtpListener(None, hang_up=True) as listener:
            ok, detail = await check_helo(HOST, FQDN, listener.port, TIMEOUT)
        assert (ok, detail) == (None, "no SMTP greeting: connection closed before a greeting")

    async def test_closed_in_the_middle_of_the_greeting(self) -> None:
        async with SmtpListener(b"220-mta1.example.com\r\n220 rea", hang_up=True) as listener:
            ok, detail = await check_helo(HOST, FQDN, listener.port, TIMEOUT)
        assert (ok, detail) == (
            None,
            "no SMTP greeting: connection closed in the middle of the greeting",
        )

    async def test_a_rejecting_greeting_is_not_220(self) -> None:
        greeting = b"554 5.7.1 mta1.example.com: no SMTP service here\r\n"
        async with SmtpListener(greeting) as listener:
            ok, detail = await check_helo(HOST, FQDN, listener.port, TIMEOUT)
        assert (ok, detail) == (
            None,
            "no SMTP greeting: greeting is not 220: "
            "554 5.7.1 mta1.example.com: no SMTP service here",
        )
        assert listener.quit_received

    async def test_binary_garbage_is_not_220_and_is_cleaned(self) -> None:
        async with SmtpListener(b"\x00\xff\xfe\x1b[2J\x07\x9b\r\n") as listener:
            ok, detail = await check_helo(HOST, FQDN, listener.port, TIMEOUT)
        assert not ok
        assert detail == "no SMTP greeting: greeting is not 220: \ufffd\ufffd[2J\ufffd"
        assert not _has_control_characters(detail)

    async def test_a_hostile_greeting_is_cleaned_and_bounded(self) -> None:
        name = b"\x1b]0;pwned\x07evil\xe2\x80\xaeexample" + b"x" * 10_000
        async with SmtpListener(b"220 " + name + b" ESMTP\r\n") as listener:
            banner = await read_greeting(HOST, listener.port, TIMEOUT)
            ok, detail = await check_helo(HOST, FQDN, listener.port, TIMEOUT)
        assert banner.greeting is not None
        assert banner.greeting.startswith("220 \x1b]0;pwned")
        assert len(banner.greeting) == MAX_GREETING_CHARS
        assert not ok
        assert detail.startswith("banner names ]0;pwnedevilexamplexxx")
        assert detail.endswith("x…, expected mta1.example.com")
        assert len(detail) == len("banner names , expected mta1.example.com") + MAX_DETAIL_CHARS
        assert not _has_control_characters(detail)
        assert listener.quit_received

    async def test_ipv6_loopback(self) -> None:
        if not _ipv6_loopback():
            pytest.skip("::1 cannot be bound on this machine")
        async with SmtpListener(host="::1") as listener:
            ok, detail = await check_helo("::1", FQDN, listener.port, TIMEOUT)
        assert (ok, detail) == (True, "banner names mta1.example.com")
        assert listener.quit_received

    async def test_cancellation_propagates_and_closes_the_connection(self) -> None:
        async with SmtpListener(None) as listener:
            task = asyncio.create_task(read_greeting(HOST, listener.port, 30.0))
            await asyncio.wait_for(listener.connected.wait(), TIMEOUT)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(listener.disconnected.wait(), TIMEOUT)
