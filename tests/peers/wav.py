"""WAV files for peers without a sound card: tones to play, and a check of what was heard."""

from __future__ import annotations

import array
import math
import struct
import wave
from dataclasses import dataclass
from pathlib import Path


def write_tone(path: Path, frequency: float, seconds: float = 30.0, rate: int = 16000) -> Path:
    """A mono 16-bit sine WAV (amplitude 12000) for a peer to play."""
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * frequency * i / rate)))
        for i in range(int(rate * seconds))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path


@dataclass(frozen=True)
class ToneLevel:
    """How strongly a frequency shows in a recording's window, next to its overall level."""

    rms: float
    amplitude: float
    """Sine amplitude at the frequency (Goertzel), in the same units as `rms`."""

    def dominates(self, other: ToneLevel) -> bool:
        """Loud enough, mostly this tone, and far above `other`."""
        return (
            self.rms > 500
            and self.amplitude > 0.5 * self.rms
            and self.amplitude > 10 * other.amplitude
        )


def tone_level(
    path: Path, frequency: float, *, skip_end: float = 0.5, window: float = 1.5
) -> ToneLevel:
    """Measure `frequency` in the `window` seconds before the last `skip_end` seconds of a
    16-bit WAV (first channel): late in the call, when the media has settled."""
    with wave.open(str(path)) as recording:
        rate = recording.getframerate()
        channels = recording.getnchannels()
        samples = array.array("h", recording.readframes(recording.getnframes()))
    samples = samples[::channels]
    end = len(samples) - int(skip_end * rate)
    x = samples[max(0, end - int(window * rate)) : max(0, end)]
    if not x:
        return ToneLevel(0.0, 0.0)
    rms = math.sqrt(sum(v * v for v in x) / len(x))
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for v in x:
        s1, s2 = v + coefficient * s1 - s2, s1
    power = max(s1 * s1 + s2 * s2 - coefficient * s1 * s2, 0.0)
    return ToneLevel(rms, math.sqrt(power) / (len(x) / 2))
