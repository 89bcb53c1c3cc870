"""pidphone and Linphone's linphonec, both registered over TLS to one Kamailio: calls both ways,
ended from both sides, hold from linphonec. Signalling only (media_encryption=none); audio and
ZRTP belong to the end-to-end tests. Runs in a private network namespace."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from pidphone.drivers.certs import Pki, make_test_pki
from pidphone.sdp import SessionDescription
from pidphone.sip.events import (
    CallAnswered,
    CallEnded,
    CallEstablished,
    CallProgress,
    IncomingCall,
    Registered,
    ReinviteReceived,
)
from tests.conftest import need_path, need_program
from tests.peers.kamailio import Kamailio, tls_module
from tests.peers.linphone import Linphone
from tests.peers.netns import need_private_network, private_network
from tests.peers.pidphone import Phone

pytestmark = [pytest.mark.kamailio, pytest.mark.linphone]


@pytest.fixture(scope="module")
def network() -> Iterator[None]:
    need_program("kamailio", "kamailio")
    need_path(tls_module(), "kamailio-tls-modules")
    need_program("linphonec", "linphone-cli")
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


@pytest.fixture(scope="module")
def linphone(
    kamailio: Kamailio, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Linphone]:
    peer = Linphone(
        tmp_path_factory.mktemp("linphone"),
        "linphone",
        "linphonepw",
        ca_file=pki.ca_cert,
        registrar=kamailio.address,
        media_encryption="none",
    )
    peer.start()
    try:
        peer.use_files()
        peer.wait_registered()
        yield peer
    finally:
        peer.stop()


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


def pidphone(kamailio: Kamailio, pki: Pki) -> Phone:
    return Phone("alice", "alicepw", pki=pki, registrar=kamailio.address)


async def wait_state(linphone: Linphone, state: str, before: list[str], more: int = 1) -> None:
    """Until linphonec's calls entered `state` `more` times since it was in the states `before`."""
    await asyncio.to_thread(linphone.wait_call_state, state, before.count(state) + more)


async def wait_all_released(linphone: Linphone) -> None:
    """Until every call linphonec has had so far is released. Counting from the states before
    a call is not enough for "Released": linphonec releases a call some time after it ended,
    so the previous test's call may be released only now and be taken for this one's."""
    states = linphone.call_states()
    calls = states.count("OutgoingInit") + states.count("IncomingReceived")
    await asyncio.to_thread(linphone.wait_call_state, "Released", calls)


async def call_linphone(alice: Phone, linphone: Linphone) -> tuple[str, list[str]]:
    """Register, call linphonec and wait until it has the call; also the states it was in
    before the call (for `wait_state`)."""
    await alice.expect(Registered)
    states = linphone.call_states()
    call_id = alice.call(linphone.uri, port=40000)
    await wait_state(linphone, "IncomingReceived", states)
    return call_id, states


def test_pidphone_calls_linphonec_and_linphonec_hangs_up(
    kamailio: Kamailio, pki: Pki, linphone: Linphone
) -> None:
    async def main() -> None:
        async with pidphone(kamailio, pki) as alice:
            call_id, states = await call_linphone(alice, linphone)
            ringing = await alice.expect(CallProgress)
            assert ringing.status == 180
            linphone.answer()
            answered = await alice.expect(CallAnswered)
            await wait_state(linphone, "StreamsRunning", states)
            # linphonec's answer, through Kamailio, negotiates against our offer
            media = alice.media(call_id, answered.sdp)
            assert media.codec in ("PCMU", "PCMA")
            assert media.remote_address[0] == "127.0.0.1"
            assert media.telephone_event_pt == 101
            linphone.terminate()
            ended = await alice.expect(CallEnded)
            assert ended.by_peer
            await wait_state(linphone, "End", states)

    run(main())


def test_pidphone_calls_linphonec_and_hangs_up(
    kamailio: Kamailio, pki: Pki, linphone: Linphone
) -> None:
    async def main() -> None:
        async with pidphone(kamailio, pki) as alice:
            call_id, states = await call_linphone(alice, linphone)
            linphone.answer()
            await alice.expect(CallAnswered)
            await wait_state(linphone, "StreamsRunning", states)
            alice.sip.hangup(call_id)
            await wait_state(linphone, "End", states)
            assert not (await alice.expect(CallEnded)).by_peer
        # linphonec received our offer as we wrote it (Kamailio does not touch the body)
        offer = linphone.sdp_bodies("received")[-1]
        assert SessionDescription.parse(offer).media[0].formats == ("0", "8", "101")

    run(main())


def test_pidphone_cancels_a_ringing_linphonec(
    kamailio: Kamailio, pki: Pki, linphone: Linphone
) -> None:
    async def main() -> None:
        async with pidphone(kamailio, pki) as alice:
            call_id, states = await call_linphone(alice, linphone)
            await alice.expect(CallProgress)
            alice.sip.hangup(call_id)
            assert (await alice.expect(CallEnded)).reason == "Cancelled"
            await wait_state(linphone, "End", states)

    run(main())


async def incoming_from_linphone(alice: Phone, linphone: Linphone) -> tuple[str, IncomingCall]:
    await alice.expect(Registered)
    linphone.call("sip:alice@127.0.0.1")
    incoming = await alice.expect(IncomingCall)
    assert incoming.remote_uri == linphone.uri
    assert incoming.remote_display_name == "linphone"
    alice.sip.ringing(incoming.call_id)
    return incoming.call_id, incoming


def test_linphonec_calls_pidphone_and_hangs_up(
    kamailio: Kamailio, pki: Pki, linphone: Linphone
) -> None:
    async def main() -> None:
        async with pidphone(kamailio, pki) as alice:
            states = linphone.call_states()
            call_id, incoming = await incoming_from_linphone(alice, linphone)
            await wait_state(linphone, "OutgoingRinging", states)
            answer = alice.answer(call_id, incoming.sdp, port=42000)
            assert answer.media[0].formats[0] in ("0", "8")
            await alice.expect(CallEstablished)
            await wait_state(linphone, "StreamsRunning", states)
            media = alice.media(call_id, incoming.sdp)
            assert media.remote_address[0] == "127.0.0.1"
            linphone.terminate()
            ended = await alice.expect(CallEnded)
            assert ended.by_peer

    run(main())


def test_linphonec_calls_pidphone_which_hangs_up(
    kamailio: Kamailio, pki: Pki, linphone: Linphone
) -> None:
    async def main() -> None:
        async with pidphone(kamailio, pki) as alice:
            states = linphone.call_states()
            call_id, incoming = await incoming_from_linphone(alice, linphone)
            alice.answer(call_id, incoming.sdp, port=42000)
            await alice.expect(CallEstablished)
            await wait_state(linphone, "StreamsRunning", states)
            alice.sip.hangup(call_id)
            await wait_state(linphone, "End", states)

    run(main())


def test_pidphone_declines_linphonec(kamailio: Kamailio, pki: Pki, linphone: Linphone) -> None:
    async def main() -> None:
        async with pidphone(kamailio, pki) as alice:
            call_id, _ = await incoming_from_linphone(alice, linphone)
            alice.sip.reject(call_id, 486)
            await wait_all_released(linphone)
        assert "Busy Here" in linphone.log()

    run(main())


def test_linphonec_holds_and_resumes(kamailio: Kamailio, pki: Pki, linphone: Linphone) -> None:
    async def main() -> None:
        async with pidphone(kamailio, pki) as alice:
            states = linphone.call_states()
            call_id, incoming = await incoming_from_linphone(alice, linphone)
            alice.answer(call_id, incoming.sdp, port=42000)
            await alice.expect(CallEstablished)
            await wait_state(linphone, "StreamsRunning", states)
            linphone.pause()
            hold = await alice.expect(ReinviteReceived)
            alice.accept_reinvite(call_id, hold.sdp, port=42000)
            assert alice.media(call_id, hold.sdp).direction == "recvonly"
            await wait_state(linphone, "Paused", states)
            linphone.resume()
            resume = await alice.expect(ReinviteReceived)
            alice.accept_reinvite(call_id, resume.sdp, port=42000)
            assert alice.media(call_id, resume.sdp).direction == "sendrecv"
            await wait_state(linphone, "StreamsRunning", states, 2)
            linphone.terminate()
            await alice.expect(CallEnded)

    run(main())
