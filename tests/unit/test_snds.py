"""Reading the two SNDS feeds (shared/REFERENCE.md, "Microsoft SNDS"): no I/O."""

from datetime import UTC, datetime

import pytest

from exporter.snds import (
    SndsError,
    blocked_range_of,
    data_day,
    parse_data,
    parse_ip_status,
)

# The example row of the reference, as SNDS writes it (no header, CRLF, 14 fields).
REFERENCE_ROW = (
    "1.1.1.0,12/31/2019 8:00 AM,9/29/2020 9:00 PM,14129,14129,13025,GREEN,< 0.1%,"
    "9/29/2020 8:07 AM,9/29/2020 12:03 PM,41,,,"
)


def row(  # noqa: PLR0917 - one keyword per SNDS field reads best here
    ip: str = "192.0.2.10",
    color: str = "GREEN",
    rate: str = "< 0.1%",
    traps: str = "0",
    recipients: str = "1000",
    start: str = "11/30/2026 12:00 AM",
    end: str = "11/30/2026 11:59 PM",
    trap_start: str = "",
    trap_end: str = "",
    helo: str = "mta1.example.com",
    mail_from: str = "bounce@example.com",
    comments: str = "",
) -> str:
    return ",".join(
        [
            ip,
            start,
            end,
            recipients,
            recipients,
            recipients,
            color,
            rate,
            trap_start,
            trap_end,
            traps,
            helo,
            mail_from,
            comments,
        ]
    )


def utc(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()


def test_the_reference_row_reads_field_by_field() -> None:
    feed = parse_data(REFERENCE_ROW + "\r\n")
    data = feed.rows["1.1.1.0"]
    assert data.activity_start == utc("2019-12-31 08:00")
    assert data.activity_end == utc("2020-09-29 21:00")
    assert (data.rcpt_commands, data.data_commands, data.message_recipients) == (
        14129,
        14129,
        13025,
    )
    assert data.color == "green"
    assert data.complaint_rate == pytest.approx(0.001)
    assert data.complaint_rate_text == "< 0.1%"
    assert data.trap_start == utc("2020-09-29 08:07")
    assert data.trap_end == utc("2020-09-29 12:03")
    assert data.trap_hits == 41
    assert (data.sample_helo, data.sample_mail_from, data.comments) == ("", "", "")
    assert feed.skipped == 0


@pytest.mark.parametrize(
    ("text", "ratio"),
    [("< 0.1%", 0.001), ("0.5%", 0.005), ("12.5%", 0.125), ("> 10%", 0.10), ("", None)],
)
def test_complaint_rates_are_ratios(text: str, ratio: float | None) -> None:
    data = parse_data(row(rate=text)).rows["192.0.2.10"]
    assert data.complaint_rate == (pytest.approx(ratio) if ratio is not None else None)
    assert data.complaint_rate_text == text


def test_an_unknown_complaint_rate_form_keeps_the_row_and_its_text() -> None:
    data = parse_data(row(rate="n/a")).rows["192.0.2.10"]
    assert (data.complaint_rate, data.complaint_rate_text) == (None, "n/a")


@pytest.mark.parametrize("color", ["GREEN", "YELLOW", "RED", "Red"])
def test_colours(color: str) -> None:
    assert parse_data(row(color=color)).rows["192.0.2.10"].color == color.lower()


def test_rows_of_one_ip_are_summed_worst_colour_highest_rate() -> None:
    text = "\r\n".join(
        [
            row(recipients="100", traps="2", color="GREEN", rate="< 0.1%"),
            row(
                recipients="50",
                traps="9",
                color="YELLOW",
                rate="1.5%",
                start="11/30/2026 1:00 PM",
                end="11/30/2026 2:00 PM",
            ),
        ]
    )
    data = parse_data(text).rows["192.0.2.10"]
    assert (data.message_recipients, data.trap_hits) == (150, 11)
    assert (data.color, data.complaint_rate, data.complaint_rate_text) == ("yellow", 0.015, "1.5%")
    assert data.activity_start == utc("2026-11-30 00:00")
    assert data.activity_end == utc("2026-11-30 23:59")


def test_malformed_and_short_rows_are_skipped_and_counted() -> None:
    text = "\r\n".join(
        [
            row(ip="192.0.2.10"),
            "192.0.2.11,11/30/2026 12:00 AM,short",
            row(ip="not-an-ip"),
            row(ip="192.0.2.12", color="PURPLE"),
            row(ip="192.0.2.13", start="yesterday"),
            row(ip="192.0.2.14", traps="-3"),
            row(ip="192.0.2.15", recipients="many"),
            "",
            row(ip="2001:db8::25", color="RED"),
        ]
    )
    feed = parse_data(text)
    assert set(feed.rows) == {"192.0.2.10", "2001:db8::25"}
    assert feed.skipped == 6
    assert feed.problems[0] == "line 2: 3 fields, expected 14"
    assert len(feed.problems) == 5  # a summary, not every line


def test_a_comma_in_the_comments_stays_in_the_comments() -> None:
    data = parse_data(row(comments="") + "listed, see the portal").rows["192.0.2.10"]
    assert data.comments == "listed, see the portal"


def test_hostile_text_in_samples_is_made_printable() -> None:
    data = parse_data(row(helo="evil\x1b[31m\u202ehost")).rows["192.0.2.10"]
    assert data.sample_helo == "evil[31mhost"


@pytest.mark.parametrize(
    "body",
    [
        "<!DOCTYPE html><html><body>Sign in</body></html>",
        "  \r\n<html><head><title>Error</title></head></html>",
    ],
)
def test_an_html_page_is_refused_as_a_whole(body: str) -> None:
    with pytest.raises(SndsError, match="HTML page"):
        parse_data(body)
    with pytest.raises(SndsError, match="HTML page"):
        parse_ip_status(body)


def test_an_empty_data_feed_is_refused() -> None:
    with pytest.raises(SndsError, match="empty"):
        parse_data("\r\n")


def test_a_data_feed_with_no_good_row_is_refused() -> None:
    with pytest.raises(SndsError, match="no row that parses"):
        parse_data("garbage\r\nmore,garbage\r\n")


def test_the_data_day_is_the_day_the_activity_ends() -> None:
    feed = parse_data(row(end="12/1/2026 12:00 AM", start="11/30/2026 12:00 AM"))
    assert data_day(feed) == "2026-11-30"  # a period ending at midnight is the day before
    feed = parse_data(row(end="11/30/2026 9:00 PM"))
    assert data_day(feed) == "2026-11-30"


def test_ip_status_ranges_and_an_empty_body() -> None:
    status = parse_ip_status(
        "192.0.2.0,192.0.2.15,Yes,Blocked due to user complaints or other evidence of spamming\r\n"
        "198.51.100.7,198.51.100.7,Yes,Blocked, see the junk mail reporting program\r\n"
        "2001:db8::,2001:db8::ff,Yes,IPv6 range\r\n"
        "203.0.113.1,203.0.113.9,No,not blocked\r\n"
        "192.0.2.20,192.0.2.10,Yes,backwards\r\n"
        "192.0.2.1,2001:db8::1,Yes,mixed families\r\n"
        "short\r\n"
    )
    assert [str(r) for r in status.ranges] == [
        "192.0.2.0-192.0.2.15",
        "198.51.100.7-198.51.100.7",
        "2001:db8::-2001:db8::ff",
    ]
    assert status.ranges[1].reason == "Blocked, see the junk mail reporting program"
    assert status.skipped == 3
    assert parse_ip_status("").ranges == []

    ranges = status.ranges
    found = blocked_range_of("192.0.2.10", ranges)
    assert found is not None
    assert found.reason.startswith("Blocked due to user complaints")
    assert blocked_range_of("192.0.2.16", ranges) is None
    assert blocked_range_of("2001:db8::25", ranges) is ranges[2]
    assert blocked_range_of("203.0.113.5", ranges) is None  # "No": not blocked
    assert blocked_range_of("::ffff:192.0.2.10", ranges) is None  # another family
