"""The security indication tones: the earpiece says what the screen says about a call.

A person holding the handset is not looking at the screen, and a display in fault shows
nothing at all, so the earpiece says it too, as secure desk phones do:

- A call that goes on NOT SECURE (the "prefer" policy, a peer without ZRTP) plays the
  not-secure tone (six short low beeps). Its clear audio waits, both ways, until the tone has
  played and NOT SECURE is on the display; with the display in fault (its screens count as
  shown at once) the tone alone holds it back. This tone is never optional.
- A call that becomes secure plays the secure tone (three high beeps) once, if the config
  wants it: a re-key, a new ZRTP stream or a re-INVITE of the same call plays nothing new.

A tone plays over the call that has the handset, in place of its audio and at its rate (the
media worker's `SetHandsetTone(over_call=True)`); it is never sent to the peer. A call that
does not have the handset waits for it (and so does its clear audio); one tone plays at a
time, in turn. A tone is stopped `MARGIN` after its last beep, by the loop: each tone ends in
a long silence, so a loop that is late adds silence, not another beep. Without an earpiece
(no audio devices) nothing can be heard, and the screen alone holds clear audio back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from pidphone.audio.tones import indication_length

log = logging.getLogger(__name__)

MARGIN = 0.2
"""Seconds after the last beep before the tone stops and the call's clear audio may flow: the
worker starts a tone on its next period, 20 ms after the loop asked for it at most on an idle
machine, later on a loaded one; a loop late by the margin's rest still cuts no beep short."""

Play = Callable[[str | None], None]
"""Play an indication tone over the handset's call (None: stop it)."""


@dataclass
class _Gate:
    """A NOT SECURE call whose clear audio waits."""

    heard: bool
    shown: bool = False


class SecurityTones:
    """The indication tones of every call, on the loop. The controller tells it what the
    calls report (`insecure`, `shown`, `secure`, `ended`, `handset_moved`)."""

    def __init__(
        self,
        play: Play,
        allow_clear: Callable[[str], None],
        has_handset: Callable[[str], bool],
        *,
        secure_tone: bool = True,
        earpiece: bool = True,
    ) -> None:
        self._play = play
        self._allow_clear = allow_clear
        self._has_handset = has_handset
        self._secure_tone = secure_tone
        self._earpiece = earpiece
        self._loop = asyncio.get_running_loop()
        self._waiting: list[tuple[str, str]] = []
        """(call id, tone) to play, in turn, each once its call has the handset."""
        self._playing: tuple[str, str, asyncio.TimerHandle] | None = None
        self._gates: dict[str, _Gate] = {}
        self._secured: set[str] = set()

    @property
    def playing(self) -> str | None:
        """The tone playing now, if any."""
        return None if self._playing is None else self._playing[1]

    def insecure(self, call_id: str) -> None:
        """The call goes on NOT SECURE: its tone, and its clear audio after it (and the screen)."""
        if call_id in self._gates:
            return
        self._gates[call_id] = _Gate(heard=not self._earpiece)
        if self._earpiece:
            self._waiting.append((call_id, "not_secure"))
            self._next()

    def shown(self, call_id: str) -> None:
        """NOT SECURE is on the display (or the display is in fault)."""
        gate = self._gates.get(call_id)
        if gate is not None:
            gate.shown = True
            self._open(call_id)

    def secure(self, call_id: str) -> None:
        """The call is secure: its tone, the first time only."""
        if call_id in self._secured:
            return
        self._secured.add(call_id)
        # secured after all (a later re-INVITE with ZRTP): no NOT SECURE tone for it now
        self._gates.pop(call_id, None)
        self._waiting = [w for w in self._waiting if w != (call_id, "not_secure")]
        if self._playing is not None and self._playing[:2] == (call_id, "not_secure"):
            self._stop()
        if self._secure_tone and self._earpiece:
            self._waiting.append((call_id, "secure"))
            self._next()

    def ended(self, call_id: str) -> None:
        """The call ended: nothing of it waits or plays."""
        self._gates.pop(call_id, None)
        self._secured.discard(call_id)
        self._waiting = [w for w in self._waiting if w[0] != call_id]
        if self._playing is not None and self._playing[0] == call_id:
            self._stop()
        self._next()

    def handset_moved(self) -> None:
        """Another call (or none) has the handset: a tone playing over a call that lost it
        plays again from the start when the call has it back."""
        playing = self._playing
        if playing is not None and not self._has_handset(playing[0]):
            self._stop()
            self._waiting.insert(0, (playing[0], playing[1]))
        self._next()

    def close(self) -> None:
        if self._playing is not None:
            self._playing[2].cancel()
            self._playing = None
        self._waiting.clear()
        self._gates.clear()

    # ------------------------------------------------------------------ internals

    def _next(self) -> None:
        if self._playing is not None:
            return
        for index, (call_id, kind) in enumerate(self._waiting):
            if self._has_handset(call_id):
                del self._waiting[index]
                handle = self._loop.call_later(indication_length(kind) + MARGIN, self._done)
                self._playing = (call_id, kind, handle)
                log.info("call %s: %s tone", call_id, kind.replace("_", " "))
                self._play(kind)
                return

    def _stop(self) -> None:
        if self._playing is not None:
            self._playing[2].cancel()
            self._playing = None
            self._play(None)

    def _done(self) -> None:
        if self._playing is None:
            return
        call_id, kind, _ = self._playing
        self._playing = None
        self._play(None)
        gate = self._gates.get(call_id)
        if kind == "not_secure" and gate is not None:
            gate.heard = True
            self._open(call_id)
        self._next()

    def _open(self, call_id: str) -> None:
        gate = self._gates.get(call_id)
        if gate is not None and gate.heard and gate.shown:
            del self._gates[call_id]
            self._allow_clear(call_id)
