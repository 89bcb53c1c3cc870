"""Turn a `Screen` into a 1-bit PIL image for a 128x64 OLED (and its simulated twin).

One drawing for every display, so the reference PNGs in images/screens/ are what the OLED
shows. Fonts are Pillow's built-in TrueType font (`ImageFont.load_default(size=N)`): nothing
to download or install on the phone. Text that does not fit is shortened with an ellipsis;
the large line (SAS, NOT SECURE, digits) takes the largest size that fits, on two lines when
it is two words that are too wide for one. A B256 SAS ("aardvark:bifocals") is always two
rows, one word each; without a title the large line also takes the title's room, and every
one of the 65,536 word pairs then fits beside the verified mark (tests/test_draw_sas.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

from PIL import Image, ImageDraw, ImageFont

from pidphone.ports import Screen
from pidphone.zrtp.pgpwords import EVEN, ODD

WIDTH = 128
HEIGHT = 64
STATUS_SIZE = 10
TITLE_SIZE = 12
LINE_SIZE = 10
LINE_PITCH = 11
BIG_SIZES = (28, 24, 20, 18, 16, 14, 12, 10)
STATUS_BAR = 11
"""Height of the status bar including its rule."""
TITLE_TOP = 13
BODY_TOP = 27
VERIFIED_WIDTH = 12

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

# Status icons as 7x8 bitmaps, drawn right to left in this order.
ICONS: dict[str, tuple[str, ...]] = {
    "registered": (
        "......X",
        ".....XX",
        "....XXX",
        "...XXXX",
        "..XXXXX",
        ".XXXXXX",
        "XXXXXXX",
        ".......",
    ),
    "unregistered": (
        "X.....X",
        ".X...X.",
        "..X.X..",
        "...X...",
        "..X.X..",
        ".X...X.",
        "X.....X",
        ".......",
    ),
    "tls_error": (  # a warning sign: nothing like the padlock of a secure call
        "...X...",
        "..X.X..",
        "..X.X..",
        ".X.X.X.",
        ".X.X.X.",
        "X.....X",
        "X..X..X",
        "XXXXXXX",
    ),
    "secure": (
        "..XXX..",
        ".X...X.",
        ".X...X.",
        "XXXXXXX",
        "XXXXXXX",
        "XXX.XXX",
        "XXXXXXX",
        ".......",
    ),
    "pq": (  # drawn left of the lock: the key agreement was post-quantum
        "XX...X.",
        "X.X.X.X",
        "X.X.X.X",
        "XX..X.X",
        "X...X.X",
        "X....X.",
        "X.....X",
        ".......",
    ),
    "insecure": (
        "..XXX..",
        ".X...X.",
        ".....X.",
        "XXXXXXX",
        "X.....X",
        "X..X..X",
        "XXXXXXX",
        ".......",
    ),
    "muted": (
        "X....X.",
        ".X..XX.",
        "..XXXX.",
        "XXXXXX.",
        "XXXXXX.",
        "..XXXXX",
        "....XX.",
        ".....XX",
    ),
    "hold": (
        "XX..XX.",
        "XX..XX.",
        "XX..XX.",
        "XX..XX.",
        "XX..XX.",
        "XX..XX.",
        "XX..XX.",
        ".......",
    ),
    "dnd": (
        "..XXX..",
        ".XXXXX.",
        "XXXXXXX",
        "X.....X",
        "XXXXXXX",
        ".XXXXX.",
        "..XXX..",
        ".......",
    ),
    "voicemail": (
        ".......",
        "XXXXXXX",
        "XX...XX",
        "X.X.X.X",
        "X..X..X",
        "X.....X",
        "XXXXXXX",
        ".......",
    ),
}
ICON_ORDER = tuple(ICONS)

VERIFIED_MARK = (
    "..........X",
    ".........XX",
    "........XX.",
    ".......XX..",
    "X.....XX...",
    "XX...XX....",
    ".XX.XX.....",
    "..XXX......",
    "...X.......",
)


@cache
def font(size: int) -> Font:
    """Pillow's built-in font at `size` pixels (cached: loading costs more than drawing)."""
    return ImageFont.load_default(size=size)


def draw_screen(screen: Screen) -> Image.Image:
    """The 128x64 mode "1" image of `screen` (all black when the display is off)."""
    image = Image.new("1", (WIDTH, HEIGHT), 0)
    if screen.brightness == "off":
        return image
    draw = ImageDraw.Draw(image)
    ink = 1
    if screen.alert:
        draw.rectangle((0, 0, WIDTH - 1, HEIGHT - 1), fill=1)
        ink = 0
    _status_bar(draw, screen, ink)
    if screen.title:
        _text(draw, (0, TITLE_TOP), screen.title, font(TITLE_SIZE), ink=ink, limit=WIDTH)
    top = BODY_TOP if screen.title else TITLE_TOP  # no title: the small lines move up
    room = (HEIGHT - top) // LINE_PITCH
    lines = screen.lines[: 1 if screen.big else room]
    lines_top = HEIGHT - len(lines) * LINE_PITCH if screen.big else top
    if screen.big:
        _big(draw, screen, big_band(screen, lines_top), ink)
    for i, line in enumerate(lines):
        _text(draw, (0, lines_top + i * LINE_PITCH), line, font(LINE_SIZE), ink=ink, limit=WIDTH)
    return image


def _status_bar(draw: ImageDraw.ImageDraw, screen: Screen, ink: int) -> None:
    right = WIDTH
    for name in ICON_ORDER:
        if name in screen.icons:
            right -= 9
            _bitmap(draw, (right + 1, 1), ICONS[name], ink)
    _text(draw, (0, -2), screen.status, font(STATUS_SIZE), ink=ink, limit=right - 2)
    draw.line((0, STATUS_BAR - 1, WIDTH - 1, STATUS_BAR - 1), fill=ink)


def big_band(screen: Screen, lines_top: int = HEIGHT - LINE_PITCH) -> tuple[int, int]:
    """The rows (first, last) the large line may ink: under the title, or right under the
    status bar when there is none, down to the small line."""
    return (BODY_TOP if screen.title else STATUS_BAR + 1), lines_top - 1


def big_rows(text: str) -> tuple[str, ...]:
    """The rows a large line may be drawn as: a B256 SAS is its two words."""
    first, colon, second = text.partition(":")
    if colon and first and second and " " not in text:
        return (first, second)
    return (text,)


@dataclass(frozen=True)
class Placed:
    """One word of a two-word SAS where it is drawn: its origin and the pixels it inks."""

    word: str
    size: int
    origin: tuple[int, int]
    ink: tuple[int, int, int, int]
    """left, top, right, bottom (exclusive) on the display."""


def sas_layout(text: str, band: tuple[int, int]) -> tuple[Placed, Placed] | None:
    """Where the two words of a B256 SAS go in `band`, or None for any other large line.

    Both rows use one size for every pair (the largest at which every PGP word fits the width
    left of the verified mark, and two of the tallest fit the band) and fixed baselines, so a
    word's place depends only on the word and its row: every pair looks alike, and checking
    each word checks every pair.
    """
    rows = big_rows(text)
    if len(rows) != 2:
        return None
    top, bottom = band
    size, ascent, descent = _sas_size(WIDTH - VERIFIED_WIDTH - 4, bottom - top + 1)
    pitch = descent - ascent + SAS_ROW_GAP
    y0 = top + (bottom - top + 1 - (pitch + descent - ascent)) // 2 - ascent
    face = font(size)
    placed = []
    for i, word in enumerate(rows):
        box = _ink_box(face, word)
        x = (WIDTH - VERIFIED_WIDTH - 4 - (box[2] - box[0])) // 2 - box[0] + 2
        y = y0 + i * pitch
        ink = (x + box[0], y + box[1], x + box[2], y + box[3])
        placed.append(Placed(word, size, (x, y), ink))
    return placed[0], placed[1]


SAS_ROW_GAP = 2
"""Pixels between the lowest descender of the first word and the tallest letter of the second."""


@cache
def _sas_size(width: int, height: int) -> tuple[int, int, int]:
    """The size for two-word SAS rows, with the highest and lowest inked row of any PGP word
    at that size (relative to the drawing origin)."""
    for size in BIG_SIZES:
        face = font(size)
        boxes = [_ink_box(face, word) for word in (*EVEN, *ODD)]
        ascent, descent = int(min(b[1] for b in boxes)), int(max(b[3] for b in boxes))
        wide = max(b[2] - b[0] for b in boxes)
        if wide <= width and 2 * (descent - ascent) + SAS_ROW_GAP <= height:
            return size, ascent, descent
    face = font(BIG_SIZES[-1])
    boxes = [_ink_box(face, word) for word in (*EVEN, *ODD)]
    return BIG_SIZES[-1], int(min(b[1] for b in boxes)), int(max(b[3] for b in boxes))


def _big(draw: ImageDraw.ImageDraw, screen: Screen, band: tuple[int, int], ink: int) -> None:
    """The large line centred in the band between the title and the small line."""
    top, bottom = band
    width = WIDTH - (VERIFIED_WIDTH if screen.verified else 0) - 4
    sas = sas_layout(screen.big, band)
    if sas is not None:
        for word in sas:
            draw.text(word.origin, word.word, font=font(word.size), fill=ink)
        if screen.verified:
            _bitmap(draw, verified_mark_origin(band), VERIFIED_MARK, ink)
        return
    rows, size = _fit_big(screen.big, width, bottom - top)
    face = font(size)
    if screen.big_inverse:
        draw.rectangle((0, top, WIDTH - 1, bottom), fill=ink)
        ink = 1 - ink
    heights = [_ink_box(face, row) for row in rows]
    total = sum(b[3] - b[1] for b in heights) + 2 * (len(rows) - 1)
    y = top + (bottom - top + 1 - total) // 2
    for row, box in zip(rows, heights, strict=True):
        x = (width - (box[2] - box[0])) // 2 - box[0] + 2
        draw.text((x, y - box[1]), row, font=face, fill=ink)
        y += box[3] - box[1] + 2
    if screen.verified:
        _bitmap(draw, verified_mark_origin(band), VERIFIED_MARK, ink)


def verified_mark_origin(band: tuple[int, int]) -> tuple[int, int]:
    """The top left corner of the verified mark: at the right, halfway down the band."""
    top, bottom = band
    return WIDTH - VERIFIED_WIDTH, (top + bottom) // 2 - len(VERIFIED_MARK) // 2


def _fit_big(text: str, width: int, height: int) -> tuple[tuple[str, ...], int]:
    """The rows and the largest font size that fit `text` in width x height."""
    words = text.split()
    layouts: list[tuple[str, ...]] = [big_rows(text)]
    if len(words) == 2:
        layouts.append((words[0], words[1]))
    for size in BIG_SIZES:
        face = font(size)
        for rows in layouts:
            boxes = [_ink_box(face, row) for row in rows]
            tall = sum(b[3] - b[1] for b in boxes) + 2 * (len(rows) - 1)
            if tall <= height and all(b[2] - b[0] <= width for b in boxes):
                return rows, size
    return layouts[0], BIG_SIZES[-1]


@lru_cache(maxsize=2048)
def _ink_box(face: Font, text: str) -> tuple[int, int, int, int]:
    """The bounding box of the pixels `text` inks (the cap height, not the line height), as
    drawn on this 1-bit display: hinted glyphs without anti-aliasing are wider than the
    default measure says (up to a sixth at 10 pixels), so measure in mode "1"."""
    box = face.getbbox(text, mode="1")
    return int(box[0]), int(box[1]), int(box[2]), int(box[3])


def _text(
    draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, face: Font, *, ink: int, limit: int
) -> None:
    """Draw `text`, shortened with an ellipsis when it would ink past `limit` pixels.

    The text may come from the network (a caller's display name): no glyph inks less than a
    pixel, so at most `limit` characters can fit and the rest is cut before anything is
    measured, and the longest prefix that fits is found by halving, so a long name costs a
    few measurements, not one per character."""
    text = text[: limit + 1]
    if text_width(face, text) > limit:
        fits, over = 0, len(text)
        while over - fits > 1:
            middle = (fits + over) // 2
            if text_width(face, text[:middle] + ELLIPSIS) > limit:
                over = middle
            else:
                fits = middle
        text = text[:fits] + ELLIPSIS
    draw.text(xy, text, font=face, fill=ink)


ELLIPSIS = "\u2026"


def text_width(face: Font, text: str) -> int:
    """How far right of its origin `text` reaches when drawn in mode "1"."""
    return max(int(face.getlength(text, mode="1")), _ink_box(face, text)[2])


def _bitmap(
    draw: ImageDraw.ImageDraw, xy: tuple[int, int], rows: tuple[str, ...], ink: int
) -> None:
    x0, y0 = xy
    draw.point(
        [(x0 + x, y0 + y) for y, row in enumerate(rows) for x, c in enumerate(row) if c == "X"],
        fill=ink,
    )
