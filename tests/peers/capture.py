"""A tshark capture on `lo` inside the test's private network namespace, to check on the wire
what a phone sent: which UDP datagrams were ZRTP, RTP or RTCP (RFC 7983 first-byte rules).

    with Capture(workdir / "media.pcapng", "udp") as capture:
        ... the call ...
    for datagram in capture.datagrams():          # after the capture stopped
        datagram.kind, datagram.src_port, datagram.payload

Start it from the thread that is in the namespace (the subprocess inherits it). tshark runs
under `timeout`, is stopped by its PID (SIGINT first, so it writes out what it has), and the
file is decoded afterwards with `tshark -r`, so the test sees the bytes as they left.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pidphone.rtp.classify import PacketKind, classify

MAX_LIFETIME = 300
"""Seconds after which `timeout` stops tshark whatever happens to the test."""


class CaptureError(RuntimeError):
    """tshark did not start capturing, or its file could not be read."""


@dataclass(frozen=True)
class Datagram:
    """One captured UDP datagram."""

    time: float
    src_port: int
    dst_port: int
    payload: bytes
    src: str = ""
    """Source IP address."""
    dst: str = ""

    @property
    def kind(self) -> PacketKind:
        return classify(self.payload)

    @property
    def rtp_payload_type(self) -> int | None:
        """The payload type of an RTP datagram (0 PCMU, 8 PCMA ...), else None."""
        return self.payload[1] & 0x7F if self.kind is PacketKind.RTP else None


class Capture:
    """tshark -i lo -f FILTER -w FILE, from `start` to `stop`."""

    def __init__(self, path: Path, capture_filter: str = "udp", interface: str = "lo") -> None:
        self.path = path
        self.filter = capture_filter
        self.interface = interface
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = path.with_suffix(".tshark.log")

    def start(self, timeout: float = 15.0) -> None:
        program = shutil.which("tshark")
        if program is None:
            raise CaptureError("tshark is not installed")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    "timeout",
                    "--signal=INT",
                    "--kill-after=5",
                    str(MAX_LIFETIME),
                    program,
                    "-i",
                    self.interface,
                    "-f",
                    self.filter,
                    "-w",
                    str(self.path),
                    "-q",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while "Capturing on" not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise CaptureError(f"tshark did not start:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGINT (tshark finishes the file), then SIGKILL if it hangs; our PID only."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> Capture:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def datagrams(self) -> list[Datagram]:
        """Every UDP datagram in the file, in order."""
        program = shutil.which("tshark")
        if program is None:
            raise CaptureError("tshark is not installed")
        if not self.path.exists():
            raise CaptureError(f"no capture file {self.path}:\n{self.log()}")
        result = subprocess.run(
            [
                program,
                "-r",
                str(self.path),
                "-Y",
                "udp",
                "-T",
                "fields",
                "-e",
                "frame.time_epoch",
                "-e",
                "udp.srcport",
                "-e",
                "udp.dstport",
                "-e",
                "udp.payload",
                "-e",
                "ip.src",
                "-e",
                "ip.dst",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise CaptureError(f"tshark -r failed:\n{result.stderr[-2000:]}")
        found: list[Datagram] = []
        for line in result.stdout.splitlines():
            parts = line.split("\t")
            if len(parts) < 4 or not parts[1]:
                continue
            found.append(
                Datagram(
                    float(parts[0]),
                    int(parts[1]),
                    int(parts[2]),
                    bytes.fromhex(parts[3].replace(":", "")),
                    parts[4] if len(parts) > 4 else "",
                    parts[5] if len(parts) > 5 else "",
                )
            )
        return found
