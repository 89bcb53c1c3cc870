"""A ringer or display that fails is an event, not silence: an incoming call whose ringer
cannot open its ALSA device (real alsa-lib) still shows "Incoming call", says the ringer
failed and rings in the handset; a display whose bus stops answering (luma's dummy device
raising the I2C error) is drawn again with backoff, and both are logged once and reach
systemd's STATUS= (a real NOTIFY_SOCKET); a display thread that keeps dying stops the
watchdog pings so that systemd restarts the phone."""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from luma.core.device import dummy
from PIL import Image

from pidphone import wiring
from pidphone.app import phone_events as pe
from pidphone.app import phone_ui
from pidphone.app.call_events import CallFinished, CallIncoming
from pidphone.app.phone_ui import PhoneUi
from pidphone.app.supervision import MAX_RESTARTS
from pidphone.audio.analysis import dominant_frequencies
from pidphone.config import Config, DisplayConfig, SecurityConfig
from pidphone.daemon import Service
from pidphone.drivers.alsa_audio import AlsaAudio, AlsaPlayback
from pidphone.drivers.certs import make_test_pki
from pidphone.drivers.draw import HEIGHT, WIDTH, draw_screen
from pidphone.drivers.oled import OledDisplay
from pidphone.drivers.sim_audio import Pacer, SimAudioDevices, SimPlayback
from pidphone.drivers.systemd_notify import notifier_from_environment
from pidphone.ports import SAMPLE_RATE, AudioPurpose, Screen
from tests.test_controller import make

MISSING_RINGER = "pidphone_test_no_such_ringer"
"""An ALSA PCM name alsa-lib does not know: opening it fails as an unplugged card does."""


@dataclass(frozen=True)
class AlsaSettings:
    capture_device: str = "null"
    playback_device: str = "null"
    ring_device: str = MISSING_RINGER
    rate: int = 0
    mixer_card: str = "default"
    mixer_control: str = ""


class BrokenRingerDevices(SimAudioDevices):
    """The simulated handset, with the ringer on real alsa-lib through a PCM that cannot be
    opened."""

    def __init__(self) -> None:
        super().__init__(tone_frequency=700)
        self.alsa = AlsaAudio(AlsaSettings(), pacer=Pacer, retry_interval=1.0)
        self.ring_opens = 0

    def open_playback(  # type: ignore[override]
        self, purpose: AudioPurpose = "call", rate: int = SAMPLE_RATE
    ) -> SimPlayback | AlsaPlayback:
        if purpose == "ring":
            self.ring_opens += 1
            return self.alsa.open_playback("ring", rate)
        return super().open_playback(purpose, rate)


class FlakyRinger(SimAudioDevices):
    """A ringer whose device cannot be opened while `broken` is set (then plays)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = threading.Event()
        self.broken.set()

    def open_playback(self, purpose: AudioPurpose = "call", rate: int = SAMPLE_RATE) -> SimPlayback:
        if purpose == "ring" and self.broken.is_set():
            raise OSError(errno.EBUSY, "Device or resource busy")
        return super().open_playback(purpose, rate)


def records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == phone_ui.__name__ and text in r.getMessage()]


def shown(ui: PhoneUi) -> Screen:
    screen = ui.screen()
    assert screen is not None
    return screen


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def test_an_incoming_call_with_a_ringer_that_cannot_open_says_so_and_rings_in_the_handset(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    broken = BrokenRingerDevices()

    async def main() -> None:
        pki = make_test_pki(tmp_path / "pki", ["127.0.0.1"])
        bob = await make("bob", 700, pki, listen=True, dials={}, audio=broken)
        assert bob.transport.listening is not None
        uri = f"sips:bob@127.0.0.1:{bob.transport.listening[1]}"
        alice = await make("alice", 1000, pki, listen=False, dials={"1": uri})
        try:
            for call in range(2):  # the second call: known at once, not logged again
                alice.key("speed1")
                await bob.until(lambda e: isinstance(e, CallIncoming))
                if call == 0:
                    await bob.until(lambda e: isinstance(e, pe.DeviceFailed))
                await asyncio.sleep(1.5)  # the ringer tries again meanwhile
                screen = bob.screens.shown[-1]
                assert screen.title == "Incoming call"
                assert screen.lines == (
                    "sips:alice@127.0.0.1",
                    "Ringer failed!",
                    "Lift handset to answer",
                )
                earpiece = bob.audio.playbacks["call"].played()[-8000 * 2 :]
                assert sorted(round(f, -2) for f in dominant_frequencies(earpiece)) == [1100, 1400]
                alice.key("hangup")
                await bob.until(lambda e: isinstance(e, CallFinished))
                bob.events.clear()
            assert broken.ring_opens == 2  # one per call: the driver retries it meanwhile
        finally:
            await alice.engine.stop()
            await bob.engine.stop()
        failed = [e for e in bob.events if isinstance(e, pe.DeviceFailed)]
        assert failed == []  # cleared above: the second call brought no second report

    asyncio.run(main())
    driver = [r for r in caplog.records if r.name == "pidphone.drivers.alsa_audio"]
    assert [r.levelno for r in driver if MISSING_RINGER in r.getMessage()][:1] == [logging.ERROR]
    assert sum(r.levelno >= logging.ERROR for r in driver) == 1  # not again at the next call
    logged = records(caplog, "the ringer failed")
    assert len(logged) == 1
    assert logged[0].levelno == logging.ERROR
    assert logged[0].getMessage() == (
        f"the ringer failed: ALSA playback '{MISSING_RINGER}' (audio.ring_device): No such file"
        f" or directory [{MISSING_RINGER}]; incoming calls ring in the handset until it works"
        " again"
    )


def test_a_ringer_that_comes_back_rings_again_and_the_handset_stops(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(phone_ui, "FIRST_RETRY", 0.05)
    audio = FlakyRinger()
    commands: list[pe.Command] = []
    reported: list[pe.DeviceFailed | pe.DeviceRecovered] = []

    async def main() -> None:
        ui = PhoneUi(
            pe.PhoneSettings(account="bob"), commands.append, audio=audio, on_device=reported.append
        )
        ui.start()
        try:
            ui.fact(CallIncoming("c1", "sip:alice@example.org", ""))
            await until(lambda: reported != [])
            assert reported == [
                pe.DeviceFailed("ringer", "OSError: [Errno 16] Device or resource busy")
            ]
            assert commands[-1] == pe.PlayTone("ring")
            assert "Ringer failed!" in shown(ui).lines
            audio.broken.clear()  # plugged back in
            await until(lambda: len(reported) == 2)
            assert reported[1] == pe.DeviceRecovered("ringer")
            assert commands[-1] == pe.PlayTone(None)  # the handset stops ringing
            await until(lambda: len(audio.playbacks["ring"].played()) >= 8000)
            ring = audio.playbacks["ring"].played()
            assert sorted(round(f, -2) for f in dominant_frequencies(ring)) == [1100, 1400]
            assert "Ringer failed!" not in shown(ui).lines
        finally:
            ui.stop()

    asyncio.run(main())
    assert len(records(caplog, "the ringer failed")) == 1
    assert len(records(caplog, "the ringer works again")) == 1


class FlakyBus(dummy):
    """luma's dummy device, whose bus stops answering (the I2C error) while `broken` is set;
    every frame it is asked to send is noted."""

    def __init__(self) -> None:
        super().__init__(width=WIDTH, height=HEIGHT, mode="1")
        self.broken = threading.Event()
        self.attempts: list[float] = []

    def display(self, image: Image.Image) -> None:
        self.attempts.append(time.monotonic())
        if self.broken.is_set():
            raise OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))
        super().display(image)


BUS_FAULT = "OLED display (display): OSError: [Errno 121] Remote I/O error"


def test_a_failing_display_is_drawn_again_with_backoff_and_reported_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(phone_ui, "FIRST_RETRY", 0.05)
    bus = FlakyBus()
    display = OledDisplay(lambda: bus, retry_interval=0.0)
    reported: list[pe.DeviceFailed | pe.DeviceRecovered] = []

    async def main() -> None:
        ui = PhoneUi(
            pe.PhoneSettings(account="bob"),
            lambda c: None,
            display=display,
            on_device=reported.append,
        )
        ui.start()
        try:
            await until(lambda: len(bus.attempts) >= 1)
            bus.broken.set()
            ui.fact(CallIncoming("c1", "sip:alice@example.org", ""))
            await until(lambda: reported != [])
            assert reported == [pe.DeviceFailed("display", BUS_FAULT)]
            first = len(bus.attempts)
            await until(lambda: len(bus.attempts) >= first + 4)  # no new screen: retries
            gaps = [b - a for a, b in itertools.pairwise(bus.attempts[first - 1 :])]
            # each wait at least twice the one before (a loaded machine only makes it longer)
            assert all(gap >= 0.9 * 0.05 * 2**n for n, gap in enumerate(gaps[:4])), gaps
            bus.broken.clear()
            await until(lambda: len(reported) == 2, timeout=15)
            assert reported[1] == pe.DeviceRecovered("display")
            shown = ui.screen()
            assert shown is not None and shown.title == "Incoming call"
            assert bus.image is not None
            assert bus.image.tobytes() == draw_screen(shown).tobytes()
        finally:
            ui.stop()

    asyncio.run(main())
    logged = records(caplog, "the display failed")
    assert [r.getMessage() for r in logged] == [
        f"the display failed: {BUS_FAULT}; drawing again with backoff"
    ]
    assert len(records(caplog, "the display works again")) == 1


# --------------------------------------------------------------------------- the daemon


@contextmanager
def systemd_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[tuple[float, str]]]:
    """A NOTIFY_SOCKET with a watchdog every 50 ms; yields what systemd hears, as it comes
    (with when), and everything sent before the block ends."""
    path = tmp_path / "notify"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    receiver.settimeout(0.05)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    heard: list[tuple[float, str]] = []
    done = threading.Event()

    def listen() -> None:  # until told to stop and nothing is left to read (STOPPING=1)
        while True:
            try:
                data = receiver.recv(4096)
            except TimeoutError:
                if done.is_set():
                    return
                continue
            heard.extend((time.monotonic(), line) for line in data.decode().splitlines())

    listener = threading.Thread(target=listen)
    listener.start()
    try:
        yield heard
    finally:
        done.set()
        listener.join()
        receiver.close()


def simulated(tmp_path: Path) -> Config:
    return Config(
        hardware="simulated",
        security=SecurityConfig(zid_cache=str(tmp_path / "zid.json")),
        display=DisplayConfig(driver="none"),
    )


async def heard_line(
    heard: list[tuple[float, str]], check: Callable[[str], bool], after: float = 0.0
) -> float:
    """When systemd first heard a line that passes `check` (after `after`); a loaded machine
    may take seconds."""
    async with asyncio.timeout(30):
        while True:
            for at, line in list(heard):
                if at > after and check(line):
                    return at
            await asyncio.sleep(0.01)


def test_a_display_fault_and_its_end_reach_systemd_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(phone_ui, "FIRST_RETRY", 0.05)
    bus = FlakyBus()
    bus.broken.set()
    display = OledDisplay(lambda: bus, retry_interval=0.0)
    monkeypatch.setattr(wiring, "display", lambda config, **kwargs: display)

    async def main(heard: list[tuple[float, str]]) -> None:
        service = Service(simulated(tmp_path), None, "", notifier_from_environment())
        running = asyncio.create_task(service.main())
        await heard_line(heard, lambda line: line == "READY=1")
        failed = await heard_line(
            heard,
            lambda line: (
                line == f"STATUS=no account, direct calls only; display failed: {BUS_FAULT}"
            ),
        )
        bus.broken.clear()
        await heard_line(heard, lambda line: line == "STATUS=no account, direct calls only", failed)
        assert service.phone.healthy
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(running, 10) == 0

    with systemd_socket(tmp_path, monkeypatch) as heard:
        asyncio.run(main(heard))


class DriverBug(BaseException):
    """What escapes every handler of the display thread (a bug below it, not an I/O error)."""


class DyingDisplay:
    def __init__(self) -> None:
        self.shows = 0

    def show(self, screen: Screen) -> None:
        self.shows += 1
        raise DriverBug("display driver bug")

    def close(self) -> None:
        pass


def test_a_display_thread_that_keeps_dying_stops_the_watchdog_pings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dying = DyingDisplay()
    monkeypatch.setattr(wiring, "display", lambda config, **kwargs: dying)

    async def main(heard: list[tuple[float, str]]) -> None:
        service = Service(simulated(tmp_path), None, "", notifier_from_environment())
        running = asyncio.create_task(service.main())
        given_up = await heard_line(heard, lambda line: "restart needed" in line)
        await asyncio.sleep(0.6)  # twelve watchdog intervals
        assert service.phone.healthy is False
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(running, 10) == 0
        late = [line for t, line in heard if t > given_up and line == "WATCHDOG=1"]
        assert late == []

    with systemd_socket(tmp_path, monkeypatch) as heard:
        asyncio.run(main(heard))
    assert dying.shows == MAX_RESTARTS + 1
    lines = [line for _, line in heard]
    assert (
        "STATUS=no account, direct calls only; display failed: the display thread died:"
        " DriverBug: display driver bug; restart needed"
    ) in lines


class HangingDisplay:
    """A display whose driver blocks in its first write until `release` (a bus that hangs)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def show(self, screen: Screen) -> None:
        self.release.wait()

    def close(self) -> None:
        pass


def test_a_display_thread_that_hangs_makes_the_phone_unhealthy(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(phone_ui, "STUCK_AFTER", 0.5)
    hanging = HangingDisplay()
    reported: list[pe.DeviceFailed | pe.DeviceRecovered] = []

    async def main() -> None:
        ui = PhoneUi(
            pe.PhoneSettings(account="bob"),
            lambda c: None,
            display=hanging,
            on_device=reported.append,
        )
        ui.start()
        try:
            was_healthy = ui.healthy
            await until(lambda: reported != [])
            assert was_healthy and not ui.healthy
            assert reported == [
                pe.DeviceFailed(
                    "display",
                    "the display thread hangs: no screen drawn for 0 s; restart needed",
                )
            ]
        finally:
            hanging.release.set()
            ui.stop()

    asyncio.run(main())
    assert len(records(caplog, "the display thread hangs")) == 2  # critical, then the fault
