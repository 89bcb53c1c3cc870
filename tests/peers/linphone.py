"""Headless linphonec (liblinphone 5.1, bzrtp) as a test peer.

    phone = Linphone(workdir, "bob", "bobpw", ca_file=pki.ca_cert, auto_answer=True,
                     media_encryption="zrtp", encryption_mandatory=True,
                     extra_sip={"zrtp_key_agreements_suites": "MS_ZRTP_KEY_AGREEMENT_X255"})
    phone.start()                       # fresh HOME and linphonerc every time (pitfall P2)
    phone.wait_registered()
    tone = write_tone(workdir / "700.wav", 700)                    # tests.peers.wav
    phone.use_files(play=tone, record=workdir / "heard.wav")       # no sound card (P5)
    phone.call("sip:alice@127.0.0.1")  # or wait_call_state("IncomingReceived"); answer()
    phone.wait_call_state("StreamsRunning")
    phone.wait_zrtp()                  # ZrtpSecrets(sas="a6ew", previously_verified=False)
    phone.zrtp_algorithms()            # ZrtpAlgorithms(cipher="AES-128", key_agreement=...)
    phone.set_sas_verified()           # zrtp-set-verified: the next call says verified
    phone.terminate()
    phone.stop()

With `root=` (a Debian 13 root from scripts/debian-root.sh linphone-trixie) the peer is that
root's linphonec 5.3 in a chroot: it sees this machine's /dev and the directories of its home
and CA file at the same paths (in a mount namespace of its own, over a RAM /tmp: the cached
root is never written). That linphonec reads stdin without readline and keeps one pending
line, so each command there waits for the prompt that follows it.

Commands go to linphonec's stdin (a pipe this object holds open). Everything is read from
its debug log (-d 6), which is written promptly, unlike its stdout (pitfall P6): call states,
registration states, the SAS and "previously verified" flag, the negotiated ZRTP algorithms,
and the SDP bodies it sent and received. Runs under `timeout` and is stopped by its PID.
Use it inside `tests.peers.netns.private_network()`.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

MAX_LIFETIME = 600
"""Seconds after which `timeout` kills linphonec whatever happens to the test."""

PROMPT = "linphonec> "

CHROOT = """
root=$1; shift
mount -t tmpfs tmpfs "$root/tmp"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
while [ "$1" != -- ]; do
  case "$1" in /tmp/*) ;; *) echo "only directories in /tmp can be shared: $1" >&2; exit 2 ;; esac
  mkdir -p "$root$1"
  mount --bind "$1" "$root$1"
  shift
done
shift
exec chroot "$root" "$@"
"""
"""Run a command in `root` with the given directories bound at their own paths (under the
RAM /tmp, so they must live in /tmp); in a private mount namespace (unshare --mount)."""

_CALL_STATE = re.compile(r"moving from state LinphoneCall(\w+) to LinphoneCall(\w+)")
_REGISTRATION = re.compile(
    r"moving from state \[LinphoneRegistration(\w+)\] to \[LinphoneRegistration(\w+)\]"
)
_SECRETS = re.compile(r"ZRTP secrets on: SAS is (\S+) previously verified (\w+)")
_ALGO = re.compile(r"ZRTP algo used during negotiation: (.*)")
_SIP_START = re.compile(r"^(?:[A-Z]+ \S+ SIP/2\.0|SIP/2\.0 \d{3} .*)$")


class LinphoneError(RuntimeError):
    """linphonec did not reach the state a test waited for; the message quotes its log."""


@dataclass(frozen=True)
class ZrtpSecrets:
    """One "ZRTP secrets on" line: the SAS of a ZRTP session and whether the cache said it
    had been verified before."""

    sas: str
    previously_verified: bool


@dataclass(frozen=True)
class ZrtpAlgorithms:
    """The "ZRTP algo used during negotiation" line, split into its parts."""

    cipher: str
    key_agreement: str
    hash: str
    auth_tag: str
    sas_rendering: str


class Linphone:
    """One headless linphonec account registered over TLS."""

    def __init__(
        self,
        workdir: Path,
        user: str,
        password: str,
        *,
        ca_file: Path,
        registrar: tuple[str, int] = ("127.0.0.1", 5061),
        domain: str = "127.0.0.1",
        rtp_port: int = 17078,
        media_encryption: str = "none",
        encryption_mandatory: bool = False,
        auto_answer: bool = False,
        extra_sip: Mapping[str, str] | None = None,
        register: bool = True,
        root: Path | None = None,
    ) -> None:
        self.home = workdir / user
        self.user = user
        self.password = password
        self.ca_file = ca_file
        self.registrar = registrar
        self.domain = domain
        self.rtp_port = rtp_port
        self.media_encryption = media_encryption
        self.encryption_mandatory = encryption_mandatory
        self.auto_answer = auto_answer
        self.extra_sip = dict(extra_sip or {})
        self.register = register
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None
        self.debug_log = self.home / "debug.log"
        self.stdout_log = self.home / "out.txt"

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    def linphonerc(self) -> str:
        """The configuration file, written fresh before every start (linphonec rewrites it)."""
        extra = "".join(f"{key}={value}\n" for key, value in self.extra_sip.items())
        return f"""[sip]
sip_port=0
sip_tcp_port=0
sip_tls_port=-1
use_ipv6=0
default_proxy=0
media_encryption={self.media_encryption}
media_encryption_mandatory={int(self.encryption_mandatory)}
root_ca={self.ca_file}
verify_server_certs=1
verify_server_cn=1
register_only_when_network_is_up=0
auto_net_state_mon=0
guess_hostname=1
inc_timeout=60
supported=replaces, outbound
{extra}
[proxy_0]
reg_proxy=<sip:{self.registrar[0]}:{self.registrar[1]};transport=tls>
reg_identity="{self.user}" <{self.uri}>
reg_expires=600
reg_sendregister={int(self.register)}
publish=0
dial_escape_plus=0
quality_reporting_enabled=0

[auth_info_0]
username={self.user}
passwd={self.password}
realm={self.domain}
domain={self.domain}

[rtp]
audio_rtp_port={self.rtp_port}
video_rtp_port={self.rtp_port + 1000}
nortp_timeout=30

[sound]
echocancellation=0

[video]
enabled=0
capture=0
display=0
automatically_initiate=0
automatically_accept=0
"""

    # ------------------------------------------------------------------ process

    def start(self) -> None:
        if self.process is not None:
            raise RuntimeError(f"linphonec {self.user} is already running")
        program = shutil.which("linphonec") if self.root is None else "/usr/bin/linphonec"
        if program is None:
            raise LinphoneError("linphonec is not installed")
        if self.home.exists():
            shutil.rmtree(self.home)
        (self.home / ".local/share/linphone").mkdir(parents=True)
        (self.home / ".config").mkdir(parents=True)
        rc = self.home / "linphonerc"
        rc.write_text(self.linphonerc())
        args = ["timeout", "--kill-after=5", str(MAX_LIFETIME)]
        if self.root is not None:
            shared = sorted({str(self.home.parent), str(self.ca_file.parent)})
            args += ["unshare", "--mount", "--propagation", "private", "sh", "-ec", CHROOT]
            args += ["sh", str(self.root), *shared, "--"]
        args += [program, "-c", str(rc)]
        if self.auto_answer:
            args.append("-a")
        args += ["-d", "6", "-l", str(self.debug_log)]
        env = {"HOME": str(self.home), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        with open(self.stdout_log, "wb") as out:
            self.process = subprocess.Popen(
                args, cwd=self.home, env=env, stdin=subprocess.PIPE, stdout=out, stderr=out
            )

    def command(self, line: str) -> None:
        """Send one linphonec command line (see `help` and `help advanced`)."""
        if self.process is None or self.process.stdin is None or self.process.poll() is not None:
            raise LinphoneError(f"linphonec {self.user} is not running:\n{self.log_tail()}")
        paced = self.root is not None
        if paced:
            self.wait_until(lambda: self.prompts() > 0, "first prompt")
        before = self.prompts()
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()
        if paced:
            self.wait_until(lambda: self.prompts() > before, f"prompt after {line!r}")

    def prompts(self) -> int:
        """How many prompts linphonec has printed: one more after each command it took."""
        try:
            return self.stdout_log.read_text(errors="replace").count(PROMPT)
        except FileNotFoundError:
            return 0

    def stop(self, timeout: float = 10.0) -> None:
        """`quit`, then SIGTERM, then SIGKILL, to the PID started here only."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None and process.stdin is not None:
            try:
                process.stdin.write(b"quit\n")
                process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # ------------------------------------------------------------------ commands

    def use_files(self, *, play: Path | None = None, record: Path | None = None) -> None:
        """No sound card: read the microphone from `play`, write what is heard to `record`."""
        self.command("soundcard use files")
        if play is not None:
            self.command(f"play {play}")
        if record is not None:
            self.command(f"record {record}")

    def call(self, uri: str) -> None:
        self.command(f"call {uri}")

    def answer(self) -> None:
        self.command("answer")

    def terminate(self) -> None:
        self.command("terminate all")

    def pause(self) -> None:
        """Put the current call on hold (a re-INVITE with sendonly)."""
        self.command("pause")

    def resume(self) -> None:
        self.command("resume")

    def set_sas_verified(self) -> None:
        self.command("zrtp-set-verified")

    # ------------------------------------------------------------------ observations

    def log(self) -> str:
        try:
            return self.debug_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def call_states(self) -> list[str]:
        """Every state the calls entered, in order ("OutgoingInit", ..., "End", "Released")."""
        return [m.group(2) for m in _CALL_STATE.finditer(self.log())]

    def registration_states(self) -> list[str]:
        return [m.group(2) for m in _REGISTRATION.finditer(self.log())]

    def zrtp_secrets(self) -> list[ZrtpSecrets]:
        return [ZrtpSecrets(m.group(1), m.group(2) == "yes") for m in _SECRETS.finditer(self.log())]

    def zrtp_algorithms(self) -> ZrtpAlgorithms | None:
        found = _ALGO.findall(self.log())
        if not found:
            return None
        parts = dict(
            (key.strip(), value.strip())
            for key, _, value in (part.partition(":") for part in found[-1].split(" - "))
        )
        return ZrtpAlgorithms(
            cipher=parts.get("Cipher", ""),
            key_agreement=parts.get("KeyAgreement", ""),
            hash=parts.get("Hash", ""),
            auth_tag=parts.get("AuthTag", ""),
            sas_rendering=parts.get("Sas Rendering", ""),
        )

    def sip_messages(self) -> list[tuple[str, str]]:
        """("sent" | "received", message text) for every SIP message in the debug log."""
        lines = self.log().splitlines()
        messages: list[tuple[str, str]] = []
        direction = ""
        index = 0
        while index < len(lines):
            line = lines[index]
            if "message sent to [" in line:
                direction = "sent"
            elif "new bytes from [" in line:
                direction = "received"
            elif direction and _SIP_START.match(line.rstrip("\r")):
                body: list[str] = []
                while index < len(lines) and not re.match(r"^\d{4}-\d\d-\d\d ", lines[index]):
                    body.append(lines[index].rstrip("\r"))
                    index += 1
                messages.append((direction, "\n".join(body).strip("\n")))
                direction = ""
                continue
            index += 1
        return messages

    def sdp_bodies(self, direction: str) -> list[bytes]:
        """The SDP bodies of the SIP messages linphonec `direction` ("sent"/"received")."""
        bodies: list[bytes] = []
        for way, text in self.sip_messages():
            head, _, body = text.partition("\n\n")
            if way == direction and "application/sdp" in head.lower() and body.startswith("v=0"):
                bodies.append(("\r\n".join(body.splitlines()) + "\r\n").encode())
        return bodies

    # ------------------------------------------------------------------ waiting

    def wait_until(self, done: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise LinphoneError(
                    f"linphonec {self.user}: no {what} in {timeout} s:\n{self.log_tail()}"
                )
            if self.process is not None and self.process.poll() is not None:
                raise LinphoneError(f"linphonec {self.user} exited:\n{self.log_tail()}")
            time.sleep(0.05)

    def wait_registered(self, timeout: float = 20.0) -> None:
        def done() -> bool:
            states = self.registration_states()
            if "Failed" in states:
                raise LinphoneError(
                    f"linphonec {self.user}: registration failed:\n{self.log_tail()}"
                )
            return "Ok" in states

        self.wait_until(done, "registration", timeout)

    def wait_call_state(self, state: str, count: int = 1, timeout: float = 20.0) -> None:
        """Until the calls entered `state` ("IncomingReceived", "StreamsRunning", "End" ...)
        at least `count` times."""
        self.wait_until(
            lambda: self.call_states().count(state) >= count, f"call state {state}", timeout
        )

    def wait_zrtp(self, count: int = 1, timeout: float = 30.0) -> ZrtpSecrets:
        self.wait_until(lambda: len(self.zrtp_secrets()) >= count, "ZRTP SAS", timeout)
        return self.zrtp_secrets()[count - 1]
