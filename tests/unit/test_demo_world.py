"""The demo world reads the way mtarep reads the real one: its DNS server, its SNDS feed,
its Postfix lines. (tests/integration/test_demo.py runs the whole demo command.)"""

from __future__ import annotations

from datetime import UTC, datetime

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from exporter.demo import world
from exporter.demo.dns_server import DemoDnsServer
from exporter.maillog_tally import DeferredDomains, tally_lines
from exporter.postfix_log import Delivery, ParseContext, parse_line
from exporter.provider_patterns import ProviderMatcher
from exporter.snapshot import MaillogState
from exporter.snds import data_day, parse_data, parse_ip_status

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def server() -> DemoDnsServer:
    return DemoDnsServer(world.dns_zones(), world.dns_records(), world.wildcards())


def ask(server: DemoDnsServer, name: str, kind: str) -> dns.message.Message:
    wire = server.answer(dns.message.make_query(name, kind).to_wire())
    assert wire is not None
    return dns.message.from_wire(wire)


def values(message: dns.message.Message) -> list[str]:
    return [item.to_text() for rrset in message.answer for item in rrset]


def test_the_dns_world(server: DemoDnsServer) -> None:
    assert values(ask(server, "mta1.demo.mtarep.test", "AAAA")) == ["2001:db8::11"]
    assert values(ask(server, "13.2.0.192.in-addr.arpa", "PTR")) == [
        "static-13.broadband.example.net."
    ]
    assert values(ask(server, "12.2.0.192.bl.demo.mtarep.test", "A")) == ["127.0.0.2"]
    assert values(ask(server, "13.2.0.192.score.senderscore.com", "A")) == ["127.0.4.58"]
    txt = values(ask(server, "12.2.0.192.bl.demo.mtarep.test", "TXT"))
    assert txt == ['"' + world.LISTING_TXT.format(ip="192.0.2.12") + '"']
    # The dead list answers for everything, the refusing one refuses everything.
    assert values(ask(server, "1.0.0.127.dead.demo.mtarep.test", "A")) == ["127.0.0.2"]
    assert values(ask(server, "2.0.0.127.refusing.demo.mtarep.test", "A")) == ["127.255.255.254"]


def test_negative_answers_and_strangers(server: DemoDnsServer) -> None:
    missing = ask(server, "11.2.0.192.bl.demo.mtarep.test", "A")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert [r.rdtype for r in missing.authority] == [dns.rdatatype.SOA]
    assert ask(server, "mta1.demo.mtarep.test", "MX").rcode() == dns.rcode.NOERROR
    assert ask(server, "gmail.com", "A").rcode() == dns.rcode.REFUSED
    assert server.answer(b"\x00garbage") is None


def test_the_snds_feeds_parse_as_snds_does() -> None:
    data = parse_data(world.snds_data(NOW))
    assert data.skipped == 0
    assert data_day(data) == "2026-11-30"
    assert {ip: row.color for ip, row in data.rows.items()} == {
        "192.0.2.11": "green",
        "192.0.2.12": "red",
        "192.0.2.13": "yellow",
    }
    assert data.rows["192.0.2.12"].trap_hits == 23
    status = parse_ip_status(world.snds_status())
    assert [str(r) for r in status.ranges] == ["192.0.2.13-192.0.2.13"]


def test_the_demo_mail_parses_and_blocks_each_host_with_its_provider() -> None:
    maker = world.MailMaker(seed=3)
    context = ParseContext(NOW.timestamp() + 60, UTC)
    for host in world.HOSTS:
        lines = [line.encode() for line in maker.lines(host, NOW, 60)]
        for raw in lines:
            parsed = parse_line(raw, context)
            assert not isinstance(parsed, str) or parsed == "not_read", raw
        assert any(isinstance(parse_line(raw, context), Delivery) for raw in lines)
        tally = tally_lines(
            MaillogState(),
            lines,
            ips=host.ips,
            matcher=ProviderMatcher(),
            graph_domains=world.GRAPH_DOMAINS,
            block_window=7200,
            context=context,
            deferred=DeferredDomains(),
        )
        assert list(tally.state.blocks) == [host.blocking_provider]
        assert list(tally.state.blocks[host.blocking_provider]) == [host.ips[0]]
        assert tally.state.deliveries["gmail.com"]["sent"] > 0
