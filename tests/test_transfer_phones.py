"""Three phones over real TLS and UDP on loopback, driven through their keys: blind transfer
(REFER, NOTIFYs to the end), a failed one that returns to the held call, and attended transfer
(consultation call, then REFER with Replaces). The new call runs its own ZRTP exchange: its
SAS is its own, its audio flows both ways, and the screens say what happened."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from pidphone.app.call_events import (
    CallFinished,
    CallHeld,
    CallIncoming,
    CallReferred,
    CallReplaced,
    CallSecure,
    CallTransferEnded,
    CallTransferProgress,
)
from pidphone.app.call_state import CallState
from pidphone.audio.analysis import dominant_frequencies, rms
from pidphone.drivers.certs import make_test_pki
from pidphone.ports import HookEvent
from tests.test_controller import Phone, make, strongest, two_phones, until

ALICE, BOB, CAROL = 1000.0, 700.0, 500.0


@asynccontextmanager
async def three_phones(tmp_path: Path) -> AsyncIterator[tuple[Phone, Phone, Phone]]:
    """Bob and Carol listen; Alice calls Bob with speed dial 1 and reaches Carol by keying
    "5" (her dial domain is Carol's listener)."""
    pki = make_test_pki(tmp_path / "pki", ["127.0.0.1"])
    bob = await make("bob", BOB, pki, listen=True, dials={})
    carol = await make("carol", CAROL, pki, listen=True, dials={})
    assert bob.transport.listening is not None and carol.transport.listening is not None
    bob_uri = f"sips:bob@127.0.0.1:{bob.transport.listening[1]}"
    alice = await make("alice", ALICE, pki, listen=False, dials={"1": bob_uri})
    board = alice.engine.switchboard
    board.settings = replace(
        board.settings, dial_domain=f"127.0.0.1:{carol.transport.listening[1]}"
    )
    try:
        yield alice, bob, carol
    finally:
        for phone in (alice, bob, carol):
            await phone.engine.stop()


async def alice_calls_bob(alice: Phone, bob: Phone) -> CallSecure:
    alice.key("speed1")
    await bob.until(lambda e: isinstance(e, CallIncoming))
    bob.engine.press(HookEvent(off_hook=True))
    await alice.until(lambda e: isinstance(e, CallSecure))
    await bob.until(lambda e: isinstance(e, CallSecure))
    return next(e for e in bob.events if isinstance(e, CallSecure))


def sas_of(phone: Phone, call_id: str) -> str:
    return next(
        e.secured.sas for e in phone.events if isinstance(e, CallSecure) and e.call_id == call_id
    )


def test_blind_transfer_from_the_keys(tmp_path: Path) -> None:
    async def main() -> None:
        async with three_phones(tmp_path) as (alice, bob, carol):
            first = await alice_calls_bob(alice, bob)
            alice.key("transfer")
            await bob.until(lambda e: isinstance(e, CallHeld) and e.remote_hold)
            screen = alice.engine.screen()
            assert screen is not None and screen.title == "Transfer" and "bob" in screen.lines[0]
            alice.key("5")
            screen = alice.engine.screen()
            assert screen is not None and screen.big == "5"
            alice.key("#")
            await bob.until(lambda e: isinstance(e, CallReferred))
            referred = next(e for e in bob.events if isinstance(e, CallReferred))
            assert referred.call_id == first.call_id
            await carol.until(lambda e: isinstance(e, CallIncoming))
            incoming = next(e for e in carol.events if isinstance(e, CallIncoming))
            assert "bob" in incoming.remote_uri  # Carol is called by Bob, not by Alice
            await alice.until(lambda e: isinstance(e, CallTransferProgress))
            carol.engine.press(HookEvent(off_hook=True))

            await alice.until(lambda e: isinstance(e, CallTransferEnded))
            ended = next(e for e in alice.events if isinstance(e, CallTransferEnded))
            assert ended.ended.succeeded and ended.call_id == first.call_id
            await alice.until(lambda e: isinstance(e, CallFinished))
            finished = next(e for e in alice.events if isinstance(e, CallFinished))
            assert finished.reason == "Transferred"
            await until(lambda: "Transferred" in getattr(alice.engine.screen(), "lines", ()))

            # Bob and Carol: a call of their own, secured by its own exchange
            await bob.until(
                lambda e: isinstance(e, CallSecure) and e.call_id == referred.new_call_id
            )
            await carol.until(lambda e: isinstance(e, CallSecure))
            sas = sas_of(bob, referred.new_call_id)
            assert sas == sas_of(carol, incoming.call_id)
            assert sas != first.secured.sas
            await bob.until(lambda e: isinstance(e, CallFinished) and e.call_id == first.call_id)
            await asyncio.sleep(0.8)
            assert abs(strongest(bob.heard(10)) - CAROL) < 20
            assert abs(strongest(carol.heard(10)) - BOB) < 20
            shown = bob.engine.screen()
            assert shown is not None and shown.big == sas and "5@" in shown.title
            progress = [
                e.progress.status for e in alice.events if isinstance(e, CallTransferProgress)
            ]
            assert progress[0] == 100 and progress == sorted(progress)

    asyncio.run(main())


def test_a_refused_transfer_returns_to_the_held_call(tmp_path: Path) -> None:
    async def main() -> None:
        async with three_phones(tmp_path) as (alice, bob, carol):
            alice.engine.press(HookEvent(off_hook=True))  # the handset up: taken back at once
            first = await alice_calls_bob(alice, bob)
            for key in ("transfer", "5", "transfer"):
                alice.key(key)
            await carol.until(lambda e: isinstance(e, CallIncoming))
            carol.key("hangup")  # Carol declines the call Bob was asked to make
            await alice.until(lambda e: isinstance(e, CallTransferEnded))
            ended = next(e for e in alice.events if isinstance(e, CallTransferEnded))
            assert not ended.ended.succeeded
            assert ended.ended.status in (486, 603)
            # Bob is taken off hold and hears Alice again; the screen says why
            await bob.until(lambda e: isinstance(e, CallHeld) and not e.remote_hold)
            await asyncio.sleep(0.8)
            assert abs(strongest(bob.heard(10)) - ALICE) < 20
            assert abs(strongest(alice.heard(10)) - BOB) < 20
            shown = alice.engine.screen()
            assert shown is not None and shown.lines[-1].startswith("Transfer failed")
            assert [c.call_id for c in alice.engine.calls()] == [first.call_id]
            assert len(bob.engine.calls()) == 1
            assert_no_open_microphone(alice)

    asyncio.run(main())


def test_attended_transfer_joins_the_held_call_to_the_consultation(tmp_path: Path) -> None:
    async def main() -> None:
        async with three_phones(tmp_path) as (alice, bob, carol):
            first = await alice_calls_bob(alice, bob)
            for key in ("transfer", "5", "answer"):  # hold Bob, call Carol first
                alice.key(key)
            await carol.until(lambda e: isinstance(e, CallIncoming))
            carol.engine.press(HookEvent(off_hook=True))
            await carol.until(lambda e: isinstance(e, CallSecure))
            consultation = next(e for e in carol.events if isinstance(e, CallSecure)).call_id
            await asyncio.sleep(0.6)
            assert abs(strongest(alice.heard(10)) - CAROL) < 20  # Alice talks to Carol
            assert rms(bob.heard(10)) < 50  # Bob waits on hold
            shown = alice.engine.screen()
            assert shown is not None and shown.lines[-1].startswith("On hold: sips:bob@")

            alice.key("transfer")  # join them
            await carol.until(lambda e: isinstance(e, CallReplaced))
            replaced = next(e for e in carol.events if isinstance(e, CallReplaced))
            assert replaced.replaces == consultation and "bob" in replaced.remote_uri
            await alice.until(lambda e: isinstance(e, CallTransferEnded))
            assert next(e for e in alice.events if isinstance(e, CallTransferEnded)).ended.succeeded
            await until(lambda: alice.engine.calls() == [], timeout=10)
            await bob.until(lambda e: isinstance(e, CallFinished) and e.call_id == first.call_id)
            await carol.until(lambda e: isinstance(e, CallFinished) and e.call_id == consultation)

            await carol.until(lambda e: isinstance(e, CallSecure) and e.call_id == replaced.call_id)
            new = next(e for e in bob.events if isinstance(e, CallReferred)).new_call_id
            await bob.until(lambda e: isinstance(e, CallSecure) and e.call_id == new)
            sas = sas_of(carol, replaced.call_id)
            assert sas == sas_of(bob, new) and sas not in (
                first.secured.sas,
                sas_of(carol, consultation),
            )
            await asyncio.sleep(0.8)
            assert abs(strongest(bob.heard(10)) - CAROL) < 20
            assert abs(strongest(carol.heard(10)) - BOB) < 20
            shown = carol.engine.screen()
            assert shown is not None and shown.big == sas
            assert shown.lines[-1].startswith("Transferred from sips:alice@")

    asyncio.run(main())


def test_a_phone_with_two_calls_declines_to_be_transferred_into_a_third(tmp_path: Path) -> None:
    async def main() -> None:
        async with three_phones(tmp_path) as (alice, bob, carol):
            await alice_calls_bob(alice, bob)
            assert bob.transport.listening is not None
            bob_uri = f"sips:bob@127.0.0.1:{bob.transport.listening[1]}"
            carol.engine.switchboard.settings = replace(
                carol.engine.switchboard.settings, dial_domain=bob_uri.removeprefix("sips:bob@")
            )
            carol.key("7")
            carol.key("#")
            await bob.until(lambda e: isinstance(e, CallIncoming) and "carol" in e.remote_uri)
            bob.key("answer")  # Alice waits on hold, Bob talks to Carol: two calls
            await carol.until(lambda e: isinstance(e, CallSecure))
            assert len(bob.engine.calls()) == 2
            alice.engine.transfer(alice.engine.calls()[0].call_id, "5")
            await alice.until(lambda e: isinstance(e, CallTransferEnded))
            ended = next(e for e in alice.events if isinstance(e, CallTransferEnded))
            assert not ended.ended.succeeded and ended.ended.status == 486
            assert len(bob.engine.calls()) == 2  # nothing was placed
            assert not any(isinstance(e, CallReferred) for e in bob.events)

    asyncio.run(main())


def test_transfer_while_the_consultation_rings(tmp_path: Path) -> None:
    async def main() -> None:
        async with three_phones(tmp_path) as (alice, bob, carol):
            first = await alice_calls_bob(alice, bob)
            for key in ("transfer", "5", "answer"):
                alice.key(key)
            await carol.until(lambda e: isinstance(e, CallIncoming))
            alice.key("transfer")  # Carol has not answered: Bob goes to her instead of Alice
            await carol.until(lambda e: isinstance(e, CallFinished))  # Alice's call, cancelled
            await carol.until(
                lambda e: isinstance(e, CallIncoming) and "bob" in e.remote_uri, timeout=15
            )
            carol.engine.press(HookEvent(off_hook=True))
            await alice.until(lambda e: isinstance(e, CallTransferEnded))
            ended = next(e for e in alice.events if isinstance(e, CallTransferEnded))
            assert ended.call_id == first.call_id and ended.ended.succeeded
            referred = next(e for e in bob.events if isinstance(e, CallReferred))
            await bob.until(
                lambda e: isinstance(e, CallSecure) and e.call_id == referred.new_call_id
            )
            await until(lambda: alice.engine.calls() == [], timeout=10)

    asyncio.run(main())


def test_a_transfer_that_cannot_be_asked_for_fails_at_once_in_plain_words(tmp_path: Path) -> None:
    async def main() -> None:
        async with three_phones(tmp_path) as (alice, bob, _):
            first = await alice_calls_bob(alice, bob)
            alice.engine.transfer(first.call_id, "5")
            alice.engine.transfer(first.call_id, "6")  # the first one is still under way
            await alice.until(lambda e: isinstance(e, CallTransferEnded))
            ended = next(e for e in alice.events if isinstance(e, CallTransferEnded))
            assert not ended.ended.succeeded
            assert ended.ended.reason == "Cannot transfer this call now"

    asyncio.run(main())


def test_the_handset_put_down_while_keying_a_target_keeps_the_held_call_ringing_back(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with two_phones(tmp_path) as (alice, bob):
            alice.engine.press(HookEvent(off_hook=True))
            await alice_calls_bob(alice, bob)
            alice.key("transfer")
            alice.key("5")
            await bob.until(lambda e: isinstance(e, CallHeld) and e.remote_hold)
            alice.engine.press(HookEvent(off_hook=False))  # put down while keying the target
            await until(lambda: len(ring_of(alice)) >= 8000 * 2)  # a second of ringing
            assert sorted(round(f, -2) for f in dominant_frequencies(ring_of(alice))) == [
                1100,
                1400,
            ]
            shown = alice.engine.screen()
            assert shown is not None and shown.title == "Call on hold"
            assert shown.lines[-1] == "Lift handset to resume"
            assert not any(isinstance(e, CallFinished) for e in bob.events)  # Bob still waits
            bob.events.clear()
            alice.engine.press(HookEvent(off_hook=True))
            await bob.until(lambda e: isinstance(e, CallHeld) and not e.remote_hold)
            await until(lambda: alice.audio.playbacks["ring"].closed)
            await asyncio.sleep(0.8)
            assert abs(strongest(bob.heard(10)) - ALICE) < 20
            assert abs(strongest(alice.heard(10)) - BOB) < 20

    asyncio.run(main())


def test_the_handset_put_down_after_joining_completes_the_attended_transfer(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with three_phones(tmp_path) as (alice, bob, carol):
            alice.engine.press(HookEvent(off_hook=True))
            first = await alice_calls_bob(alice, bob)
            for key in ("transfer", "5", "answer"):
                alice.key(key)
            await carol.until(lambda e: isinstance(e, CallIncoming))
            carol.engine.press(HookEvent(off_hook=True))
            await carol.until(lambda e: isinstance(e, CallSecure))
            await asyncio.sleep(0.5)
            alice.key("transfer")  # join them, and put the handset down at once
            alice.engine.press(HookEvent(off_hook=False))
            assert_no_open_microphone(alice)
            await alice.until(lambda e: isinstance(e, CallTransferEnded), timeout=20)
            ended = next(e for e in alice.events if isinstance(e, CallTransferEnded))
            assert ended.call_id == first.call_id and ended.ended.succeeded
            await until(lambda: alice.engine.calls() == [], timeout=10)
            await asyncio.sleep(1.5)
            assert_no_open_microphone(alice)
            state = alice.engine._ui.state if alice.engine._ui is not None else None
            assert state is not None and not state.muted and not state.ringing
            # Bob talks to Carol now, and hears her (not Alice's room)
            new = next(e for e in bob.events if isinstance(e, CallReferred)).new_call_id
            await bob.until(lambda e: isinstance(e, CallSecure) and e.call_id == new)
            assert abs(strongest(bob.heard(10)) - CAROL) < 20
            assert abs(strongest(carol.heard(10)) - BOB) < 20

    asyncio.run(main())


def test_a_transfer_from_the_keys_on_hook_that_fails_keeps_the_call_on_hold(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with three_phones(tmp_path) as (alice, bob, carol):
            alice.engine.press(HookEvent(off_hook=True))
            first = await alice_calls_bob(alice, bob)
            alice.key("hold")
            await bob.until(lambda e: isinstance(e, CallHeld) and e.remote_hold)
            alice.engine.press(HookEvent(off_hook=False))  # Bob rings back
            for key in ("transfer", "5", "#"):  # transferred from the keys, the handset down
                alice.key(key)
            await carol.until(lambda e: isinstance(e, CallIncoming))
            carol.key("hangup")  # Carol declines
            await alice.until(lambda e: isinstance(e, CallTransferEnded))
            assert not next(
                e for e in alice.events if isinstance(e, CallTransferEnded)
            ).ended.succeeded
            await asyncio.sleep(1.5)
            assert_no_open_microphone(alice)
            assert rms(bob.heard(10)) < 50  # Bob still waits on hold: no sound of the room
            shown = alice.engine.screen()
            assert shown is not None and shown.title == "Call on hold"
            assert [c.call_id for c in alice.engine.calls()] == [first.call_id]
            bob.events.clear()
            alice.engine.press(HookEvent(off_hook=True))  # taken back
            await bob.until(lambda e: isinstance(e, CallHeld) and not e.remote_hold)
            await asyncio.sleep(0.8)
            assert abs(strongest(bob.heard(10)) - ALICE) < 20

    asyncio.run(main())


def assert_no_open_microphone(phone: Phone) -> None:
    """No call has our microphone (connected, not on hold, not muted) while the handset is
    down and nothing rings to call the user to it."""
    ui = phone.engine._ui
    assert ui is not None
    state = ui.state
    assert state is not None
    live = [c for c in phone.engine.calls() if c.state == CallState.CONNECTED and not c.local_hold]
    assert not (live and not state.off_hook and not state.ringing and not state.muted), (
        live,
        state.off_hook,
    )


def ring_of(phone: Phone) -> bytes:
    playback = phone.audio.playbacks.get("ring")
    return b"" if playback is None else playback.played()
