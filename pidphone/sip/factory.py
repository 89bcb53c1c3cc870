"""Building the messages a user agent sends (RFC 3261 §8.1.1, §8.2.6, §9.1, §17.1.1.3), in one
place: who we are (AOR, Contact with `;transport=` and `;ob`, User-Agent), the outbound proxy
as a preloaded route, Via with `rport` (RFC 3581), and the header copying rules of responses,
CANCEL and the ACK of a failure. The agent decides what to send; this module says how it looks.
"""

from __future__ import annotations

from dataclasses import dataclass

from pidphone.sip.agent_config import Transport
from pidphone.sip.grammar import Params
from pidphone.sip.headers import Via, split_list
from pidphone.sip.message import Header, Request, Response, reason_phrase
from pidphone.sip.methods import Method
from pidphone.sip.uri import NameAddr, Uri

Address = tuple[str, int]

SUPPORTED = "outbound, replaces, norefersub"
MAX_FORWARDS = "70"


@dataclass(frozen=True)
class MessageFactory:
    aor: Uri
    display_name: str
    transport: Transport
    """The Via transport and the Contact's `;transport=` for sip: URIs."""
    user_agent: str
    instance: str
    """The `+sip.instance` URN of this device (RFC 5626 §4.1)."""
    outbound_proxy: Address | None

    # ------------------------------------------------------------------ identities

    def local_name_addr(self) -> NameAddr:
        return NameAddr(uri=self.aor, display_name=self.display_name)

    def contact_uri(self, local: Address, *, ob: bool) -> Uri:
        params: list[tuple[str, str | None]] = []
        if self.aor.scheme == "sip":
            params.append(("transport", self.transport.value))
        if ob:
            params.append(("ob", None))
        return Uri(
            scheme=self.aor.scheme, user=self.aor.user, host=bracket(local[0]), port=local[1],
            params=tuple(params),
        )  # fmt: skip

    def direct_contact(self, local: Address) -> NameAddr:
        """The Contact of a call made straight to another phone: no `;ob`, no proxy."""
        return NameAddr(uri=self.contact_uri(local, ob=False))

    def dialog_contact(self, local: Address) -> NameAddr:
        """The Contact of INVITEs and their answers; `;ob` when we use an outbound proxy."""
        return NameAddr(uri=self.contact_uri(local, ob=self.outbound_proxy is not None))

    def register_contact(self, local: Address) -> NameAddr:
        params: Params = (("+sip.instance", f'"<{self.instance}>"'), ("reg-id", "1"))
        return NameAddr(uri=self.contact_uri(local, ob=False), params=params)

    def preloaded_route(self) -> list[NameAddr]:
        """The outbound proxy as a preloaded loose route (§8.1.2, RFC 5626 §4.2.1)."""
        proxy = self.outbound_proxy
        if proxy is None:
            return []
        params: Params = (("lr", None),)
        if self.aor.scheme == "sip":
            params = (("transport", self.transport.value), ("lr", None))
        uri = Uri(scheme=self.aor.scheme, host=bracket(proxy[0]), port=proxy[1], params=params)
        return [NameAddr(uri=uri)]

    # ------------------------------------------------------------------ requests

    def request(
        self,
        method: str,
        uri: Uri,
        local: Address,
        *,
        branch: str,
        from_: NameAddr,
        to: NameAddr,
        call_id: str,
        seq: int,
        routes: list[NameAddr],
        extra: list[Header],
        body: bytes = b"",
    ) -> Request:
        """A new request (§8.1.1) sent from `local`; `extra` follows the standard headers."""
        via = Via(
            transport=self.transport.value.upper(),
            host=bracket(local[0]),
            port=local[1],
            params=(("branch", branch), ("rport", None)),
        )
        headers: list[Header] = [
            ("Via", str(via)),
            ("Max-Forwards", MAX_FORWARDS),
            ("From", str(from_)),
            ("To", str(to)),
            ("Call-ID", call_id),
            ("CSeq", f"{seq} {method}"),
        ]
        headers += [("Route", str(route)) for route in routes]
        headers.append(("User-Agent", self.user_agent))
        headers += extra
        return Request(method=method, uri=uri, headers=tuple(headers), body=body)

    @staticmethod
    def cancel(invite: Request) -> Request:
        """§9.1: same Request-URI, Call-ID, From, To, Route and top Via as the INVITE."""
        headers: list[Header] = [("Via", str(invite.vias[0]))]
        headers += [(n, v) for n, v in invite.headers if n in ("From", "To", "Call-ID", "Route")]
        headers += [("CSeq", f"{invite.cseq.seq} CANCEL"), ("Max-Forwards", MAX_FORWARDS)]
        return Request(method=Method.CANCEL, uri=invite.uri, headers=tuple(headers))

    @staticmethod
    def ack_for_failure(invite: Request, resp: Response) -> Request:
        """§17.1.1.3: the ACK of a non-2xx belongs to the INVITE transaction (same branch)
        and takes the To of the response."""
        headers: list[Header] = [("Via", str(invite.vias[0]))]
        headers += [(n, v) for n, v in invite.headers if n in ("From", "Call-ID", "Route")]
        headers.append(("To", resp.header("To") or ""))
        headers += [("CSeq", f"{invite.cseq.seq} ACK"), ("Max-Forwards", MAX_FORWARDS)]
        return Request(method=Method.ACK, uri=invite.uri, headers=tuple(headers))

    # ------------------------------------------------------------------ responses

    def response(
        self,
        req: Request,
        status: int,
        peer: Address,
        *,
        to_tag: str | None,
        extra: list[Header] | None = None,
        body: bytes = b"",
        contact_from: Address | None = None,
    ) -> Response:
        """§8.2.6: Via, From, To (tagged), Call-ID and CSeq copied; the top Via stamped with
        where the request came from; Record-Route copied into 1xx/2xx to INVITE (§12.1.1);
        a Contact for `contact_from` when the response can set up a dialog."""
        headers: list[Header] = []
        first_via = True
        for name, value in req.headers:
            if name == "Via":
                for item in split_list(value):
                    if first_via:
                        item = stamp_via(item, peer)
                        first_via = False
                    headers.append(("Via", item))
            elif name == "To":
                if to_tag is not None and req.to.tag is None and status > 100:
                    value = f"{value};tag={to_tag}"
                headers.append((name, value))
            elif name in ("From", "Call-ID", "CSeq") or (
                name == "Record-Route" and req.method == Method.INVITE and 100 < status < 300
            ):
                headers.append((name, value))
        if contact_from is not None:
            headers.append(("Contact", str(self.dialog_contact(contact_from))))
        headers.append(("Server", self.user_agent))
        headers += extra or []
        if body:
            headers.append(("Content-Type", "application/sdp"))
        return Response(
            status=status, reason=reason_phrase(status), headers=tuple(headers), body=body
        )


def bracket(host: str) -> str:
    """An IPv6 address as a URI host reference."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def stamp_via(value: str, peer: Address) -> str:
    """§18.2.1 and RFC 3581 §4: record where the request really came from."""
    via = Via.parse(value)
    if via.param("rport") is None and via.host.strip("[]") == peer[0]:
        return value
    rport = peer[1] if via.param("rport") is not None else None
    return str(via.with_received(peer[0], rport))


def uuid_urn(raw: bytes) -> str:
    """A version-4 UUID URN from 16 random bytes (RFC 4122 §4.4)."""
    b = bytearray(raw[:16])
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
