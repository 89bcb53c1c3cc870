"""A pidphone signalling stack for tests: UserAgent + Signalling runner + TLS transport.

    async with Phone("alice", "alicepw", registrar=kamailio.address, pki=pki) as alice:
        await alice.expect(Registered)
        call_id = alice.call("sip:bob@127.0.0.1", port=40000)
        answered = await alice.expect(CallAnswered)

Events are collected in order in `events`; `expect` waits for the next one of a type (and
fails with the list of everything seen when it does not come).
"""

from __future__ import annotations

import asyncio
import itertools
from types import TracebackType
from typing import TypeVar

from pidphone.app.signalling import Signalling, SignallingEvent
from pidphone.drivers.certs import Pki
from pidphone.drivers.tls import TlsClientConfig, TlsServerConfig, TlsTransport
from pidphone.sdp import (
    MediaParams,
    SessionDescription,
    build_answer,
    build_offer,
    negotiate,
    with_direction,
)
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.sip.callers import CallerPolicy

ANYONE = CallerPolicy(anyone=True)
"""A listener that lets any TLS client in (these phones test signalling, not admission)."""

E = TypeVar("E", bound=SignallingEvent)

_session_ids = itertools.count(1000)


class Phone:
    """One pidphone account. Call `start()` (or use `async with`) on the running loop."""

    def __init__(
        self,
        user: str,
        password: str | None,
        *,
        pki: Pki,
        registrar: tuple[str, int] | None = None,
        domain: str = "127.0.0.1",
        client: TlsClientConfig | None = None,
        listen: bool = False,
        register: bool = True,
        expires: int = 600,
        keepalive: float = 30.0,
        scheme: str = "sip",
        auth_realms: tuple[str, ...] = (),
    ) -> None:
        self.user = user
        self.config = AgentConfig(
            aor=f"{scheme}:{user}@{domain}",
            display_name=user.capitalize(),
            password=password,
            auth_realms=auth_realms,
            registrar=registrar,
            register_expires=expires,
            keepalive_interval=keepalive,
        )
        server = (
            TlsServerConfig(str(pki.server_cert), str(pki.server_key), port=0, callers=ANYONE)
            if listen
            else None
        )
        self.transport = TlsTransport(client or TlsClientConfig(ca_file=str(pki.ca_cert)), server)
        self.agent = UserAgent(self.config)
        self.auto_register = register and registrar is not None
        self.events: list[SignallingEvent] = []
        self._unread: list[SignallingEvent] = []
        self._arrived = asyncio.Event()
        self.sip = Signalling(self.agent, self.transport, on_event=self._event)
        self.session_id = next(_session_ids)
        self.version = 0
        self.local_sdp: dict[str, SessionDescription] = {}

    async def start(self) -> Phone:
        await self.sip.start()
        if self.auto_register:
            self.sip.register()
        return self

    async def __aenter__(self) -> Phone:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.sip.aclose()

    def _event(self, event: SignallingEvent) -> None:
        self.events.append(event)
        self._unread.append(event)
        self._arrived.set()

    async def expect(self, kind: type[E], timeout: float = 10.0) -> E:
        """The next unread event of type `kind` (earlier unread ones of other types stay)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for index, event in enumerate(self._unread):
                        if isinstance(event, kind):
                            del self._unread[index]
                            return event
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            raise AssertionError(
                f"{self.user}: no {kind.__name__} within {timeout} s; events: {self.events}"
            ) from None

    # ------------------------------------------------------------------ SDP helpers

    def _next_version(self) -> int:
        self.version += 1
        return self.version

    def offer(self, port: int, direction: str = "sendrecv") -> SessionDescription:
        return build_offer(
            address=("127.0.0.1", port),
            zrtp_hash=f"{self.session_id:064x}",
            direction=direction,
            session_id=self.session_id,
            session_version=self._next_version(),
            username=self.user,
        )

    def call(self, target: str, port: int) -> str:
        offer = self.offer(port)
        call_id = self.sip.invite(target, bytes(offer))
        self.local_sdp[call_id] = offer
        return call_id

    def answer(self, call_id: str, offer: bytes, port: int) -> SessionDescription:
        answer = self._answer_to(call_id, offer, port)
        self.sip.answer(call_id, bytes(answer))
        return answer

    def hold(self, call_id: str, direction: str = "sendonly") -> None:
        sd = with_direction(self.local_sdp[call_id], direction, self._next_version())
        self.local_sdp[call_id] = sd
        self.sip.reinvite(call_id, bytes(sd))

    def accept_reinvite(self, call_id: str, offer: bytes, port: int) -> SessionDescription:
        answer = self._answer_to(call_id, offer, port)
        self.sip.accept_reinvite(call_id, bytes(answer))
        return answer

    def _answer_to(self, call_id: str, offer: bytes, port: int) -> SessionDescription:
        """Our answer to `offer`, remembered as the call's local description."""
        answer = build_answer(
            SessionDescription.parse(offer),
            address=("127.0.0.1", port),
            zrtp_hash=f"{self.session_id:064x}",
            session_id=self.session_id,
            session_version=self._next_version(),
            username=self.user,
        )
        self.local_sdp[call_id] = answer
        return answer

    def media(self, call_id: str, remote: bytes) -> MediaParams:
        """What the media session would use, from our description and the peer's."""
        return negotiate(self.local_sdp[call_id], SessionDescription.parse(remote))
