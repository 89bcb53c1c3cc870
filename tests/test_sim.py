"""The simulated keypad, display and audio that `hardware = "simulated"` and the demo use."""

from __future__ import annotations

import io
import queue
import struct
import time
from pathlib import Path

import pytest

from pidphone.audio.analysis import goertzel_power, rms
from pidphone.audio.tones import test_tone
from pidphone.cli.render_screens import sample_screens
from pidphone.drivers.sim_audio import FileSource, Pacer, SimAudioDevices, tone_source
from pidphone.drivers.sim_display import SimDisplay, screen_text
from pidphone.drivers.sim_keypad import ScriptKeypad, TerminalKeypad, parse_script
from pidphone.errors import ConfigError, LocalProtocolError
from pidphone.ports import FRAME_BYTES, HookEvent, InputEvent, KeyEvent, Screen, frame_bytes


class FakeTime:
    """A clock whose sleep moves it forward, plus some work time per call if asked."""

    def __init__(self, work: float = 0.0) -> None:
        self.now = 100.0
        self.work = work
        self.sleeps: list[float] = []

    def clock(self) -> float:
        self.now += self.work
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def ramp(frames: int) -> bytes:
    return struct.pack(f"<{frames * 160}h", *(n % 30000 for n in range(frames * 160)))


# --------------------------------------------------------------------------- pacing


def test_pacer_keeps_absolute_deadlines_without_drift() -> None:
    t = FakeTime(work=0.003)  # each frame's own work takes 3 ms
    pacer = Pacer(clock=t.clock, sleep=t.sleep)
    for _ in range(1000):
        pacer.wait()
    # 1000 frames end exactly 20 s after the start, whatever the work in between
    assert t.now == pytest.approx(100.0 + 20.0 + 0.003, abs=1e-6)
    assert all(s == pytest.approx(0.017, abs=1e-6) for s in t.sleeps[1:])


def test_pacer_restarts_after_a_stall_instead_of_bursting() -> None:
    t = FakeTime()
    pacer = Pacer(clock=t.clock, sleep=t.sleep)
    pacer.wait()
    t.now += 5.0  # suspended
    pacer.wait()  # late: no sleep, schedule restarts
    before = len(t.sleeps)
    pacer.wait()
    assert len(t.sleeps) == before + 1
    assert t.sleeps[-1] == pytest.approx(0.02)


def test_pacer_phase_shifts_every_deadline() -> None:
    t = FakeTime()
    pacer = Pacer(clock=t.clock, sleep=t.sleep, phase=0.01)
    for _ in range(3):
        pacer.wait()
    assert t.now == pytest.approx(100.0 + 0.01 + 3 * 0.02)


# --------------------------------------------------------------------------- audio


def test_file_source_gives_the_frames_in_order_then_loops() -> None:
    pcm = ramp(3)
    source = FileSource(pcm)
    frames = [source() for _ in range(4)]
    assert b"".join(frames[:3]) == pcm
    assert frames[3] == pcm[:FRAME_BYTES]


def test_file_source_pads_with_silence_when_not_looping() -> None:
    source = FileSource(b"\x01\x02" * 10, loop=False)
    assert source() == b"\x01\x02" * 10 + bytes(FRAME_BYTES - 20)
    assert source() == bytes(FRAME_BYTES)


def test_short_file_loops_within_a_frame() -> None:
    source = FileSource(b"\x01\x00\x02\x00\x03\x00")
    assert source()[:12] == b"\x01\x00\x02\x00\x03\x00" * 2
    assert len(source()) == FRAME_BYTES


def test_empty_file_is_silence() -> None:
    assert FileSource(b"")() == bytes(FRAME_BYTES)


def test_tone_source_is_the_asked_frequency() -> None:
    pcm = b"".join(tone_source(1000.0)() for _ in range(10))
    assert goertzel_power(pcm, 1000.0) > 100 * goertzel_power(pcm, 700.0)
    assert tone_source(0.0)() == bytes(FRAME_BYTES)


def test_devices_capture_a_file_and_record_playback(tmp_path: Path) -> None:
    t = FakeTime()
    pcm = ramp(5)
    (tmp_path / "in.raw").write_bytes(pcm)
    devices = SimAudioDevices(
        in_file=tmp_path / "in.raw", out_file=tmp_path / "out.raw", clock=t.clock, sleep=t.sleep
    )
    capture = devices.open_capture()
    captured = b"".join(capture.read_frame() for _ in range(5))
    assert captured == pcm
    assert t.now == pytest.approx(100.1)  # five frames took 100 ms of (fake) time
    call = devices.open_playback()
    ring = devices.open_playback("ring")
    for i in range(5):
        call.write_frame(pcm[i * FRAME_BYTES : (i + 1) * FRAME_BYTES])
    ring.write_frame(bytes(FRAME_BYTES))
    assert devices.playbacks["call"].played() == pcm
    assert devices.playbacks["ring"].played() == bytes(FRAME_BYTES)
    call.close()
    devices.close()
    assert (tmp_path / "out.raw").read_bytes() == pcm  # the ringer is not in the call file


@pytest.mark.parametrize("rate", [16000, 48000])
def test_devices_open_at_the_asked_rate_and_keep_the_files_at_their_own(
    tmp_path: Path, rate: int
) -> None:
    """A wideband call opens the devices at 16 or 48 kHz: the 8 kHz input file is converted up
    (its tone intact), what the earpiece plays is written at the file rate again."""
    (tmp_path / "in.raw").write_bytes(test_tone(1000.0, 1.0))
    devices = SimAudioDevices(
        in_file=tmp_path / "in.raw", out_file=tmp_path / "out.raw", sleep=lambda s: None
    )
    capture = devices.open_capture(rate)
    assert capture.rate == rate
    captured = b"".join(capture.read_frame() for _ in range(50))
    assert len(captured) == 50 * frame_bytes(rate)
    steady = captured[len(captured) // 5 :]
    assert goertzel_power(steady, 1000.0, rate) > 1000 * goertzel_power(steady, 3000.0, rate)
    playback = devices.open_playback(rate=rate)
    tone = test_tone(5000.0, 1.0, rate=rate)
    size = frame_bytes(rate)
    for i in range(50):
        playback.write_frame(tone[i * size : (i + 1) * size])
    assert playback.played() == tone
    devices.close()
    written = (tmp_path / "out.raw").read_bytes()
    assert len(written) == 50 * FRAME_BYTES  # 8 kHz: 5 kHz cannot be in it
    assert rms(written[len(written) // 5 :]) < 0.01 * rms(tone)
    with pytest.raises(LocalProtocolError):
        playback.write_frame(bytes(FRAME_BYTES))  # an 8 kHz frame in a wideband device


def test_a_tone_the_rate_cannot_carry_is_silence() -> None:
    """As behind a real card's anti-aliasing filter: 5 kHz needs a wideband call."""
    assert tone_source(5000.0, 8000)() == bytes(FRAME_BYTES)
    wide = b"".join(tone_source(5000.0, 16000)() for _ in range(10))
    assert goertzel_power(wide, 5000.0, 16000) > 100 * goertzel_power(wide, 3000.0, 16000)


def test_playback_refuses_a_wrong_frame() -> None:
    devices = SimAudioDevices(sleep=lambda s: None)
    with pytest.raises(LocalProtocolError):
        devices.open_playback().write_frame(b"\0" * 10)


def test_volume_is_kept_in_range() -> None:
    devices = SimAudioDevices()
    devices.set_volume(130)
    assert devices.volume == 100


# --------------------------------------------------------------------------- keys


def test_script_parsing_and_comments() -> None:
    text = "# a call\n0.5 lift\n\n1 speed1\n0.2 #\n"
    assert parse_script(text) == [(0.5, "lift"), (1.0, "speed1"), (0.2, "#")]


@pytest.mark.parametrize("line", ["lift", "x 5", "-1 5", "nan 5"])
def test_bad_script_line_names_the_line(line: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_script("0 1\n" + line)
    assert info.value.key == "sim.keys_script"
    assert "line 2" in str(info.value)


def test_script_keypad_plays_keys_and_hook(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("0 lift\n0 4\n0 c\n0 h\n0 put_down\n0 h\n")
    keypad = ScriptKeypad.from_file(path)
    got: queue.Queue[InputEvent] = queue.Queue()
    keypad.start(got.put)
    assert keypad.finished.wait(timeout=5)
    keypad.close()
    events = []
    while not got.empty():
        events.append(got.get())
    assert events == [
        HookEvent(True),
        KeyEvent("4"),
        KeyEvent("4", pressed=False),
        KeyEvent("sas_confirm"),
        KeyEvent("sas_confirm", pressed=False),
        HookEvent(False),  # h toggles; put_down when already down does nothing
        HookEvent(True),
    ]
    assert not keypad.off_hook()


def test_closing_a_script_keypad_stops_it() -> None:
    keypad = ScriptKeypad([(3600.0, "5")])
    keypad.start(lambda e: None)
    keypad.close()
    assert not keypad.finished.is_set()


def test_terminal_keypad_reads_characters() -> None:
    got: list[InputEvent] = []
    keypad = TerminalKeypad(io.StringIO("h1\n+e"), off_hook=False)
    keypad.start(got.append)
    assert keypad.finished.wait(timeout=5)
    keypad.close()
    assert got == [
        HookEvent(True),
        KeyEvent("1"),
        KeyEvent("1", pressed=False),
        KeyEvent("volume_up"),
        KeyEvent("volume_up", pressed=False),
        KeyEvent("hangup"),
        KeyEvent("hangup", pressed=False),
    ]


# --------------------------------------------------------------------------- display


def test_display_prints_each_new_screen_once_and_saves_pngs(tmp_path: Path) -> None:
    out = io.StringIO()
    display = SimDisplay(out=out, png_dir=tmp_path)
    screens = sample_screens()
    display.show(screens["secure_b32"])
    display.show(screens["secure_b32"])
    display.show(screens["mismatch"])
    display.close()
    text = out.getvalue()
    assert text.count("4jw5") == 2
    assert "SECRET MISMATCH" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["screen-0001.png", "screen-0002.png"]
    assert display.last == screens["mismatch"]


def test_screen_text_marks_inverse_verified_alert_and_power() -> None:
    screens = sample_screens()
    assert ">> NOT SECURE <<" in screen_text(screens["not_secure"])
    assert "aardvark:bifocals (verified)" in screen_text(screens["secure_b256_verified"])
    assert "[PQ]" in screen_text(screens["secure_pq"])
    assert screen_text(screens["mismatch"]).startswith("+####")
    assert "(display off)" in screen_text(Screen(brightness="off"))
    assert "(dimmed)" in screen_text(Screen(title="x", brightness="dim"))
    lines = screen_text(screens["incoming"]).splitlines()
    assert len({len(line) for line in lines}) == 1  # a neat box


def test_capture_says_when_its_next_frame_is_due_and_then_gives_it_at_once() -> None:
    t = FakeTime()
    capture = SimAudioDevices(clock=t.clock, sleep=t.sleep).open_capture()
    assert capture.next_frame_at() == pytest.approx(100.02)  # one period after it opened
    t.now = 100.02
    capture.read_frame()
    assert t.sleeps == []  # read when due: no wait
    assert capture.next_frame_at() == pytest.approx(100.04)


def test_playback_is_a_buffer_played_out_in_real_time() -> None:
    t = FakeTime()
    playback = SimAudioDevices(clock=t.clock, sleep=t.sleep).open_playback()
    frame = bytes(FRAME_BYTES)
    for _ in range(4):
        playback.write_frame(frame)  # fills the four-period buffer at once
    assert t.sleeps == []
    playback.write_frame(frame)  # a writer that runs ahead waits for room
    assert t.sleeps == [pytest.approx(0.02)]
    t.now += 0.02
    playback.write_frame(frame)  # one per period: no wait, no underrun
    assert len(t.sleeps) == 1 and playback.underruns == 0
    t.now += 1.0  # the writer stalls: the buffer runs dry
    playback.write_frame(frame)
    assert playback.underruns == 1
    assert len(playback.frames) == 7


def test_the_terminal_keypad_says_which_letter_is_which_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Its help text existed but was never printed."""
    import os

    from pidphone.drivers.sim_keypad import TerminalKeypad

    leader, follower = os.openpty()
    stream = os.fdopen(follower, "r")
    keypad = TerminalKeypad(stream)
    got: list[object] = []
    keypad.start(got.append)
    os.write(leader, b"c")
    for _ in range(200):
        if got:
            break
        time.sleep(0.01)
    keypad.close()
    os.close(leader)  # the terminal goes away: the reader stops, quietly
    assert keypad.finished.wait(timeout=5)
    stream.close()
    err = capsys.readouterr().err
    assert "pidphone: simulated keypad; keys: 0-9" in err and "c = SAS ok" in err
    assert got[0] == KeyEvent("sas_confirm")
