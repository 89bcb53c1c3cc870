"""Speech quality of real calls through the impairment relay, pidphone beside linphonec, run by
hand as root:

    .venv/bin/python -m bench.quality [--only pidphone|linphone] [--loss 0,0.03,0.1]
                                      [--jitter 0,0.03,0.06] [--burst B] [--seed 1] [--keep]
                                      [--codec PCMU|G722|opus]
    .venv/bin/python -m bench.quality --codecs      # the codecs alone, offline (no calls)

In one private network namespace with one Kamailio (TLS, digest auth): for every loss and
jitter, a call with `--codec` (PCMU by default), ZRTP-secured, (1) `pidphone call` ->
`pidphone answer` (simulated audio: the speech as a raw file into the caller's microphone, the
callee's earpiece to a file) and
(2) linphonec -> linphonec (`soundcard use files`, the speech as a WAV file played, the callee
recording). Kamailio rewrites the m= port of every SDP it relays (offers to the relay's side B,
answers to side A), so both phones send their media through bench/relay.py, which impairs both
directions alike (seeded: the same losses for both stacks). The callee's recording is aligned
with the speech by cross-correlation and scored with PESQ (bench/speech.py: narrowband MOS-LQO
for G.711, wideband for G.722 and Opus, whose speech and files are at 16 kHz).
Jitter J means a delay uniform in [0, 2J] for every packet, with reordering.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.relay import Impairer, Impairment, UdpRelay
from bench.speech import make_speech, mos, resample_fft, through_codec
from pidphone.audio.codec import make_codec
from pidphone.drivers.certs import Pki, make_test_pki
from tests.peers.interop import (
    PCMU_ONLY,
    InteropLinphone,
    PidphoneRun,
    write_config,
)
from tests.peers.kamailio import Kamailio
from tests.peers.netns import private_network

SIDE_A = 27078
"""Relay port the caller sends to (named in the answer it receives)."""
SIDE_B = 27178
"""Relay port the callee sends to (named in the offer it receives)."""
LEAD_IN = 3.0
"""Seconds of silence before the speech: covers the ZRTP exchange, as no audio flows before."""
RATE = 8000
"""Hz of the speech and the files in a narrowband call (16000 in a wideband one)."""

LINPHONE_ONLY = {
    "PCMU": PCMU_ONLY,
    "G722": (("G722", 8000, 1, True), *((m, r, c, False) for m, r, c, _ in PCMU_ONLY)),
    "opus": tuple((m, r, c, m == "opus") for m, r, c, _ in PCMU_ONLY),
}
"""linphonec's codec list with one codec enabled (plus telephone-event)."""


def call_rate(codec: str) -> int:
    return RATE if codec in ("PCMU", "PCMA") else 16000


class RelayingKamailio(Kamailio):
    """The rig's Kamailio, moving the media of every call through the relay: the m= port of an
    offer becomes side B's, that of an answer side A's."""

    def _write_config(self) -> list[str]:
        args = super()._write_config()
        path = self.workdir / "kamailio.cfg"
        text = path.read_text()

        def rewrite(port: int) -> str:
            return (
                '    if (has_body("application/sdp")) {\n'
                f'        subst_body("/m=audio [0-9]+ /m=audio {port} /");\n'
                "    }\n"
            )

        edits = (
            ('loadmodule "tls.so"\n', 'loadmodule "tls.so"\nloadmodule "sdpops.so"\n'),
            ("route[RELAY] {\n", "route[RELAY] {\n" + rewrite(SIDE_B)),
            ("onreply_route[NATREPLY] {\n", "onreply_route[NATREPLY] {\n" + rewrite(SIDE_A)),
        )
        for anchor, replacement in edits:
            if anchor not in text:
                raise RuntimeError(f"tests/peers/kamailio.cfg has no {anchor.strip()!r} any more")
            text = text.replace(anchor, replacement, 1)
        path.write_text(text)
        return args


@dataclass
class Point:
    loss: float
    jitter: float
    scores: dict[str, float]


def align(reference: np.ndarray, recording: np.ndarray) -> np.ndarray:
    """The stretch of `recording` that best matches `reference` (FFT cross-correlation), as
    long as the reference (padded with silence where the recording ends early)."""
    size = 1 << int(np.ceil(np.log2(len(reference) + len(recording))))
    spectrum = np.fft.rfft(recording, size) * np.conj(np.fft.rfft(reference, size))
    correlation = np.fft.irfft(spectrum, size)[: len(recording)]
    start = int(np.argmax(correlation))
    piece = recording[start : start + len(reference)]
    return np.concatenate([piece, np.zeros(len(reference) - len(piece))])


def score(reference: bytes, recording: bytes, rate: int = RATE) -> float:
    ref = np.frombuffer(reference, dtype="<i2").astype(np.float64)
    rec = np.frombuffer(recording, dtype="<i2").astype(np.float64)
    if len(rec) < rate or not np.any(rec):
        return float("nan")
    piece = np.clip(np.round(align(ref, rec)), -32768, 32767).astype("<i2").tobytes()
    return mos(reference, piece, rate)


def read_wav(path: Path, to_rate: int = RATE) -> bytes:
    with wave.open(str(path)) as wav:
        pcm = wav.readframes(wav.getnframes())
        rate, channels = wav.getframerate(), wav.getnchannels()
    samples = np.frombuffer(pcm, dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels)[:, 0]
    return resample_fft(samples.astype("<i2").tobytes(), rate, to_rate)


def write_wav(path: Path, pcm: bytes, rate: int = RATE) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path


# --------------------------------------------------------------------------- one call each


def pidphone_call(
    workdir: Path,
    kamailio: Kamailio,
    pki: Pki,
    talk: bytes,
    seconds: float,
    codec: str = "PCMU",
) -> bytes:
    workdir.mkdir(parents=True, exist_ok=True)
    played = workdir / "speech.raw"
    played.write_bytes(talk)
    heard = workdir / "bob-heard.raw"
    configs = {}
    for user in ("alice", "bob"):
        path = write_config(
            workdir / f"{user}.toml",
            user,
            f"{user}pw",
            pki=pki,
            registrar=kamailio.address,
            codecs=(codec,),
            audio_in=played if user == "alice" else None,
            tone=0.0,
        )
        text = path.read_text().replace("[sim]\n", f"[sim]\nfile_rate = {call_rate(codec)}\n")
        # the secure tone would replace the speech's first 0.7 s in the callee's earpiece: it
        # is the phone telling its user, not the voice path this measures (4.06 vs 4.25 clean)
        text = text.replace("[audio]\n", "[audio]\nsecure_tone = false\n")
        if user == "bob":
            text = text.replace(
                'audio_in_file = ""', f'audio_in_file = ""\naudio_out_file = "{heard}"'
            )
        path.write_text(text)
        configs[user] = path
    answer = PidphoneRun.answer(configs["bob"], duration=seconds + 30, name="bob")
    call: PidphoneRun | None = None
    try:
        deadline = time.monotonic() + 60  # a busy machine starts Python slowly
        while "waiting for calls" not in answer.output() + answer.errors():
            if time.monotonic() > deadline or answer.process.poll() is not None:
                raise RuntimeError(f"pidphone answer did not start:\n{answer.describe()}")
            time.sleep(0.05)
        call = PidphoneRun.call(configs["alice"], "sip:bob@127.0.0.1", duration=seconds)
        report: dict[str, Any] = call.result(timeout=seconds + 40)
        answer.wait(30)
        if not report.get("sas"):
            raise RuntimeError(f"the pidphone call was not secured: {report}")
        heard_report = answer.reports()
        if heard_report:  # what the callee's jitter buffer did with the speech
            print(f"  callee's playout: {heard_report[-1].get('playout')}", flush=True)
        skipped = report.get("playout", {}).get("capture_skipped")
        print(f"  caller's capture: {skipped} frames skipped (late media thread)", flush=True)
    finally:
        if call is not None:
            call.stop()
        answer.stop()
    return heard.read_bytes() if heard.exists() else b""


def linphone_call(
    workdir: Path, kamailio: Kamailio, ca: Path, talk: bytes, seconds: float, codec: str = "PCMU"
) -> bytes:
    workdir.mkdir(parents=True, exist_ok=True)
    common: dict[str, Any] = {
        "ca_file": ca,
        "registrar": kamailio.address,
        "media_encryption": "zrtp",
        "encryption_mandatory": True,
        "codecs": LINPHONE_ONLY[codec],
    }
    caller = InteropLinphone(workdir, "linphone", "linphonepw", **common)
    callee = InteropLinphone(workdir, "lin2", "lin2pw", rtp_port=17178, auto_answer=True, **common)
    heard = workdir / "lin2-heard.wav"
    try:
        caller.start()
        callee.start()
        caller.wait_registered()
        callee.wait_registered()
        rate = call_rate(codec)
        caller.use_files(play=write_wav(workdir / "speech.wav", talk, rate), record=None)
        callee.use_files(play=None, record=heard)
        caller.call(callee.uri)
        caller.wait_zrtp(timeout=30)
        time.sleep(seconds)
        caller.terminate()
        callee.wait_call_state("End", timeout=10)
    finally:
        caller.stop()
        callee.stop()
    return read_wav(heard, call_rate(codec)) if heard.exists() else b""


# --------------------------------------------------------------------------- the grid


def run_grid(args: argparse.Namespace, workdir: Path) -> list[Point]:
    codec = args.codec
    rate = call_rate(codec)
    speech = make_speech(rate)
    talk = bytes(int(LEAD_IN * rate) * 2) + speech + bytes(rate * 2)
    seconds = len(talk) / (2 * rate) + 1.0
    points: list[Point] = []
    with private_network():
        pki = make_test_pki(workdir / "pki")
        kamailio = RelayingKamailio(workdir / "kamailio", pki)
        kamailio.start()
        try:
            for loss in args.loss:
                for jitter in args.jitter:
                    impairment = Impairment(
                        loss=loss, burst=args.burst, jitter=jitter, delay=jitter
                    )
                    point = Point(loss, jitter, {})
                    for stack in ("pidphone", "linphonec"):
                        if args.only and not stack.startswith(args.only):
                            continue
                        where = workdir / f"{stack}-{loss:g}-{jitter:g}"
                        with UdpRelay(
                            ("127.0.0.1", SIDE_A), ("127.0.0.1", SIDE_B), impairment, seed=args.seed
                        ) as relay:
                            if stack == "pidphone":
                                heard = pidphone_call(where, kamailio, pki, talk, seconds, codec)
                            else:
                                heard = linphone_call(
                                    where, kamailio, pki.ca_cert, talk, seconds, codec
                                )
                        point.scores[stack] = score(speech, heard, rate)
                        print(
                            f"loss {loss:>4.0%} jitter {jitter * 1000:>3.0f} ms  {stack:<10}"
                            f" MOS-LQO {point.scores[stack]:.2f}  relay A->B {relay.stats['a']}",
                            flush=True,
                        )
                    points.append(point)
        finally:
            kamailio.stop()
    return points


def codec_table(args: argparse.Namespace) -> None:
    """Each codec with its concealment (and FEC) over the same loss patterns, offline."""
    speech = {rate: make_speech(rate) for rate in (8000, 16000, 48000)}
    print("codec alone (no jitter buffer): PESQ MOS-LQO, NB for G.711, WB for the others")
    print(f"{'codec':<8}" + "".join(f"{f'loss {loss:.0%}':>11}" for loss in args.loss))
    for name in ("PCMU", "G722", "opus"):
        row = []
        for loss in args.loss:
            impairer = Impairer(Impairment(loss=loss, burst=args.burst), args.seed)
            lost = [impairer.schedule(0.0) == [] for _ in range(2000)]
            codec = make_codec(name, {"useinbandfec": "1"})
            out = through_codec(codec, speech[codec.sample_rate], lost)
            rate = 8000 if codec.sample_rate == 8000 else 16000
            row.append(mos(speech[rate], resample_fft(out, codec.sample_rate, rate), rate))
        print(f"{name:<8}" + "".join(f"{value:>11.2f}" for value in row))


def report(points: list[Point], codec: str = "PCMU") -> None:
    stacks = sorted({stack for point in points for stack in point.scores})
    band = "narrowband" if call_rate(codec) == RATE else "wideband"
    print(f"\nPESQ MOS-LQO ({band}), {codec}, through the relay:")
    print(f"{'loss':>6} {'jitter':>7}" + "".join(f"{stack:>12}" for stack in stacks))
    for point in points:
        print(
            f"{point.loss:>6.0%} {point.jitter * 1000:>5.0f}ms"
            + "".join(f"{point.scores.get(stack, float('nan')):>12.2f}" for stack in stacks)
        )


def floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__)
    parser.add_argument("--only", choices=("pidphone", "linphone"))
    parser.add_argument("--loss", type=floats, default=[0.0, 0.03, 0.1])
    parser.add_argument("--jitter", type=floats, default=[0.0, 0.03, 0.06], help="seconds")
    parser.add_argument("--burst", type=float, default=None, help="mean loss burst (packets)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--codecs", action="store_true", help="the codecs alone, offline")
    parser.add_argument("--codec", default="PCMU", choices=tuple(LINPHONE_ONLY))
    args = parser.parse_args(argv)
    if args.codecs:
        codec_table(args)
        return 0
    for program in ("kamailio", "linphonec", "espeak-ng"):
        if shutil.which(program) is None:
            print(f"{program} is not installed (scripts/setup.sh installs it)", file=sys.stderr)
            return 2
    if os.geteuid() != 0:
        print("run as root: the calls run in a private network namespace", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="pidphone-bench-quality-"))
    try:
        points = run_grid(args, workdir)
    except (RuntimeError, subprocess.SubprocessError) as exc:
        print(f"bench failed: {exc}\nwork directory kept: {workdir}", file=sys.stderr)
        return 1
    report(points, args.codec)
    if args.keep:
        print(f"work directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
