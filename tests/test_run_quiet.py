"""`pidphone run` on a machine without the hardware it is configured for: one line per device
naming it and its config key, not gpiozero's PinFactoryFallback warnings with their source
lines nor alsa-lib's eight "ALSA lib ..." lines on every retry (those go to the debug log).
The test waits for the daemon's "ready" before it counts a retry: a SIGTERM sent before the
daemon has its handlers (seconds, on a loaded machine) ended it with no output at all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def test_missing_devices_are_one_line_each(tmp_path: Path) -> None:
    config = tmp_path / "pidphone.toml"
    config.write_text(
        'hardware = "pi"\n'
        '[audio]\ncapture_device = "hw:CARD=Nowhere"\nplayback_device = "hw:CARD=Nowhere"\n'
        '[display]\ndriver = "none"\n'
        f'[security]\nzid_cache = "{tmp_path / "zid.json"}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPIOZERO", "NOTIFY"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "pidphone.cli", "run", "--no-provision", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(map(bytes.decode, process.stdout or ())))
    reader.start()
    try:
        deadline = time.monotonic() + 60  # a loaded machine takes seconds to start Python
        while not any("pidphone.daemon: ready" in line for line in lines):
            assert time.monotonic() < deadline and process.poll() is None, "".join(lines)
            time.sleep(0.1)
        time.sleep(6.5)  # past one 5 s retry of the audio devices
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        reader.join(20)
        output = "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "ALSA lib" not in output, output
    assert "PinFactoryFallback" not in output and "warnings.warn" not in output, output
    assert output.count("(audio.capture_device)") == 1, output  # said once, not every retry
    assert "(keypad.rows[0])" in output, output
    assert "Traceback" not in output
