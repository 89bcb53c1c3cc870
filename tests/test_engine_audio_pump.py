"""The audio pump: the capture thread hands each frame to the sink and tops up the earpiece."""

from __future__ import annotations

import asyncio
import threading

from pidphone.app.audio_pump import SILENCE, AudioPump
from pidphone.ports import FRAME_BYTES


class ScriptedCapture:
    """Returns numbered frames, then blocks until closed (like a device with no more data)."""

    def __init__(self, count: int) -> None:
        self.frames = [bytes([n]) * FRAME_BYTES for n in range(count)]
        self.closed = threading.Event()

    def read_frame(self) -> bytes:
        if self.frames:
            return self.frames.pop(0)
        self.closed.wait(0.02)
        return SILENCE

    def close(self) -> None:
        self.closed.set()


class RecordingPlayback:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write_frame(self, pcm: bytes) -> None:
        self.written.append(pcm)
        threading.Event().wait(0.002)  # a device period, shortened

    def close(self) -> None:
        pass


def test_frames_flow_in_order_both_ways() -> None:
    async def main() -> tuple[list[bytes], list[bytes], bool]:
        loop = asyncio.get_running_loop()
        capture = ScriptedCapture(5)
        playback = RecordingPlayback()
        pump = AudioPump(loop, capture, playback)
        got: list[bytes] = []
        on_loop: list[bool] = []
        counter = iter(range(10**6))

        def sink(pcm: bytes) -> None:
            on_loop.append(threading.current_thread().name == "audio-capture")
            got.append(pcm)

        def source() -> bytes:
            n = next(counter)
            return bytes([n % 256, n // 256]) * (FRAME_BYTES // 2)

        pump.set_sink(sink)
        pump.set_source(source)
        pump.start()
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(got) >= 5 and len(playback.written) >= 20:
                break
        pump.close()
        return got, playback.written, all(on_loop)

    got, written, on_loop = asyncio.run(main())
    assert [pcm[0] for pcm in got[:5]] == [0, 1, 2, 3, 4]
    assert on_loop  # the sink ran on the capture thread: the loop was not woken for it
    numbered = [pcm[0] + 256 * pcm[1] for pcm in written if pcm != SILENCE]
    assert numbered == sorted(numbered)
    assert len(numbered) >= 10


def test_without_source_plays_silence_and_close_is_idempotent() -> None:
    async def main() -> list[bytes]:
        loop = asyncio.get_running_loop()
        playback = RecordingPlayback()
        pump = AudioPump(loop, None, playback)
        pump.start()
        await asyncio.sleep(0.05)
        pump.close()
        pump.close()
        return playback.written

    written = asyncio.run(main())
    assert written and all(pcm == SILENCE for pcm in written)
