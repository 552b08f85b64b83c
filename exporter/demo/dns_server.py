"""A small authoritative DNS server for the demo world, in this process, over UDP.

Built on dnspython's message parsing, so ``mtarep-exporter demo`` needs no DNS
server installed. It answers only for its own zones (``REFUSED`` for anything
else, and it binds 127.0.0.1 only): records from a table, ``NXDOMAIN`` or
``NODATA`` with the zone's SOA (so negative answers are cached briefly), and
zones where every A question gets one answer (a dead blocklist). TTLs are short,
so the demo's cycles keep asking. Not a general DNS server: no TCP, no
delegation, no DNSSEC.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import cast

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

__all__ = ["DemoDnsServer"]

TTL = 5


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: DemoDnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        answer = self.server.answer(data)
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


class DemoDnsServer:
    def __init__(
        self,
        zones: Sequence[str],
        records: Mapping[tuple[str, str], Sequence[str]],
        wildcards: Mapping[str, str],
    ) -> None:
        self.zones = sorted((z.lower().rstrip(".") for z in zones), key=len, reverse=True)
        self.records = dict(records)
        self.wildcards = dict(wildcards)
        self.names = {name for name, _ in self.records}
        self._transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve on ``host``:``port`` (0: a free port); returns the port."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(host, port)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self.port

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _zone_of(self, name: str) -> str | None:
        return next((z for z in self.zones if name == z or name.endswith("." + z)), None)

    def answer(self, wire: bytes) -> bytes | None:
        """The answer to one query, or None for something that is not one."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # a malformed packet gets no answer, like any server
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        kind = dns.rdatatype.to_text(question.rdtype)
        wildcard = next(
            (a for z, a in self.wildcards.items() if name == z or name.endswith("." + z)), None
        )
        zone = self._zone_of(name)
        if zone is None and wildcard is None:
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        values = self.records.get((name, kind))
        if values is None and wildcard is not None and kind == "A":
            values = [wildcard]
        if values:
            response.answer.append(
                dns.rrset.from_text_list(question.name, TTL, dns.rdataclass.IN, kind, values)
            )
        else:
            exists = wildcard is not None or name in self.names
            if not exists:
                response.set_rcode(dns.rcode.NXDOMAIN)
            soa_zone = zone or name
            soa = self.records.get((soa_zone, "SOA"))
            if soa:
                response.authority.append(
                    dns.rrset.from_text_list(soa_zone + ".", TTL, dns.rdataclass.IN, "SOA", soa)
                )
        return response.to_wire()
