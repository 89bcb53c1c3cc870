"""RFC 3263 server location against a tiny DNS server the test runs on 127.0.0.1 (answers
built with dnspython's message API); no other resolver is ever asked."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, cast

import dns.asyncresolver
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from pidphone.drivers.certs import make_test_pki
from pidphone.drivers.dns import MAX_SERVICES, SipsLocator, order_srv
from pidphone.drivers.tls import TlsClientConfig, TlsServerConfig, TlsTransport
from pidphone.sip.callers import CallerPolicy
from tests.test_tls import Recorder

Zone = dict[tuple[str, str], list[str]]


class _Server(asyncio.DatagramProtocol):
    """Answers from `zone` ({(name, type): [rdata text]}); NXDOMAIN for unknown names."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.questions: list[tuple[str, str]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.questions.append((name, rdtype))
        values = self.zone.get((name, rdtype))
        if values:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 60, "IN", rdtype, values)
            )
        elif not any(known == name for known, _ in self.zone):
            response.set_rcode(dns.rcode.NXDOMAIN)
        if self.transport is not None:
            self.transport.sendto(response.to_wire(), addr)


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


async def serve(zone: Zone) -> tuple[_Server, dns.asyncresolver.Resolver, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    server = _Server(zone)
    transport, _ = await loop.create_datagram_endpoint(lambda: server, local_addr=("127.0.0.1", 0))
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = transport.get_extra_info("sockname")[1]
    resolver.lifetime = 2.0
    return server, resolver, transport


ZONE: Zone = {
    ("example.org", "NAPTR"): [
        '10 50 "s" "SIPS+D2T" "" _sips._tcp.example.org.',
        '20 50 "s" "SIP+D2U" "" _sip._udp.example.org.',
    ],
    ("_sips._tcp.example.org", "SRV"): [
        "10 0 5061 backup.example.org.",
        "5 0 5071 primary.example.org.",
    ],
    ("primary.example.org", "A"): ["127.0.0.1"],
    ("primary.example.org", "AAAA"): ["::1"],
    ("backup.example.org", "A"): ["127.0.0.2"],
    ("srv-only.example", "SRV"): [],
    ("_sips._tcp.srv-only.example", "SRV"): ["0 0 6000 primary.example.org."],
    ("plain.example", "A"): ["127.0.0.3"],
}


def test_naptr_then_srv_then_addresses() -> None:
    async def main() -> None:
        server, resolver, transport = await serve(ZONE)
        locator = SipsLocator(resolver=resolver, discover=["example.org", "srv-only.example"])
        assert await locator(("example.org", 5061)) == [
            ("::1", 5071),
            ("127.0.0.1", 5071),
            ("127.0.0.2", 5061),
        ]
        assert ("example.org", "NAPTR") in server.questions
        assert ("_sip._udp.example.org", "SRV") not in server.questions  # not TLS
        # no NAPTR: the _sips._tcp SRV name is asked directly
        assert await locator(("srv-only.example", 5061)) == [("::1", 6000), ("127.0.0.1", 6000)]
        # neither NAPTR nor SRV: the domain's own addresses on the given port
        locator = SipsLocator(resolver=resolver, discover=["plain.example"])
        assert await locator(("plain.example", 5061)) == [("127.0.0.3", 5061)]
        transport.close()

    run(main())


def test_explicit_port_and_ip_literals_skip_discovery() -> None:
    async def main() -> None:
        server, resolver, transport = await serve(ZONE)
        locator = SipsLocator(resolver=resolver)
        assert await locator(("primary.example.org", 5999)) == [
            ("::1", 5999),
            ("127.0.0.1", 5999),
        ]
        assert await locator(("192.0.2.7", 5062)) == [("192.0.2.7", 5062)]
        assert await locator(("[2001:db8::1]", 5062)) == [("2001:db8::1", 5062)]
        assert all(kind in ("A", "AAAA") for _, kind in server.questions)
        assert await locator(("missing.example", 5061)) == []
        transport.close()

    run(main())


def test_srv_order_follows_priority_then_weight() -> None:
    records = list(
        dns.rrset.from_text_list(
            "_sips._tcp.x.",
            60,
            "IN",
            "SRV",
            ["1 0 1 zero.x.", "1 60 2 heavy.x.", "1 40 3 light.x.", "0 0 4 first.x.", "2 0 5 ."],
        )
    )
    picks = iter([100, 40])  # first draw from 0..100, then from 0..40
    ordered = order_srv(records, lambda bound: next(picks))
    assert [s.host for s in ordered] == ["first.x", "heavy.x", "light.x", "zero.x"]
    ordered = order_srv(records, lambda bound: 0)
    assert [s.host for s in ordered][:2] == ["first.x", "zero.x"]


def test_tls_flow_to_a_domain_found_by_srv_checks_the_domain_name(tmp_path: Path) -> None:
    """The certificate names the SIP domain; the SRV target is only where to connect."""
    pki = make_test_pki(tmp_path, hosts=["example.org"])

    async def main() -> None:
        server = TlsTransport(
            TlsClientConfig(),
            TlsServerConfig(
                str(pki.server_cert),
                str(pki.server_key),
                port=0,
                callers=CallerPolicy(anyone=True),
            ),
        )
        at_server = Recorder()
        await server.start(at_server)
        assert server.listening is not None
        zone = dict(ZONE)
        zone[("_sips._tcp.example.org", "SRV")] = [
            f"0 0 {server.listening[1]} primary.example.org."
        ]
        zone[("primary.example.org", "AAAA")] = []
        _, resolver, transport = await serve(zone)
        locator = SipsLocator(resolver=resolver, discover=["example.org"])
        client = TlsTransport(TlsClientConfig(ca_file=str(pki.ca_cert)), resolver=locator)
        at_client = Recorder()
        await client.start(at_client)
        client.send(b"REGISTER", ("example.org", 5061))
        await at_server.until(lambda: any(e[0] == "data" for e in at_server.events))
        assert at_client.events[0][:2] == ("made", ("example.org", 5061))
        await client.aclose()
        await server.aclose()
        transport.close()

    run(main())


def test_a_zone_listing_many_servers_costs_a_bounded_number_of_lookups() -> None:
    """Whoever answers our DNS could list any number of SRV targets, each two more lookups of
    up to the resolver's lifetime before the first connection: only the first few are used."""
    targets = [f"{n} 0 5061 h{n}.flood.example." for n in range(60)]
    zone: Zone = {("_sips._tcp.flood.example", "SRV"): targets}
    zone.update({(f"h{n}.flood.example", "A"): [f"127.0.1.{n + 1}"] for n in range(60)})

    async def main() -> None:
        server, resolver, transport = await serve(zone)
        locator = SipsLocator(resolver=resolver, discover=["flood.example"])
        found = await locator(("flood.example", 5061))
        assert found[:2] == [("127.0.1.1", 5061), ("127.0.1.2", 5061)]  # by priority
        assert len(found) == MAX_SERVICES
        address_lookups = [q for q in server.questions if q[1] in ("A", "AAAA")]
        assert len(address_lookups) == 2 * MAX_SERVICES
        transport.close()

    run(main())
