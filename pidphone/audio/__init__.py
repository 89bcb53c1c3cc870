"""Pure audio processing on S16_LE mono PCM: the voice codecs (G.711, G.722, Opus), concealment,
tones, analysis, resampling."""

from pidphone.audio.analysis import (
    detect_dtmf,
    dominant_frequencies,
    goertzel_power,
    rms,
    samples_of,
)
from pidphone.audio.codec import Codec, make_codec
from pidphone.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from pidphone.audio.plc import Concealer
from pidphone.audio.resample import Resampler, resample
from pidphone.audio.tones import ToneGenerator, ToneSpec, dtmf_frequencies, dtmf_tone, test_tone

__all__ = [
    "Codec",
    "Concealer",
    "Resampler",
    "ToneGenerator",
    "ToneSpec",
    "alaw_decode",
    "alaw_encode",
    "detect_dtmf",
    "dominant_frequencies",
    "dtmf_frequencies",
    "dtmf_tone",
    "goertzel_power",
    "make_codec",
    "resample",
    "rms",
    "samples_of",
    "test_tone",
    "ulaw_decode",
    "ulaw_encode",
]
