"""The asyncio runner of the SIP agent: over a scripted in-memory transport (what it asks the
transport to do, and when), and two runners calling each other directly over real TLS."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from pidphone.app.signalling import LinkFailed, Signalling, SignallingEvent
from pidphone.drivers.certs import make_test_pki
from pidphone.ports import Address, LinkError, SipTransportHandler
from pidphone.sip import Request, parse_message
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.sip.events import (
    CallAnswered,
    CallEnded,
    CallEstablished,
    FlowFailed,
    IncomingCall,
    Registered,
    RegistrationFailed,
    Unregistered,
)
from tests.peers.pidphone import Phone

REGISTRAR: Address = ("192.0.2.10", 5061)
LOCAL: Address = ("192.0.2.1", 40001)


class ScriptedTransport:
    """A SipTransport that records what the runner asks and lets the test play the server."""

    def __init__(self) -> None:
        self.handler: SipTransportHandler | None = None
        self.connects: list[Address] = []
        self.sent: list[tuple[Address, bytes]] = []
        self.closed: list[Address] = []
        self.shut = False
        self.changed = asyncio.Event()

    async def start(self, handler: SipTransportHandler) -> None:
        self.handler = handler

    def connect(self, peer: Address) -> None:
        self.connects.append(peer)
        self.changed.set()

    def send(self, data: bytes, peer: Address) -> None:
        self.sent.append((peer, data))
        self.changed.set()

    def close(self, peer: Address) -> None:
        self.closed.append(peer)

    async def aclose(self) -> None:
        self.shut = True

    def requests(self, method: str) -> list[Request]:
        found = []
        for _, data in self.sent:
            if data.strip():
                message = parse_message(data)
                if isinstance(message, Request) and message.method == method:
                    found.append(message)
        return found

    async def until(self, done: Any, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self.changed.clear()
                await self.changed.wait()


def ok(request: Request, extra: str = "") -> bytes:
    """A 200 OK to `request`, as a registrar would write it."""
    lines = ["SIP/2.0 200 OK"]
    lines += [f"Via: {v}" for v in request.header_values("Via")]
    lines.append(f"From: {request.header('From')}")
    lines.append(f"To: {request.header('To')};tag=srv1")
    lines.append(f"Call-ID: {request.call_id}")
    lines.append(f"CSeq: {request.header('CSeq')}")
    if extra:
        lines.append(extra)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


def agent(keepalive: float = 30.0) -> UserAgent:
    return UserAgent(
        AgentConfig(
            aor="sip:alice@example.org",
            password="secret",
            registrar=REGISTRAR,
            keepalive_interval=keepalive,
        )
    )


async def registered(transport: ScriptedTransport, sip: Signalling) -> None:
    await sip.start()
    sip.register()
    assert transport.connects == [REGISTRAR]  # the agent asked for the flow first
    assert transport.sent == []
    sip.connection_made(REGISTRAR, LOCAL)
    (register,) = transport.requests("REGISTER")
    assert register.vias[0].host == LOCAL[0]
    contact = register.header("Contact") or ""
    sip.data_received(ok(register, f"Contact: {contact};expires=600"), REGISTRAR)


def test_register_through_the_runner() -> None:
    async def main() -> None:
        transport = ScriptedTransport()
        sip = Signalling(agent(), transport)
        await registered(transport, sip)
        event = await sip.next_event()
        assert isinstance(event, Registered)
        assert event.expires == 600
        # closing unregisters (Expires: 0) and waits for the answer
        closing = asyncio.ensure_future(sip.aclose())
        await transport.until(lambda: len(transport.requests("REGISTER")) == 2)
        unregister = transport.requests("REGISTER")[1]
        assert unregister.header("Expires") == "0"
        sip.data_received(ok(unregister), REGISTRAR)
        await closing
        assert isinstance(await sip.next_event(), Unregistered)
        assert transport.shut

    run(main())


def test_timer_drives_keepalives() -> None:
    async def main() -> None:
        transport = ScriptedTransport()
        sip = Signalling(agent(keepalive=0.05), transport)
        await registered(transport, sip)
        await transport.until(lambda: (REGISTRAR, b"\r\n\r\n") in transport.sent)
        pings = transport.sent.count((REGISTRAR, b"\r\n\r\n"))
        await transport.until(lambda: transport.sent.count((REGISTRAR, b"\r\n\r\n")) > pings)
        await sip.aclose(unregister_timeout=0.01)

    run(main())


def test_link_failure_is_reported_and_registration_retried() -> None:
    async def main() -> None:
        transport = ScriptedTransport()
        events: list[SignallingEvent] = []
        sip = Signalling(agent(), transport, on_event=events.append)
        await sip.start()
        sip.register()
        sip.connection_lost(REGISTRAR, LinkError("expired", "certificate has expired"))
        assert events[0] == LinkFailed(REGISTRAR, "expired", "certificate has expired")
        failed = events[1]
        assert isinstance(failed, RegistrationFailed)
        assert failed.status is None
        assert failed.retry_at is not None
        await sip.aclose(unregister_timeout=0.01)

    run(main())


def test_unframeable_stream_closes_the_flow() -> None:
    async def main() -> None:
        transport = ScriptedTransport()
        events: list[SignallingEvent] = []
        sip = Signalling(agent(), transport, on_event=events.append)
        await sip.start()
        sip.register()
        sip.connection_made(REGISTRAR, LOCAL)
        sip.data_received(b"SIP/2.0 200 OK\r\nContent-Length: banana\r\n\r\n", REGISTRAR)
        assert transport.closed == [REGISTRAR]
        assert any(isinstance(e, FlowFailed) for e in events)
        await sip.aclose(unregister_timeout=0.01)

    run(main())


def test_event_sink_may_call_the_runner() -> None:
    async def main() -> None:
        transport = ScriptedTransport()
        calls: list[str] = []
        sip: Signalling

        def sink(event: SignallingEvent) -> None:
            if isinstance(event, Registered):  # call someone as soon as registered
                calls.append(sip.invite("sip:bob@example.org", b""))

        sip = Signalling(agent(), transport, on_event=sink)
        await registered(transport, sip)
        (invite,) = transport.requests("INVITE")
        assert invite.call_id == calls[0]
        await sip.aclose(unregister_timeout=0.01)

    run(main())


def test_direct_call_over_tls_without_registrar(tmp_path: Path) -> None:
    """sips:bob@127.0.0.1:<port>: the demo's call between two phones, no server between."""
    pki = make_test_pki(tmp_path)

    async def main() -> None:
        async with (
            Phone("bob", None, pki=pki, listen=True, scheme="sips") as bob,
            Phone("alice", None, pki=pki, scheme="sips") as alice,
        ):
            assert bob.transport.listening is not None
            port = bob.transport.listening[1]
            call_id = alice.call(f"sips:bob@127.0.0.1:{port}", port=40000)
            incoming = await bob.expect(IncomingCall)
            assert incoming.remote_uri == "sips:alice@127.0.0.1"
            bob.answer(incoming.call_id, incoming.sdp, port=42000)
            answered = await alice.expect(CallAnswered)
            await bob.expect(CallEstablished)
            assert alice.media(call_id, answered.sdp).remote_address == ("127.0.0.1", 42000)
            bob.sip.hangup(incoming.call_id)
            assert (await alice.expect(CallEnded)).by_peer

    run(main())
