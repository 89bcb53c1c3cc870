"""Helpers for the interop tests and the call benchmark: pidphone against linphonec (bzrtp)
and against itself, through Kamailio over TLS.

    with interop_rig(workdir) as rig:                   # netns + Kamailio, for a module
        suite = ZrtpSuite("X255", "AES3", "HS32", "S384", "B256")
        peer = rig.linphone("linphone", tone=700, suite=suite, auto_answer=True)
        config = rig.config("alice", tone=1000, suite=suite)
        run = rig.call(config, peer.uri, duration=3)    # `pidphone call --json`
        report = run.result()                           # its JSON report, as a dict
        peer.zrtp_secrets()[0].sas, wav_frequencies(peer.recording(1))
        rig.close()                                     # every phone started, by PID

pidphone runs as a subprocess of the test (`python -m pidphone.cli`), started from the thread
that is inside the private network namespace, so it sees the same loopback as Kamailio and
linphonec. Every process runs under `timeout` and is stopped by its own PID.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import time
import wave
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pidphone.audio.analysis import dominant_frequencies
from pidphone.drivers.certs import Pki, make_test_pki
from tests.conftest import need_path, need_program
from tests.peers.kamailio import Kamailio, tls_module
from tests.peers.linphone import Linphone
from tests.peers.netns import need_private_network, private_network

REPO = Path(__file__).resolve().parents[2]

PIDPHONE_LIFETIME = 180
"""Seconds after which `timeout` kills a pidphone process whatever happens to the test."""

TONE_TOLERANCE = 15.0
"""Hz a received tone may be off (the analysis is good to a fraction of a 7.8 Hz bin)."""

# --------------------------------------------------------------------------- ZRTP suites

_LINPHONE_KEYS = {
    "key_agreement": ("zrtp_key_agreements_suites", "MS_ZRTP_KEY_AGREEMENT_"),
    "cipher": ("zrtp_cipher_suites", "MS_ZRTP_CIPHER_"),
    "auth_tag": ("zrtp_auth_suites", "MS_ZRTP_AUTHTAG_"),
    "hash": ("zrtp_hash_suites", "MS_ZRTP_HASH_"),
    "sas": ("zrtp_sas_suites", "MS_ZRTP_SAS_"),
}

LINPHONE_NAMES = {
    "DH3k": "DHM-3072",
    "DH2k": "DHM-2048",
    "X255": "ECDH-255",
    "X448": "ECDH-448",
    "AES1": "AES-128",
    "AES3": "AES-256",
    "HS32": "HMAC-SHA1-32",
    "HS80": "HMAC-SHA1-80",
    "S256": "SHA-256",
    "S384": "SHA-384",
    "B32": "Base32",
    "B256": "PGP-WordList",
}
"""RFC 6189 type names → how liblinphone writes them in "ZRTP algo used during negotiation"."""


@dataclass(frozen=True)
class ZrtpSuite:
    """One ZRTP algorithm of each kind (RFC 6189 §5.1.2-§5.1.6), offered first by both sides,
    so the exchange has to pick exactly these."""

    key_agreement: str
    cipher: str
    auth_tag: str
    hash: str
    sas: str

    @property
    def label(self) -> str:
        return "-".join((self.key_agreement, self.cipher, self.auth_tag, self.hash, self.sas))

    def linphone_sip(self) -> dict[str, str]:
        """The [sip] keys that make linphonec offer only this suite (bzrtp adds the
        mandatory DH3k, AES1, HS32/HS80, S256, B32 itself)."""
        return {
            key: prefix + getattr(self, kind).upper()
            for kind, (key, prefix) in _LINPHONE_KEYS.items()
        }

    def linphone_names(self) -> dict[str, str]:
        """What linphonec's debug log should say was negotiated, by `ZrtpAlgorithms` field."""
        return {
            "key_agreement": LINPHONE_NAMES[self.key_agreement],
            "cipher": LINPHONE_NAMES[self.cipher],
            "auth_tag": LINPHONE_NAMES[self.auth_tag],
            "hash": LINPHONE_NAMES[self.hash],
            "sas_rendering": LINPHONE_NAMES[self.sas],
        }


DEFAULT_SUITE = ZrtpSuite("DH3k", "AES1", "HS80", "S256", "B32")
"""What bzrtp negotiates with its default Hello (Debian 12's linphonec 5.1)."""


# --------------------------------------------------------------------------- linphonec

PCMU_ONLY = (
    ("PCMU", 8000, 1, True),
    ("PCMA", 8000, 1, False),
    ("opus", 48000, 2, False),
    ("speex", 16000, 1, False),
    ("speex", 8000, 1, False),
    ("speex", 32000, 1, False),
    ("G729", 8000, 1, False),
)
"""[audio_codec_N] sections that leave linphonec with PCMU alone (plus telephone-event)."""


class InteropLinphone(Linphone):
    """linphonec with an optional fixed codec list: `codecs` holds (mime, rate, channels,
    enabled) rows written as [audio_codec_N] sections."""

    def __init__(
        self,
        *args: Any,
        codecs: Sequence[tuple[str, int, int, bool]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.codecs = tuple(codecs)
        self.tone = 0.0
        """Hz of the tone it plays (0: nothing set up yet)."""

    def recording(self, call: int) -> Path:
        """Where it records what it hears in its `call`-th call (counted from 1)."""
        return self.home.parent / f"{self.user}-heard-{call}.wav"

    def next_call(self, call: int) -> None:
        """Play the tone and record into `recording(call)` in the coming call."""
        wav = self.home.parent / f"{self.user}-tone.wav"
        if not wav.exists():
            write_tone(wav, self.tone, seconds=60)
        self.use_files(play=wav, record=self.recording(call))

    def linphonerc(self) -> str:
        sections = "".join(
            f"\n[audio_codec_{index}]\nmime={mime}\nrate={rate}\nchannels={channels}\n"
            f"enabled={int(enabled)}\n"
            for index, (mime, rate, channels, enabled) in enumerate(self.codecs)
        )
        return super().linphonerc() + sections

    def linphonec_pid(self) -> int | None:
        """The PID of linphonec itself (the started process is `timeout`, its parent)."""
        if self.process is None:
            return None
        return only_child(self.process.pid)

    def log_times(self, pattern: str) -> list[float]:
        """Wall-clock times (epoch seconds) of the debug-log lines matching `pattern`."""
        found = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}) .*" + pattern, re.M)
        return [log_time(stamp) for stamp in found.findall(self.log())]

    def connected_times(self) -> list[float]:
        """When each call reached Connected: the 200 OK sent (callee) or received (caller)."""
        return self.log_times(r"moving from state LinphoneCall\w+ to LinphoneCallConnected")

    def wait_token(self, count: int, timeout: float = 15.0) -> None:
        """Until liblinphone's core has taken in the SAS of its `count`-th ZRTP exchange:
        mediastreamer logs "ZRTP secrets on" from its own thread first, and a
        `zrtp-set-verified` that reaches the core before "Authentication token is" is lost."""
        self.wait_until(
            lambda: self.log().count("Authentication token is ") >= count,
            "authentication token",
            timeout,
        )

    def sas_times(self) -> list[float]:
        """When each ZRTP exchange made the SAS known."""
        return self.log_times(r"ZRTP secrets on: SAS is ")


def start_linphone(
    workdir: Path,
    user: str,
    *,
    ca_file: Path,
    registrar: tuple[str, int],
    tone: float,
    suite: ZrtpSuite | None = None,
    encryption: str = "zrtp",
    auto_answer: bool = False,
    rtp_port: int = 17078,
    codecs: Sequence[tuple[str, int, int, bool]] = (),
    root: Path | None = None,
) -> InteropLinphone:
    """A registered linphonec playing a `tone` Hz WAV and recording what it hears to
    `recording(1)` for its first call (call `next_call` before each later call). With
    encryption "zrtp" it insists on ZRTP; "none" is a peer without it."""
    phone = InteropLinphone(
        workdir,
        user,
        f"{user}pw",
        ca_file=ca_file,
        registrar=registrar,
        rtp_port=rtp_port,
        media_encryption=encryption,
        encryption_mandatory=encryption != "none",
        auto_answer=auto_answer,
        extra_sip=suite.linphone_sip() if suite is not None else None,
        codecs=codecs,
        root=root,
    )
    phone.tone = tone
    phone.start()
    try:
        phone.wait_registered()
        phone.next_call(1)
    except Exception:
        phone.stop()
        raise
    return phone


def log_time(stamp: str) -> float:
    """Epoch seconds of a liblinphone log stamp "2026-11-27 07:43:54:924" (local time)."""
    day, _, millis = stamp.rpartition(":")
    return datetime.strptime(day, "%Y-%m-%d %H:%M:%S").timestamp() + int(millis) / 1000


def registered(kamailio: Kamailio, user: str) -> bool:
    """Whether Kamailio's location table has a contact for user@127.0.0.1 (kamcmd over the
    rig's control socket)."""
    result = subprocess.run(
        [
            "kamcmd",
            "-s",
            f"unix:{kamailio.workdir}/kamailio_ctl",
            "ul.lookup",
            "location",
            f"{user}@127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return "Contact:" in result.stdout


def only_child(pid: int) -> int | None:
    """The first child of `pid` (Linux /proc), or None when it has none."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def write_tone(path: Path, frequency: float, seconds: float, rate: int = 8000) -> Path:
    """A mono 16-bit sine WAV for linphonec's `play` (its file card resamples as needed)."""
    step = 2 * math.pi * frequency / rate
    samples = [int(12000 * math.sin(step * i)) for i in range(int(rate * seconds))]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return path


def write_raw_tone(path: Path, frequency: float, seconds: float) -> Path:
    """The same sine as `write_tone`, as raw S16_LE mono 8 kHz PCM (pidphone's
    sim.audio_in_file)."""
    step = 2 * math.pi * frequency / 8000
    samples = [int(12000 * math.sin(step * i)) for i in range(int(8000 * seconds))]
    path.write_bytes(struct.pack(f"<{len(samples)}h", *samples))
    return path


def wav_frequencies(path: Path, skip: float = 0.5, last: float | None = None) -> list[float]:
    """The dominant tones of a linphonec recording, leaving out its first `skip` seconds
    (the time before ZRTP completed, when nothing was heard), or only in its `last` seconds."""
    with wave.open(str(path), "rb") as heard:
        rate, channels = heard.getframerate(), heard.getnchannels()
        pcm = heard.readframes(heard.getnframes())
    if channels > 1:
        width = 2 * channels
        pcm = b"".join(pcm[i : i + 2] for i in range(0, len(pcm) - width + 1, width))
    start = int(skip * rate) * 2 if last is None else max(0, len(pcm) - int(last * rate) * 2)
    return dominant_frequencies(pcm[start:], rate)


def has_tone(frequencies: Iterable[float], expected: float) -> bool:
    """Whether one of `frequencies` is `expected` within TONE_TOLERANCE."""
    return any(abs(found - expected) <= TONE_TOLERANCE for found in frequencies)


def same_sas(ours: str, theirs: str) -> bool:
    """SAS equality across renderings: linphonec writes B256 as "word1:word2", B32 as four
    characters; case and separators do not count."""

    def words(text: str) -> list[str]:
        return [part for part in re.split(r"[^0-9a-z]+", text.lower()) if part]

    return bool(words(ours)) and words(ours) == words(theirs)


# --------------------------------------------------------------------------- pidphone


def write_config(
    path: Path,
    user: str,
    password: str,
    *,
    pki: Pki,
    registrar: tuple[str, int] = ("127.0.0.1", 5061),
    suite: ZrtpSuite | None = None,
    policy: str = "require",
    tone: float = 1000.0,
    zid_cache: Path | None = None,
    hello_timeout: float = 5.0,
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    log_level: str = "info",
    audio_in: Path | None = None,
) -> Path:
    """A pidphone config for one Kamailio account with simulated audio sending `tone` Hz,
    or the raw S16_LE 8 kHz file `audio_in` (read, like linphonec's `play`, not computed).
    `suite` puts those ZRTP algorithms first (the mandatory ones follow by themselves)."""
    security = ""
    if suite is not None:
        security = "".join(
            f'{kind} = ["{getattr(suite, kind)}"]\n'
            for kind in ("key_agreement", "cipher", "auth_tag", "hash", "sas")
        )
    cache = zid_cache or path.with_suffix(".zid.json")
    text = f"""hardware = "simulated"

[account]
aor = "sip:{user}@{registrar[0]}"
password = "{password}"
display_name = "{user.capitalize()}"

[server]
registrar = "{registrar[0]}:{registrar[1]}"
ca_file = "{pki.ca_cert}"

[security]
zrtp_policy = "{policy}"
zid_cache = "{cache}"
hello_timeout = {hello_timeout}
{security}
[audio]
codecs = [{", ".join(f'"{codec}"' for codec in codecs)}]

[sim]
tone_frequency = {tone}
audio_in_file = "{audio_in or ""}"

[logging]
level = "{log_level}"
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


class PidphoneError(RuntimeError):
    """A pidphone process did not give a report; the message quotes its output."""


def pidphone_command(*args: str) -> list[str]:
    """`pidphone ARGS` with this interpreter, bounded by `timeout`."""
    return [
        "timeout",
        "--kill-after=5",
        str(PIDPHONE_LIFETIME),
        sys.executable,
        "-m",
        "pidphone.cli",
        *args,
    ]


class PidphoneRun:
    """One `pidphone call` or `pidphone answer` subprocess with --json."""

    def __init__(self, args: Sequence[str], workdir: Path, name: str) -> None:
        self.args = list(args)
        self.stdout_path = workdir / f"{name}.out"
        self.stderr_path = workdir / f"{name}.err"
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO)
        env.pop("PIDPHONE_CONFIG", None)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                pidphone_command(*self.args),
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        self.returncode: int | None = None

    @classmethod
    def call(
        cls,
        config: Path,
        uri: str,
        *,
        duration: float,
        name: str = "call",
        extra: Sequence[str] = (),
    ) -> PidphoneRun:
        args = ["call", uri, "--config", str(config), "--duration", f"{duration:g}", "--json"]
        return cls([*args, *extra], config.parent, name)

    @classmethod
    def answer(
        cls, config: Path, *, duration: float, count: int = 1, name: str = "answer"
    ) -> PidphoneRun:
        args = ["answer", "--config", str(config), "--count", str(count)]
        args += ["--duration", f"{duration:g}", "--json"]
        return cls(args, config.parent, name)

    @property
    def pid(self) -> int | None:
        """The PID of the Python process itself (the one started is `timeout`)."""
        return only_child(self.process.pid)

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def errors(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            self.returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise PidphoneError(
                f"pidphone {' '.join(self.args[:2])} still running after {timeout} s:\n"
                f"{self.describe()}"
            ) from None
        return self.returncode

    def stop(self) -> None:
        """SIGTERM then SIGKILL to the PID started here (timeout passes SIGTERM on)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.returncode = self.process.returncode

    def reports(self) -> list[dict[str, Any]]:
        """Every JSON object printed on stdout (one per call; `answer --count N` prints N)."""
        decoder = json.JSONDecoder()
        text, index = self.output(), 0
        found: list[dict[str, Any]] = []
        while True:
            start = text.find("{", index)
            if start < 0:
                return found
            try:
                value, index = decoder.raw_decode(text, start)
            except json.JSONDecodeError:
                index = start + 1
                continue
            if isinstance(value, dict):
                found.append(value)

    def result(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for the exit and return the (last) report."""
        self.wait(timeout)
        found = self.reports()
        if not found:
            raise PidphoneError(f"pidphone printed no JSON report:\n{self.describe()}")
        return found[-1]

    def describe(self) -> str:
        """Exit status, stdout and the end of stderr, for assertion messages."""
        return (
            f"exit status {self.process.returncode}\n--- stdout\n{self.output()[-3000:]}\n"
            f"--- stderr\n{self.errors()[-5000:]}"
        )


def pidphone_zid(
    config: Path, *args: str, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """`pidphone zid --config CONFIG ARGS` (list, verify PEER ...)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        pidphone_command("zid", "--config", str(config), *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def cached_peers(config: Path) -> dict[str, bool]:
    """Peer ZID (hex) -> verified, from `pidphone zid list`; empty without a cache."""
    listed = pidphone_zid(config, "list")
    peers: dict[str, bool] = {}
    for line in listed.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and re.fullmatch(r"[0-9a-f]{24}", parts[0]):
            peers[parts[0]] = parts[1] == "yes"
    return peers


# --------------------------------------------------------------------------- the rig


class Rig:
    """Kamailio in this thread's private network namespace, plus the phones a test starts
    (all stopped by `close`, whatever happened)."""

    def __init__(self, workdir: Path, pki: Pki, kamailio: Kamailio) -> None:
        self.workdir = workdir
        self.pki = pki
        self.kamailio = kamailio
        self._linphones: list[InteropLinphone] = []
        self._runs: list[PidphoneRun] = []
        self._count = 0

    def _dir(self, name: str) -> Path:
        self._count += 1
        path = self.workdir / f"{self._count:02d}-{name}"
        path.mkdir(parents=True)
        return path

    def linphone(self, user: str, *, tone: float, **kwargs: Any) -> InteropLinphone:
        """A registered linphonec (see `start_linphone`), stopped at `close`."""
        phone = start_linphone(
            self._dir(user),
            user,
            ca_file=self.pki.ca_cert,
            registrar=self.kamailio.address,
            tone=tone,
            **kwargs,
        )
        self._linphones.append(phone)
        return phone

    def config(self, user: str, **kwargs: Any) -> Path:
        """A pidphone config for `user` (password "<user>pw") in a directory of its own."""
        return write_config(
            self._dir(user) / f"{user}.toml",
            user,
            f"{user}pw",
            pki=self.pki,
            registrar=self.kamailio.address,
            **kwargs,
        )

    def call(
        self,
        config: Path,
        uri: str,
        *,
        duration: float,
        name: str = "call",
        extra: Sequence[str] = (),
    ) -> PidphoneRun:
        """`pidphone call` (with `extra` arguments: --transfer-to ...), stopped at `close`."""
        run = PidphoneRun.call(config, uri, duration=duration, name=name, extra=extra)
        self._runs.append(run)
        return run

    def answer(
        self, config: Path, *, duration: float, count: int = 1, name: str = "answer"
    ) -> PidphoneRun:
        """`pidphone answer`, returned once it is registered at Kamailio."""
        run = PidphoneRun.answer(config, duration=duration, count=count, name=name)
        self._runs.append(run)
        user = config.stem
        deadline = time.monotonic() + 20
        while not registered(self.kamailio, user):
            if run.process.poll() is not None or time.monotonic() > deadline:
                run.stop()
                raise PidphoneError(f"pidphone answer did not register:\n{run.describe()}")
            time.sleep(0.1)
        return run

    def close(self) -> None:
        """Stop every phone started so far (between tests, and at the end)."""
        runs, self._runs = self._runs, []
        phones, self._linphones = self._linphones, []
        for run in runs:
            run.stop()
        for phone in phones:
            phone.stop()


def need_interop(*, linphone: bool = True) -> None:
    """Skip (fail in CI) without kamailio + TLS module, kamcmd, linphonec (unless not
    `linphone`) or root."""
    need_program("kamailio", "kamailio")
    need_program("kamcmd", "kamailio")
    need_path(tls_module(), "kamailio-tls-modules")
    if linphone:
        need_program("linphonec", "linphone-cli")
    need_private_network()


@contextmanager
def interop_rig(workdir: Path, *, no_zrtp: bool = False) -> Iterator[Rig]:
    """A private network namespace with Kamailio (TLS, digest auth) for a test module;
    `no_zrtp` makes it a `NoZrtpKamailio` (for a linphonec on RTP port 17078)."""
    from tests.peers.nozrtp import NoZrtpKamailio

    with private_network():
        pki = make_test_pki(workdir / "pki")
        kind = NoZrtpKamailio if no_zrtp else Kamailio
        kamailio = kind(workdir / "kamailio", pki)
        kamailio.start()
        rig = Rig(workdir, pki, kamailio)
        try:
            yield rig
        finally:
            rig.close()
            kamailio.stop()


# --------------------------------------------------------------------------- one interop call


def negotiated(report: Mapping[str, Any]) -> dict[str, str]:
    """pidphone's report of the algorithms, written as linphonec's log writes them."""
    return {
        "cipher": LINPHONE_NAMES.get(report["cipher"], report["cipher"]),
        "key_agreement": LINPHONE_NAMES.get(report["key_agreement"], report["key_agreement"]),
        "hash": LINPHONE_NAMES.get(report["hash"], report["hash"]),
        "auth_tag": LINPHONE_NAMES.get(report["auth_tag"], report["auth_tag"]),
        "sas_rendering": LINPHONE_NAMES.get(report["sas_scheme"], report["sas_scheme"]),
    }


@dataclass(frozen=True)
class InteropCall:
    """What one pidphone <-> linphonec call gave, from both ends."""

    report: dict[str, Any]
    """pidphone's JSON report."""
    run: PidphoneRun
    linphone_sas: str
    linphone_algorithms: dict[str, str]
    linphone_heard: list[float]
    linphone_verified: bool


def call_linphone(
    rig: Rig,
    linphone: InteropLinphone,
    config: Path,
    *,
    pidphone_calls: bool,
    call: int = 1,
    seconds: float = 3.0,
    during: Callable[[], None] | None = None,
) -> InteropCall:
    """One call between a registered linphonec and pidphone `config`: pidphone calls and hangs
    up after `seconds`, or linphonec calls and hangs up `seconds` after its SAS. Returns both
    sides' views once the call ended at both ends; `call` counts linphonec's calls from 1.
    `during` runs while the call is up, once linphonec knows the SAS."""
    ends = linphone.call_states().count("End")
    linphone.next_call(call)
    if pidphone_calls:
        run = rig.call(config, linphone.uri, duration=seconds, name=f"call-{call}")
        linphone.wait_zrtp(count=call, timeout=30)
        if during is not None:
            linphone.wait_token(call)
            during()
        report = run.result(timeout=60)
    else:
        user = config.stem
        run = rig.answer(config, duration=seconds + 30, name=f"answer-{call}")
        linphone.call(f"sip:{user}@127.0.0.1")
        linphone.wait_zrtp(count=call, timeout=30)
        if during is not None:
            linphone.wait_token(call)
            during()
        time.sleep(seconds)
        linphone.terminate()
        report = run.result(timeout=30)
    linphone.wait_call_state("End", count=ends + 1, timeout=15)
    secrets = linphone.zrtp_secrets()
    algorithms = linphone.zrtp_algorithms()
    return InteropCall(
        report=report,
        run=run,
        linphone_sas=secrets[call - 1].sas if len(secrets) >= call else "",
        linphone_algorithms=dataclasses.asdict(algorithms) if algorithms else {},
        linphone_heard=wav_frequencies(linphone.recording(call)),
        linphone_verified=secrets[call - 1].previously_verified if len(secrets) >= call else False,
    )


def check_suite_call(rig: Rig, suite: ZrtpSuite, *, pidphone_calls: bool, codec: str) -> None:
    """One call with linphonec where both sides put `suite` first, so the exchange must pick
    exactly it: the algorithms both ends report, the SAS and the tones both ways must agree."""
    linphone = rig.linphone("linphone", tone=700, suite=suite, auto_answer=pidphone_calls)
    config = rig.config(
        "alice" if pidphone_calls else "bob", tone=1000, suite=suite, codecs=(codec,)
    )
    result = call_linphone(rig, linphone, config, pidphone_calls=pidphone_calls)
    report = result.report

    assert result.run.returncode == 0, result.run.describe()
    assert report["state"] == "secure"
    assert report["codec"] == codec
    assert (report["key_agreement"], report["cipher"], report["auth_tag"]) == (
        suite.key_agreement,
        suite.cipher,
        suite.auth_tag,
    )
    assert (report["hash"], report["sas_scheme"]) == (suite.hash, suite.sas)
    assert result.linphone_algorithms == suite.linphone_names() == negotiated(report)
    assert same_sas(report["sas"], result.linphone_sas), (report["sas"], result.linphone_sas)
    assert has_tone(report["received_frequencies"], 700), report
    assert has_tone(result.linphone_heard, 1000), result.linphone_heard
