"""A man in the middle of the media, as a process of its own: two ZRTP exchanges, one with
each phone, and the audio decrypted from one and encrypted again to the other.

    python -m tests.peers.mitm --port-a RA --port-b RB --report REPORT.json [--impersonate]

A malicious proxy (tests.peers.kamailio.MitmKamailio) points each phone's media at one of our
ports and strips a=zrtp-hash from the SDP (without that, the hash would give us away). Each
leg is a pidphone MediaSession; the phone on leg A is whoever first sends to port A. With
`--impersonate`, the leg towards each phone presents the other phone's ZID, learned from that
phone's Hello, so that a phone that has talked to the real peer before finds the ZID in its
cache and no matching retained secret (RFC 6189 §4.6.1.1: the cache mismatch). The SAS each
phone shows is the one of its own leg; they differ. On SIGTERM it writes its report: the SAS
and state of each leg, and the tones it heard on each. Started from the test's network
namespace thread.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pidphone.app.media import MediaConfig, MediaSession
from pidphone.audio.analysis import dominant_frequencies
from pidphone.ports import Address
from pidphone.rtp.classify import PacketKind, classify
from pidphone.zrtp.cache import MemoryZidCache
from pidphone.zrtp.messages import Hello, ZrtpParseError, parse_packet
from tests.peers.kamailio import Kamailio

FRAME = 0.02
REPO = Path(__file__).resolve().parents[2]
MITM_USER = "bob-via-mitm"
"""Calls to this user reach bob through the relay; calls to "bob" go straight to bob."""


class MitmKamailio(Kamailio):
    """The rig's Kamailio turned malicious for calls to MITM_USER (sdpops, textops): it routes
    them to bob, strips a=zrtp-hash from their SDP and points the media at the relay, the
    offer's at `port_b` (bob sends there) and the answer's at `port_a` (alice sends there)."""

    def __init__(self, *args: Any, port_a: int = 27000, port_b: int = 27002, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.port_a = port_a
        self.port_b = port_b

    def _write_config(self) -> list[str]:
        args = super()._write_config()
        path = self.workdir / "kamailio.cfg"
        text = path.read_text()

        def rewrite(port: int) -> str:
            return (
                '    if (isflagset(7) && has_body("application/sdp")) {\n'
                '        sdp_remove_line_by_prefix("a=zrtp-hash");\n'
                f'        subst_body("/m=audio [0-9]+ /m=audio {port} /");\n'
                "    }\n"
            )

        mark = (
            f'    if ($rU == "{MITM_USER}") {{\n'
            '        $rU = "bob";\n'
            "        setflag(7);\n"
            "    }\n"
            '    if (!lookup("location")) {\n'
        )
        edits = (
            ('loadmodule "tls.so"\n', 'loadmodule "tls.so"\nloadmodule "sdpops.so"\n'),
            ('    if (!lookup("location")) {\n', mark),
            ("route[RELAY] {\n", "route[RELAY] {\n" + rewrite(self.port_b)),
            ("onreply_route[NATREPLY] {\n", "onreply_route[NATREPLY] {\n" + rewrite(self.port_a)),
        )
        for anchor, replacement in edits:
            if anchor not in text:
                raise RuntimeError(f"tests/peers/kamailio.cfg has no {anchor.strip()!r} any more")
            text = text.replace(anchor, replacement, 1)
        path.write_text(text)
        return args


class MitmRun:
    """The relay as a subprocess (under `timeout`), stopped by its PID; `stop()` returns its
    report."""

    def __init__(self, workdir: Path, port_a: int, port_b: int, *, impersonate: bool) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.report_path = workdir / "mitm.json"
        ready = workdir / "mitm.ready"
        ready.unlink(missing_ok=True)
        self.report_path.unlink(missing_ok=True)
        args = ["--port-a", str(port_a), "--port-b", str(port_b)]
        args += ["--report", str(self.report_path), "--ready", str(ready)]
        if impersonate:
            args.append("--impersonate")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.log = workdir / "mitm.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                ["timeout", "120", sys.executable, "-m", "tests.peers.mitm", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the relay did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> dict[str, Any]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # timeout passes it on
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        report: dict[str, Any] = json.loads(self.report_path.read_text())
        return report


class Leg:
    """Our media towards one phone."""

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.phone: Address | None = None
        self.phone_zid: bytes | None = None
        self.early: list[tuple[bytes, Address]] = []
        self.session: MediaSession | None = None
        self.heard: list[bytes] = []

    def start(self, our_zid: bytes | None, now: float) -> None:
        cache = MemoryZidCache(our_zid) if our_zid is not None else MemoryZidCache()
        session = MediaSession(MediaConfig(), cache=cache)
        session.configure("PCMU", 0, 101)
        if self.phone is None:
            raise RuntimeError(f"leg {self.name} started before its phone spoke")
        session.set_remote(self.phone, now=now)
        session.start(now)
        self.session = session
        for data, source in self.early:
            session.receive_datagram(data, source, now)
        self.early.clear()

    def receive(self, now: float) -> None:
        while True:
            try:
                data, source = self.sock.recvfrom(65536)
            except BlockingIOError:
                return
            if self.phone is None:
                self.phone = source
            if self.session is not None:
                self.session.receive_datagram(data, source, now)
                continue
            self.early.append((data, source))
            if classify(data) is PacketKind.ZRTP and self.phone_zid is None:
                try:
                    message = parse_packet(data).message
                except ZrtpParseError:
                    continue
                if isinstance(message, Hello):
                    self.phone_zid = message.zid

    def flush(self) -> None:
        if self.session is None:
            return
        for data, address in self.session.datagrams_to_send():
            self.sock.sendto(data, address)
        while self.session.next_event() is not None:
            pass

    def report(self) -> dict[str, object]:
        session = self.session
        secured = session.secured if session is not None else None
        pcm = b"".join(self.heard[-150:])
        return {
            "state": session.security if session is not None else "not started",
            "sas": secured.sas if secured else "",
            "cache_mismatch": secured.cache_mismatch if secured else False,
            "phone_zid": self.phone_zid.hex() if self.phone_zid else "",
            "heard": [round(f) for f in dominant_frequencies(pcm, count=1)] if pcm else [],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port-a", type=int, required=True)
    parser.add_argument("--port-b", type=int, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--ready", type=Path, required=True)
    parser.add_argument("--impersonate", action="store_true")
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    a, b = Leg("a", args.port_a), Leg("b", args.port_b)
    args.ready.write_text("ready\n")
    clock = time.monotonic
    end = clock() + args.duration
    next_frame = clock()
    try:
        while not stop and clock() < end:
            timers = [t for leg in (a, b) if leg.session and (t := leg.session.get_timer())]
            wait = max(0.0, min([next_frame, *timers]) - clock())
            select.select([a.sock, b.sock], [], [], wait)
            now = clock()
            for leg in (a, b):
                leg.receive(now)
            for leg, other in ((a, b), (b, a)):
                # each leg starts once the phone on the other side has said who it is
                if leg.session is None and leg.phone is not None and other.phone_zid:
                    leg.start(other.phone_zid if args.impersonate else None, now)
            for leg in (a, b):
                if leg.session is not None:
                    timer = leg.session.get_timer()
                    if timer is not None and timer <= now:
                        leg.session.handle_timer(now)
            if now >= next_frame:
                next_frame += FRAME
                if a.session is not None and b.session is not None:
                    # what each phone says goes, decrypted and encrypted again, to the other
                    from_a, from_b = a.session.pull_audio(now), b.session.pull_audio(now)
                    a.heard.append(from_a)
                    b.heard.append(from_b)
                    b.session.send_audio(from_a, now)
                    a.session.send_audio(from_b, now)
            for leg in (a, b):
                leg.flush()
    finally:
        args.report.write_text(json.dumps({"a": a.report(), "b": b.report()}))


if __name__ == "__main__":
    main()
