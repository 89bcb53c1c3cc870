"""A whole secure call, pidphone against linphonec (issue 5's benchmark), run by hand as root:

    .venv/bin/python -m bench.call [--seconds 60] [--only linphone|pidphone]
                                   [--suite DH3k-AES1-HS80-S256-B32] [--sequential]
                                   [--codec PCMU|G722|opus]

In one private network namespace with one Kamailio (TLS, digest auth), two calls (`--codec`,
PCMU by default; a wideband codec's tones are files at 16 kHz on both sides) of
`--seconds` each, ZRTP-secured with the same algorithms (`--suite`, by default what bzrtp
picks by itself), a tone each way, side by side (so other load on the machine weighs on both
alike; each endpoint needs a few percent of one core):
  (1) linphonec -> linphonec (liblinphone 5.1, bzrtp), each with its debug log;
  (2) `pidphone call` -> `pidphone answer` (simulated audio: a paced raw file in, as
      linphonec plays a WAV file, and a recording out).
For each endpoint process: CPU seconds (utime + stime from /proc/PID/stat) per call-minute,
measured over the steady part of the call (from the SAS known on both sides until just before
the hang-up), and peak RSS (VmHWM, read just before the hang-up). For each call: the time from
the callee's 200 OK to the SAS known on both sides, on one wall clock (linphonec: the stamps
of its debug log; pidphone: when its progress lines arrive). Prints the ratios
pidphone/linphonec; the targets are CPU and time to SAS at most linphonec's.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench.quality import LINPHONE_ONLY
from pidphone.drivers.certs import Pki, make_test_pki
from tests.peers.interop import (
    DEFAULT_SUITE,
    InteropLinphone,
    PidphoneRun,
    ZrtpSuite,
    has_tone,
    wav_frequencies,
    write_config,
    write_tone,
)
from tests.peers.kamailio import Kamailio
from tests.peers.netns import private_network

CALLER_TONE = 1000.0
CALLEE_TONE = 700.0
SETTLE = 2.0
"""Seconds cut from the end of the measuring window, so the hang-up is not in it."""


@dataclass
class Endpoint:
    """The figures of one endpoint process."""

    name: str
    cpu_seconds: float = 0.0
    window: float = 0.0
    peak_rss_kib: int = 0
    heard: list[float] = field(default_factory=list)
    expected_tone: float = 0.0

    @property
    def cpu_per_minute(self) -> float:
        return self.cpu_seconds / self.window * 60 if self.window else float("nan")

    @property
    def tone_ok(self) -> bool:
        return has_tone(self.heard, self.expected_tone)


@dataclass
class CallFigures:
    """One call: both endpoints, the time from 200 OK to SAS, the SAS on both sides."""

    label: str
    caller: Endpoint
    callee: Endpoint
    ok_to_sas: float = float("nan")
    sas: tuple[str, str] = ("", "")
    algorithms: str = ""

    @property
    def cpu_per_minute(self) -> float:
        """Mean of the two endpoints (they do the same work)."""
        return (self.caller.cpu_per_minute + self.callee.cpu_per_minute) / 2

    @property
    def peak_rss_kib(self) -> int:
        return max(self.caller.peak_rss_kib, self.callee.peak_rss_kib)


# --------------------------------------------------------------------------- /proc


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def wait_until(done: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} within {timeout} s")
        time.sleep(0.02)


# --------------------------------------------------------------------------- linphonec


def linphone_call(
    workdir: Path,
    kamailio: Kamailio,
    ca: Path,
    suite: ZrtpSuite,
    seconds: float,
    codec: str = "PCMU",
) -> CallFigures:
    common = {
        "ca_file": ca,
        "registrar": kamailio.address,
        "media_encryption": "zrtp",
        "encryption_mandatory": True,
        "codecs": LINPHONE_ONLY[codec],
        "extra_sip": suite.linphone_sip(),
    }
    caller = InteropLinphone(workdir, "linphone", "linphonepw", **common)  # type: ignore[arg-type]
    callee = InteropLinphone(
        workdir,
        "lin2",
        "lin2pw",
        rtp_port=17178,
        auto_answer=True,
        **common,  # type: ignore[arg-type]
    )
    figures = CallFigures(
        "linphonec",
        Endpoint("linphonec caller", expected_tone=CALLEE_TONE),
        Endpoint("linphonec callee", expected_tone=CALLER_TONE),
    )
    try:
        for phone, tone in ((caller, CALLER_TONE), (callee, CALLEE_TONE)):
            phone.start()
            phone.wait_registered()
            wav = write_tone(
                workdir / f"{phone.user}-tone.wav", tone, seconds + 20, rate=file_rate(codec)
            )
            phone.use_files(play=wav, record=workdir / f"{phone.user}-heard.wav")
        pids = [caller.linphonec_pid(), callee.linphonec_pid()]
        if None in pids:
            raise RuntimeError("cannot find the linphonec processes")
        caller.call(callee.uri)
        caller.wait_zrtp(timeout=30)
        callee.wait_zrtp(timeout=30)
        secrets = (caller.zrtp_secrets()[0].sas, callee.zrtp_secrets()[0].sas)
        figures.sas = secrets
        negotiated = caller.zrtp_algorithms()
        if negotiated is not None:
            figures.algorithms = " ".join(
                (negotiated.key_agreement, negotiated.cipher, negotiated.auth_tag, negotiated.hash)
            )
        figures.ok_to_sas = (
            max(caller.sas_times()[0], callee.sas_times()[0]) - (callee.connected_times()[0])
        )
        measure(figures, pids, seconds)  # type: ignore[arg-type]
        caller.terminate()
        callee.wait_call_state("End", timeout=10)
    finally:
        caller.stop()
        callee.stop()
    figures.caller.heard = wav_frequencies(workdir / "linphone-heard.wav", skip=2.0)
    figures.callee.heard = wav_frequencies(workdir / "lin2-heard.wav", skip=2.0)
    return figures


def measure(figures: CallFigures, pids: list[int], seconds: float) -> None:
    """Sample CPU now and after the rest of the call, less SETTLE; peak RSS at the end."""
    start = time.monotonic()
    before = [cpu_seconds(pid) for pid in pids]
    time.sleep(max(seconds - figures.ok_to_sas - SETTLE, 1.0))
    window = time.monotonic() - start
    for endpoint, pid, cpu in zip((figures.caller, figures.callee), pids, before, strict=True):
        endpoint.cpu_seconds = cpu_seconds(pid) - cpu
        endpoint.window = window
        endpoint.peak_rss_kib = peak_rss_kib(pid)


# --------------------------------------------------------------------------- pidphone


class Progress:
    """Reads a `pidphone call/answer` progress stream, stamping each line on arrival."""

    def __init__(self, run: PidphoneRun) -> None:
        self.run = run
        self.lines: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        offset = 0
        while True:
            with open(self.run.stdout_path, "rb") as out:
                out.seek(offset)
                data = out.read()
            if data:
                complete = data[: data.rfind(b"\n") + 1]
                offset += len(complete)
                now = time.time()
                self.lines += [(now, line) for line in complete.decode().splitlines()]
            if self.run.process.poll() is not None and not data:
                return
            time.sleep(0.002)

    def time_of(self, start: str) -> float | None:
        return next((t for t, line in self.lines if line.startswith(start)), None)

    def wait(self, start: str, timeout: float) -> float:
        wait_until(lambda: self.time_of(start) is not None, repr(start), timeout)
        found = self.time_of(start)
        assert found is not None
        return found

    def secure_line(self) -> str:
        """ "SECURE  SAS 4jw5 (B32)  DH3k AES1 HS80 S256" """
        return next((line for _, line in self.lines if line.startswith("SECURE  SAS ")), "")

    def sas(self) -> str:
        line = self.secure_line()
        return line.split()[2] if line else ""


def file_rate(codec: str) -> int:
    """Hz of the tone files: the call's audio rate, so neither side resamples them."""
    return 8000 if codec in ("PCMU", "PCMA") else 16000


def raw_tone(path: Path, frequency: float, seconds: float, rate: int) -> Path:
    """`write_tone`'s sine as raw S16_LE mono PCM at `rate` (pidphone's sim.audio_in_file)."""
    step = 2 * math.pi * frequency / rate
    samples = [int(12000 * math.sin(step * i)) for i in range(int(rate * seconds))]
    path.write_bytes(struct.pack(f"<{len(samples)}h", *samples))
    return path


def pidphone_call(
    workdir: Path,
    kamailio: Kamailio,
    pki: Pki,
    suite: ZrtpSuite,
    seconds: float,
    codec: str = "PCMU",
) -> CallFigures:
    rate = file_rate(codec)
    alice = write_config(
        workdir / "alice.toml",
        "alice",
        "alicepw",
        pki=pki,
        tone=CALLER_TONE,
        registrar=kamailio.address,
        codecs=(codec,),
        suite=suite,
        audio_in=raw_tone(workdir / "alice-tone.raw", CALLER_TONE, seconds + 20, rate),
    )
    bob = write_config(
        workdir / "bob.toml",
        "bob",
        "bobpw",
        pki=pki,
        tone=CALLEE_TONE,
        registrar=kamailio.address,
        codecs=(codec,),
        suite=suite,
        audio_in=raw_tone(workdir / "bob-tone.raw", CALLEE_TONE, seconds + 20, rate),
    )
    for config in (alice, bob):
        text = config.read_text().replace("[sim]\n", f"[sim]\nfile_rate = {rate}\n", 1)
        config.write_text(text)
    figures = CallFigures(
        "pidphone",
        Endpoint("pidphone caller", expected_tone=CALLEE_TONE),
        Endpoint("pidphone callee", expected_tone=CALLER_TONE),
    )
    answer = PidphoneRun(
        ["answer", "--config", str(bob), "--count", "1", "--duration", f"{seconds + 30:g}"],
        workdir,
        "bob",
    )
    call: PidphoneRun | None = None
    try:
        callee = Progress(answer)
        callee.wait("waiting for calls", 20)
        call = PidphoneRun(
            ["call", "sip:bob@127.0.0.1", "--config", str(alice), "--duration", f"{seconds:g}"],
            workdir,
            "alice",
        )
        caller = Progress(call)
        answered = callee.wait("answered", 20)
        sas_at = max(caller.wait("SECURE", 30), callee.wait("SECURE", 30))
        figures.ok_to_sas = sas_at - answered
        figures.sas = (caller.sas(), callee.sas())
        figures.algorithms = " ".join(caller.secure_line().split()[-4:])
        pids = [call.pid, answer.pid]
        if None in pids:
            raise RuntimeError("cannot find the pidphone processes")
        measure(figures, pids, seconds)  # type: ignore[arg-type]
        call.wait(seconds + 20)
        answer.wait(20)
        figures.caller.heard = heard(caller)
        figures.callee.heard = heard(callee)
    finally:
        if call is not None:
            call.stop()
        answer.stop()
    return figures


def heard(progress: Progress) -> list[float]:
    """The frequencies of the "received tones: 700 Hz, ..." line."""
    line = next((line for _, line in progress.lines if line.startswith("received tones:")), "")
    return [float(part.split()[0]) for part in line.partition(":")[2].split(",") if part.strip()]


# --------------------------------------------------------------------------- report


def report(calls: list[CallFigures]) -> None:
    print(f"{'':18} {'CPU s/call-min':>15} {'peak RSS MiB':>13} {'heard Hz':>16}")
    for figures in calls:
        for endpoint in (figures.caller, figures.callee):
            tones = ",".join(f"{f:.0f}" for f in endpoint.heard) or "-"
            mark = "" if endpoint.tone_ok else "  (tone MISSING)"
            print(
                f"{endpoint.name:18} {endpoint.cpu_per_minute:15.3f} "
                f"{endpoint.peak_rss_kib / 1024:13.1f} {tones:>16}{mark}"
            )
        same = "same" if figures.sas[0] and figures.sas[0] == figures.sas[1] else "DIFFERENT"
        print(
            f"{figures.label}: 200 OK -> SAS on both sides {figures.ok_to_sas * 1000:.0f} ms; "
            f"SAS {figures.sas[0]} / {figures.sas[1]} ({same}); {figures.algorithms}"
        )
    by_label = {figures.label: figures for figures in calls}
    if {"pidphone", "linphonec"} <= by_label.keys():
        ours, theirs = by_label["pidphone"], by_label["linphonec"]
        print("ratios pidphone/linphonec (targets: CPU <= 1, time to SAS <= 1):")
        print(f"  CPU per call-minute: {ours.cpu_per_minute / theirs.cpu_per_minute:.2f}")
        print(f"  peak RSS:            {ours.peak_rss_kib / theirs.peak_rss_kib:.2f}")
        print(f"  200 OK -> SAS:       {ours.ok_to_sas / theirs.ok_to_sas:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.call", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each call")
    parser.add_argument("--only", choices=("linphone", "pidphone"), help="run one half only")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--sequential", action="store_true", help="one call after the other, not side by side"
    )
    parser.add_argument("--codec", default="PCMU", choices=tuple(LINPHONE_ONLY))
    parser.add_argument(
        "--suite",
        default=DEFAULT_SUITE.label,
        help="ZRTP algorithms for both calls, KA-CIPHER-AUTH-HASH-SAS (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        suite = ZrtpSuite(*args.suite.split("-"))
    except TypeError:
        parser.error(f"--suite {args.suite}: five names joined by '-'")
    for program in ("kamailio", "linphonec"):
        if shutil.which(program) is None:
            print(f"{program} is not installed (scripts/setup.sh installs it)", file=sys.stderr)
            return 2
    if os.geteuid() != 0:
        print("run as root: the calls run in a private network namespace", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="pidphone-bench-call-"))
    calls: list[CallFigures] = []
    try:
        with private_network():
            pki = make_test_pki(workdir / "pki")
            kamailio = Kamailio(workdir / "kamailio", pki)
            kamailio.start()
            try:
                print(
                    f"{args.seconds:g} s {args.codec} calls through Kamailio over TLS, "
                    f"ZRTP {suite.label}"
                )
                halves: list[Callable[[], CallFigures]] = []
                if args.only != "pidphone":
                    halves.append(
                        lambda: linphone_call(
                            workdir, kamailio, pki.ca_cert, suite, args.seconds, args.codec
                        )
                    )
                if args.only != "linphone":
                    halves.append(
                        lambda: pidphone_call(
                            workdir, kamailio, pki, suite, args.seconds, args.codec
                        )
                    )
                if args.sequential:
                    calls = [half() for half in halves]
                else:
                    # Side by side, so a machine busy with something else slows both alike;
                    # threads started here share this thread's network namespace.
                    with ThreadPoolExecutor(len(halves)) as pool:
                        calls = list(pool.map(lambda half: half(), halves))
            finally:
                kamailio.stop()
    except (RuntimeError, subprocess.SubprocessError) as exc:
        print(f"bench failed: {exc}\nwork directory kept: {workdir}", file=sys.stderr)
        return 1
    report(calls)
    valid = all(figures.sas[0] and figures.sas[0] == figures.sas[1] for figures in calls) and all(
        e.tone_ok for figures in calls for e in (figures.caller, figures.callee)
    )
    if args.keep or not valid:
        print(f"work directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if not valid:
        print("bench failed: a SAS differs or a tone was not heard", file=sys.stderr)
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main())
