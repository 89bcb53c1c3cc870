"""UI cost per screen: render the phone state, draw it, and push it through the real SSD1306
driver class into a recording serial interface (the bytes an I2C bus would carry).

Run: .venv/bin/python bench/ui.py   (target: median <= 5 ms on a development machine)
"""

from __future__ import annotations

import statistics
import time

from luma.oled.device import ssd1306

from pidphone.app.screen import render
from pidphone.cli.render_screens import sample_states
from pidphone.drivers.draw import draw_screen

ROUNDS = 50


class RecordingSerial:
    def __init__(self) -> None:
        self.sent = 0

    def command(self, *cmd: int) -> None:
        self.sent += len(cmd)

    def data(self, data: list[int]) -> None:
        self.sent += len(data)


def main() -> None:
    device = ssd1306(RecordingSerial())
    states = sample_states()
    draw_screen(render(*states["idle_registered"]))  # load the fonts once
    per_screen: dict[str, float] = {}
    for name, (state, now) in states.items():
        times = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            device.display(draw_screen(render(state, now)))
            times.append(time.perf_counter() - start)
        per_screen[name] = statistics.median(times)
    for name, seconds in per_screen.items():
        print(f"{name:24s} {seconds * 1000:6.2f} ms")
    print(f"{'median over screens':24s} {statistics.median(per_screen.values()) * 1000:6.2f} ms")
    print(f"{'slowest screen':24s} {max(per_screen.values()) * 1000:6.2f} ms")


if __name__ == "__main__":
    main()
