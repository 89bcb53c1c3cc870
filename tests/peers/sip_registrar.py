"""An in-memory SIP registrar and a record-routing proxy, for agents driven back to back by
`tests.harness.SipNetwork`: digest challenges (RFC 7616), bindings, and forwarding the way the
Kamailio of the interop tests does."""

from __future__ import annotations

from pidphone.sip import Request, Response, parse_message
from pidphone.sip.auth import Challenge, digest_response, parse_authorization
from pidphone.sip.framing import Frame, StreamFramer
from pidphone.sip.message import reason_phrase

Address = tuple[str, int]


class Registrar:
    """A registrar that challenges with digest (RFC 7616) and stores bindings."""

    def __init__(
        self,
        password: str = "alicepw",
        algorithm: str = "SHA-256",
        min_expires: int = 0,
        other_bindings: tuple[str, ...] = (),
        fail_with: int | None = None,
        silent: bool = False,
        realm: str = "127.0.0.1",
    ) -> None:
        self.password = password
        self.algorithm = algorithm
        self.realm = realm
        self.min_expires = min_expires
        self.other = other_bindings
        self.fail_with = fail_with
        self.silent = silent
        self.nonce = "n0nce-1"
        self.framers: dict[Address, StreamFramer] = {}
        self.out: list[tuple[bytes, Address]] = []
        self.requests: list[Request] = []
        self.authorizations: list[dict[str, str]] = []
        self.bindings: dict[str, int] = {}

    def connection_made(self, peer: Address, local: Address, now: float) -> None:
        self.framers[peer] = StreamFramer()

    def connection_lost(self, peer: Address, now: float) -> None:
        self.framers.pop(peer, None)

    def data_to_send(self) -> list[tuple[bytes, Address]]:
        out, self.out = self.out, []
        return out

    def receive_data(self, data: bytes, peer: Address, now: float) -> None:
        framer = self.framers[peer]
        framer.feed(data)
        while (item := framer.next_item()) is not None:
            if isinstance(item, Frame):
                request = parse_message(item.data)
                assert isinstance(request, Request)
                self.requests.append(request)
                if self.answers(request):
                    self.out.append((bytes(self.handle(request)), peer))

    def answers(self, request: Request) -> bool:
        """Whether `request` gets a response: a silent registrar answers nothing."""
        return not self.silent

    def reply(self, req: Request, status: int, extra: tuple[tuple[str, str], ...] = ()) -> Response:
        headers = [(n, v) for n, v in req.headers if n in ("Via", "From", "Call-ID", "CSeq")]
        headers.append(("To", f"{req.header('To')};tag=reg1"))
        return Response(status, reason_phrase(status), (*headers, *extra))

    def handle(self, req: Request) -> Response:
        if self.fail_with is not None:
            return self.reply(req, self.fail_with)
        auth = req.header("Authorization")
        if auth is None:
            return self.challenge(req)
        params = parse_authorization(auth)
        self.authorizations.append(params)
        challenge = Challenge(
            realm=self.realm, nonce=self.nonce, algorithm=self.algorithm, qop=("auth",)
        )
        expected = digest_response(
            challenge,
            username=params["username"],
            password=self.password,
            method=req.method,
            uri=params["uri"],
            cnonce=params["cnonce"],
            nc=int(params["nc"], 16),
        )
        if params["response"] != expected or params["nonce"] != self.nonce:
            return self.challenge(req)
        expires = int(req.header("Expires") or "3600")
        if 0 < expires < self.min_expires:
            return self.reply(req, 423, (("Min-Expires", str(self.min_expires)),))
        contact = req.header("Contact") or ""
        if expires == 0:
            self.bindings.pop(contact, None)
            return self.reply(req, 200)
        self.bindings[contact] = expires
        contacts = [f"<{o}>;expires=77" for o in self.other] + [f"{contact};expires={expires}"]
        return self.reply(req, 200, (("Contact", ", ".join(contacts)),))

    def challenge(self, req: Request) -> Response:
        value = (
            f'Digest realm="{self.realm}", nonce="{self.nonce}", qop="auth", '
            f"algorithm={self.algorithm}"
        )
        return self.reply(req, 401, (("WWW-Authenticate", value),))


class Proxy(Registrar):
    """A registrar that is also a record-routing, stateless proxy, the way the Kamailio config
    of the interop tests behaves: it reaches each UA over the UA's own connection."""

    me = "127.0.0.1:5070"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.users: dict[str, Address] = {}
        self.forwarded: list[Request] = []

    def receive_data(self, data: bytes, peer: Address, now: float) -> None:
        framer = self.framers[peer]
        framer.feed(data)
        while (item := framer.next_item()) is not None:
            if not isinstance(item, Frame):
                continue
            message = parse_message(item.data)
            if isinstance(message, Response):
                self.forward_response(message)
            elif message.method == "REGISTER":
                answer = self.handle(message)
                if answer.status == 200 and message.from_.uri.user:
                    self.users[message.from_.uri.user] = peer
                self.out.append((bytes(answer), peer))
            else:
                self.forward_request(peer, message)

    def forward_request(self, peer: Address, req: Request) -> None:
        headers = list(req.headers)
        routes = [i for i, (n, v) in enumerate(headers) if n == "Route"]
        if routes and self.me in headers[routes[0]][1]:
            del headers[routes[0]]
        if req.to.tag is None and req.method == "INVITE":
            headers.insert(0, ("Record-Route", f"<sip:{self.me};transport=tls;lr>"))
        if req.to.tag is None and req.method in ("INVITE", "CANCEL", "ACK"):
            target = self.users[req.uri.user or ""]
        else:
            target = (req.uri.host, req.uri.port or 5061)
        top = req.vias[0]
        stamped = str(top.with_received(peer[0], peer[1]))
        first_via = next(i for i, (n, _) in enumerate(headers) if n == "Via")
        headers[first_via] = ("Via", stamped)
        branch = "z9hG4bKp" + (top.branch or "")[7:]
        headers.insert(0, ("Via", f"SIP/2.0/TLS {self.me};branch={branch}"))
        out = Request(req.method, req.uri, tuple(headers), req.body)
        self.forwarded.append(out)
        self.out.append((bytes(out), target))

    def forward_response(self, resp: Response) -> None:
        headers = list(resp.headers)
        del headers[next(i for i, (n, _) in enumerate(headers) if n == "Via")]
        out = Response(resp.status, resp.reason, tuple(headers), resp.body)
        via = out.vias[0]
        self.out.append(
            (bytes(out), (via.param("received") or via.host, int(via.param("rport") or 0)))
        )
