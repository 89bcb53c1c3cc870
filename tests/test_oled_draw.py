"""Drawing any Screen: whatever the text (long names, unknown glyphs, empty), the picture is a
128x64 1-bit image and nothing raises; text stays inside the screen."""

from __future__ import annotations

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
