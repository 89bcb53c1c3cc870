"""What a caller can put on the screen: a display name from the network is drawn at a cost that
does not grow with its length, the phone keeps only a screen's worth of it, and a display that
hangs during a call restarts the phone only once no call is talking."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from pidphone.app import phone_events as pe
from pidphone.app import phone_ui
from pidphone.app.call_events import CallFinished, CallIncoming
from pidphone.app.call_facts import NAME_CHARS
from pidphone.app.phone_state import initial_state
from pidphone.app.state import reduce
from pidphone.drivers import draw
from pidphone.drivers.certs import make_test_pki
from pidphone.drivers.draw import ELLIPSIS, LINE_SIZE, WIDTH, draw_screen, font, text_width
from pidphone.ports import HookEvent, Screen
from tests.test_controller import Screens, make
from tests.test_media_fault import call_and_hear


def shortened_one_by_one(text: str, limit: int = WIDTH) -> str:
    """The text a line shows, found the slow way: one character off at a time."""
    face = font(LINE_SIZE)
    if text_width(face, text) <= limit:
        return text
    while text and text_width(face, text + ELLIPSIS) > limit:
        text = text[:-1]
    return text + ELLIPSIS


@pytest.mark.parametrize(
    "name",
    ["Alice", "Alice Liddell of Wonderland", "W" * 40, "i" * 90, "Ab " * 30, "x" * 300],
)
def test_a_long_line_shows_the_same_pixels_as_cutting_it_one_character_at_a_time(
    name: str,
) -> None:
    measured = draw_screen(Screen(title="Incoming call", lines=(name,)))
    expected = draw_screen(Screen(title="Incoming call", lines=(shortened_one_by_one(name),)))
    assert measured.tobytes() == expected.tobytes()


def test_a_caller_name_of_sixty_thousand_characters_costs_a_few_measurements(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    measured: list[int] = []
    real = draw.text_width

    def counting(face: draw.Font, text: str) -> int:
        measured.append(len(text))
        return real(face, text)

    monkeypatch.setattr(draw, "text_width", counting)
    draw_screen(Screen(title="Incoming call", lines=("M" * 60_000, "answer or reject")))
    assert len(measured) <= 2 * 12  # two lines, each a measure and a halving search
    assert max(measured) <= WIDTH + 2


def test_the_phone_keeps_a_screens_worth_of_a_callers_name() -> None:
    state = initial_state(pe.PhoneSettings(account="bob"), now=100.0)
    state, _ = reduce(state, CallIncoming("c1", "sips:eve@example.com", "E" * 70_000))
    assert state.call is not None
    assert state.call.name == "E" * NAME_CHARS


class HangingScreens(Screens):
    """A display whose driver blocks once `hang` is set (an I2C bus that stops answering)."""

    def __init__(self) -> None:
        super().__init__()
        self.hang = threading.Event()
        self.release = threading.Event()

    def show(self, screen: Screen) -> None:
        if self.hang.is_set():
            self.release.wait()
        super().show(screen)


def test_a_display_that_hangs_in_a_call_restarts_the_phone_only_after_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(phone_ui, "STUCK_AFTER", 0.5)

    async def main() -> None:
        pki = make_test_pki(tmp_path / "pki", ["127.0.0.1"])
        bob = await make("bob", 700, pki, listen=True, dials={})
        assert bob.transport.listening is not None
        uri = f"sips:bob@127.0.0.1:{bob.transport.listening[1]}"
        screens = HangingScreens()
        alice = await make("alice", 1000, pki, listen=False, dials={"1": uri}, screens=screens)
        try:
            await call_and_hear(alice, bob)
            screens.hang.set()
            alice.key("mute")  # a new screen the hung driver never draws
            await alice.until(lambda e: isinstance(e, pe.DeviceFailed), timeout=10)
            await asyncio.sleep(0.5)
            assert alice.engine.healthy  # the call goes on
            bob.engine.press(HookEvent(off_hook=False))
            await alice.until(lambda e: isinstance(e, CallFinished))
            assert not alice.engine.healthy  # now systemd may restart the phone
        finally:
            screens.release.set()
            await alice.engine.stop()
            await bob.engine.stop()

    asyncio.run(main())
