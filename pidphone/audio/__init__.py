"""Pure audio processing on S16_LE mono PCM: G.711, concealment, tones, analysis, resampling."""

from pidphone.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

__all__ = ["alaw_decode", "alaw_encode", "ulaw_decode", "ulaw_encode"]
