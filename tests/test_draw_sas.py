"""A B256 SAS on the 128x64 display: every one of the 65,536 PGP word pairs fits, whole, in
large type beside the verified mark, on the in-call screen and on the mismatch warning.

The words are laid out by `draw.sas_layout`: one size and fixed baselines for every pair, so a
word's pixels depend only on the word and its row. The pair test checks the layout's ink boxes
for all pairs; the pixel tests check, for every word in each row, that what is drawn is inside
those boxes and that the mark is drawn whole and untouched.
"""

from __future__ import annotations

import pytest
from PIL import Image

from pidphone.app.screen import render
from pidphone.cli.render_screens import sample_states
from pidphone.drivers import draw
from pidphone.ports import Screen
from pidphone.zrtp.pgpwords import EVEN, ODD
from pidphone.zrtp.sas import render_sas

SCREENS = {name: render(state, now) for name, (state, now) in sample_states().items()}
B256_SCREENS = ["secure_b256_verified", "secure_b256_widest", "mismatch_b256"]


def _band(name: str) -> tuple[int, int]:
    return draw.big_band(SCREENS[name], draw.HEIGHT - len(SCREENS[name].lines) * draw.LINE_PITCH)


def _mark_box(band: tuple[int, int]) -> tuple[int, int, int, int]:
    x, y = draw.verified_mark_origin(band)
    return x, y, x + len(draw.VERIFIED_MARK[0]), y + len(draw.VERIFIED_MARK)


@pytest.mark.parametrize("name", B256_SCREENS)
def test_every_word_pair_fits_beside_the_verified_mark(name: str) -> None:
    band = _band(name)
    mark_left = _mark_box(band)[0]
    sizes = set()
    for first in EVEN:
        for second in ODD:
            layout = draw.sas_layout(f"{first}:{second}", band)
            assert layout is not None
            upper, lower = layout
            assert (upper.word, lower.word) == (first, second)
            sizes.add((upper.size, lower.size))
            for word in layout:
                left, top, right, bottom = word.ink
                assert left >= 0 and right <= mark_left - 2, (first, second)
                assert band[0] <= top and bottom <= band[1] + 1, (first, second)
            assert upper.ink[3] + 1 < lower.ink[1], (first, second)  # rows never touch
    assert len(sizes) == 1  # one size for every pair
    ((size, _),) = sizes
    assert size >= 16  # large type: taller than the 12-pixel title


def test_the_sas_the_core_renders_is_the_one_laid_out() -> None:
    """The screen takes the string ZRTP gives ("word:word", as Linphone spells it too)."""
    sas = render_sas(b"\x00\x15\x00\x00", "B256")
    assert sas == "aardvark:bifocals"
    assert draw.big_rows(sas) == ("aardvark", "bifocals")
    assert draw.big_rows("NOT SECURE") == ("NOT SECURE",)


def _ink(image: Image.Image, box: tuple[int, int, int, int]) -> set[tuple[int, int]]:
    """The pixels inked inside `box` (lit, or dark on an inverse screen)."""
    inverse = bool(image.getpixel((0, 0)))  # the corner is background on every screen
    left, top, right, bottom = box
    return {
        (x, y)
        for y in range(max(top, 0), min(bottom, draw.HEIGHT))
        for x in range(max(left, 0), min(right, draw.WIDTH))
        if bool(image.getpixel((x, y))) != inverse
    }


@pytest.mark.parametrize("name", ["secure_b256_widest", "mismatch_b256"])
def test_every_word_is_drawn_whole_inside_its_box_and_the_mark_untouched(name: str) -> None:
    base = SCREENS[name]
    band = _band(name)
    mark = _mark_box(band)
    expected_mark = {
        (mark[0] + x, mark[1] + y)
        for y, row in enumerate(draw.VERIFIED_MARK)
        for x, c in enumerate(row)
        if c == "X"
    }
    whole_band = (0, band[0], draw.WIDTH, band[1] + 1)
    for first, second in zip(EVEN, ODD, strict=True):  # every word once in its own row
        sas = f"{first}:{second}"
        screen = Screen(
            status=base.status, big=sas, verified=True, lines=base.lines, alert=base.alert
        )
        image = draw.draw_screen(screen)
        layout = draw.sas_layout(sas, band)
        assert layout is not None
        words = set().union(*(_ink(image, w.ink) for w in layout))
        assert _ink(image, mark) == expected_mark, sas
        assert _ink(image, whole_band) == words | expected_mark, sas  # nothing outside
        for word in layout:  # the word is there, about as wide as its box
            drawn = _ink(image, word.ink)
            xs = {x for x, _ in drawn}
            assert max(xs) - min(xs) + 1 >= word.ink[2] - word.ink[0] - 4, sas
