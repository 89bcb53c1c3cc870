"""The simulated display: each new `Screen` printed as a small text box, and optionally saved
as the PNG the OLED would show (numbered, in the order shown), implementing `ports.Display`;
and `ScreenLog`, a display that only keeps what it was shown (the demo prints its own).

    +----------------------------------+
    | 01:23               [reg] [lock] |
    | Bob Example                      |
    |   aardvark:bifocals (verified)   |
    | SAS verified                     |
    +----------------------------------+

The cached-secret mismatch and other alerts get a box of "#".
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from PIL import Image

from pidphone.ports import Screen

from .draw import draw_screen

BOX_WIDTH = 32
"""Characters inside the box."""
PNG_SCALE = 4
ICON_TEXT = {
    "registered": "reg",
    "unregistered": "unreg",
    "tls_error": "tls!",
    "secure": "lock",
    "pq": "PQ",
    "insecure": "OPEN",
    "muted": "mute",
    "hold": "hold",
    "dnd": "dnd",
}


def screen_text(screen: Screen) -> str:
    """The screen as a text box (a few lines, no trailing newline)."""
    if screen.brightness == "off":
        return _box(["(display off)"], "-")
    icons = " ".join(f"[{ICON_TEXT.get(i, i)}]" for i in sorted(screen.icons))
    room = BOX_WIDTH - len(icons) - 1
    status = f"{screen.status[:room]:<{room}} {icons}"
    rows = [status]
    if screen.title:
        rows.append(screen.title)
    if screen.big:
        big = f">> {screen.big} <<" if screen.big_inverse else screen.big
        if screen.verified:
            big += " (verified)"
        rows.append(big.center(BOX_WIDTH))
    rows += screen.lines
    if screen.brightness == "dim":
        rows.append("(dimmed)".rjust(BOX_WIDTH))
    return _box(rows, "#" if screen.alert else "-")


def _box(rows: list[str], edge: str) -> str:
    rule = "+" + edge * (BOX_WIDTH + 2) + "+"
    side = "#" if edge == "#" else "|"
    body = [f"{side} {row[:BOX_WIDTH]:<{BOX_WIDTH}} {side}" for row in rows]
    return "\n".join([rule, *body, rule])


class SimDisplay:
    """Prints screens that differ from the last one to `out`; saves PNGs to `png_dir` if set."""

    def __init__(self, out: TextIO | None = None, png_dir: Path | None = None) -> None:
        self._out = out if out is not None else sys.stdout
        self._png_dir = png_dir
        self._last: Screen | None = None
        self._count = 0
        if png_dir is not None:
            png_dir.mkdir(parents=True, exist_ok=True)

    @property
    def last(self) -> Screen | None:
        """The screen shown now (for tests and the demo)."""
        return self._last

    def show(self, screen: Screen) -> None:
        if screen == self._last:
            return
        self._last = screen
        self._out.write(screen_text(screen) + "\n")
        self._out.flush()
        if self._png_dir is not None:
            self._count += 1
            image = draw_screen(screen)
            big = image.resize(
                (image.width * PNG_SCALE, image.height * PNG_SCALE), Image.Resampling.NEAREST
            )
            big.save(self._png_dir / f"screen-{self._count:04d}.png")

    def close(self) -> None:
        self._out.flush()


class ScreenLog:
    """The `Display` port: keeps every screen shown, prints nothing."""

    def __init__(self) -> None:
        self.screens: list[Screen] = []

    def show(self, screen: Screen) -> None:
        self.screens.append(screen)

    def close(self) -> None:
        pass
