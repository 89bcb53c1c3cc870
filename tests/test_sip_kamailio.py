"""pidphone's SIP stack (agent + runner + TLS transport) against a real Kamailio over TLS.

Kamailio challenges REGISTER (401) with digest auth (and INVITE with 407 in the test that says
so), record-routes the calls and reaches each phone over the phone's own TLS connection.
Everything runs in a private network namespace (tests/peers/netns.py), one Kamailio for the
module."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from pidphone.app.signalling import LinkFailed
from pidphone.drivers.certs import Pki, make_test_pki
from pidphone.drivers.tls import TlsClientConfig
from pidphone.sip.events import (
    CallAnswered,
    CallEnded,
    CallEstablished,
    CallProgress,
    IncomingCall,
    Registered,
    RegistrationFailed,
    ReinviteAnswered,
    ReinviteReceived,
)
from tests.conftest import need_path, need_program
from tests.peers.kamailio import Kamailio, tls_module
from tests.peers.netns import need_private_network, private_network
from tests.peers.pidphone import Phone

pytestmark = pytest.mark.kamailio


@pytest.fixture(scope="module")
def network() -> Iterator[None]:
    need_program("kamailio", "kamailio")
    need_path(tls_module(), "kamailio-tls-modules")
    need_private_network()
    with private_network():
        yield


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def kamailio(
    network: None, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kamailio]:
    with Kamailio(tmp_path_factory.mktemp("kamailio"), pki).started() as server:
        yield server


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


def phone(user: str, kamailio: Kamailio, pki: Pki, **kwargs: Any) -> Phone:
    password = kwargs.pop("password", f"{user}pw")
    return Phone(user, password, pki=pki, registrar=kamailio.address, **kwargs)


def test_register_and_refresh(kamailio: Kamailio, pki: Pki) -> None:
    async def main() -> None:
        async with phone("carol", kamailio, pki, expires=4) as carol:
            first = await carol.expect(Registered)
            assert first.expires == 4
            assert any("carol@127.0.0.1" in c for c in first.contacts)
            second = await carol.expect(Registered)  # refreshed before the 4 s ran out
            assert second.expires == 4
        registers = [r for r in kamailio.requests("REGISTER") if "proto=tls" in r]
        # 401 + authorised REGISTER, the refresh (credentials reused or challenged), unregister
        assert len(registers) >= 4

    run(main())


def test_wrong_password_is_a_clear_error(kamailio: Kamailio, pki: Pki) -> None:
    async def main() -> None:
        async with phone("dave", kamailio, pki, password="not-daves") as dave:
            failed = await dave.expect(RegistrationFailed)
            assert failed.status == 401
            assert failed.reason == "Authentication failed"
            assert failed.retry_at is None  # no hammering the registrar with a bad password
            assert "not-daves" not in repr(dave.events) + repr(dave.config)

    run(main())


def refused(kamailio: Kamailio, pki: Pki, client: TlsClientConfig, reason: str) -> None:
    before = len(kamailio.requests("REGISTER"))

    async def main() -> None:
        async with phone("carol", kamailio, pki, client=client) as carol:
            link = await carol.expect(LinkFailed)
            assert link.peer == kamailio.address
            assert link.reason == reason
            failed = await carol.expect(RegistrationFailed)
            assert failed.status is None
            assert failed.retry_at is not None

    run(main())
    # Kamailio logs every request it reads: not one REGISTER came through
    assert len(kamailio.requests("REGISTER")) == before


def test_certificate_from_unknown_ca_is_refused(
    kamailio: Kamailio, pki: Pki, tmp_path: Path
) -> None:
    other = make_test_pki(tmp_path)
    refused(kamailio, pki, TlsClientConfig(ca_file=str(other.ca_cert)), "untrusted")


def test_certificate_for_another_host_is_refused(kamailio: Kamailio, pki: Pki) -> None:
    client = TlsClientConfig(ca_file=str(pki.ca_cert), server_name="sip.example.org")
    refused(kamailio, pki, client, "wrong host")


def test_pinned_certificate_mismatch_is_refused(kamailio: Kamailio, pki: Pki) -> None:
    client = TlsClientConfig(ca_file=str(pki.ca_cert), pinned_sha256="11" * 32)
    refused(kamailio, pki, client, "pin mismatch")


async def call_up(alice: Phone, bob: Phone) -> tuple[str, str]:
    """alice calls bob through Kamailio; bob rings and answers. Returns both call ids."""
    await alice.expect(Registered)
    await bob.expect(Registered)
    call_id = alice.call("sip:bob@127.0.0.1", port=40000)
    incoming = await bob.expect(IncomingCall)
    assert incoming.remote_uri == "sip:alice@127.0.0.1"
    assert incoming.remote_display_name == "Alice"
    bob.sip.ringing(incoming.call_id)
    progress = await alice.expect(CallProgress)
    assert (progress.status, progress.reason) == (180, "Ringing")
    bob.answer(incoming.call_id, incoming.sdp, port=42000)
    answered = await alice.expect(CallAnswered)
    await bob.expect(CallEstablished)
    at_alice = alice.media(call_id, answered.sdp)
    at_bob = bob.media(incoming.call_id, incoming.sdp)
    assert at_alice.remote_address == ("127.0.0.1", 42000)
    assert at_bob.remote_address == ("127.0.0.1", 40000)
    assert at_alice.codec == at_bob.codec == "PCMU"
    assert at_alice.remote_zrtp_hash == f"{bob.session_id:064x}"
    assert at_bob.remote_zrtp_hash == f"{alice.session_id:064x}"
    return call_id, incoming.call_id


def test_call_through_proxy_hung_up_by_caller(kamailio: Kamailio, pki: Pki) -> None:
    async def main() -> None:
        async with phone("alice", kamailio, pki) as alice, phone("bob", kamailio, pki) as bob:
            call_id, bob_call = await call_up(alice, bob)
            assert call_id == bob_call
            alice.sip.hangup(call_id)
            ended = await bob.expect(CallEnded)
            assert (ended.by_peer, ended.reason) == (True, "Hung up by peer")
            assert not (await alice.expect(CallEnded)).by_peer

    run(main())
    assert any("proto=tls" in line for line in kamailio.requests("BYE"))


def test_call_hung_up_by_callee(kamailio: Kamailio, pki: Pki) -> None:
    async def main() -> None:
        async with phone("alice", kamailio, pki) as alice, phone("bob", kamailio, pki) as bob:
            _, bob_call = await call_up(alice, bob)
            bob.sip.hangup(bob_call)
            ended = await alice.expect(CallEnded)
            assert ended.by_peer

    run(main())


def test_cancel_before_answer(kamailio: Kamailio, pki: Pki) -> None:
    async def main() -> None:
        async with phone("alice", kamailio, pki) as alice, phone("bob", kamailio, pki) as bob:
            await alice.expect(Registered)
            await bob.expect(Registered)
            call_id = alice.call("sip:bob@127.0.0.1", port=40000)
            incoming = await bob.expect(IncomingCall)
            bob.sip.ringing(incoming.call_id)
            await alice.expect(CallProgress)
            alice.sip.hangup(call_id)
            at_bob = await bob.expect(CallEnded)
            assert at_bob.by_peer
            assert at_bob.reason == "Cancelled"
            at_alice = await alice.expect(CallEnded)
            assert at_alice.reason == "Cancelled"

    run(main())
    assert kamailio.requests("CANCEL")


@pytest.mark.parametrize(("status", "reason"), [(603, "Declined"), (486, "Busy Here")])
def test_callee_refuses(kamailio: Kamailio, pki: Pki, status: int, reason: str) -> None:
    async def main() -> None:
        async with phone("alice", kamailio, pki) as alice, phone("bob", kamailio, pki) as bob:
            await alice.expect(Registered)
            await bob.expect(Registered)
            alice.call("sip:bob@127.0.0.1", port=40000)
            incoming = await bob.expect(IncomingCall)
            bob.sip.reject(incoming.call_id, status)
            ended = await alice.expect(CallEnded)
            assert (ended.status, ended.reason, ended.by_peer) == (status, reason, True)

    run(main())


def test_call_to_unregistered_user_fails_readably(kamailio: Kamailio, pki: Pki) -> None:
    async def main() -> None:
        async with phone("alice", kamailio, pki) as alice:
            await alice.expect(Registered)
            alice.call("sip:nobody@127.0.0.1", port=40000)
            ended = await alice.expect(CallEnded)
            assert ended.status == 404
            assert ended.reason == "Not Found"

    run(main())


def test_hold_and_resume_both_ways(kamailio: Kamailio, pki: Pki) -> None:
    async def main() -> None:
        async with phone("alice", kamailio, pki) as alice, phone("bob", kamailio, pki) as bob:
            call_id, bob_call = await call_up(alice, bob)
            for holder, held, holder_call, held_call in (
                (alice, bob, call_id, bob_call),
                (bob, alice, bob_call, call_id),
            ):
                holder.hold(holder_call, "sendonly")
                reoffer = await held.expect(ReinviteReceived)
                held.accept_reinvite(held_call, reoffer.sdp, port=44000)
                answer = await holder.expect(ReinviteAnswered)
                assert holder.media(holder_call, answer.sdp).direction == "sendonly"
                assert held.media(held_call, reoffer.sdp).direction == "recvonly"

                holder.hold(holder_call, "sendrecv")  # resume
                reoffer = await held.expect(ReinviteReceived)
                held.accept_reinvite(held_call, reoffer.sdp, port=44000)
                answer = await holder.expect(ReinviteAnswered)
                assert holder.media(holder_call, answer.sdp).direction == "sendrecv"
            alice.sip.hangup(call_id)
            await bob.expect(CallEnded)

    run(main())


def test_registrar_restart_reconnects_and_reregisters(kamailio: Kamailio, pki: Pki) -> None:
    async def main() -> None:
        async with phone("alice", kamailio, pki) as alice, phone("bob", kamailio, pki) as bob:
            await alice.expect(Registered)
            await bob.expect(Registered)
            await asyncio.to_thread(kamailio.restart)
            lost = await alice.expect(RegistrationFailed)
            assert lost.status is None
            assert lost.retry_at is not None
            await alice.expect(Registered, timeout=20)
            await bob.expect(Registered, timeout=20)
            # the new flows carry calls again
            call_id, _ = await call_up_registered(alice, bob)
            alice.sip.hangup(call_id)
            await bob.expect(CallEnded)

    run(main())


async def call_up_registered(alice: Phone, bob: Phone) -> tuple[str, str]:
    call_id = alice.call("sip:bob@127.0.0.1", port=40000)
    incoming = await bob.expect(IncomingCall)
    bob.answer(incoming.call_id, incoming.sdp, port=42000)
    await alice.expect(CallAnswered)
    await bob.expect(CallEstablished)
    return call_id, incoming.call_id


def test_call_with_proxy_authentication(
    network: None, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Kamailio challenges the INVITE with 407, reusing the nonce of its 401 for REGISTER."""
    proxy = Kamailio(
        tmp_path_factory.mktemp("kamailio407"), pki, tls_port=5071, udp_port=5070, invite_auth=True
    )

    async def main() -> None:
        async with phone("alice", proxy, pki) as alice, phone("bob", proxy, pki) as bob:
            call_id, _ = await call_up(alice, bob)
            alice.sip.hangup(call_id)
            await bob.expect(CallEnded)

    with proxy.started():
        run(main())
    assert len(proxy.requests("INVITE")) >= 2  # challenged once, then sent with credentials


def test_sips_addresses_through_the_proxy(kamailio: Kamailio, pki: Pki) -> None:
    """sips: AORs register and call each other the same way (RFC 5630: TLS on every hop)."""

    async def main() -> None:
        async with (
            phone("alice", kamailio, pki, scheme="sips") as alice,
            phone("bob", kamailio, pki, scheme="sips") as bob,
        ):
            await alice.expect(Registered)
            await bob.expect(Registered)
            call_id = alice.call("sips:bob@127.0.0.1", port=40000)
            incoming = await bob.expect(IncomingCall)
            assert incoming.remote_uri == "sips:alice@127.0.0.1"
            bob.answer(incoming.call_id, incoming.sdp, port=42000)
            await alice.expect(CallAnswered)
            await bob.expect(CallEstablished)
            alice.sip.hangup(call_id)
            assert (await bob.expect(CallEnded)).by_peer

    run(main())


def test_a_registrar_realm_other_than_the_domain_is_answered_only_when_configured(
    network: None, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The password answers only the account's realms: the domain of the AOR, and those in
    account.auth_realms. A registrar challenging in another realm gets no answer until it is
    listed (then it registers)."""
    provider = Kamailio(
        tmp_path_factory.mktemp("realm"),
        pki,
        tls_port=5073,
        udp_port=5072,
        realm="sip.provider.net",
    )

    async def main() -> None:
        async with phone("carol", provider, pki) as carol:
            failed = await carol.expect(RegistrationFailed)
            assert failed.status == 401
            refused = 'Password not sent: other realm ("sip.provider.net" is not yours)'
            assert failed.reason == refused
            assert failed.retry_at is None
        async with phone("carol", provider, pki, auth_realms=("sip.provider.net",)) as carol:
            await carol.expect(Registered)

    with provider.started():
        run(main())
    registers = provider.requests("REGISTER")
    assert len(registers) >= 3  # refused: one; listed: challenged, then with credentials
