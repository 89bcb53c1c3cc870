"""A dead media thread is a fault, not silence: a real exception in the media thread (a capture
driver that raises) ends the call with a reason the screen shows, a new worker takes over and
carries the next call; a worker that keeps dying stops the daemon's watchdog pings (a real
NOTIFY_SOCKET) so that systemd restarts the phone."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path

import pytest

from pidphone import wiring
from pidphone.app.call_events import CallFinished, CallIncoming, CallSecure
from pidphone.app.phone_events import MediaFault
from pidphone.app.supervision import MAX_RESTARTS
from pidphone.config import Config, DisplayConfig, SecurityConfig
from pidphone.daemon import Service
from pidphone.drivers.certs import make_test_pki
from pidphone.drivers.sim_audio import SimAudioDevices, SimCapture
from pidphone.drivers.systemd_notify import notifier_from_environment
from pidphone.ports import SAMPLE_RATE, HookEvent
from tests.test_controller import Phone, make, strongest
from tests.test_device_faults import heard_line, systemd_socket


class FaultyCapture(SimCapture):
    """The simulated microphone, whose driver raises once `trip` is set (then works again)."""

    def __init__(self, inner: SimCapture, trip: threading.Event | None) -> None:
        self.__dict__.update(inner.__dict__)
        self._trip = trip

    def read_frame(self) -> bytes:
        if self._trip is None or self._trip.is_set():
            if self._trip is not None:
                self._trip.clear()
            raise RuntimeError("capture driver bug")
        return super().read_frame()


class FaultyDevices(SimAudioDevices):
    """Audio devices whose capture raises: when `trip` is set, or always (`trip` None)."""

    def __init__(self, trip: threading.Event | None, tone_frequency: float = 1000.0) -> None:
        super().__init__(tone_frequency=tone_frequency)
        self.trip = trip
        self.captures = 0

    def open_capture(self, rate: int = SAMPLE_RATE) -> SimCapture:
        self.captures += 1
        return FaultyCapture(super().open_capture(rate), self.trip)


def test_a_media_thread_that_dies_ends_the_call_with_a_reason_and_is_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trip = threading.Event()
    faulty = FaultyDevices(trip)

    async def main() -> None:
        pki = make_test_pki(tmp_path / "pki", ["127.0.0.1"])
        bob = await make("bob", 700, pki, listen=True, dials={})
        assert bob.transport.listening is not None
        uri = f"sips:bob@127.0.0.1:{bob.transport.listening[1]}"
        alice = await make("alice", 1000, pki, listen=False, dials={"1": uri}, audio=faulty)
        try:
            await call_and_hear(alice, bob)
            first_worker = alice.engine.worker
            trip.set()  # the driver raises in the media thread
            await alice.until(lambda e: isinstance(e, CallFinished))
            await bob.until(lambda e: isinstance(e, CallFinished))
            finished = next(e for e in alice.events if isinstance(e, CallFinished))
            assert isinstance(finished, CallFinished)
            assert finished.reason == "Audio failed: RuntimeError: capture driver bug"
            by_peer = next(e for e in bob.events if isinstance(e, CallFinished))
            assert isinstance(by_peer, CallFinished) and by_peer.by_peer
            assert MediaFault("RuntimeError: capture driver bug", True) in alice.events
            screen = alice.engine.screen()  # on the idle screen: the handset is down
            assert screen is not None and screen.lines[:2] == (
                "Audio failed:",
                "RuntimeError: capture",
            )
            # A new media thread took over, with a new capture device, and carries a new call.
            assert alice.engine.worker is not first_worker
            assert alice.engine.worker is not None and alice.engine.worker.alive
            assert alice.engine.healthy and faulty.captures == 2
            assert alice.engine.calls() == [] and bob.engine.calls() == []
            alice.events.clear()
            bob.events.clear()
            bob.engine.press(HookEvent(off_hook=False))
            await asyncio.sleep(0.2)
            await call_and_hear(alice, bob)
        finally:
            await alice.engine.stop()
            await bob.engine.stop()

    asyncio.run(main())
    assert any("media worker failed" in r.getMessage() for r in caplog.records)


def test_a_ringing_call_ends_with_the_reason_when_the_media_thread_dies(tmp_path: Path) -> None:
    """The call that rings when the media thread dies is refused (500) and ends with the
    fault's reason, as an established one does: not as if the user had rejected it."""
    trip = threading.Event()
    faulty = FaultyDevices(trip, tone_frequency=700.0)

    async def main() -> None:
        pki = make_test_pki(tmp_path / "pki", ["127.0.0.1"])
        bob = await make("bob", 700, pki, listen=True, dials={}, audio=faulty)
        assert bob.transport.listening is not None
        uri = f"sips:bob@127.0.0.1:{bob.transport.listening[1]}"
        alice = await make("alice", 1000, pki, listen=False, dials={"1": uri})
        try:
            alice.key("speed1")
            await bob.until(lambda e: isinstance(e, CallIncoming))
            trip.set()  # the driver raises in Bob's media thread while his phone rings
            await bob.until(lambda e: isinstance(e, CallFinished))
            await alice.until(lambda e: isinstance(e, CallFinished))
            finished = next(e for e in bob.events if isinstance(e, CallFinished))
            assert isinstance(finished, CallFinished)
            assert finished.reason == "Audio failed: RuntimeError: capture driver bug"
            assert finished.status == 500 and not finished.by_peer
            refused = next(e for e in alice.events if isinstance(e, CallFinished))
            assert isinstance(refused, CallFinished) and refused.status == 500
        finally:
            await alice.engine.stop()
            await bob.engine.stop()

    asyncio.run(main())


async def call_and_hear(alice: Phone, bob: Phone) -> None:
    alice.key("speed1")
    await bob.until(lambda e: isinstance(e, CallIncoming))
    bob.engine.press(HookEvent(off_hook=True))
    await alice.until(lambda e: isinstance(e, CallSecure))
    await bob.until(lambda e: isinstance(e, CallSecure))
    await asyncio.sleep(0.8)
    assert abs(strongest(bob.heard(10)) - 1000) < 30
    assert abs(strongest(alice.heard(10)) - 700) < 30


def test_a_media_thread_that_keeps_dying_stops_the_watchdog_pings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = FaultyDevices(None)
    monkeypatch.setattr(wiring, "audio_devices", lambda config: broken)
    config = Config(
        hardware="simulated",
        security=SecurityConfig(zid_cache=str(tmp_path / "zid.json")),
        display=DisplayConfig(driver="none"),
    )

    async def main(heard: list[tuple[float, str]]) -> int:
        service = Service(config, None, "", notifier_from_environment())
        running = asyncio.create_task(service.main())
        await heard_line(heard, lambda line: line == "READY=1")
        given_up = await heard_line(heard, lambda line: "restart needed" in line)
        await asyncio.sleep(0.6)  # twelve watchdog intervals
        assert service.phone.healthy is False
        os.kill(os.getpid(), signal.SIGTERM)
        status = await asyncio.wait_for(running, 30)
        late = [line for t, line in heard if t > given_up and line == "WATCHDOG=1"]
        assert late == []
        return status

    with systemd_socket(tmp_path, monkeypatch) as heard:
        assert asyncio.run(main(heard)) == 0
    lines = [line for _, line in heard]
    assert broken.captures == MAX_RESTARTS + 1
    assert "STATUS=no account, direct calls only; audio failed, restart needed" in lines
    assert lines[-1] == "STOPPING=1"  # read to the end, however late the listener runs
