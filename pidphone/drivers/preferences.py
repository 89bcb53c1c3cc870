"""The keypad's settings that outlive a restart (do-not-disturb, call forwarding) in one small
JSON file of the state directory, rewritten atomically (pidphone.drivers.state_file).

A file that is not one this code wrote is moved aside (`<name>.corrupt-<UTC time>`) and the
phone starts as configured; reading or writing never raises.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from pidphone.ports import Preferences

from .state_file import CorruptFileError, read_regular_file, write_atomically

log = logging.getLogger(__name__)

FORMAT = "pidphone-preferences"
MAX_BYTES = 4096
MAX_TARGET = 128


class FilePreferences:
    """A `PreferencesStore` in one JSON file (module docstring)."""

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self.write_error: OSError | None = None

    def load(self) -> Preferences | None:
        try:
            return decode(read_regular_file(self.path, MAX_BYTES))
        except FileNotFoundError:
            return None
        except CorruptFileError as exc:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
            log.warning("preferences %s are corrupt (%s): moved to %s", self.path, exc, aside)
            try:
                os.replace(self.path, aside)
            except OSError as error:
                log.warning("cannot move %s aside: %s", self.path, error)
        except OSError as exc:
            log.warning("cannot read the preferences %s: %s", self.path, exc)
        return None

    def save(self, preferences: Preferences) -> None:
        document = {
            "format": FORMAT,
            "dnd": preferences.dnd,
            "forward_to": preferences.forward_to[:MAX_TARGET],
        }
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomically(self.path, (json.dumps(document) + "\n").encode("ascii"))
        except OSError as exc:
            self.write_error = exc
            log.error("cannot write the preferences %s: %s", self.path, exc)
        else:
            self.write_error = None


def decode(data: bytes) -> Preferences:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise CorruptFileError(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CorruptFileError("not pidphone preferences")
    dnd, forward_to = document.get("dnd"), document.get("forward_to")
    if not isinstance(dnd, bool) or not isinstance(forward_to, str):
        raise CorruptFileError("dnd must be true or false, forward_to a string")
    forward_to = forward_to[:MAX_TARGET]
    if forward_to and not all(c.isprintable() and not c.isspace() for c in forward_to):
        raise CorruptFileError("forward_to is not a number or address")
    return Preferences(dnd=dnd, forward_to=forward_to)
