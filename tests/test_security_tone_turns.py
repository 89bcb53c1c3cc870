"""Which call's indication tone plays when, and when a NOT SECURE call's clear audio may flow
(pidphone.app.security_tones on a running loop, the tones' real lengths)."""

from __future__ import annotations

import asyncio

from pidphone.app.security_tones import MARGIN, SecurityTones
from pidphone.audio.tones import indication_length


class Phone:
    """What the tones are told to do, and which call has the handset."""

    def __init__(self) -> None:
        self.handset: str | None = None
        self.played: list[str | None] = []
        self.cleared: list[str] = []

    def tones(self, *, secure_tone: bool = True, earpiece: bool = True) -> SecurityTones:
        return SecurityTones(
            self.played.append,
            self.cleared.append,
            lambda call_id: call_id == self.handset,
            secure_tone=secure_tone,
            earpiece=earpiece,
        )


NOT_SECURE = indication_length("not_secure") + MARGIN
SECURE = indication_length("secure") + MARGIN


def test_clear_audio_waits_for_the_tone_and_the_screen() -> None:
    async def main() -> None:
        phone = Phone()
        tones = phone.tones()
        phone.handset = "a"
        tones.insecure("a")
        tones.shown("a")  # the screen says so at once: the tone still plays to its end
        assert phone.played == ["not_secure"] and phone.cleared == []
        await asyncio.sleep(NOT_SECURE - 0.2)
        assert phone.cleared == []
        await asyncio.sleep(0.4)
        assert phone.played == ["not_secure", None] and phone.cleared == ["a"]

        tones.insecure("b")  # the screen not drawn yet: the tone alone does not open it
        phone.handset = "b"
        tones.handset_moved()
        await asyncio.sleep(NOT_SECURE + 0.2)
        assert phone.cleared == ["a"]
        tones.shown("b")
        assert phone.cleared == ["a", "b"]

    asyncio.run(main())


def test_a_call_without_the_handset_waits_for_it() -> None:
    async def main() -> None:
        phone = Phone()
        tones = phone.tones()
        phone.handset = "a"
        tones.insecure("b")
        tones.shown("b")
        await asyncio.sleep(NOT_SECURE + 0.2)
        assert phone.played == [] and phone.cleared == []  # b is not heard: it stays mute
        phone.handset = "b"
        tones.handset_moved()
        assert phone.played == ["not_secure"]
        phone.handset = "a"  # put on hold half-way: the tone stops, and starts over later
        tones.handset_moved()
        assert phone.played == ["not_secure", None]
        phone.handset = "b"
        tones.handset_moved()
        await asyncio.sleep(NOT_SECURE - 0.2)
        assert phone.cleared == []
        await asyncio.sleep(0.4)
        assert phone.cleared == ["b"]

    asyncio.run(main())


def test_the_secure_tone_plays_once_per_call_and_in_turn() -> None:
    async def main() -> None:
        phone = Phone()
        tones = phone.tones()
        phone.handset = "a"
        tones.secure("a")
        tones.secure("a")  # a re-key or a new stream of the same call
        assert phone.played == ["secure"]
        await asyncio.sleep(SECURE + 0.2)
        tones.secure("a")
        assert phone.played == ["secure", None]
        tones.ended("a")
        phone.handset = "c"
        tones.secure("c")
        tones.ended("c")  # ended while its tone played: stopped
        assert phone.played == ["secure", None, "secure", None]
        assert tones.playing is None

    asyncio.run(main())


def test_a_call_secured_after_all_plays_no_not_secure_tone() -> None:
    async def main() -> None:
        phone = Phone()
        tones = phone.tones()
        phone.handset = "a"
        tones.insecure("a")
        tones.secure("a")  # a re-INVITE brought ZRTP after the fallback
        assert phone.played == ["not_secure", None, "secure"]
        await asyncio.sleep(NOT_SECURE + 0.2)
        assert phone.cleared == []  # a secure call has no clear audio to allow

    asyncio.run(main())


def test_settings_the_secure_tone_off_and_a_phone_without_an_earpiece() -> None:
    async def main() -> None:
        phone = Phone()
        quiet = phone.tones(secure_tone=False)
        phone.handset = "a"
        quiet.secure("a")
        assert phone.played == []
        quiet.insecure("b")  # the not-secure tone is never optional
        phone.handset = "b"
        quiet.handset_moved()
        assert phone.played == ["not_secure"]
        quiet.close()

        headless = Phone()
        tones = headless.tones(earpiece=False)
        headless.handset = "a"
        tones.insecure("a")
        assert headless.cleared == []  # the screen still comes first
        tones.shown("a")
        assert headless.played == [] and headless.cleared == ["a"]

    asyncio.run(main())
