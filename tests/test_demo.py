"""`pidphone demo` from start to finish: the README's first command must work."""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path

from pidphone.cli.demo import run_demo


def test_demo_secures_a_call_and_hears_both_tones(tmp_path: Path) -> None:
    out = io.StringIO()
    status = run_demo(argparse.Namespace(screens=tmp_path), out)
    text = out.getvalue()
    assert status == 0, text
    match = re.search(r"Alice's phone shows SAS '(\S+)', Bob's shows '(\S+)'", text)
    assert match is not None and match.group(1) == match.group(2)
    # the demo's phones use the phone's own default algorithms: a post-quantum call
    assert re.search(r"algorithms: +X3M3 AES3 \S+ S512 B32", text), text
    heard = {who: float(freq) for who, freq in re.findall(r"(Alice|Bob) heard: +\[(\d+)", text)}
    assert abs(heard["Alice"] - 700) <= 25 and abs(heard["Bob"] - 1000) <= 25
    # the earpieces also play the secure tone: the summary says which frequency it is
    for listed, line in re.findall(r"heard: +\[([\d, ]+)\] Hz (.*)", text):
        secure_tone = any(abs(float(f) - 1600) <= 25 for f in listed.split(", "))
        assert secure_tone == ("1600 Hz: the secure tone" in line), line
    assert re.search(r"Alice: +\d+ SRTP packets sent, \d+ received, 0 lost", text)
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert "alice-secure.png" in pngs and "bob-ringing.png" in pngs
    # The in-call screens show the SAS (in large type on the OLED).
    assert text.count(f" {match.group(1)} ") >= 2
    assert text.count(f" {match.group(1)} (verified) ") == 2
