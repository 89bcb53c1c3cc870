"""ALSA audio through pyalsaaudio, implementing `ports.AudioDevices`.

Streams are mono S16_LE with 20 ms periods, opened at 8 kHz or at the rate the config names
(USB handsets often only do 48 kHz), resampled to and from the 8 kHz frames of the ports.
The capture device is the media clock. `next_frame_at` says when its next period will have
been captured, from `avail()` (the frames already in its buffer) and the rate: the media
worker waits until then in the one `select` that also watches the call sockets, and
`read_frame` returns at once. (The PCM's poll descriptors could join that selector instead,
but they must be translated through `polldescriptors_revents` at every wake-up and a
plug-in PCM may have several; a timeout from `avail()` is as exact as the period interrupt.)
Playback is written on the capture's tick, a period or two ahead, so its blocking write
never waits; during an outage a frame is dropped at once.

Faults never end a call:
- an overrun (capture) or underrun (playback) is counted and the stream re-prepared;
- a device that fails (USB handset unplugged, a name that does not exist) is logged once as a
  `DeviceError` naming the config key; meanwhile capture gives silence paced by a clock (the
  media worker keeps its 20 ms rhythm) and playback drops frames, and the device
  is reopened every `retry_interval` seconds until it is back.
- the mixer (volume keys) is optional: a missing control is logged once and ignored.

User-space PCMs (file, null) run much faster than real time, so tests and the simulated phone
inject a pacer; real hardware needs none.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from typing import Protocol

import alsaaudio

from pidphone.audio.resample import Resampler
from pidphone.errors import DeviceError, LocalProtocolError
from pidphone.ports import FRAME_BYTES, SAMPLE_RATE, AudioPurpose

from .sim_audio import Pacer

log = logging.getLogger(__name__)

PERIODS = 4
"""Periods in the device buffer: 80 ms, enough to ride out a late thread without an xrun."""
SILENCE = bytes(FRAME_BYTES)

Converter = Callable[[bytes], bytes]
"""A stateful sample-rate converter: PCM in at one rate, PCM out at another."""


class AlsaSettings(Protocol):
    """The `[audio]` config table, as far as the devices are concerned."""

    @property
    def capture_device(self) -> str: ...
    @property
    def playback_device(self) -> str: ...
    @property
    def ring_device(self) -> str: ...
    @property
    def rate(self) -> int: ...
    @property
    def mixer_card(self) -> str: ...
    @property
    def mixer_control(self) -> str: ...


class _Stream:
    """One PCM that may vanish and come back: the shared open/fail/retry logic."""

    def __init__(
        self,
        kind: int,
        device: str,
        rate: int,
        *,
        config_key: str,
        pacer: Pacer | None,
        retry_interval: float,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.kind = kind
        self.device = device
        self.rate = rate
        self.period = rate // 50
        self.config_key = config_key
        self.pacer = pacer
        self.outage_pacer = pacer or Pacer(clock=clock, sleep=sleep)
        self.retry_interval = retry_interval
        self.clock = clock
        self.xruns = 0
        self.pcm: alsaaudio.PCM | None = None
        self._failed_at: float | None = None
        self._reported = False
        self._open()

    @property
    def label(self) -> str:
        what = "capture" if self.kind == alsaaudio.PCM_CAPTURE else "playback"
        return f"ALSA {what} {self.device!r}"

    def _open(self) -> None:
        try:
            self.pcm = alsaaudio.PCM(
                self.kind,
                alsaaudio.PCM_NORMAL,
                device=self.device,
                rate=self.rate,
                channels=1,
                format=alsaaudio.PCM_FORMAT_S16_LE,
                periodsize=self.period,
                periods=PERIODS,
            )
        except alsaaudio.ALSAAudioError as exc:
            self.fail(exc)
            return
        if self._reported:
            log.info("%s is back", self.label)
        self._reported = False
        self._failed_at = None

    def failed(self) -> bool:
        """Down and not yet due for a retry."""
        return self.pcm is None and (
            self._failed_at is not None and self.clock() - self._failed_at < self.retry_interval
        )

    def fail(self, exc: Exception) -> None:
        error = DeviceError(self.label, self.config_key, str(exc))
        if not self._reported:
            log.error("%s; retrying every %.0f s", error, self.retry_interval)
            self._reported = True
        self.close()
        self._failed_at = self.clock()

    def ready(self) -> alsaaudio.PCM | None:
        """The open PCM, reopening it when the retry time has come; None during an outage."""
        if self.pcm is None and (
            self._failed_at is None or self.clock() - self._failed_at >= self.retry_interval
        ):
            self._open()
        return self.pcm

    def close(self) -> None:
        if self.pcm is not None:
            try:
                self.pcm.close()
            except alsaaudio.ALSAAudioError as exc:
                log.debug("%s: close failed: %s", self.label, exc)
            self.pcm = None


class AlsaCapture:
    """The handset microphone: `read_frame` gives 20 ms at 8 kHz."""

    rate = SAMPLE_RATE

    def __init__(self, stream: _Stream, resample: Converter | None) -> None:
        self._stream = stream
        self._resample = resample
        self._pending = b""
        if stream.pacer is not None:
            stream.pacer.due()  # a paced stream's schedule starts when it opens

    def next_frame_at(self) -> float:
        stream = self._stream
        if stream.pacer is not None:
            return stream.pacer.due()
        now = stream.clock()
        if stream.failed():
            return stream.outage_pacer.due()
        missing = stream.period - len(self._pending) // 2
        pcm = stream.pcm
        if missing <= 0 or pcm is None:
            return now
        try:
            avail = pcm.avail()
        except alsaaudio.ALSAAudioError:
            return now  # `read_frame` finds the fault and reports it
        if avail < 0:  # an overrun: `read_frame` counts it and re-prepares
            return now
        return now + max(0, missing - avail) / stream.rate

    @property
    def overruns(self) -> int:
        return self._stream.xruns

    def read_frame(self) -> bytes:
        stream = self._stream
        want = stream.period * 2
        while len(self._pending) < want:
            pcm = stream.ready()
            if pcm is None:
                stream.outage_pacer.wait()
                return SILENCE
            try:
                count, data = pcm.read()
            except alsaaudio.ALSAAudioError as exc:
                stream.fail(exc)
                continue
            if count == -errno.EPIPE:
                stream.xruns += 1
                log.debug("%s: overrun %d", stream.label, stream.xruns)
                continue
            self._pending += data
        data, self._pending = self._pending[:want], self._pending[want:]
        if stream.pacer is not None:
            stream.pacer.wait()
        return self._resample(data) if self._resample is not None else data

    def close(self) -> None:
        self._stream.close()


class AlsaPlayback:
    """The earpiece or the ringer: `write_frame` takes 20 ms at 8 kHz."""

    rate = SAMPLE_RATE

    def __init__(self, stream: _Stream, resample: Converter | None) -> None:
        self._stream = stream
        self._resample = resample
        self._primed = False

    @property
    def underruns(self) -> int:
        return self._stream.xruns

    def write_frame(self, pcm: bytes) -> None:
        if len(pcm) != FRAME_BYTES:
            raise LocalProtocolError(f"a frame is {FRAME_BYTES} bytes, got {len(pcm)}")
        stream = self._stream
        data = self._resample(pcm) if self._resample is not None else pcm
        device = stream.ready()
        if device is None:
            self._primed = False
            return  # dropped at once: the capture's clock paces the writer
        try:
            if not self._primed:
                # One period of silence ahead, so a late frame does not underrun at once.
                device.write(bytes(len(data)))
                self._primed = True
            device.write(data)
        except alsaaudio.ALSAAudioError as exc:
            if self._underrun(device):
                stream.xruns += 1
                log.debug("%s: underrun %d", stream.label, stream.xruns)
                self._primed = False
            else:
                stream.fail(exc)
                self._primed = False
                return
        if stream.pacer is not None:
            stream.pacer.wait()

    @staticmethod
    def _underrun(device: alsaaudio.PCM) -> bool:
        try:
            return device.state() == alsaaudio.PCM_STATE_XRUN
        except alsaaudio.ALSAAudioError:
            return False

    def close(self) -> None:
        self._stream.close()


class AlsaAudio:
    """Opens the configured devices. `pacer` makes a pacer per stream for PCMs that are not
    real time (tests, the simulated phone); leave it None for sound cards."""

    def __init__(
        self,
        settings: AlsaSettings,
        *,
        pacer: Callable[[], Pacer] | None = None,
        retry_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        resampler: Callable[[int, int], Converter] | None = None,
    ) -> None:
        self._settings = settings
        self._pacer = pacer
        self._retry_interval = retry_interval
        self._clock = clock
        self._sleep = sleep
        self._resampler = resampler or _default_resampler
        self._mixer: alsaaudio.Mixer | None = None
        self._mixer_reported = False

    def _stream(self, kind: int, device: str, config_key: str) -> _Stream:
        return _Stream(
            kind,
            device,
            self._settings.rate,
            config_key=config_key,
            pacer=self._pacer() if self._pacer is not None else None,
            retry_interval=self._retry_interval,
            clock=self._clock,
            sleep=self._sleep,
        )

    def _converter(self, source: int, target: int) -> Converter | None:
        return None if source == target else self._resampler(source, target)

    def open_capture(self) -> AlsaCapture:
        stream = self._stream(
            alsaaudio.PCM_CAPTURE, self._settings.capture_device, "audio.capture_device"
        )
        return AlsaCapture(stream, self._converter(self._settings.rate, SAMPLE_RATE))

    def open_playback(self, purpose: AudioPurpose = "call") -> AlsaPlayback:
        settings = self._settings
        if purpose == "ring" and settings.ring_device:
            device, key = settings.ring_device, "audio.ring_device"
        else:
            device, key = settings.playback_device, "audio.playback_device"
        stream = self._stream(alsaaudio.PCM_PLAYBACK, device, key)
        return AlsaPlayback(stream, self._converter(SAMPLE_RATE, settings.rate))

    def set_volume(self, percent: int) -> None:
        control = self._settings.mixer_control
        if not control:
            return
        percent = max(0, min(100, percent))
        try:
            if self._mixer is None:
                self._mixer = alsaaudio.Mixer(control, device=self._settings.mixer_card)
            self._mixer.setvolume(percent)
        except alsaaudio.ALSAAudioError as exc:
            self._mixer = None
            if not self._mixer_reported:
                error = DeviceError(f"ALSA mixer {control!r}", "audio.mixer_control", str(exc))
                log.error("%s; volume keys do nothing", error)
                self._mixer_reported = True
            return
        self._mixer_reported = False


def _default_resampler(source: int, target: int) -> Converter:
    return Resampler(source, target).process
