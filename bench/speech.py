"""Speech made here, and its quality scored: the signal and the yardstick of the speech-quality
benchmark and tests.

- `make_speech(rate)`: English sentences spoken by espeak-ng (Debian's espeak-ng), resampled
  from its 22050 Hz to `rate` and levelled to about -26 dBov, the active speech level ITU-T
  P.862 is calibrated for. Nothing is downloaded: the voice is espeak-ng's own formant synthesis.
- `mos(reference, degraded, rate)`: ITU-T P.862 PESQ as MOS-LQO (P.862.1 mapping for narrowband
  at 8 kHz, P.862.2 wideband at 16 kHz), from the `pesq` package.
- `through_codec`: a codec and its concealment (and FEC) under a pattern of lost packets,
  offline: what the codec alone does to speech, without a jitter buffer.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import wave
from functools import lru_cache
from pathlib import Path

import numpy as np
from pesq import pesq

from pidphone.audio.codec import Codec

SENTENCES = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It is easy to tell the depth of a well. These days a chicken leg is a rare dish. "
    "Rice is often served in round bowls. The juice of lemons makes fine punch."
)
"""Harvard sentences (IEEE 1969), the usual material of listening tests."""
ESPEAK_RATE = 22050
TARGET_RMS = 32768 * 10 ** (-26 / 20)


class SpeechUnavailableError(RuntimeError):
    """espeak-ng is not installed (apt: espeak-ng)."""


@lru_cache(maxsize=4)
def make_speech(rate: int = 8000, text: str = SENTENCES, voice: str = "en-us") -> bytes:
    """S16_LE mono speech at `rate` (about 12 s for the default text)."""
    program = shutil.which("espeak-ng")
    if program is None:
        raise SpeechUnavailableError("speech needs espeak-ng (Debian package espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(
            [program, "-v", voice, "-s", "150", "-w", str(path), text],
            check=True,
            capture_output=True,
            timeout=60,
        )
        with wave.open(str(path)) as wav:
            if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
                raise SpeechUnavailableError("espeak-ng wrote an unexpected WAV format")
            source_rate = wav.getframerate()
            pcm = wav.readframes(wav.getnframes())
    return level(resample_fft(pcm, source_rate, rate), TARGET_RMS)


def resample_fft(pcm: bytes, source_rate: int, rate: int) -> bytes:
    """A whole recording resampled at once in the frequency domain (band-limited, no delay):
    for test material, where the phone's streaming resampler would only be slower."""
    if source_rate == rate:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.fft.rfft(samples)
    count = round(len(samples) * rate / source_rate)
    bins = count // 2 + 1
    if bins <= len(spectrum):
        spectrum = spectrum[:bins]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(bins - len(spectrum), dtype=complex)])
    out = np.fft.irfft(spectrum, count) * (count / len(samples))
    return np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes()


def level(pcm: bytes, target_rms: float) -> bytes:
    """`pcm` scaled so that its RMS over the louder half of its 20 ms blocks is `target_rms`."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    blocks = [samples[i : i + 160] for i in range(0, len(samples) - 160, 160)]
    energies = sorted((float(np.mean(b * b)) for b in blocks), reverse=True)
    active = energies[: max(1, len(energies) // 2)]
    gain = target_rms / math.sqrt(max(sum(active) / len(active), 1.0))
    scaled = np.clip(np.round(samples * gain), -32768, 32767).astype("<i2")
    return scaled.tobytes()


def mos(reference: bytes, degraded: bytes, rate: int) -> float:
    """PESQ MOS-LQO of `degraded` against `reference` (S16_LE at 8000: narrowband, at 16000:
    wideband). PESQ aligns the two itself; `degraded` may be delayed."""
    if rate not in (8000, 16000):
        raise ValueError("PESQ scores 8 kHz (narrowband) or 16 kHz (wideband) speech")
    ref = np.frombuffer(reference, dtype="<i2").astype(np.float32)
    deg = np.frombuffer(degraded, dtype="<i2").astype(np.float32)
    length = min(len(ref), len(deg))
    return float(pesq(rate, ref[:length], deg[:length], "nb" if rate == 8000 else "wb"))


def through_codec(codec: Codec, pcm: bytes, lost: list[bool]) -> bytes:
    """Encode `pcm` frame by frame, lose the frames `lost` marks, and decode what arrives as a
    receiver would: FEC from the next packet where the codec has it, else concealment."""
    size = codec.frame_bytes
    frames = [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]
    payloads = [codec.encode(frame) for frame in frames]
    receiver = codec  # its encoder and decoder keep separate state
    out: list[bytes] = []
    for n, payload in enumerate(payloads):
        gone = lost[n % len(lost)] if lost else False
        if not gone:
            out.append(receiver.decode(payload) if payload else receiver.conceal())
            continue
        following = n + 1 < len(payloads) and not (lost and lost[(n + 1) % len(lost)])
        rebuilt = receiver.decode_fec(payloads[n + 1]) if following else None
        out.append(rebuilt if rebuilt is not None else receiver.conceal())
    return b"".join(out)
