"""The simulated keypad and hook switch, implementing `ports.Keypad`: keys from a script (a list
of (delay, key) pairs, or a file of them) or typed on the terminal.

Tokens: a key name as in `KeyEvent` ("5", "#", "sas_confirm", "speed1", ...), one of the
single-character shortcuts below, "h" or "hook" to toggle the hook switch, "lift" and
"put_down" to set it. A key gives a press and a release.

Script file: one `<seconds to wait> <token>` per line; lines starting with "#" and blank lines
are skipped (the "#" key itself always follows a delay, so it is never mistaken for a comment):

    # call the first speed dial, confirm the SAS, hang up
    0.5 lift
    1.0 speed1
    8.0 sas_confirm
    5.0 put_down
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from pidphone.errors import ConfigError
from pidphone.ports import HookEvent, InputEvent, KeyEvent

SHORTCUTS = {
    "c": "sas_confirm",
    "x": "sas_reject",
    "o": "hold",
    "t": "transfer",
    "m": "mute",
    "+": "volume_up",
    "-": "volume_down",
    "a": "answer",
    "e": "hangup",
    "r": "redial",
    "d": "dnd",
    "b": "back",
}
"""Terminal letters for the function keys (digits, *, # and A-D are themselves)."""
HELP = (
    "keys: 0-9 * # A-D, h = hook (lift/put down), a = answer, e = end call, c = SAS ok, "
    "x = SAS wrong, o = hold, t = transfer, m = mute, + - = volume, r = redial, "
    "d = do not disturb, b = back"
)


class _Hook:
    """Turns tokens into input events, keeping the hook switch's state."""

    def __init__(self, off_hook: bool) -> None:
        self.off_hook = off_hook

    def events(self, token: str) -> list[InputEvent]:
        if token in {"h", "hook"}:
            self.off_hook = not self.off_hook
            return [HookEvent(self.off_hook)]
        if token in {"lift", "put_down"}:
            wanted = token.startswith("lift")
            if wanted == self.off_hook:
                return []
            self.off_hook = wanted
            return [HookEvent(wanted)]
        name = SHORTCUTS.get(token, token)
        return [KeyEvent(name), KeyEvent(name, pressed=False)]


def parse_script(text: str, config_key: str = "sim.keys_script") -> list[tuple[float, str]]:
    """Read a script file's text; a bad line is a ConfigError naming the line."""
    script: list[tuple[float, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        try:
            delay = float(words[0])
        except ValueError:
            delay = -1.0
        if len(words) < 2 or not delay >= 0:  # "not >=" also rejects NaN
            raise ConfigError(
                config_key, f"line {number}: expected '<seconds> <key>', got {line!r}"
            )
        script.append((delay, words[1]))
    return script


class ScriptKeypad:
    """Plays `script` on a thread once started: wait each delay, then deliver the token."""

    def __init__(self, script: Sequence[tuple[float, str]], *, off_hook: bool = False) -> None:
        self._script = list(script)
        self._hook = _Hook(off_hook)
        self._initial = off_hook
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.finished = threading.Event()
        """Set when the whole script has been delivered."""

    @classmethod
    def from_file(cls, path: Path, *, off_hook: bool = False) -> ScriptKeypad:
        return cls(parse_script(path.read_text()), off_hook=off_hook)

    def start(self, sink: Callable[[InputEvent], None]) -> None:
        self._thread = threading.Thread(target=self._play, args=(sink,), name="sim-keys")
        self._thread.daemon = True
        self._thread.start()

    def off_hook(self) -> bool:
        return self._initial

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _play(self, sink: Callable[[InputEvent], None]) -> None:
        for delay, token in self._script:
            if self._stop.wait(delay):
                return
            for event in self._hook.events(token):
                sink(event)
        self.finished.set()


class TerminalKeypad:
    """Keys typed on a terminal, one character each (no Enter needed on a tty)."""

    def __init__(self, stream: TextIO | None = None, *, off_hook: bool = False) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._hook = _Hook(off_hook)
        self._initial = off_hook
        self._saved: list[Any] | None = None
        self._thread: threading.Thread | None = None
        self.finished = threading.Event()
        """Set at the end of the input."""

    def start(self, sink: Callable[[InputEvent], None]) -> None:
        if self._stream.isatty():  # say once which letter is which key
            print(f"pidphone: simulated keypad; {HELP}", file=sys.stderr, flush=True)
        self._cbreak()
        self._thread = threading.Thread(target=self._read, args=(sink,), name="sim-terminal")
        self._thread.daemon = True  # blocked in read() until a key or EOF
        self._thread.start()

    def off_hook(self) -> bool:
        return self._initial

    def close(self) -> None:
        if self._saved is not None:
            import termios

            with contextlib.suppress(termios.error, ValueError):
                termios.tcsetattr(self._stream.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None

    def _cbreak(self) -> None:
        """Deliver characters as typed, without echo, when the stream is a terminal."""
        if not self._stream.isatty():
            return
        import termios
        import tty

        fd = self._stream.fileno()
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)

    def _read(self, sink: Callable[[InputEvent], None]) -> None:
        try:
            while char := self._stream.read(1):
                if char.isspace():
                    continue
                for event in self._hook.events(char):
                    sink(event)
        except OSError:  # the terminal went away (a closed ssh session): no more keys
            pass
        finally:
            self.finished.set()
