"""The pages: every kind of issue shown and linked, unknowns, hostile text, headers."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from ackservice.app import CONTENT_SECURITY_POLICY
from ackservice.service import issue_path
from exporter.severity import rules
from exporter.snapshot import RblState
from exporter.store import IssueKey
from tests.harness import ackservice_data as data
from tests.harness.ackservice_app import AckEnv, basic

pytestmark = pytest.mark.anyio


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text, of a page."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def row(self, row_id: str) -> dict[str, str | None]:
        return next(attrs for name, attrs in self.tags if attrs.get("id") == row_id)


def text_of(page: str) -> str:
    """The page's text, whitespace made single spaces."""
    return " ".join(" ".join(Elements(page).text).split())


@pytest.fixture
def env(tmp_path: Path) -> AckEnv:
    return AckEnv(tmp_path)


def _row_html(page: str, ip: str) -> str:
    """The HTML of the row of ``ip`` on the overview."""
    marker = 'col-ip" data-sort='
    for chunk in page.split("<tr id=")[1:]:
        if marker in chunk and f">{ip}<" in chunk:
            return chunk.split("</tr>")[0]
    raise AssertionError(f"no row for {ip}")


def test_every_kind_of_issue_is_a_link_on_the_page(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        page = client.get("/")
    assert page.status_code == 200
    links = {attrs["href"] for attrs in Elements(page.text).named("a")}
    for key in data.ISSUE_KEYS.values():
        assert issue_path(key) in links, key
    row = _row_html(page.text, data.IP)
    assert 'class="status-error"' in row
    for text in ("62", "red", "12", "blocked", "brightmail: bad", "gmail", data.ZEN, "helo"):
        assert f"{text}</a>" in row, text


def test_unknown_values_look_unknown_never_good(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        page = client.get("/").text
    ipv6 = _row_html(page, data.IP6)
    assert 'class="status-unknown"' in ipv6
    assert 'title="timeout"' in ipv6  # ptr and forward: no answer this cycle
    assert "brightmail: unknown" in ipv6
    assert 'title="HTTP 500"' in ipv6
    assert "2 unknown" in ipv6
    assert "zen.spamhaus.org: SERVFAIL" in ipv6
    assert "unlisted" not in ipv6
    assert "no score" in ipv6  # Sender Score has none: a fact, as in the old tool
    assert "no data" in ipv6  # SNDS has no data for the IP

    mta2 = _row_html(page, data.IP2)
    assert 'class="status-unknown"' in mta2  # clean, but its log could not be read
    assert "the maillog was not read: ssh: connection refused" in mta2
    assert "no blocks" not in mta2
    assert ">95<" in mta2
    assert "unlisted" in mta2
    assert "brightmail: good" in mta2


def test_data_freshness_and_the_stale_warning(env: AckEnv) -> None:
    with env.client() as client:
        env.clock.now = data.T0
        env.write_sample()
        env.clock.now = data.T0 + 120
        page = client.get("/").text
        text = text_of(page)
        assert "Data last updated 2023-11-14 22:13:20 UTC (2 min ago)" in text
        assert "Stale" not in page
        env.clock.now = data.T0 + 3 * env.config.interval + 1
        page = client.get("/").text
    assert "Stale: the results of 2 host(s) are older than 45 minutes" in page
    assert ">stale<" in _row_html(page, data.IP2)


def test_an_empty_store_says_no_results_yet(env: AckEnv) -> None:
    with env.client() as client:
        page = client.get("/").text
    assert "No results yet" in page
    assert "No hosts yet." in page


def test_unreadable_stored_results_make_unknown_cells_not_an_error_page(env: AckEnv) -> None:
    with env.client() as client:
        env.call(
            env.store.save_host_results,
            data.HOST,
            {"alias": "mta1", "ips": {data.IP: {"host": data.HOST, "senderscore": "many"}}},
        )
        page = client.get("/")
    assert page.status_code == 200
    assert "could not be read" in page.text
    assert "the stored results do not parse" in _row_html(page.text, data.IP)


def test_an_issue_without_stored_results_still_gets_a_row(env: AckEnv) -> None:
    key = IssueKey("198.51.100.7", "rbl", "bl.example.net")
    with env.client() as client:
        env.call(
            env.store.open_issue,
            key,
            "gone.example.com",
            {"summary": "listed", "severity": "warning"},
        )
        page = client.get("/").text
    assert issue_path(key) in page
    assert "the exporter has stored no results for this IP" in _row_html(page, "198.51.100.7")


HOSTILE_MARKERS = ("<script>alert", "<img src=x", "\u202e", "\u202c")


@pytest.mark.parametrize("kind", ["provider", "rbl"])
def test_hostile_remote_text_is_shown_as_text(env: AckEnv, kind: str) -> None:
    key = data.ISSUE_KEYS[kind]
    with env.client() as client:
        env.write_sample(hostile=True)
        pages = [client.get("/").text]
        for suffix in ("", "?fragment=1"):
            pages.append(client.get(issue_path(key) + suffix).text)
        pages.append(client.get("/api/issues").text)
    for page in pages[:-1]:
        for marker in HOSTILE_MARKERS:
            assert marker not in page, marker
        elements = Elements(page)
        assert not elements.named("img")
        assert all(not name.startswith("on") for _, attrs in elements.tags for name in attrs), (
            "an event handler attribute got in"
        )
        scripts = [attrs.get("src") for attrs in elements.named("script")]
        assert scripts in ([], ["/static/mtarep.js"])
    detail_text = "".join(Elements(pages[1]).text)
    assert "<script>alert('x')</script>" in detail_text  # shown, as text
    assert '"onmouseover=alert(1) x="' in detail_text
    assert "gnp.exe" in detail_text
    assert "&lt;script&gt;" in pages[1]
    # The API returns the text as the exporter stored it: JSON, not HTML.
    assert "<script>alert('x')</script>" in pages[-1]


def test_provider_issue_page_has_the_line_the_links_and_the_history(env: AckEnv) -> None:
    key = data.ISSUE_KEYS["provider"]
    with env.client() as client:
        env.write_sample()
        page = client.get(issue_path(key)).text
    text = text_of(page)
    assert "gmail rejects mail from 192.0.2.10" in text
    assert "Newest rejection, as logged" in text
    assert data.REJECTION in "".join(Elements(page).text)
    for value in ("gmail-smtp-in.l.google.com[74.125.192.26]:25", "4.7.28", "gmail.com", "17"):
        assert value in text
    assert "Open since 2023-11-14 22:14:20 UTC" in text  # the store's clock: T0 + 60
    links = {attrs["href"] for attrs in Elements(page).named("a")}
    assert "https://support.google.com/mail/contact/bulk_send_new?ip=192.0.2.10" in links
    assert "https://wiki.example.com/runbooks/gmail" in links
    assert "block seen" in text
    assert "Acknowledge" in text


def test_listing_page_has_codes_meaning_and_txt_reason(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        page = client.get(issue_path(data.ISSUE_KEYS["rbl"])).text
    text = text_of(page)
    assert "Return codes 127.0.0.2" in text
    assert "Meaning SBL" in text
    assert data.TXT_REASON in text
    assert "https://check.spamhaus.org/listed/?searchterm=192.0.2.10" in page
    assert '<span class="badge sev-error">error</span>' in page


@pytest.mark.parametrize(
    "name", ["senderscore", "dns", "snds_filter", "snds_traps", "snds_blocked", "reputation"]
)
def test_every_kind_has_a_page_with_its_fields(env: AckEnv, name: str) -> None:
    expected = {
        "senderscore": "Sender Score 62",
        "dns": "What was found the greeting names mail.example.org",
        "snds_filter": "Filter result red",
        "snds_traps": "Trap hits 12",
        "snds_blocked": "Block reason Junked due to user complaints",
        "reputation": "Rating bad",
    }
    with env.client() as client:
        env.write_sample()
        page = client.get(issue_path(data.ISSUE_KEYS[name])).text
    assert expected[name] in text_of(page)


def test_ipv6_issues_work_encoded_or_not(env: AckEnv) -> None:
    snapshot = data.sample_snapshot()
    targets = list(snapshot.targets)
    targets[1] = targets[1].model_copy(
        update={
            "rbl": {
                data.ZEN: RblState(listed=True, lookup_ok=True, codes=("127.0.0.4",), meaning="XBL")
            }
        }
    )
    key = IssueKey(data.IP6, "rbl", data.ZEN)
    with env.client() as client:
        env.call(
            data.write_snapshot,
            env.store,
            snapshot.model_copy(update={"targets": tuple(targets)}),
            env.config,
        )
        assert issue_path(key) == "/issues/2001%3Adb8%3A%3A10/rbl/zen.spamhaus.org"
        assert issue_path(key) in client.get("/").text
        for path in (
            issue_path(key),
            "/issues/2001:db8::10/rbl/zen.spamhaus.org",
            "/issues/2001:DB8:0::10/rbl/zen.spamhaus.org",
        ):
            response = client.get(path)
            assert response.status_code == 200, path
            assert "listed on zen.spamhaus.org: XBL" in response.text


def test_a_host_name_in_place_of_the_ip_for_provider_blocks(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        one = client.get(f"/issues/{data.HOST}/provider/gmail", follow_redirects=False)
        assert one.status_code == 302
        assert one.headers["location"] == issue_path(data.ISSUE_KEYS["provider"])
        fragment = client.get(
            f"/issues/{data.HOST}/provider/gmail?fragment=1", follow_redirects=False
        )
        assert fragment.headers["location"].endswith("?fragment=1")

        second = IssueKey(data.IP6, "provider", "gmail")
        env.call(env.store.open_issue, second, data.HOST, {"summary": "gmail rejects mail from v6"})
        several = client.get(f"/issues/{data.HOST}/provider/gmail")
        assert several.status_code == 200
        assert issue_path(second) in several.text
        assert issue_path(data.ISSUE_KEYS["provider"]) in several.text

        none = client.get(f"/issues/{data.HOST2}/provider/gmail")
        assert none.status_code == 404
        assert f"No open gmail block for {data.HOST2}" in none.text
        assert client.get(f"/issues/{data.HOST}/rbl/{data.ZEN}").status_code == 404


def test_an_issue_that_is_not_open_is_a_404_with_its_history(env: AckEnv) -> None:
    key = data.ISSUE_KEYS["rbl"]
    with env.client() as client:
        env.write_sample()
        env.call(env.store.acknowledge, key, "alice", "asked for removal")
        env.call(env.store.clear_issue, key)
        response = client.get(issue_path(key))
        fragment = client.get(issue_path(key) + "?fragment=1")
    assert response.status_code == 404
    text = text_of(response.text)
    assert "No open issue: rbl zen.spamhaus.org for 192.0.2.10" in text
    assert "it cleared, or it never opened" in text
    assert "acknowledgement ended (the issue cleared)" in text
    assert "delisted" in text
    assert "listed" in text
    assert "asked for removal" in text
    assert fragment.status_code == 404
    assert "<html" not in fragment.text


@pytest.mark.parametrize(
    "path",
    [
        "/issues/not-an-ip/rbl/zen.spamhaus.org",
        "/issues/192.0.2.10/nokind/x",
        "/issues/192.0.2.99/rbl/x",
    ],
)
def test_paths_that_name_no_open_issue_are_404s(env: AckEnv, path: str) -> None:
    with env.client() as client:
        env.write_sample()
        assert client.get(path).status_code == 404


def test_the_fragment_is_the_modal_part_only(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        fragment = client.get(issue_path(data.ISSUE_KEYS["provider"]) + "?fragment=1")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert "<article" in fragment.text
    assert 'name="next" value="/"' in fragment.text  # an ack from the modal returns to the page


def test_help_is_generated_from_the_severity_rules(env: AckEnv) -> None:
    with env.client() as client:
        page = client.get("/help").text
    for _severity, rule in rules(env.config.thresholds):
        assert rule in page
    assert "Sender Score below 70" in page


def test_security_headers_on_every_response(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        responses = [
            client.get("/"),
            client.get("/api/all"),
            client.get("/static/mtarep.js"),
            client.get("/", headers=basic("alice", "wrong")),
            client.get("/healthz"),
        ]
    for response in responses:
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
    assert CONTENT_SECURITY_POLICY == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    assert responses[0].headers["cache-control"] == "no-store"


def test_no_inline_script_or_style_on_any_page(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        pages = [client.get(p).text for p in ("/", "/help", issue_path(data.ISSUE_KEYS["rbl"]))]
    for page in pages:
        elements = Elements(page)
        assert all(attrs.get("src") for attrs in elements.named("script"))
        assert not elements.named("style")
        assert all("style" not in attrs for _, attrs in elements.tags)


def test_redis_down_is_a_visible_503_on_pages(env: AckEnv) -> None:
    with env.client() as client:
        env.write_sample()
        env.server.connected = False
        page = client.get("/")
        issue = client.get(issue_path(data.ISSUE_KEYS["rbl"]))
        env.server.connected = True
    assert page.status_code == 503
    assert "Redis is unavailable" in page.text
    assert "redis://fake" in page.text
    assert issue.status_code == 503


def test_a_configured_notice_is_on_every_page_escaped(tmp_path: Path) -> None:
    env = AckEnv(tmp_path, {"ackservice": {"notice": "DEMO <b>world</b>: nothing is real"}})
    with env.client() as client:
        env.write_sample()
        for path in ("/", "/help", issue_path(IssueKey(data.IP, "rbl", data.ZEN))):
            page = client.get(path).text
            assert "DEMO &lt;b&gt;world&lt;/b&gt;: nothing is real" in page, path
            assert 'class="banner banner-notice"' in page


def test_no_notice_no_banner(env: AckEnv) -> None:
    with env.client() as client:
        assert "banner-notice" not in client.get("/").text
