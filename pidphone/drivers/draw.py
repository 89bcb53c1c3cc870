"""Turn a `Screen` into a 1-bit PIL image for a 128x64 OLED (and its simulated twin).

One drawing for every display, so the reference PNGs in images/screens/ are what the OLED
shows. Fonts are Pillow's built-in TrueType font (`ImageFont.load_default(size=N)`): nothing
to download or install on the phone. Text that does not fit is shortened with "..";
the large line (SAS, NOT SECURE, digits) takes the largest size that fits, on two lines when
it is two words (a B256 SAS) that are too wide for one.
"""

from __future__ import annotations

from functools import cache, lru_cache

from PIL import Image, ImageDraw, ImageFont

from pidphone.ports import Screen

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
    "tls_error": (
        "..XXX..",
        ".X...X.",
        ".X...X.",
        "XXXXXXX",
        "XXX.XXX",
        "XXX.XXX",
        "XXXXXXX",
        "...X...",
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
    room = (HEIGHT - BODY_TOP) // LINE_PITCH
    lines = screen.lines[: 1 if screen.big else room]
    lines_top = HEIGHT - len(lines) * LINE_PITCH if screen.big else BODY_TOP
    if screen.big:
        _big(draw, screen, (BODY_TOP, lines_top - 1), ink)
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


def _big(draw: ImageDraw.ImageDraw, screen: Screen, band: tuple[int, int], ink: int) -> None:
    """The large line centred in the band between the title and the small line."""
    top, bottom = band
    width = WIDTH - (VERIFIED_WIDTH if screen.verified else 0) - 4
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
        mark_y = (top + bottom) // 2 - len(VERIFIED_MARK) // 2
        _bitmap(draw, (WIDTH - VERIFIED_WIDTH, mark_y), VERIFIED_MARK, ink)


def _fit_big(text: str, width: int, height: int) -> tuple[tuple[str, ...], int]:
    """The rows and the largest font size that fit `text` in width x height."""
    words = text.split()
    layouts: list[tuple[str, ...]] = [(text,)]
    if len(words) == 2:
        layouts.append((words[0], words[1]))
    for size in BIG_SIZES:
        face = font(size)
        for rows in layouts:
            boxes = [_ink_box(face, row) for row in rows]
            tall = sum(b[3] - b[1] for b in boxes) + 2 * (len(rows) - 1)
            if tall <= height and all(b[2] - b[0] <= width for b in boxes):
                return rows, size
    return (text,), BIG_SIZES[-1]


@lru_cache(maxsize=256)
def _ink_box(face: Font, text: str) -> tuple[int, int, int, int]:
    """The bounding box of the pixels `text` inks (the cap height, not the line height)."""
    box = face.getbbox(text)
    return int(box[0]), int(box[1]), int(box[2]), int(box[3])


def _text(
    draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, face: Font, *, ink: int, limit: int
) -> None:
    """Draw `text`, shortened with ".." when wider than `limit` pixels."""
    if face.getlength(text) > limit:
        while text and face.getlength(text + "..") > limit:
            text = text[:-1]
        text += ".."
    draw.text(xy, text, font=face, fill=ink)


def _bitmap(
    draw: ImageDraw.ImageDraw, xy: tuple[int, int], rows: tuple[str, ...], ink: int
) -> None:
    x0, y0 = xy
    draw.point(
        [(x0 + x, y0 + y) for y, row in enumerate(rows) for x, c in enumerate(row) if c == "X"],
        fill=ink,
    )
