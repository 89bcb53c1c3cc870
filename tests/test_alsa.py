"""The ALSA driver against real alsa-lib, through PCMs defined in a test asoundrc: `filein:PATH`
captures from a raw file, `fileout:PATH` plays into one (plugins "file" and "null", no card).

alsa-lib reads its configuration once per process, so each scenario runs in a child Python
(this file run as a script, with ALSA_CONFIG_PATH naming the test asoundrc). Faults alsa-lib
cannot be made to produce here (overruns, underruns) are tested in-process on a stand-in PCM.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import alsaaudio
import pytest

from pidphone.audio.analysis import goertzel_power, rms
from pidphone.audio.tones import test_tone
from pidphone.drivers import alsa_audio
from pidphone.drivers.alsa_audio import AlsaAudio
from pidphone.drivers.sim_audio import Pacer
from pidphone.errors import LocalProtocolError
from pidphone.ports import FRAME_BYTES, FRAME_SAMPLES, frame_bytes

ASOUNDRC = """
pcm.filein  { @args [ FILE ] @args.FILE { type string default "/dev/null" }
              type file slave.pcm "null" file "/dev/null" infile $FILE format "raw" }
pcm.fileout { @args [ FILE ] @args.FILE { type string default "/dev/null" }
              type file slave.pcm "null" file $FILE format "raw" }
"""
ALSA_CONF = "/usr/share/alsa/alsa.conf"


@dataclass(frozen=True)
class Settings:
    capture_device: str = "default"
    playback_device: str = "default"
    ring_device: str = ""
    rate: int = 0
    mixer_card: str = "default"
    mixer_control: str = ""


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def frames(count: int, first: int = 0) -> list[bytes]:
    """Frames that differ from each other: frame n holds samples n*160 ... n*160+159."""
    return [
        struct.pack(f"<{FRAME_SAMPLES}h", *range(n * FRAME_SAMPLES, (n + 1) * FRAME_SAMPLES))
        for n in range(first, first + count)
    ]


def devices(settings: Settings, t: FakeTime) -> AlsaAudio:
    return AlsaAudio(
        settings,
        pacer=lambda: Pacer(clock=t.clock, sleep=t.sleep),
        clock=t.clock,
        sleep=t.sleep,
        retry_interval=5.0,
    )


# --------------------------------------------------------------------------- scenarios
# Each runs in a child process; a failed assert exits non-zero with the traceback.


def scenario_capture(tmp: Path) -> None:
    source = tmp / "in.raw"
    source.write_bytes(b"".join(frames(60)))
    t = FakeTime()
    capture = devices(Settings(capture_device=f"filein:{source}"), t).open_capture()
    got = [capture.read_frame() for _ in range(50)]
    capture.close()
    assert got == frames(50), "captured frames differ from the file"
    assert abs(t.now - 1.0) < 1e-9, f"50 frames took {t.now} s of paced time"


def scenario_playback(tmp: Path) -> None:
    call, ring = tmp / "call.raw", tmp / "ring.raw"
    t = FakeTime()
    audio = devices(Settings(playback_device=f"fileout:{call}", ring_device=f"fileout:{ring}"), t)
    earpiece = audio.open_playback()
    ringer = audio.open_playback("ring")
    for frame in frames(25):
        earpiece.write_frame(frame)
    ringer.write_frame(frames(1, first=99)[0])
    earpiece.close()
    ringer.close()
    # exactly the frames written: what the writer wants queued ahead it writes itself
    assert call.read_bytes() == b"".join(frames(25))
    assert ring.read_bytes() == frames(1, first=99)[0]
    assert abs(t.now - 0.52) < 1e-9


def scenario_missing_then_back(tmp: Path) -> None:
    source = tmp / "later.raw"  # does not exist yet: the device cannot open
    t = FakeTime()
    audio = devices(Settings(capture_device=f"filein:{source}"), t)
    capture = audio.open_capture()
    silent = [capture.read_frame() for _ in range(100)]  # 2 s of outage, paced
    assert silent == [bytes(FRAME_BYTES)] * 100
    assert abs(t.now - 2.0) < 1e-9
    source.write_bytes(b"".join(frames(20)))
    while t.now < 5.0:
        assert capture.read_frame() == bytes(FRAME_BYTES)
    assert capture.read_frame() == frames(1)[0]  # reopened after retry_interval
    capture.close()


def scenario_missing_playback_and_mixer(tmp: Path) -> None:
    t = FakeTime()
    audio = devices(
        Settings(playback_device="plughw:CARD=NoSuchCard,DEV=0", mixer_control="PCM"), t
    )
    earpiece = audio.open_playback()
    for frame in frames(10):
        earpiece.write_frame(frame)  # dropped at once, never raises
    assert t.now == 0.0  # the capture's clock paces the media worker, not the earpiece
    audio.set_volume(50)
    audio.set_volume(60)


def scenario_resampled(tmp: Path) -> None:
    source, sink = tmp / "in48.raw", tmp / "out48.raw"
    source.write_bytes(test_tone(1000.0, 1.5, rate=48000))
    t = FakeTime()
    audio = devices(
        Settings(capture_device=f"filein:{source}", playback_device=f"fileout:{sink}", rate=48000),
        t,
    )
    capture = audio.open_capture()
    captured = b"".join(capture.read_frame() for _ in range(50))
    capture.close()
    assert len(captured) == 50 * FRAME_BYTES
    steady = captured[4000:]  # past the filter's start-up
    assert goertzel_power(steady, 1000.0) > 1000 * goertzel_power(steady, 3000.0)
    assert abs(rms(steady) - rms(test_tone(1000.0, 0.5))) < 0.05 * rms(test_tone(1000.0, 0.5))
    playback = audio.open_playback()
    tone = test_tone(440.0, 1.0)
    for i in range(50):
        playback.write_frame(tone[i * FRAME_BYTES : (i + 1) * FRAME_BYTES])
    playback.close()
    played = sink.read_bytes()
    assert len(played) == 50 * 6 * FRAME_BYTES  # 50 frames at 6x
    steady48 = played[20000:]
    assert goertzel_power(steady48, 440.0, 48000) > 1000 * goertzel_power(steady48, 7560.0, 48000)


def scenario_wideband(tmp: Path) -> None:
    """A 16 or 48 kHz call on a device that takes those rates: the files are at the call's
    rate, sample for sample, and a 5 kHz tone (which 8 kHz cannot carry) goes through."""
    for rate in (16000, 48000):
        source, sink = tmp / f"in{rate}.raw", tmp / f"out{rate}.raw"
        tone = test_tone(5000.0, 1.0, rate=rate)
        source.write_bytes(tone)
        t = FakeTime()
        audio = devices(
            Settings(capture_device=f"filein:{source}", playback_device=f"fileout:{sink}"), t
        )
        capture = audio.open_capture(rate)
        assert (capture.rate, capture.device_rate) == (rate, rate)
        size = frame_bytes(rate)
        got = [capture.read_frame() for _ in range(25)]
        capture.close()
        assert b"".join(got) == tone[: 25 * size], f"captured frames at {rate} differ"
        playback = audio.open_playback(rate=rate)
        assert playback.device_rate == rate
        for frame in got:
            playback.write_frame(frame)
        playback.close()
        assert sink.read_bytes() == tone[: 25 * size]


def scenario_wideband_resampled(tmp: Path) -> None:
    """audio.rate = 48000 with a 16 kHz call: the device runs at 48 kHz, the port's frames
    are at 16 kHz, and the 5 kHz tone survives both conversions."""
    source, sink = tmp / "in48.raw", tmp / "out48.raw"
    source.write_bytes(test_tone(5000.0, 1.5, rate=48000))
    t = FakeTime()
    audio = devices(
        Settings(capture_device=f"filein:{source}", playback_device=f"fileout:{sink}", rate=48000),
        t,
    )
    capture = audio.open_capture(16000)
    assert (capture.rate, capture.device_rate) == (16000, 48000)
    captured = b"".join(capture.read_frame() for _ in range(50))
    capture.close()
    assert len(captured) == 50 * 640
    steady = captured[8000:]
    assert goertzel_power(steady, 5000.0, 16000) > 1000 * goertzel_power(steady, 3000.0, 16000)
    playback = audio.open_playback(rate=16000)
    for i in range(50):
        playback.write_frame(steady[:640] if i == 0 else captured[i * 640 : (i + 1) * 640])
    playback.close()
    played = sink.read_bytes()
    assert len(played) == 50 * 1920  # 50 frames at 48 kHz, nothing added
    steady48 = played[40000:]
    assert goertzel_power(steady48, 5000.0, 48000) > 1000 * goertzel_power(steady48, 11000.0, 48000)


SCENARIOS = {
    "wideband": scenario_wideband,
    "wideband_resampled": scenario_wideband_resampled,
    "resampled": scenario_resampled,
    "capture": scenario_capture,
    "playback": scenario_playback,
    "missing_then_back": scenario_missing_then_back,
    "missing_playback_and_mixer": scenario_missing_playback_and_mixer,
}


# --------------------------------------------------------------------------- the tests


def run_scenario(name: str, tmp_path: Path) -> str:
    """Run one scenario in a child process with the test asoundrc; return its log output."""
    if not Path(ALSA_CONF).exists():
        pytest.skip(f"{ALSA_CONF} not found: install libasound2")
    asoundrc = tmp_path / "asoundrc"
    asoundrc.write_text(ASOUNDRC)
    env = {**os.environ, "ALSA_CONFIG_PATH": f"{ALSA_CONF}:{asoundrc}"}
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-bb", __file__, name, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_captured_frames_arrive_intact_and_in_order(tmp_path: Path) -> None:
    run_scenario("capture", tmp_path)


def test_playback_writes_exactly_the_frames_and_the_ringer_has_its_own_device(
    tmp_path: Path,
) -> None:
    run_scenario("playback", tmp_path)


def test_a_missing_device_gives_paced_silence_and_is_reopened_when_back(tmp_path: Path) -> None:
    logged = run_scenario("missing_then_back", tmp_path)
    errors = [line for line in logged.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, logged  # once, not at every retry
    assert "audio.capture_device" in errors[0]
    assert any("is back" in line for line in logged.splitlines())


def test_a_48_khz_device_is_resampled_both_ways(tmp_path: Path) -> None:
    run_scenario("resampled", tmp_path)


def test_wideband_devices_run_at_the_calls_rate(tmp_path: Path) -> None:
    run_scenario("wideband", tmp_path)


def test_a_device_rate_in_the_config_is_resampled_to_the_calls_rate(tmp_path: Path) -> None:
    run_scenario("wideband_resampled", tmp_path)


def test_missing_playback_and_mixer_are_logged_once_each(tmp_path: Path) -> None:
    logged = run_scenario("missing_playback_and_mixer", tmp_path)
    errors = [line for line in logged.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 2, logged
    assert "audio.playback_device" in errors[0]
    assert "NoSuchCard" in errors[0]
    assert "audio.mixer_control" in errors[1]


class StandInPcm:
    """Replaces alsaaudio.PCM in-process: scripted read results, write failures, state."""

    script: list[tuple[int, bytes]] = []
    writes: list[bytes] = []
    fail_writes = 0
    xrun = True
    frames_ready = 0
    device_rate = 0
    """The one rate the stand-in device runs at (0: any); alsa-lib settles on it."""
    opened: list[tuple[int, int]] = []

    def __init__(
        self, *args: object, rate: int = 8000, periodsize: int = 160, **kw: object
    ) -> None:
        self.rate = StandInPcm.device_rate or rate
        StandInPcm.opened.append((rate, periodsize))

    def info(self) -> dict[str, object]:
        return {"rate": self.rate}

    def avail(self) -> int:
        return StandInPcm.frames_ready

    def read(self) -> tuple[int, bytes]:
        return StandInPcm.script.pop(0)

    def write(self, data: bytes) -> int:
        if StandInPcm.fail_writes:
            StandInPcm.fail_writes -= 1
            raise alsaaudio.ALSAAudioError("Broken pipe [x]")
        StandInPcm.writes.append(data)
        return len(data) // 2

    def state(self) -> int:
        return alsaaudio.PCM_STATE_XRUN if StandInPcm.xrun else 0

    def close(self) -> None:
        pass


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> type[StandInPcm]:
    monkeypatch.setattr(alsaaudio, "PCM", StandInPcm)
    StandInPcm.script, StandInPcm.writes, StandInPcm.fail_writes = [], [], 0
    StandInPcm.xrun, StandInPcm.frames_ready = True, 0
    StandInPcm.device_rate, StandInPcm.opened = 0, []
    return StandInPcm


@pytest.mark.parametrize("rate", [8000, 48000])
def test_the_next_frame_is_due_when_the_card_will_have_captured_it(
    stand_in: type[StandInPcm], rate: int
) -> None:
    """A real card (no pacer): the media worker waits until the period is in the buffer."""
    t = FakeTime()
    t.now = 10.0
    capture = AlsaAudio(Settings(rate=rate), clock=t.clock, sleep=t.sleep).open_capture()
    period = rate // 50
    stand_in.frames_ready = period // 4  # a quarter of the period captured so far
    assert capture.next_frame_at() == pytest.approx(10.0 + 0.015)
    stand_in.frames_ready = period
    assert capture.next_frame_at() == 10.0
    stand_in.frames_ready = 3 * period  # late: the first of them was complete 40 ms ago
    assert capture.next_frame_at() == pytest.approx(10.0 - 0.04)
    stand_in.frames_ready = -errno.EPIPE  # an overrun: read now, which counts it
    assert capture.next_frame_at() == 10.0
    stand_in.script = [(period, bytes(2 * period))]
    stand_in.frames_ready = 0
    capture.read_frame()
    assert capture.next_frame_at() == pytest.approx(10.02)


def test_overrun_is_counted_and_capture_goes_on(stand_in: type[StandInPcm]) -> None:
    data = frames(2)
    stand_in.script = [
        (160, data[0]),
        (-errno.EPIPE, b""),
        (80, data[1][:160]),
        (80, data[1][160:]),
    ]
    capture = devices(Settings(), FakeTime()).open_capture()
    assert capture.read_frame() == data[0]
    assert capture.read_frame() == data[1]  # after the overrun, two half periods make a frame
    assert capture.overruns == 1


def test_underrun_is_counted_and_playback_goes_on(
    stand_in: type[StandInPcm], caplog: pytest.LogCaptureFixture
) -> None:
    playback = devices(Settings(), FakeTime()).open_playback()
    data = frames(3)
    playback.write_frame(data[0])
    stand_in.fail_writes = 1
    with caplog.at_level(logging.ERROR):
        playback.write_frame(data[1])  # lost in the underrun
        playback.write_frame(data[2])
    assert playback.underruns == 1
    # after the underrun a period of silence goes ahead of the next frame
    assert stand_in.writes == [data[0], bytes(FRAME_BYTES), data[2]]
    assert caplog.records == []


def test_write_error_that_is_not_an_underrun_means_the_device_is_gone(
    stand_in: type[StandInPcm], caplog: pytest.LogCaptureFixture
) -> None:
    t = FakeTime()
    playback = devices(Settings(), t).open_playback()
    stand_in.fail_writes = 1
    stand_in.xrun = False
    with caplog.at_level(logging.ERROR):
        playback.write_frame(frames(1)[0])
        playback.write_frame(frames(1)[0])  # outage: dropped at once
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "audio.playback_device" in caplog.records[0].getMessage()
    t.now += 5.0
    playback.write_frame(frames(1)[0])  # reopened
    assert stand_in.writes[-1] == frames(1)[0]


def test_a_frame_of_the_wrong_size_is_refused(stand_in: type[StandInPcm]) -> None:
    with pytest.raises(LocalProtocolError):
        devices(Settings(), FakeTime()).open_playback().write_frame(bytes(100))


def test_resampling_is_applied_at_other_device_rates(stand_in: type[StandInPcm]) -> None:
    calls: list[tuple[int, int]] = []

    def resampler(source: int, target: int) -> alsa_audio.Converter:
        calls.append((source, target))
        factor = target / source
        return lambda pcm: bytes(round(len(pcm) * factor))

    t = FakeTime()
    audio = AlsaAudio(Settings(rate=48000), resampler=resampler, clock=t.clock, sleep=t.sleep)
    stand_in.script = [(960, bytes(1920))]
    assert len(audio.open_capture().read_frame()) == FRAME_BYTES
    audio.open_playback().write_frame(bytes(FRAME_BYTES))
    assert stand_in.writes[-1] == bytes(1920)
    assert calls == [(48000, 8000), (8000, 48000)]


def test_a_device_that_settles_on_another_rate_is_reopened_there_and_resampled(
    stand_in: type[StandInPcm],
) -> None:
    """A USB handset that has only 48 kHz, asked for 16 kHz: alsa-lib settles on 48 kHz,
    the stream is opened again with a 20 ms period of that rate, and resampled."""
    stand_in.device_rate = 48000
    t = FakeTime()
    audio = AlsaAudio(Settings(), clock=t.clock, sleep=t.sleep)
    capture = audio.open_capture(16000)
    assert stand_in.opened == [(16000, 320), (48000, 960)]
    assert (capture.rate, capture.device_rate) == (16000, 48000)
    stand_in.script = [(960, test_tone(5000.0, 0.02, rate=48000))] * 10
    frames16 = b"".join(capture.read_frame() for _ in range(10))
    assert len(frames16) == 10 * 640
    assert goertzel_power(frames16[3200:], 5000.0, 16000) > 100 * goertzel_power(
        frames16[3200:], 3000.0, 16000
    )
    playback = audio.open_playback(rate=16000)
    playback.write_frame(frames16[:640])
    assert [len(w) for w in stand_in.writes] == [1920]  # the frame at the device's rate


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    SCENARIOS[sys.argv[1]](Path(sys.argv[2]))
