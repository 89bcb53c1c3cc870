"""What every request that reaches the agent goes through before a usage sees it (RFC 3261
§8.2): a message that does not parse, method inspection (§8.2.1), extensions (§8.2.2.3),
content (§8.2.3), the direct listener's caller policy, and OPTIONS (§11).

Each check answers the request itself and says False when it did (the request goes no
further).
"""

from __future__ import annotations

from pidphone.sip import events as ev
from pidphone.sip.errors import SipParseError
from pidphone.sip.factory import SUPPORTED
from pidphone.sip.message import Request, salvage_error_response
from pidphone.sip.methods import ALLOW, Method
from pidphone.sip.stack import SipStack

Address = tuple[str, int]

OUR_EXTENSIONS = frozenset({"outbound", "replaces", "norefersub"})
"""Option tags a request may Require of us (RFC 5626, RFC 3891, RFC 4488)."""


class ServerCore:
    """The checks and answers of §8.2 (module docstring)."""

    def __init__(self, stack: SipStack) -> None:
        self._stack = stack

    def reject_unparsable(self, peer: Address, data: bytes, exc: SipParseError) -> None:
        """Answer a request that could be framed but not parsed, if it can be answered."""
        status = exc.error_status_hint
        answer = salvage_error_response(data, status, self._stack.token(8))
        if answer is not None:
            self._stack.send(peer, answer)
            self._stack.report(ev.RequestRejected(status, str(exc)))

    def acceptable(self, peer: Address, req: Request) -> bool:
        """§8.2.2.3 and §8.2.3: Require only what we support; an INVITE's body is SDP."""
        unsupported = [o for o in req.header_values("Require") if o.lower() not in OUR_EXTENSIONS]
        if unsupported:
            self._stack.reject(peer, req, 420, [("Unsupported", ", ".join(unsupported))])
            return False
        if req.method == Method.INVITE and req.body and not _is_plain_sdp(req):
            self._stack.reject(peer, req, 415, [("Accept", "application/sdp")])
            return False
        return True

    def caller_admitted(self, peer: Address, req: Request) -> bool:
        """A request that starts something on a connection to our listener must come from a
        caller the policy admits; if not, it is answered 403."""
        flow = self._stack.flows.accepted(peer)
        policy = self._stack.config.callers
        if policy is None or flow is None:
            return True
        refused = policy.caller_refusal(flow.certificate, req.from_.uri)
        if refused is None:
            return True
        stack = self._stack
        stack.send(peer, stack.response(req, 403, peer, to_tag=stack.token(8)))
        stack.report(ev.RequestRejected(403, f"{req.method} refused: {refused}"))
        return False

    def answer_options(self, peer: Address, req: Request) -> None:
        extra = [("Allow", ALLOW), ("Accept", "application/sdp"), ("Supported", SUPPORTED)]
        stack = self._stack
        stack.send(peer, stack.response(req, 200, peer, to_tag=stack.token(8), extra=extra))

    def reject_method(self, peer: Address, req: Request) -> None:
        """§8.2.1: 405 with Allow for a method we know but do not serve, else 501."""
        if Method.of(req.method) is not None:
            self._stack.reject(peer, req, 405, [("Allow", ALLOW)])
        else:
            self._stack.reject(peer, req, 501)


def _is_plain_sdp(req: Request) -> bool:
    """§8.2.3: the only body we understand is an uncompressed application/sdp."""
    media_type = (req.header("Content-Type") or "").split(";")[0].strip().lower()
    encodings = [e.lower() for e in req.header_values("Content-Encoding")]
    return media_type == "application/sdp" and all(e == "identity" for e in encodings)
