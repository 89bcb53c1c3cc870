"""The phone as the CLI tools, the daemon and the tests drive it: the three owners, composed.

- the media worker (`MediaWorker`, its own thread): every call's socket and media session, the
  handset's audio;
- the switchboard (`Switchboard`, on the loop): signalling and each call's SIP/SDP side;
- the phone UI (`PhoneUi`, on the loop, with its slow-device thread), when the phone has a
  keypad or a display to drive: reducer, screen, ringer, volume.

They share no lock and no object: the controller passes messages between them. What the
switchboard reports (the calls' events, the registration) goes to the phone UI as it is, and
to the listeners; the answers to the reducer's `PlaceCall` are the controller's own. It also
supervises the media thread. A dead media thread is a fault, not silence: every call ends
with "Audio failed: <reason>" on the screen, a new worker starts, and if the worker keeps
failing (`supervision.MAX_RESTARTS` within its window) the controller gives up and `healthy`
turns False, which stops the daemon's watchdog pings so that systemd restarts the phone. The phone
UI supervises its own threads the same way (`PhoneUi.healthy`); its ringer and display faults
(`DeviceFailed`, `DeviceRecovered`) go to the listeners too (the daemon's STATUS=).

The security indication tones (pidphone.app.security_tones) are the controller's too: they
share the worker's one handset tone with the reducer's call-progress tones (an indication
tone, while it plays, has it), and a NOT SECURE call's clear audio waits for its tone and
for the screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from pidphone.ports import (
    AudioDevices,
    CallLog,
    Display,
    InputEvent,
    Keypad,
    LocalAddress,
    OpenDatagramSocket,
    PreferencesStore,
    Screen,
    SipTransport,
)
from pidphone.sip.agent import UserAgent
from pidphone.zrtp.cache import ZidCache

from . import phone_events as pe
from .call import Call
from .call_events import CallFinished, CallInsecure, CallSecure
from .call_state import CallState
from .media_events import MediaStats
from .media_messages import (
    MediaCommand,
    SetHandsetTone,
    SetMicMuted,
    WorkerEvent,
    WorkerFailed,
)
from .media_worker import MediaWorker, WorkerUnavailableError
from .phone_events import DeviceFailed, DeviceRecovered, MediaFault
from .phone_ui import PhoneUi
from .security_tones import SecurityTones
from .signalling import LinkFailed
from .supervision import RestartBudget
from .switchboard import BUSY_HERE, DECLINE, Switchboard, SwitchboardEvent, SwitchboardSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControllerSettings:
    """What the phone needs from the config (the composition root maps it here)."""

    calls: SwitchboardSettings = field(default_factory=SwitchboardSettings)
    tone_plan: str = "etsi"
    secure_tone: bool = True
    """Play the secure indication tone when a call becomes secure (the not-secure one always
    plays)."""
    phone: pe.PhoneSettings | None = None
    """The phone UI's settings; None runs the phone headless (no reducer)."""


ControllerEvent = SwitchboardEvent | MediaFault | DeviceFailed | DeviceRecovered
Listener = Callable[[ControllerEvent], None]
WorkerFactory = Callable[[Callable[[list[WorkerEvent]], None]], MediaWorker]
"""Builds a media worker posting its batches through the given function (thread-safe)."""


class Controller:
    """Runs the phone on the current loop. `start()` first, `stop()` at the end."""

    def __init__(
        self,
        settings: ControllerSettings,
        agent: UserAgent,
        transport: SipTransport,
        cache: ZidCache,
        open_socket: OpenDatagramSocket,
        *,
        local_address: LocalAddress | None = None,
        audio: AudioDevices | None = None,
        display: Display | None = None,
        keypad: Keypad | None = None,
        wall_clock: Callable[[], float] = time.time,
        worker_factory: WorkerFactory | None = None,
        call_log: CallLog | None = None,
        preferences: PreferencesStore | None = None,
    ) -> None:
        self.settings = settings
        self.agent = agent
        self.cache = cache
        self._transport = transport
        self._open_socket = open_socket
        self._local_address = local_address
        self._audio = audio
        self._display = display
        self._keypad = keypad
        self._wall_clock = wall_clock
        self._call_log = call_log
        self._preferences = preferences
        self._worker_factory = worker_factory or self._new_worker
        self._listeners: list[Listener] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._switchboard: Switchboard | None = None
        self._ui: PhoneUi | None = None
        self._worker: MediaWorker | None = None
        self._restarts = RestartBudget()
        self._tone: str | None = None
        """The reducer's call-progress tone."""
        self._indication: str | None = None
        """The security indication tone playing over the handset's call, if any."""
        self._tones: SecurityTones | None = None
        self._muted = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._media_healthy = True

    @property
    def healthy(self) -> bool:
        """False once the media worker, or a thread of the phone UI, died and could not be
        restarted: the daemon stops its watchdog pings. A broken display or ringer does not
        end a call that is talking: that restart waits until no call is connected (a caller
        cannot hold it off, as a call that only rings does not count)."""
        if not self._media_healthy:
            return False
        ui = self._ui
        return ui is None or ui.healthy or self._talking()

    def _talking(self) -> bool:
        board = self._switchboard
        return board is not None and any(
            call.state == CallState.CONNECTED for call in board.calls()
        )

    # ------------------------------------------------------------------ life cycle

    @property
    def switchboard(self) -> Switchboard:
        if self._switchboard is None:
            raise RuntimeError("the phone is not started")
        return self._switchboard

    @property
    def ui(self) -> PhoneUi | None:
        """The phone UI (None when the phone runs headless)."""
        return self._ui

    @property
    def worker(self) -> MediaWorker | None:
        """The media worker of the moment (None between a fault and its restart)."""
        return self._worker

    def now(self) -> float:
        return self.switchboard.now()

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._start_worker()
        self._switchboard = Switchboard(
            self.settings.calls,
            self.agent,
            self._transport,
            self._send_media,
            self._on_event,
            local_address=self._local_address,
            on_handset=self._handset_moved,
        )
        self._tones = SecurityTones(
            self._play_indication,
            self._switchboard.allow_clear,
            self._switchboard.has_handset,
            secure_tone=self.settings.secure_tone,
            earpiece=self._audio is not None,
        )
        if self.settings.phone is not None:
            self._ui = PhoneUi(
                self.settings.phone,
                self._run,
                display=self._display,
                keypad=self._keypad,
                audio=self._audio,
                tone_plan=self.settings.tone_plan,
                wall_clock=self._wall_clock,
                call_log=self._call_log,
                preferences=self._preferences,
                on_device=self._emit,
            )
            self._ui.start()
        registration = await self._switchboard.start()
        if self._ui is not None:
            self._ui.fact(registration)

    async def stop(self) -> None:
        """Hang up every call, unregister, stop the threads and close the devices."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._switchboard is not None:
            await self._switchboard.stop()
        if self._tones is not None:
            self._tones.close()
        if self._ui is not None:
            self._ui.stop()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()

    # ------------------------------------------------------------------ call API

    def calls(self) -> list[Call]:
        return self.switchboard.calls()

    def call(self, call_id: str) -> Call | None:
        return self.switchboard.call(call_id)

    async def place_call(self, target: str) -> Call:
        return await self.switchboard.place_call(target)

    def answer(self, call_id: str) -> None:
        self.switchboard.answer(call_id)

    def hangup(self, call_id: str, reason: str = "Hung up") -> None:
        self.switchboard.hangup(call_id, reason)

    def reject(self, call_id: str, status: int = BUSY_HERE) -> None:
        self.switchboard.reject(call_id, status)

    def hold(self, call_id: str, on: bool = True) -> None:
        self.switchboard.hold(call_id, on)

    def send_dtmf(self, call_id: str, key: str) -> None:
        self.switchboard.send_dtmf(call_id, key)

    def transfer(self, call_id: str, target: str) -> None:
        """Blind transfer of the peer of `call_id` to `target`."""
        self.switchboard.transfer(call_id, target)

    def transfer_to_call(self, call_id: str, consultation_id: str) -> None:
        """Attended transfer: the peer of `call_id` takes our place in `consultation_id`."""
        self.switchboard.transfer_to_call(call_id, consultation_id)

    def confirm_sas(self, call_id: str, verified: bool) -> None:
        self.switchboard.confirm_sas(call_id, verified)

    async def media_stats(self, call: Call) -> MediaStats:
        """The call's media counters now (the final ones once it ended)."""
        return await self.switchboard.media_stats(call)

    def set_mute(self, muted: bool) -> None:
        self._muted = muted
        self._send_media(SetMicMuted(muted))

    def play_tone(self, kind: str | None) -> None:
        """The reducer's tone (it waits while an indication tone plays)."""
        self._tone = kind
        if self._indication is None:
            self._send_media(self._handset_tone())

    def _play_indication(self, kind: str | None) -> None:
        self._indication = kind
        self._send_media(self._handset_tone())

    def _handset_tone(self) -> SetHandsetTone:
        if self._indication is not None:
            return SetHandsetTone(self._indication, over_call=True)
        return SetHandsetTone(self._tone, over_call=self._tone is not None and self._lost())

    def _lost(self) -> bool:
        """The handset's call lost its security (SECURITY LOST): it has no audio either way,
        and the reducer's warning tone plays over it, heard as well as seen."""
        state = self._ui.state if self._ui is not None else None
        call = state.call if state is not None else None
        return call is not None and call.lost_deadline is not None

    def _handset_moved(self) -> None:
        if self._tones is not None:
            self._tones.handset_moved()

    def press(self, event: InputEvent) -> None:
        """A key or hook event from the loop's own thread (scripted keys, tests)."""
        if self._ui is not None:
            self._ui.fact(event)

    def screen(self) -> Screen | None:
        """What the display shows now (None without the phone UI)."""
        return None if self._ui is None else self._ui.screen()

    # ------------------------------------------------------------------ the media worker

    def _new_worker(self, post: Callable[[list[WorkerEvent]], None]) -> MediaWorker:
        return MediaWorker(
            post,
            open_socket=self._open_socket,
            cache=self.cache,
            audio=self._audio,
            tone_plan=self.settings.tone_plan,
            wall_clock=self._wall_clock,
        )

    def _start_worker(self) -> None:
        loop = asyncio.get_running_loop()
        holder: list[MediaWorker] = []

        def post(batch: list[WorkerEvent]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing left to tell
                loop.call_soon_threadsafe(self._on_worker_events, holder[0], batch)

        worker = self._worker_factory(post)
        holder.append(worker)
        worker.start()
        self._worker = worker

    def _send_media(self, command: MediaCommand) -> None:
        worker = self._worker
        if worker is None:
            return  # between a fault and the restart: the calls are ending
        try:
            worker.send(command)
        except WorkerUnavailableError as exc:
            asyncio.get_running_loop().call_soon(self._worker_failed, worker, str(exc))

    def _on_worker_events(self, worker: MediaWorker, batch: list[WorkerEvent]) -> None:
        if worker is not self._worker:
            return  # a worker given up already
        for event in batch:
            if isinstance(event, WorkerFailed):
                self._worker_failed(worker, event.reason)
                return
            self.switchboard.on_worker_event(event)

    def _worker_failed(self, worker: MediaWorker, reason: str) -> None:
        """End every call with the reason, restart the worker, or give up."""
        if worker is not self._worker:
            return
        self._worker = None
        worker.stop(timeout=0.5)
        log.error("media worker failed: %s", reason)
        self.switchboard.media_lost(f"Audio failed: {reason}")
        restarted = False
        if self._restarts.allow():
            try:
                self._start_worker()
                restarted = True
            except Exception:
                log.exception("the media worker cannot be started again")
        if restarted:
            self.switchboard.resend_handset()
            self._send_media(self._handset_tone())
            self._send_media(SetMicMuted(self._muted))
        else:
            self._media_healthy = False
            log.critical("no media worker: the phone needs a restart")
        fault = MediaFault(reason, restarted)
        self._emit(fault)
        if self._ui is not None:
            self._ui.fact(fault)

    # ------------------------------------------------------------------ the phone UI

    def _on_event(self, event: SwitchboardEvent) -> None:
        """What the switchboard reports: to the phone UI, then to the listeners."""
        ui = self._ui
        if ui is not None and not isinstance(event, LinkFailed):
            ui.fact(event)  # the calls' events as they are: the reducer keeps no copy
        tones = self._tones
        if tones is not None:
            self._indicate(tones, event)
        self._emit(event)

    def _indicate(self, tones: SecurityTones, event: SwitchboardEvent) -> None:
        """The indication tones; a NOT SECURE call's clear audio waits for its tone and for
        NOT SECURE on the display."""
        if isinstance(event, CallInsecure):
            call_id = event.call_id
            tones.insecure(call_id)
            if self._ui is not None:
                self._ui.when_shown(lambda: tones.shown(call_id))
            else:
                tones.shown(call_id)
        elif isinstance(event, CallSecure):
            tones.secure(event.call_id)
        elif isinstance(event, CallFinished):
            tones.ended(event.call_id)

    def _emit(self, event: ControllerEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("listener failed on %s", event)

    def _run(self, command: pe.Command) -> None:
        """A command of the reducer (the ringer and the volume are the UI's own)."""
        board = self.switchboard
        if isinstance(command, pe.PlaceCall):
            self._spawn(self._place_for_phone(command.number))
        elif isinstance(command, pe.Answer):
            board.answer(command.call_id)
        elif isinstance(command, pe.Reject):
            state = self._ui.state if self._ui is not None else None
            board.reject(command.call_id, DECLINE if state is not None and state.dnd else BUSY_HERE)
        elif isinstance(command, pe.Forward):
            board.redirect(command.call_id, command.target)
        elif isinstance(command, pe.Hangup):
            board.hangup(command.call_id)
        elif isinstance(command, pe.Hold):
            board.hold(command.call_id, True)
        elif isinstance(command, pe.Resume):
            board.hold(command.call_id, False)
        elif isinstance(command, pe.SendDtmf):
            board.send_dtmf(command.call_id, command.key)
        elif isinstance(command, pe.ConfirmSas):
            board.confirm_sas(command.call_id, command.verified)
        elif isinstance(command, pe.Transfer):
            board.transfer(command.call_id, command.number)
        elif isinstance(command, pe.TransferToCall):
            board.transfer_to_call(command.call_id, command.consultation_id)
        elif isinstance(command, pe.SetMute):
            self.set_mute(command.muted)
        elif isinstance(command, pe.PlayTone):
            self.play_tone(command.kind)

    async def _place_for_phone(self, number: str) -> None:
        try:
            call = await self.place_call(number)
        except Exception as exc:
            log.warning("cannot call %s: %s", number, exc)
            if self._ui is not None:
                self._ui.fact(pe.OutgoingCallFailed(f"Cannot call: {exc}"))
            return
        if self._ui is not None:
            self._ui.fact(pe.OutgoingCall(call.call_id, number))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await coroutine
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("phone task failed")

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
