"""ALSA audio through pyalsaaudio, implementing `ports.AudioDevices`.

Streams are mono S16_LE with 20 ms periods. A stream is opened at the rate its user asks for
(the call's codec: 8, 16 or 48 kHz) where the device takes it; a device that runs at another
rate (USB handsets often only do 48 kHz: alsa-lib settles on the nearest rate it has), or the
one `audio.rate` names, is resampled to and from the frames of the ports, which are always at
the asked rate. The capture device is the media clock. `next_frame_at` says when its next
period will have been captured, from `avail()` (the frames already in its buffer) and the
rate: the media worker waits until then in the one `select` that also watches the call
sockets, and `read_frame` returns at once. (The PCM's poll descriptors could join that
selector instead, but they must be translated through `polldescriptors_revents` at every
wake-up and a plug-in PCM may have several; a timeout from `avail()` is as exact as the
period interrupt.)
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

import ctypes
import ctypes.util
import errno
import logging
import time
from collections.abc import Callable
from typing import Protocol

import alsaaudio

from pidphone.audio.resample import Resampler
from pidphone.errors import DeviceError, LocalProtocolError
from pidphone.ports import SAMPLE_RATE, AudioPurpose, frame_bytes

from .sim_audio import Pacer

log = logging.getLogger(__name__)

PERIODS = 4
"""Periods in the device buffer: 80 ms, enough to ride out a late thread without an xrun."""

Converter = Callable[[bytes], bytes]
"""A stateful sample-rate converter: PCM in at one rate, PCM out at another."""


_ALSA_ERROR_HANDLER = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
)
_quieted: list[object] = []
"""The handler given to alsa-lib, kept alive here (it is called from C)."""


def quiet_alsa_lib() -> None:
    """Send alsa-lib's own error lines ("ALSA lib confmisc.c:855:(parse_card) cannot find
    card '0'", eight of them for each failed open, every retry) to the debug log instead of
    stderr: the driver already says in one line which device and config key failed.
    snd_lib_error_set_handler is process-wide and the library is the one pyalsaaudio uses."""
    if _quieted:
        return
    _quieted.append(None)
    name = ctypes.util.find_library("asound")
    try:
        library = ctypes.CDLL(name or "libasound.so.2")
    except OSError:
        return

    def handler(file: bytes, line: int, function: bytes, err: int, fmt: bytes) -> None:
        log.debug(
            "alsa-lib %s:%d (%s): %s (error %d)",
            file.decode(errors="replace") if file else "?",
            line,
            function.decode(errors="replace") if function else "?",
            fmt.decode(errors="replace") if fmt else "",
            err,
        )

    callback = _ALSA_ERROR_HANDLER(handler)
    _quieted.append(callback)
    library.snd_lib_error_set_handler(callback)


class AlsaSettings(Protocol):
    """The `[audio]` config table, as far as the devices are concerned."""

    @property
    def capture_device(self) -> str: ...
    @property
    def playback_device(self) -> str: ...
    @property
    def ring_device(self) -> str: ...
    @property
    def rate(self) -> int:
        """Hz the devices always run at; 0: the rate asked for, where the device takes it."""
        ...

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
        down: set[str] | None = None,
    ) -> None:
        self.kind = kind
        self.down = set() if down is None else down
        """The devices known to be down (shared by the streams of one `AlsaAudio`): a device
        that fails at every opening (the ringer's, at every call) is logged once."""
        self.device = device
        self.asked_rate = rate
        self.rate = rate
        """The rate the device runs at (alsa-lib may settle on another than the one asked)."""
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
        self.error: str | None = None
        """Why the PCM is closed, while it is down."""
        self._open()

    @property
    def label(self) -> str:
        what = "capture" if self.kind == alsaaudio.PCM_CAPTURE else "playback"
        return f"ALSA {what} {self.device!r}"

    def _open(self) -> None:
        try:
            pcm = self._pcm(self.asked_rate)
            rate = _actual_rate(pcm, self.asked_rate)
            if rate != self.asked_rate:
                # alsa-lib settled on the nearest rate the device has: reopen there with a
                # 20 ms period of that rate, and resample
                pcm.close()
                if rate <= 0 or rate % 50:
                    raise alsaaudio.ALSAAudioError(f"no 20 ms period at {rate} Hz")
                pcm = self._pcm(rate)
        except alsaaudio.ALSAAudioError as exc:
            self.fail(exc)
            return
        if rate != self.rate:
            log.info("%s runs at %d Hz, not %d: resampled", self.label, rate, self.asked_rate)
        self.pcm, self.rate, self.period = pcm, rate, rate // 50
        if self._reported or self.device in self.down:
            log.info("%s is back", self.label)
        self.down.discard(self.device)
        self._reported = False
        self._failed_at = None
        self.error = None

    def _pcm(self, rate: int) -> alsaaudio.PCM:
        quiet_alsa_lib()
        return alsaaudio.PCM(
            self.kind,
            alsaaudio.PCM_NORMAL,
            device=self.device,
            rate=rate,
            channels=1,
            format=alsaaudio.PCM_FORMAT_S16_LE,
            periodsize=rate // 50,
            periods=PERIODS,
        )

    def failed(self) -> bool:
        """Down and not yet due for a retry."""
        return self.pcm is None and (
            self._failed_at is not None and self.clock() - self._failed_at < self.retry_interval
        )

    def fail(self, exc: Exception) -> None:
        error = DeviceError(self.label, self.config_key, str(exc))
        self.error = str(error)
        if not self._reported:
            level = logging.DEBUG if self.device in self.down else logging.ERROR
            log.log(level, "%s; retrying every %.0f s", error, self.retry_interval)
            self.down.add(self.device)
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


class _Converted:
    """The conversion between a stream's device rate and the rate of the port's frames, made
    again whenever the device comes back at another rate."""

    def __init__(self, stream: _Stream, rate: int, make: Callable[[int, int], Converter]) -> None:
        self._stream = stream
        self.rate = rate
        self._make = make
        self._device_rate = rate
        self._convert: Converter | None = None

    @property
    def device_rate(self) -> int:
        return self._stream.rate

    def converter(self, source: int, target: int) -> Converter | None:
        """The converter from `source` to `target` Hz (one of them the device's): None when
        the device runs at the port's rate."""
        device = self._stream.rate
        if device != self._device_rate:
            self._device_rate, self._convert = device, None
        if source == target:
            return None
        if self._convert is None:
            self._convert = self._make(source, target)
        return self._convert


class AlsaCapture(_Converted):
    """The handset microphone: `read_frame` gives 20 ms at `rate`."""

    def __init__(self, stream: _Stream, rate: int, make: Callable[[int, int], Converter]) -> None:
        super().__init__(stream, rate, make)
        self._silence = bytes(frame_bytes(rate))
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
        # in the past when the period is already there: when the card completed it
        return now + (missing - avail) / stream.rate

    @property
    def overruns(self) -> int:
        return self._stream.xruns

    def read_frame(self) -> bytes:
        stream = self._stream
        while len(self._pending) < stream.period * 2:
            pcm = stream.ready()
            if pcm is None:
                stream.outage_pacer.wait()
                self._pending = b""
                return self._silence
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
        want = stream.period * 2
        data, self._pending = self._pending[:want], self._pending[want:]
        if stream.pacer is not None:
            stream.pacer.wait()
        convert = self.converter(stream.rate, self.rate)
        return data if convert is None else convert(data)

    def close(self) -> None:
        self._stream.close()


class AlsaPlayback(_Converted):
    """The earpiece or the ringer: `write_frame` takes 20 ms at `rate`."""

    def __init__(self, stream: _Stream, rate: int, make: Callable[[int, int], Converter]) -> None:
        super().__init__(stream, rate, make)
        self._frame_bytes = frame_bytes(rate)
        self._primed = True
        """False after an underrun: the restarted device gets a period of silence first. At
        open the writer queues what it wants ahead itself (the media worker's
        PLAYBACK_AHEAD): a silent period more here would add 20 ms to every call."""

    @property
    def underruns(self) -> int:
        return self._stream.xruns

    @property
    def fault(self) -> str | None:
        """Why the device is down (`ports.DeviceHealth`): frames are dropped meanwhile."""
        stream = self._stream
        return stream.error if stream.pcm is None else None

    def write_frame(self, pcm: bytes) -> None:
        if len(pcm) != self._frame_bytes:
            raise LocalProtocolError(f"a frame is {self._frame_bytes} bytes, got {len(pcm)}")
        stream = self._stream
        device = stream.ready()
        if device is None:
            self._primed = False
            return  # dropped at once: the capture's clock paces the writer
        convert = self.converter(self.rate, stream.rate)
        data = pcm if convert is None else convert(pcm)
        try:
            if not self._primed:
                # One period of silence ahead after an underrun or an outage, so the next
                # late frame does not underrun at once.
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
        self._down: set[str] = set()

    def _stream(self, kind: int, device: str, config_key: str, rate: int) -> _Stream:
        return _Stream(
            kind,
            device,
            self._settings.rate or rate,
            config_key=config_key,
            pacer=self._pacer() if self._pacer is not None else None,
            retry_interval=self._retry_interval,
            clock=self._clock,
            sleep=self._sleep,
            down=self._down,
        )

    def open_capture(self, rate: int = SAMPLE_RATE) -> AlsaCapture:
        device, key = self._settings.capture_device, "audio.capture_device"
        stream = self._stream(alsaaudio.PCM_CAPTURE, device, key, rate)
        return AlsaCapture(stream, rate, self._resampler)

    def open_playback(
        self, purpose: AudioPurpose = "call", rate: int = SAMPLE_RATE
    ) -> AlsaPlayback:
        settings = self._settings
        if purpose == "ring" and settings.ring_device:
            device, key = settings.ring_device, "audio.ring_device"
        else:
            device, key = settings.playback_device, "audio.playback_device"
        stream = self._stream(alsaaudio.PCM_PLAYBACK, device, key, rate)
        return AlsaPlayback(stream, rate, self._resampler)

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


def _actual_rate(pcm: alsaaudio.PCM, asked: int) -> int:
    """The rate alsa-lib settled on for an open PCM (the one asked if it does not say)."""
    info = getattr(pcm, "info", None)
    if info is None:
        return asked
    rate = info().get("rate", asked)
    return rate if isinstance(rate, int) else asked
