"""Locating a SIP server over TLS (RFC 3263 §4) with dnspython's asyncio resolver.

For a SIP domain with no explicit port: NAPTR records offering "SIPS+D2T" (TLS over TCP) name
the SRV owner; without them, `_sips._tcp.<domain>` is asked directly; the SRV targets (by
priority, then weight as RFC 2782 describes) are looked up as AAAA and A records. Without SRV
records the domain itself is used on port 5061. An IP literal, or a name with an explicit
port, skips NAPTR and SRV (§4.2).

The TLS certificate is still checked against the SIP domain, not the SRV target (RFC 5922
§4.2): `TlsTransport` keys the flow by the domain and uses this module only to find where to
connect.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.rdata
import dns.resolver
from dns.rdtypes.IN.NAPTR import NAPTR
from dns.rdtypes.IN.SRV import SRV

from pidphone.ports import Address

log = logging.getLogger(__name__)

SIPS_PORT = 5061
"""The default port of SIP over TLS (RFC 3261 §19.1.2)."""

SIPS_NAPTR_SERVICE = "SIPS+D2T"
"""The NAPTR service of SIP over TLS over TCP (RFC 3263 §4.1)."""

MAX_SERVICES = 8
MAX_ADDRESSES = 16
"""At most this many SRV targets are looked up, and this many addresses tried. Whoever
answers our DNS (or owns the domain's zone) could list thousands: each costs two lookups of
up to the resolver's lifetime before the first connection, and ordering them takes time
quadratic in their number on the loop. A real SIP service lists a handful."""


@dataclass(frozen=True)
class SrvTarget:
    """One SRV choice: a host and port to look up and connect to."""

    host: str
    port: int


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def order_srv(records: Sequence[SRV], random: Callable[[int], int]) -> list[SrvTarget]:
    """RFC 2782 order: ascending priority; within a priority, repeatedly pick one at random
    with probability proportional to its weight (weight 0 only after the others)."""
    services: list[SrvTarget] = []
    records = sorted(records, key=lambda r: r.priority)[: MAX_SERVICES * 4]
    for priority in sorted({r.priority for r in records}):
        group = sorted((r for r in records if r.priority == priority), key=lambda r: r.weight)
        while group:
            total = sum(r.weight for r in group)
            pick = random(total + 1) if total else 0
            sums = itertools.accumulate(r.weight for r in group)
            chosen = group.pop(next(i for i, running in enumerate(sums) if running >= pick))
            target = chosen.target.to_text(omit_final_dot=True)
            if target and target != ".":
                services.append(SrvTarget(target, chosen.port))
    return services


class SipsLocator:
    """RFC 3263 server location for SIP over TLS; usable as `TlsTransport(resolver=...)`.

    `discover` holds the domains configured without a port: for those NAPTR/SRV are asked
    and the port in the flow's address is only the fallback. Every other name is looked up
    as AAAA/A with the port as given."""

    def __init__(
        self,
        *,
        resolver: dns.asyncresolver.Resolver | None = None,
        discover: Sequence[str] = (),
        random: Callable[[int], int] = secrets.randbelow,
    ) -> None:
        self._resolver = resolver or dns.asyncresolver.Resolver()
        self._discover = {d.lower().rstrip(".") for d in discover}
        self._random = random

    async def __call__(self, address: Address) -> list[Address]:
        host, port = address
        if _is_ip(host):
            return [(host.strip("[]"), port)]
        if host.lower().rstrip(".") not in self._discover:
            return await self.addresses(host, port)
        return await self.locate(host, fallback_port=port)

    async def locate(self, domain: str, *, fallback_port: int = SIPS_PORT) -> list[Address]:
        """Every address to try for `domain`, in order (RFC 3263 §4.1-§4.2)."""
        services = await self.services(domain)
        if not services:
            services = [SrvTarget(domain, fallback_port)]
        found: list[Address] = []
        for service in services:
            for address in await self.addresses(service.host, service.port):
                if address not in found:
                    found.append(address)
            if len(found) >= MAX_ADDRESSES:
                break
        return found[:MAX_ADDRESSES]

    async def services(self, domain: str) -> list[SrvTarget]:
        """The SRV choices for SIP over TLS at `domain`, NAPTR first (§4.1)."""
        srv_names = [f"_sips._tcp.{domain.rstrip('.')}"]
        naptrs = [r for r in await self._query(domain, "NAPTR") if isinstance(r, NAPTR)]
        usable = sorted(
            (
                r
                for r in naptrs
                if r.service.decode(errors="replace").upper() == SIPS_NAPTR_SERVICE
                and r.flags.decode(errors="replace").lower() == "s"
            ),
            key=lambda r: (r.order, r.preference),
        )
        if usable:
            srv_names = [r.replacement.to_text(omit_final_dot=True) for r in usable]
        services: list[SrvTarget] = []
        for name in srv_names[:MAX_SERVICES]:
            records = [r for r in await self._query(name, "SRV") if isinstance(r, SRV)]
            services += order_srv(records, self._random)
            if len(services) >= MAX_SERVICES:
                break
        return services[:MAX_SERVICES]

    async def addresses(self, host: str, port: int) -> list[Address]:
        """AAAA then A records of `host`, each with `port`."""
        found: list[Address] = []
        for rdtype in ("AAAA", "A"):
            found += [(r.to_text(), port) for r in await self._query(host, rdtype)]
        return found[:MAX_ADDRESSES]

    async def _query(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        try:
            answer = await self._resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
            return []
        except dns.exception.Timeout:
            log.info("DNS %s %s timed out", name, rdtype)
            return []
        return list(answer)
