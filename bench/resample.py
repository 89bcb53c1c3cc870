"""pidphone's resampler against libsoxr (python-soxr), run by hand:

    .venv/bin/python -m bench.resample [--seconds 5]

For each conversion between a sound card's rate and a codec's rate, streamed in 20 ms frames
as the media worker does it:
- passband: the gain of tones from 100 Hz to 0.425 of the lower rate (3.4 kHz at 8 kHz, 6.8 kHz
  at 16 kHz); reported as the ripple (max - min, dB) and the loss at the top tone;
- aliasing (down) or imaging (up): tones that must not pass (above half the lower rate going
  down; their images above it going up), the worst leak in dB below the tone;
- delay: how much later than it went in an impulse comes out of the frame-by-frame stream
  (ms): the filter's delay plus what the resampler holds back between calls (libsoxr works in
  blocks, so it returns nothing for several frames and then a burst). It adds to the
  mouth-to-ear delay, twice per call (microphone and earpiece);
- burst: the most output samples one 20 ms input frame produced, in frames (1.0 is steady);
- speed: microseconds of CPU per 20 ms frame.
Needs numpy and soxr (`pip install soxr`); they are not the phone's dependencies.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soxr

from pidphone.audio.resample import Resampler

PAIRS = [
    (8000, 16000),
    (16000, 8000),
    (8000, 48000),
    (48000, 8000),
    (16000, 48000),
    (48000, 16000),
    (44100, 8000),
    (8000, 44100),
    (44100, 16000),
    (16000, 44100),
    (44100, 48000),
    (48000, 44100),
]
AMPLITUDE = 10000.0

Stream = Callable[[bytes], bytes]


def ours(src: int, dst: int) -> Stream:
    return Resampler(src, dst).process


def soxr_stream(quality: str) -> Callable[[int, int], Stream]:
    def make(src: int, dst: int) -> Stream:
        stream = soxr.ResampleStream(src, dst, 1, dtype="int16", quality=quality)

        def process(pcm: bytes) -> bytes:
            out = stream.resample_chunk(np.frombuffer(pcm, dtype=np.int16))
            return bytes(np.asarray(out, dtype=np.int16).tobytes())

        return process

    return make


def run(make: Callable[[int, int], Stream], src: int, dst: int, signal: np.ndarray) -> np.ndarray:
    return stream(make, src, dst, signal)[0]


def stream(
    make: Callable[[int, int], Stream], src: int, dst: int, signal: np.ndarray
) -> tuple[np.ndarray, list[int]]:
    """The output, and how many output samples each 20 ms input frame gave."""
    process = make(src, dst)
    frame = src // 50
    pcm = signal.astype(np.int16).tobytes()
    chunks = [process(pcm[i : i + 2 * frame]) for i in range(0, len(pcm), 2 * frame)]
    out = b"".join(chunks)
    return np.frombuffer(out, dtype=np.int16).astype(np.float64), [len(c) // 2 for c in chunks]


def level(x: np.ndarray, frequency: float, rate: int) -> float:
    """Amplitude of `frequency` in the second half of x (Hann-windowed DFT at that bin)."""
    y = x[len(x) // 2 :]
    n = np.arange(len(y))
    window = np.hanning(len(y))
    phasor = np.exp(-2j * np.pi * frequency * n / rate)
    return float(2 * abs(np.sum(y * window * phasor)) / np.sum(window))


def tone(frequency: float, rate: int, seconds: float) -> np.ndarray:
    n = np.arange(int(rate * seconds))
    return AMPLITUDE * np.sin(2 * np.pi * frequency * n / rate)


def db(ratio: float) -> float:
    return 20 * math.log10(max(ratio, 1e-9))


@dataclass
class Figures:
    ripple: float
    top_loss: float
    leak: float
    delay_ms: float
    burst: float
    us_per_frame: float


def measure(make: Callable[[int, int], Stream], src: int, dst: int, seconds: float) -> Figures:
    low = min(src, dst)
    gains = []
    passband = np.linspace(100, 0.425 * low, 12)
    for f in passband:
        gains.append(db(level(run(make, src, dst, tone(f, src, 0.5)), f, dst) / AMPLITUDE))
    leaks = []
    if dst < src:  # tones the output cannot hold must not fold back into the band
        for f in np.linspace(0.55 * dst, min(0.5 * src - 200, 1.5 * dst), 8):
            alias = abs(((f + dst / 2) % dst) - dst / 2)
            out = run(make, src, dst, tone(f, src, 0.5))
            leaks.append(db(level(out, alias, dst) / AMPLITUDE))
    else:  # the images of a passband tone must not appear above the input's band
        for f in np.linspace(300, 0.425 * src, 6):
            out = run(make, src, dst, tone(f, src, 0.5))
            images = [k * src + s * f for k in range(1, dst // src + 2) for s in (-1, 1)]
            images = [i for i in images if 0.5 * src < i < 0.5 * dst]
            leaks.extend(db(level(out, i, dst) / AMPLITUDE) for i in images)
    impulse = np.zeros(src)
    at = src // 2 + src // 100  # in the middle of a frame, once the stream is steady
    impulse[at] = AMPLITUDE
    response, counts = stream(make, src, dst, impulse)
    peak = int(np.argmax(np.abs(response)))
    emitted = np.cumsum(counts)
    frame_out = int(np.searchsorted(emitted, peak, side="right"))  # the call that gave it
    frame_in, offset_in = divmod(at, src // 50)
    offset_out = peak - (int(emitted[frame_out - 1]) if frame_out else 0)
    # each chunk is played as it comes: where the impulse sits in its output chunk against
    # where it sat in its input frame, plus the frames the resampler held it back
    delay_ms = (frame_out - frame_in) * 20 + (offset_out / dst - offset_in / src) * 1000
    speech_like = tone(440, src, seconds) * 0.5 + tone(1230, src, seconds) * 0.3
    process = make(src, dst)
    pcm = speech_like.astype(np.int16).tobytes()
    frame = 2 * (src // 50)
    frames = [pcm[i : i + frame] for i in range(0, len(pcm), frame)]
    started = time.process_time()
    for chunk in frames:
        process(chunk)
    elapsed = time.process_time() - started
    return Figures(
        ripple=max(gains) - min(gains),
        top_loss=-gains[-1],
        leak=max(leaks) if leaks else float("-inf"),
        delay_ms=delay_ms,
        burst=max(counts) / (dst / 50),
        us_per_frame=elapsed / len(frames) * 1e6,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    candidates: list[tuple[str, Callable[[int, int], Stream]]] = [
        ("pidphone", ours),
        ("soxr HQ", soxr_stream("HQ")),
        ("soxr MQ", soxr_stream("MQ")),
        ("soxr LQ", soxr_stream("LQ")),
    ]
    print(f"soxr {soxr.__version__} (libsoxr {soxr.__libsoxr_version__}), numpy {np.__version__}")
    print(
        f"{'conversion':<14}{'resampler':<10}{'ripple dB':>10}{'top loss':>10}"
        f"{'leak dB':>9}{'delay ms':>10}{'burst':>7}{'us/frame':>10}"
    )
    for src, dst in PAIRS:
        for name, make in candidates:
            f = measure(make, src, dst, args.seconds)
            print(
                f"{src:>6}->{dst:<6} {name:<10}{f.ripple:>9.2f} {f.top_loss:>9.2f} "
                f"{f.leak:>8.1f} {f.delay_ms:>9.1f} {f.burst:>6.1f} {f.us_per_frame:>9.1f}"
            )


if __name__ == "__main__":
    main()
