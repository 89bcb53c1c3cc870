"""Call forwarding and do-not-disturb: always, when busy and after N seconds unanswered, to a
configured or keyed-in number, by a 302 the caller gets through a real Kamailio; shown on the
idle screen; both kept across a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from pidphone.app.call_events import CallConnected, CallForwarded, CallIncoming
from pidphone.app.phone_events import Forward, OutgoingCall, PhoneSettings, Reject, Ring, Tick
from pidphone.app.phone_state import PhoneState, initial_state
from pidphone.app.screen import render
from pidphone.app.state import reduce
from pidphone.cli.call import describe
from pidphone.cli.render_screens import sample_screens
from pidphone.config import Config, DisplayConfig, PhoneConfig, SecurityConfig, SimConfig
from pidphone.daemon import Phone as DaemonPhone
from pidphone.drivers.certs import Pki, make_test_pki
from pidphone.drivers.preferences import FilePreferences
from pidphone.ports import Contact, HookEvent, KeyEvent, Preferences
from pidphone.sip.events import CallEnded, CallRedirected, IncomingCall, Registered
from tests.conftest import need_path, need_program
from tests.peers.kamailio import Kamailio, tls_module
from tests.peers.netns import need_private_network, private_network
from tests.peers.pidphone import Phone


def feed(state: PhoneState, *events: object) -> tuple[PhoneState, list[object]]:
    commands: list[object] = []
    for event in events:
        state, more = reduce(state, event)  # type: ignore[arg-type]
        commands += more
    return state, commands


def incoming(n: int = 1) -> CallIncoming:
    return CallIncoming(f"c{n}", remote_uri=f"sip:caller{n}@example.org", remote_name="")


def test_forward_always_sends_every_call_on_without_ringing() -> None:
    state = initial_state(PhoneSettings(forward_always="1234"))
    assert render(state, 0).lines[-1] == "Forward: 1234"
    state, commands = feed(state, incoming())
    assert commands == [Forward("c1", "1234")]
    assert state.call is None and [r.kind for r in state.history] == ["missed"]


def test_the_forward_key_turns_it_off_and_on_to_the_digits_typed() -> None:
    state = initial_state(PhoneSettings(forward_always="1234"))
    state, _ = feed(state, KeyEvent("forward"))
    assert state.forward_to == ""
    state, commands = feed(state, incoming())
    assert Ring(True) in commands
    state, _ = feed(state, KeyEvent("hangup"))
    state, _ = feed(state, *(KeyEvent(k) for k in "5678"), KeyEvent("forward"))
    assert state.forward_to == "5678" and state.digits == ""
    _, commands = feed(state, incoming(2))
    assert commands == [Forward("c2", "5678")]


def test_when_busy_a_second_call_is_forwarded_instead_of_waiting() -> None:
    state = initial_state(PhoneSettings(forward_busy="voicemail"))
    state, _ = feed(state, incoming(1), HookEvent(off_hook=True), CallConnected("c1"))
    state, commands = feed(state, incoming(2))
    assert commands == [Forward("c2", "voicemail")]
    assert state.other is None


def test_an_unanswered_call_is_forwarded_after_n_seconds() -> None:
    state = initial_state(PhoneSettings(forward_no_answer="7000", forward_after=15.0), now=10.0)
    state, _ = feed(state, incoming())
    state, commands = feed(state, Tick(24.9))
    assert commands == []
    state, commands = feed(state, Tick(25.0))
    assert Forward("c1", "7000") in commands and Ring(False) in commands
    assert state.call is None and state.history[0].kind == "missed"


def test_do_not_disturb_still_rejects_and_forwarding_comes_first() -> None:
    state = initial_state(PhoneSettings(), preferences=Preferences(dnd=True))
    _, commands = feed(state, incoming())
    assert commands == [Reject("c1")]
    state = initial_state(PhoneSettings(), preferences=Preferences(dnd=True, forward_to="9"))
    _, commands = feed(state, incoming())
    assert commands == [Forward("c1", "9")]


def test_preferences_are_kept_atomically_and_a_bad_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "state" / "preferences.json"
    store = FilePreferences(path)
    assert store.load() is None
    store.save(Preferences(dnd=True, forward_to="sip:desk@example.org"))
    assert FilePreferences(path).load() == Preferences(True, "sip:desk@example.org")
    path.write_text('{"format": "pidphone-preferences", "dnd": "yes", "forward_to": ""}')
    assert FilePreferences(path).load() is None
    assert not path.exists() and list(path.parent.glob("preferences.json.corrupt-*"))
    path.write_text('{"format": "pidphone-preferences", "dnd": false, "forward_to": "a\\nb"}')
    assert FilePreferences(path).load() is None


def test_dnd_and_forwarding_survive_a_restart_of_the_daemon(tmp_path: Path) -> None:
    script = tmp_path / "keys.txt"
    script.write_text("0.2 dnd\n0.1 4\n0.1 2\n0.1 forward\n")

    def config(keys: str) -> Config:
        return Config(
            hardware="simulated",
            security=SecurityConfig(zid_cache=str(tmp_path / "zid.json")),
            display=DisplayConfig(driver="ssd1306"),
            phone=PhoneConfig(forward_busy="9"),
            sim=SimConfig(keys_script=keys),
        )

    async def idle_lines(keys: str, until: str) -> tuple[str, ...]:
        phone = DaemonPhone(config(keys), lambda status: None)
        await phone.start()
        try:
            async with asyncio.timeout(10):
                while True:
                    controller = phone.controller
                    screen = controller.screen() if controller is not None else None
                    if screen is not None and until in screen.lines:
                        return screen.lines
                    await asyncio.sleep(0.05)
        finally:
            await phone.stop()

    first = asyncio.run(idle_lines(str(script), "Forward: 42"))
    assert "Do not disturb" in first
    again = asyncio.run(idle_lines("", "Forward: 42"))  # no keys this time
    assert "Do not disturb" in again


def test_a_call_we_placed_that_was_forwarded_says_where_it_went() -> None:
    """The screen of a call that followed a 302: "Forwarded to" the contact's name when the
    phone book knows the target, else the address without scheme and parameters."""
    screens = sample_screens()
    assert screens["forwarded"].title == "Ringing"
    assert screens["forwarded"].lines[-2:] == ("Forwarded to:", "dave@example.org")
    carol = Contact("Carol Smith", ("sip:carol@example.org",))
    settings = PhoneSettings(contacts=(carol,), speed_dials={"1": "sip:bob@example.org"})
    state, _ = feed(
        initial_state(settings, now=0.0),
        HookEvent(off_hook=True),
        KeyEvent("speed1"),
        OutgoingCall("c1", "sip:bob@example.org"),
        CallForwarded("c1", CallRedirected("c1", 302, "sip:carol@example.org;alias=x~1~3")),
    )
    assert render(state, state.now).lines[-2:] == ("Forwarded to:", "Carol Smith")
    # and `pidphone call` prints it among its progress lines
    forwarded = CallForwarded("c1", CallRedirected("c1", 302, "sip:carol@example.org"))
    assert describe(forwarded) == "forwarded (302): calling sip:carol@example.org"


# --------------------------------------------------------------------------- on the wire


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


@pytest.mark.kamailio
def test_the_caller_follows_the_302_to_the_forwarding_target_through_kamailio(
    network: None, pki: Pki, tmp_path: Path
) -> None:
    """Bob forwards Alice's call to Carol with a 302; Alice's phone sends the call on to Carol
    through Kamailio (RFC 3261 §8.1.3.4), with the proxy credentials Kamailio asks for, and
    Carol's phone rings with the same call."""

    async def main() -> None:
        kamailio = Kamailio(tmp_path / "kamailio", pki)
        with kamailio.started():
            async with (
                Phone("alice", "alicepw", pki=pki, registrar=kamailio.address) as alice,
                Phone("bob", "bobpw", pki=pki, registrar=kamailio.address) as bob,
                Phone("carol", "carolpw", pki=pki, registrar=kamailio.address) as carol,
            ):
                for phone in (alice, bob, carol):
                    await phone.expect(Registered)
                call_id = alice.call("sip:bob@127.0.0.1", port=40000)
                call = await bob.expect(IncomingCall)
                bob.sip.redirect(call.call_id, "carol")
                assert (await bob.expect(CallEnded)).reason == "Forwarded"
                redirected = await alice.expect(CallRedirected)
                assert redirected.call_id == call_id and redirected.status == 302
                # (the test proxy appends its ;alias= to every Contact it relays)
                assert redirected.target.startswith("sip:carol@127.0.0.1")
                at_carol = await carol.expect(IncomingCall)
                assert at_carol.call_id == call_id
                assert "sip:alice@127.0.0.1" in at_carol.remote_uri

    asyncio.run(main())
