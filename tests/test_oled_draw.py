"""Drawing any Screen: whatever the text (long names, unknown glyphs, empty), the picture is a
128x64 1-bit image and nothing raises; text stays inside the screen."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.drivers.draw import HEIGHT, WIDTH, draw_screen
from pidphone.ports import Screen

ICONS = ["registered", "unregistered", "secure", "insecure", "muted", "hold", "dnd", "tls_error"]

SCREENS = st.builds(
    Screen,
    status=st.text(max_size=40),
    icons=st.frozensets(st.sampled_from([*ICONS, "unknown"])),
    title=st.text(max_size=60),
    lines=st.lists(st.text(max_size=80), max_size=5).map(tuple),
    big=st.text(max_size=30),
    big_inverse=st.booleans(),
    verified=st.booleans(),
    alert=st.booleans(),
    brightness=st.sampled_from(["normal", "dim", "off"]),
)


@settings(max_examples=200, deadline=None)
@given(SCREENS)
def test_any_screen_draws(screen: Screen) -> None:
    image = draw_screen(screen)
    assert image.size == (WIDTH, HEIGHT)
    assert image.mode == "1"


def test_long_text_is_shortened_not_wrapped() -> None:
    image = draw_screen(Screen(title="A very long caller name that cannot fit on one line"))
    box = image.getbbox()
    assert box is not None
    assert box[2] <= WIDTH


def test_sas_is_large_and_two_words_stay_readable() -> None:
    four = draw_screen(Screen(big="4jw5")).getbbox()
    assert four is not None
    assert four[3] - four[1] >= 20  # B32: four characters about 28 px tall
    words = draw_screen(Screen(big="stethoscope tambourine", verified=True)).getbbox()
    assert words is not None
    assert words[2] <= WIDTH
    assert words[3] - words[1] >= 10


def _ink_columns(image: object, top: int, bottom: int) -> dict[int, set[int]]:
    """Column -> the rows inked in it, between `top` and `bottom`."""
    from PIL import Image

    assert isinstance(image, Image.Image)
    columns: dict[int, set[int]] = {}
    for y in range(top, bottom):
        for x in range(WIDTH):
            if image.getpixel((x, y)):
                columns.setdefault(x, set()).add(y)
    return columns


def test_a_long_address_ends_in_an_ellipsis_inside_the_screen() -> None:
    """Measured as the 1-bit display draws it (wider than Pillow's default measure): the
    cut text ends in three dots on the baseline, and nothing runs off the right edge."""
    address = "sips:bartholomew.longname@telephony.example.org"
    image = draw_screen(Screen(title="Incoming call", lines=(address,)))
    columns = _ink_columns(image, 27, 27 + 11)
    right = max(columns)
    assert right < WIDTH - 1  # not clipped by the edge
    tail = [columns.get(x, set()) for x in range(right - 6, right + 1)]
    dot_rows = set().union(*tail)
    assert len(dot_rows) == 1  # only dots at the end: the ellipsis
    assert sum(1 for rows in tail if rows) == 3  # three of them


def test_every_sample_screen_keeps_its_text_inside_the_screen() -> None:
    from pidphone.cli.render_screens import sample_screens

    for name, screen in sample_screens().items():
        if screen.big_inverse:
            screen = replace(screen, big_inverse=False)  # its band spans the width on purpose
        image = draw_screen(screen)
        inverse = bool(image.getpixel((0, 0)))
        edge = [bool(image.getpixel((WIDTH - 1, y))) != inverse for y in range(12, HEIGHT)]
        assert not any(edge), name  # below the status bar nothing reaches the last column


def test_the_tls_error_icon_is_not_a_padlock() -> None:
    """It once was the secure call's padlock with one pixel more."""

    def icon(name: str) -> set[tuple[int, int]]:
        image = draw_screen(Screen(icons=frozenset({name})))
        return {
            (x, y) for y in range(10) for x in range(WIDTH - 9, WIDTH) if image.getpixel((x, y))
        }

    tls, secure, insecure = icon("tls_error"), icon("secure"), icon("insecure")
    assert len(tls ^ secure) >= 20 and len(tls ^ insecure) >= 20
