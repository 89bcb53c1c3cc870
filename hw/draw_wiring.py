"""Draw images/wiring.png: the 40-pin header with every wire pidphone uses, and the parts.

Run from the repository root: `.venv/bin/python hw/draw_wiring.py`. The pins are the defaults of
pidphone/config/schema.py (OLED on I2C); hw/wiring.md has the same in tables, with SPI as well.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parent.parent / "images" / "wiring.png"

# Physical pin -> (label, group). BCM numbers as in the config.
POWER = {
    1: "3V3",
    2: "5V",
    4: "5V",
    6: "GND",
    9: "GND",
    14: "GND",
    17: "3V3",
    20: "GND",
    25: "GND",
    30: "GND",
    34: "GND",
    39: "GND",
}
USED = {
    3: ("GPIO2  SDA - OLED SDA", "oled"),
    5: ("GPIO3  SCL - OLED SCL", "oled"),
    7: ("GPIO4 - hook switch", "hook"),
    11: ("GPIO17 - keypad col 2", "keypad"),
    13: ("GPIO27 - SAS reject button", "button"),
    15: ("GPIO22 - keypad col 3", "keypad"),
    29: ("GPIO5 - keypad row 1", "keypad"),
    31: ("GPIO6 - keypad row 2", "keypad"),
    32: ("GPIO12 - keypad row 3", "keypad"),
    33: ("GPIO13 - keypad row 4", "keypad"),
    36: ("GPIO16 - keypad col 1", "keypad"),
    37: ("GPIO26 - SAS confirm button", "button"),
    16: ("GPIO23 - keypad col 4 (4x4 only)", "keypad"),
    12: ("GPIO18 - audio HAT I2S (if fitted)", "audio"),
    35: ("GPIO19 - audio HAT I2S (if fitted)", "audio"),
    38: ("GPIO20 - audio HAT I2S (if fitted)", "audio"),
    40: ("GPIO21 - audio HAT I2S (if fitted)", "audio"),
}
WIRED_POWER = {
    1: "3V3 - OLED VCC",
    6: "GND - OLED GND",
    9: "GND - hook switch",
    39: "GND - buttons",
}
COLOURS = {
    "oled": (30, 110, 220),
    "hook": (150, 60, 200),
    "keypad": (0, 150, 80),
    "button": (220, 120, 0),
    "audio": (120, 120, 120),
    "3V3": (230, 150, 0),
    "5V": (210, 30, 30),
    "GND": (20, 20, 20),
    "free": (205, 205, 205),
}

WIDTH, HEIGHT = 1400, 1080
PITCH = 40
HEADER_X, HEADER_Y = 900, 170


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def pin_xy(pin: int) -> tuple[int, int]:
    row = (pin - 1) // 2
    column = (pin - 1) % 2
    return HEADER_X + column * PITCH, HEADER_Y + row * PITCH


def colour_of(pin: int) -> tuple[int, int, int]:
    if pin in USED:
        return COLOURS[USED[pin][1]]
    if pin in POWER:
        return COLOURS[POWER[pin]]
    return COLOURS["free"]


def draw_header(draw: ImageDraw.ImageDraw) -> None:
    left, top = pin_xy(1)
    draw.rounded_rectangle(
        (left - 30, top - 30, left + PITCH + 30, top + 19 * PITCH + 30),
        radius=10,
        outline=(0, 0, 0),
        width=3,
        fill=(245, 240, 225),
    )
    draw.text(
        (left + PITCH / 2, top - 60),
        "Raspberry Pi 40-pin header",
        fill=(0, 0, 0),
        font=font(22),
        anchor="mm",
    )
    draw.text(
        (left + PITCH / 2, top - 38),
        "(pin 1 at the SD-card end)",
        fill=(90, 90, 90),
        font=font(14),
        anchor="mm",
    )
    small = font(13)
    label_font = font(17)
    for pin in range(1, 41):
        x, y = pin_xy(pin)
        colour = colour_of(pin)
        draw.ellipse((x - 15, y - 15, x + 15, y + 15), fill=colour, outline=(0, 0, 0))
        text_colour = (0, 0, 0) if colour in (COLOURS["free"], COLOURS["3V3"]) else (255, 255, 255)
        draw.text((x, y), str(pin), fill=text_colour, font=small, anchor="mm")
        label = USED[pin][0] if pin in USED else WIRED_POWER.get(pin, POWER.get(pin, ""))
        if not label:
            continue
        odd = pin % 2 == 1
        end_x = x - 60 if odd else x + 60
        draw.line((x - 16 if odd else x + 16, y, end_x, y), fill=colour, width=4)
        draw.text(
            (end_x - 8 if odd else end_x + 8, y),
            label,
            fill=colour if colour != COLOURS["free"] else (0, 0, 0),
            font=label_font,
            anchor="rm" if odd else "lm",
        )


def draw_keypad(draw: ImageDraw.ImageDraw, x: int, y: int) -> None:
    colour = COLOURS["keypad"]
    draw.text((x, y - 30), "4x3 keypad (rows driven, columns read)", fill=colour, font=font(18))
    keys = ["123", "456", "789", "*0#"]
    for r, row in enumerate(keys):
        for c, key in enumerate(row):
            kx, ky = x + 60 + c * 55, y + r * 50
            draw.rounded_rectangle((kx, ky, kx + 44, ky + 40), radius=6, outline=colour, width=2)
            draw.text((kx + 22, ky + 20), key, fill=(0, 0, 0), font=font(20), anchor="mm")
        draw.text((x + 10, y + r * 50 + 20), f"R{r + 1}", fill=colour, font=font(16), anchor="lm")
    for c in range(3):
        draw.text((x + 82 + c * 55, y + 215), f"C{c + 1}", fill=colour, font=font(16), anchor="mm")


def draw_oled(draw: ImageDraw.ImageDraw, x: int, y: int) -> None:
    colour = COLOURS["oled"]
    draw.rectangle((x, y, x + 260, y + 150), outline=colour, width=3)
    draw.rectangle((x + 20, y + 40, x + 240, y + 140), fill=(10, 10, 40))
    draw.text(
        (x + 130, y + 90), "SSD1306 / SH1106", fill=(120, 200, 255), font=font(16), anchor="mm"
    )
    draw.text(
        (x + 130, y + 112), "128x64, I2C 0x3C", fill=(120, 200, 255), font=font(14), anchor="mm"
    )
    for i, name in enumerate(["GND", "VCC", "SCL", "SDA"]):
        px = x + 45 + i * 57
        draw.ellipse((px - 7, y + 8, px + 7, y + 22), outline=colour, width=2)
        draw.text((px, y + 30), name, fill=colour, font=font(13), anchor="mm")
    draw.text((x, y - 28), "OLED on I2C (SPI: see hw/wiring.md)", fill=colour, font=font(18))


def draw_switches(draw: ImageDraw.ImageDraw, x: int, y: int) -> None:
    for i, (title, group) in enumerate(
        [
            ("hook switch: GPIO4 - switch - GND", "hook"),
            ("SAS confirm: GPIO26 - button - GND", "button"),
            ("SAS reject: GPIO27 - button - GND", "button"),
        ]
    ):
        colour = COLOURS[group]
        sy = y + i * 60
        draw.line((x, sy + 20, x + 40, sy + 20), fill=colour, width=3)
        draw.line((x + 40, sy + 20, x + 75, sy + 5), fill=colour, width=3)
        draw.line((x + 80, sy + 20, x + 120, sy + 20), fill=colour, width=3)
        draw.ellipse((x + 36, sy + 16, x + 44, sy + 24), fill=colour)
        draw.ellipse((x + 76, sy + 16, x + 84, sy + 24), fill=colour)
        draw.text((x + 135, sy + 20), title, fill=colour, font=font(17), anchor="lm")
    draw.text(
        (x, y + 185),
        "Internal pull-ups: no resistors needed.",
        fill=(60, 60, 60),
        font=font(15),
    )


def draw_audio(draw: ImageDraw.ImageDraw, x: int, y: int) -> None:
    colour = COLOURS["audio"]
    draw.text(
        (x, y), "Audio: a USB handset (any USB port; hw/asound.conf)", fill=(0, 0, 0), font=font(17)
    )
    draw.text(
        (x, y + 26),
        "or an I2S audio HAT on GPIO18-21 (grey), which the defaults keep free.",
        fill=colour,
        font=font(17),
    )


def main() -> None:
    image = Image.new("RGB", (WIDTH, HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.text(
        (40, 30),
        "pidphone wiring (defaults of examples/pidphone.toml)",
        fill=(0, 0, 0),
        font=font(30),
    )
    draw.text(
        (40, 70),
        "BCM GPIO numbers; circles are physical pin numbers.",
        fill=(80, 80, 80),
        font=font(17),
    )
    draw_header(draw)
    draw_keypad(draw, 40, 190)
    draw_switches(draw, 40, 500)
    draw_oled(draw, 40, 780)
    draw_audio(draw, 40, 990)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    image.save(OUT, optimize=True)
    print(OUT)


if __name__ == "__main__":
    main()
