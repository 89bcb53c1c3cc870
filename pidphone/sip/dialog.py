"""Dialogs (RFC 3261 §12): identity, sequence numbers, route set and remote target.

A dialog is made from the INVITE and its 2xx. The UAC takes the route set from the 2xx's
Record-Route in reverse order, the UAS from the INVITE's in order (§12.1.1, §12.1.2).
`request_target` applies loose routing (§12.2.1.1): with an `lr` first route the Request-URI
is the remote target and the whole route set goes in Route; with a strict router the first
route becomes the Request-URI and the remote target is appended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pidphone.errors import RemoteProtocolError
from pidphone.sip.message import Request, Response
from pidphone.sip.methods import Method
from pidphone.sip.uri import NameAddr, Uri


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local: NameAddr
    """Our From (UAC) or To (UAS) without its tag."""
    remote: NameAddr
    remote_target: Uri
    route_set: list[NameAddr] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None

    @classmethod
    def as_uac(cls, invite: Request, response: Response) -> Dialog:
        remote_tag = response.to.tag
        if not remote_tag:
            raise RemoteProtocolError("2xx to INVITE without a To tag")
        return cls(
            call_id=invite.call_id,
            local_tag=invite.from_.tag or "",
            remote_tag=remote_tag,
            local=_untagged(invite.from_),
            remote=_untagged(response.to),
            remote_target=_target(response, invite.uri),
            route_set=list(reversed(response.record_routes)),
            local_seq=invite.cseq.seq,
        )

    @classmethod
    def as_uas(cls, invite: Request, local_tag: str) -> Dialog:
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=invite.from_.tag or "",
            local=_untagged(invite.to),
            remote=_untagged(invite.from_),
            remote_target=_target(invite, invite.from_.uri),
            route_set=list(invite.record_routes),
            local_seq=0,
            remote_seq=invite.cseq.seq,
        )

    def matches(self, message: Request | Response, *, incoming_request: bool) -> bool:
        if message.call_id != self.call_id:
            return False
        local, remote = (
            (message.to, message.from_) if incoming_request else (message.from_, message.to)
        )
        return local.tag == self.local_tag and remote.tag == self.remote_tag

    def next_seq(self) -> int:
        self.local_seq += 1
        return self.local_seq

    def accept_remote_seq(self, seq: int, method: str) -> bool:
        """§12.2.2: a request with a lower CSeq than the last is out of order (answer 500).
        ACK and CANCEL reuse the INVITE's number."""
        if method in (Method.ACK, Method.CANCEL):
            return True
        if self.remote_seq is not None and seq <= self.remote_seq:
            return False
        self.remote_seq = seq
        return True

    def refresh_target(self, message: Request | Response) -> None:
        """Remote target refresh (§12.2): a re-INVITE or its 2xx may move the peer."""
        self.remote_target = _target(message, self.remote_target)

    def request_target(self) -> tuple[Uri, list[NameAddr]]:
        """The Request-URI and the Route headers for the next request (§12.2.1.1)."""
        if not self.route_set or self.route_set[0].uri.param("lr") is not None:
            return self.remote_target, list(self.route_set)
        first, *rest = self.route_set
        return first.uri.with_params(tuple(p for p in first.uri.params if p[0].lower() != "lr")), [
            *rest,
            NameAddr(uri=self.remote_target),
        ]

    def from_header(self) -> NameAddr:
        return self.local.with_tag(self.local_tag)

    def to_header(self) -> NameAddr:
        return self.remote.with_tag(self.remote_tag)


def _untagged(na: NameAddr) -> NameAddr:
    return NameAddr(
        uri=na.uri,
        display_name=na.display_name,
        params=tuple(p for p in na.params if p[0].lower() != "tag"),
    )


def _target(message: Request | Response, fallback: Uri) -> Uri:
    contacts = message.contacts
    if contacts and not contacts[0].wildcard:
        return contacts[0].uri
    return fallback
