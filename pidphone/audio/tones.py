"""Call-progress tones, the ringer and DTMF, as S16_LE mono PCM frames.

Plans (frequencies in Hz, cadences in seconds on/off):

- dial: us 350+440 continuous; etsi 425 continuous
- ringback: us 440+480 2.0/4.0; etsi 425 1.0/4.0
- busy: us 480+620 0.5/0.5; etsi 425 0.5/0.5
- congestion (reorder): us 480+620 0.25/0.25; etsi 425 0.25/0.25
- call_waiting: us 440 0.3 on, 9.7 off; etsi 425 0.2 on, 0.2 off, 0.2 on, 5.0 off
- ring (our own ringer): 1100+1400 0.4/0.2/0.4/2.0 in both plans
- secure (the call became secure): 1600 three 0.16 s beeps 0.1 s apart, in both plans
- not_secure (the call goes on in clear audio): 500 six 0.08 s beeps 0.1 s apart, in both plans

The US plan is the North American precise tone plan. The ETSI plan is the harmonised
European one (ETSI ETR 187, 425 Hz for every tone). Congestion and call-waiting cadences
differ between countries (TR 101 041-2 and ITU-T E.180 Supplement 2 list them; Germany, for
one, uses 0.24/0.24 or 0.2/0.2 congestion and 0.2 on, 0.2 off, 0.2 on, 5 s off call
waiting): we take 0.25/0.25 congestion and that call-waiting pattern. The ringer is a double
ring (the UK cadence) on two tones that carry well on a small speaker.

The security indication tones are played once in the earpiece, as secure desk phones do (three
long beeps when a call becomes protected, six short ones when it is not): a person holding the
handset hears what the screen says. They are told apart by pitch as well as by count: high
for secure, low for not secure. Each ends in a long silence (`INDICATION_TAIL`), so a tone
stopped a little late adds silence, never another beep; `indication_length` is how long the
beeps last.

Levels: a single tone is -10 dBm0; each component of a dual tone is -13 dBm0 so the pair is
about -10 dBm0. 0 dBm0 is a sine of amplitude 22,670 (the G.711 digital milliwatt scale, on
which a full-scale sine is +3.17 dBm0). Edges of each burst ramp over 4 ms to avoid clicks.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

from pidphone.errors import LocalProtocolError

_ZERO_DBM0 = 32767 * 10 ** (-3.17 / 20)
_RAMP = 0.004
_FRAME_TIME = 0.02


def amplitude(dbm0: float) -> float:
    """The peak amplitude of a sine at `dbm0` on the 16-bit G.711 scale."""
    return _ZERO_DBM0 * 10 ** (dbm0 / 20)


@dataclass(frozen=True)
class ToneSpec:
    """Frequencies played together, and a cadence of alternating on/off durations in seconds
    (empty: continuous)."""

    frequencies: tuple[float, ...]
    cadence: tuple[float, ...] = ()


_RING = ToneSpec((1100.0, 1400.0), (0.4, 0.2, 0.4, 2.0))
INDICATION_TAIL = 30.0
"""Seconds of silence after an indication tone's beeps, before its cadence would repeat."""
_SECURE = ToneSpec((1600.0,), (0.16, 0.1, 0.16, 0.1, 0.16, INDICATION_TAIL))
_NOT_SECURE = ToneSpec((500.0,), (0.08, 0.1) * 5 + (0.08, INDICATION_TAIL))
INDICATIONS = ("secure", "not_secure")
"""The tones played once (`indication_length`), not for as long as a state lasts."""

PLANS: dict[str, dict[str, ToneSpec]] = {
    "us": {
        "dial": ToneSpec((350.0, 440.0)),
        "ringback": ToneSpec((440.0, 480.0), (2.0, 4.0)),
        "busy": ToneSpec((480.0, 620.0), (0.5, 0.5)),
        "congestion": ToneSpec((480.0, 620.0), (0.25, 0.25)),
        "call_waiting": ToneSpec((440.0,), (0.3, 9.7)),
        "ring": _RING,
        "secure": _SECURE,
        "not_secure": _NOT_SECURE,
    },
    "etsi": {
        "dial": ToneSpec((425.0,)),
        "ringback": ToneSpec((425.0,), (1.0, 4.0)),
        "busy": ToneSpec((425.0,), (0.5, 0.5)),
        "congestion": ToneSpec((425.0,), (0.25, 0.25)),
        "call_waiting": ToneSpec((425.0,), (0.2, 0.2, 0.2, 5.0)),
        "ring": _RING,
        "secure": _SECURE,
        "not_secure": _NOT_SECURE,
    },
}


def indication_length(kind: str) -> float:
    """Seconds from the start of an indication tone to the end of its last beep."""
    if kind not in INDICATIONS:
        raise LocalProtocolError(f"{kind!r} is not an indication tone; known: {INDICATIONS}")
    return sum(PLANS["etsi"][kind].cadence[:-1])


DTMF_ROWS = (697.0, 770.0, 852.0, 941.0)
DTMF_COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
DTMF_KEYS = ("123A", "456B", "789C", "*0#D")


def dtmf_frequencies(key: str) -> tuple[float, float]:
    """The (row, column) frequencies of a DTMF key "0"-"9", "*", "#", "A"-"D"."""
    for row, keys in enumerate(DTMF_KEYS):
        column = keys.find(key.upper()) if len(key) == 1 else -1
        if column >= 0:
            return DTMF_ROWS[row], DTMF_COLUMNS[column]
    raise LocalProtocolError(f"{key!r} is not a DTMF key")


class ToneGenerator:
    """Endless 20 ms frames of one tone, continuous in phase and cadence across frames."""

    def __init__(
        self, kind: str, *, plan: str = "etsi", rate: int = 8000, gain: float = 1.0
    ) -> None:
        """`gain` (0..1) scales the tone's standard level: the ringer's audio.ring_volume."""
        if plan not in PLANS:
            raise LocalProtocolError(f"unknown tone plan {plan!r}; known: {sorted(PLANS)}")
        tones = PLANS[plan]
        if kind not in tones:
            raise LocalProtocolError(f"unknown tone {kind!r}; known: {sorted(tones)}")
        self._init(tones[kind], rate)
        self._amplitude *= max(0.0, min(1.0, gain))

    @classmethod
    def from_spec(cls, spec: ToneSpec, *, rate: int = 8000) -> ToneGenerator:
        """A generator for any tone, e.g. a simulated microphone's 1 kHz test signal."""
        generator = cls.__new__(cls)
        generator._init(spec, rate)
        return generator

    def _init(self, spec: ToneSpec, rate: int) -> None:
        if not spec.frequencies or len(spec.cadence) % 2:
            raise LocalProtocolError("a tone needs frequencies and on/off pairs of durations")
        self.spec = spec
        self.rate = rate
        self.frame_samples = round(rate * _FRAME_TIME)
        single = len(spec.frequencies) == 1
        self._amplitude = amplitude(-10.0 if single else -13.0)
        self._steps = [2 * math.pi * f / rate for f in spec.frequencies]
        self._edges: list[int] = []
        total = 0.0
        for duration in spec.cadence:
            total += duration
            self._edges.append(round(total * rate))
        self._ramp = max(1, round(_RAMP * rate))
        self._sample = 0

    def at_rate(self, rate: int) -> ToneGenerator:
        """The same tone at another sample rate, going on from the same moment (the devices
        were reopened at another rate while it played)."""
        other = ToneGenerator.from_spec(self.spec, rate=rate)
        other._amplitude = self._amplitude
        other._sample = round(self._sample * rate / self.rate)
        return other

    def _envelope(self, n: int) -> float:
        """1.0 inside an "on" burst, ramping at its edges; 0.0 in an "off" gap."""
        if not self._edges:
            return 1.0 if n >= self._ramp else n / self._ramp
        cycle = self._edges[-1]
        position = n % cycle
        start = 0
        for i, end in enumerate(self._edges):
            if position < end:
                if i % 2:
                    return 0.0
                return min(1.0, (position - start) / self._ramp, (end - position) / self._ramp)
            start = end
        return 0.0

    def frame(self) -> bytes:
        """The next 20 ms of the tone."""
        first = self._sample
        self._sample += self.frame_samples
        return self._render(first, self.frame_samples)

    def samples(self, count: int) -> bytes:
        """The next `count` samples of the tone."""
        first = self._sample
        self._sample += count
        return self._render(first, count)

    def _render(self, first: int, count: int) -> bytes:
        level = self._amplitude
        steps = self._steps
        values = []
        for n in range(first, first + count):
            envelope = self._envelope(n)
            if envelope == 0.0:
                values.append(0)
                continue
            total = sum(math.sin(step * n) for step in steps)
            values.append(round(level * envelope * total))
        return struct.pack(f"<{count}h", *values)


LOOP_LIMIT = 50
"""Most frames `looped_tone` computes ahead (one second); a tone whose frames do not repeat
within that many is computed frame by frame instead."""


def looped_tone(spec: ToneSpec, *, rate: int = 8000) -> Callable[[], bytes]:
    """A frame source for a continuous tone that computes each distinct frame once.

    After its first frame (the opening ramp) a continuous tone repeats every k frames once
    every frequency makes a whole number of cycles in k frames (1 kHz at 8 kHz: every frame).
    Those k frames are rendered once and then replayed: a simulated microphone or a tone
    played for minutes costs a list index per frame, not 160 sines.
    """
    generator = ToneGenerator.from_spec(spec, rate=rate)
    if spec.cadence:
        return generator.frame
    samples = generator.frame_samples
    period = next(
        (
            k
            for k in range(1, LOOP_LIMIT + 1)
            if all((f * k * samples / rate).is_integer() for f in spec.frequencies)
        ),
        None,
    )
    if period is None:
        return generator.frame
    first = generator.frame()
    cycle = [generator.frame() for _ in range(period)]
    position = -1

    def frame() -> bytes:
        nonlocal position
        if position < 0:
            position = 0
            return first
        pcm = cycle[position]
        position = (position + 1) % period
        return pcm

    return frame


def dtmf_tone(key: str, duration: float = 0.1, *, rate: int = 8000) -> bytes:
    """The dual tone of a DTMF key (ITU-T Q.23), each component at -13 dBm0."""
    row, column = dtmf_frequencies(key)
    return ToneGenerator.from_spec(ToneSpec((row, column)), rate=rate).samples(
        round(duration * rate)
    )


def test_tone(
    frequency: float, duration: float = 1.0, *, rate: int = 8000, level_dbm0: float = -10.0
) -> bytes:
    """A plain sine, for simulated audio sources and tests (no ramp, starts at phase 0)."""
    level = amplitude(level_dbm0)
    step = 2 * math.pi * frequency / rate
    count = round(duration * rate)
    return struct.pack(f"<{count}h", *(round(level * math.sin(step * n)) for n in range(count)))


test_tone.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
