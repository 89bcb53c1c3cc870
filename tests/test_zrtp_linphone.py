"""ZrtpSession against a real bzrtp: linphonec calls a minimal SIP responder (plain UDP, no
registrar) whose media socket runs pidphone's ZRTP. Both sides must show the same SAS, with the
algorithms linphonec was told to use, and the retained secret and V flag must carry over from
call to call. The full SIP/TLS/SRTP call belongs to the end-to-end tests; this checks ZRTP
alone, early. Runs in a private network namespace (tests/peers/netns.py)."""

from __future__ import annotations

import re
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pidphone.drivers.zid_cache import FileZidCache
from pidphone.zrtp import Secured, ZrtpConfig, ZrtpFailed, ZrtpSession
from tests.conftest import need_program
from tests.peers.netns import need_private_network, private_network

pytestmark = pytest.mark.linphone

SIP_PORT, LINPHONE_SIP_PORT, MEDIA_PORT, LINPHONE_RTP_PORT = 5080, 5070, 20000, 17078
SAS_LINE = re.compile(r"ZRTP secrets on: SAS is (\S+) previously verified (yes|no)")
ALGO_LINE = re.compile(r"ZRTP algo used during negotiation: (.*)")


@pytest.fixture(scope="module")
def network() -> Iterator[None]:
    need_program("linphonec", "linphone-cli")
    need_private_network()
    with private_network():
        yield


@dataclass
class Call:
    ours: Secured
    theirs_sas: str
    theirs_verified: bool
    theirs_algorithms: str


class Linphonec:
    """One headless linphonec with its own HOME (and so its own ZID cache)."""

    def __init__(self, home: Path, suites: dict[str, str]) -> None:
        self.home = home
        (home / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        lines = "\n".join(f"{key}={value}" for key, value in suites.items())
        (home / "linphonerc").write_text(
            f"[sip]\nsip_port={LINPHONE_SIP_PORT}\nsip_tcp_port=0\nsip_tls_port=0\nuse_ipv6=0\n"
            "media_encryption=zrtp\nmedia_encryption_mandatory=1\n"
            "register_only_when_network_is_up=0\nauto_net_state_mon=0\nguess_hostname=0\n"
            f"{lines}\n[rtp]\naudio_rtp_port={LINPHONE_RTP_PORT}\nvideo_rtp_port=18078\n"
            "[sound]\nechocancellation=0\n[video]\nenabled=0\ncapture=0\ndisplay=0\n"
        )
        self.log = home / "debug.log"
        self.process = subprocess.Popen(
            [
                "timeout",
                "300",
                "linphonec",
                "-c",
                str(home / "linphonerc"),
                "-d",
                "6",
                "-l",
                str(self.log),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
            cwd=home,
            text=True,
        )
        self.command("soundcard use files")
        self._wait_for("Creating listening point")

    def _wait_for(self, text: str, count: int = 1) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.log.exists() and self.log.read_text(errors="replace").count(text) >= count:
                time.sleep(0.3)
                return
            time.sleep(0.05)
        raise AssertionError(f"linphonec never logged {text!r} {count} times")

    def set_verified(self, session: int) -> None:
        """Mark the SAS of the `session`-th exchange verified. liblinphone's core drops the
        command if it arrives before the core has taken in that exchange's SAS, which it logs
        as "Authentication token is" after mediastreamer's "ZRTP secrets on" line."""
        self._wait_for("Authentication token is ", session)
        self.command("zrtp-set-verified")

    def wait_ended(self, calls: int) -> None:
        """Until linphonec has ended `calls` calls in all (it releases one only when its BYE
        transaction is over, and nobody answers that BYE here)."""
        self._wait_for("to LinphoneCallEnd", calls)

    def command(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def sessions(self) -> list[tuple[str, bool, str]]:
        """(SAS, previously verified, algorithms) of every ZRTP session so far, in order."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        sas = SAS_LINE.findall(text)
        algorithms = ALGO_LINE.findall(text)
        return [(s, v == "yes", a.strip()) for (s, v), a in zip(sas, algorithms, strict=False)]

    def stop(self) -> None:
        self.command("quit")
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def answer_invite(sip: socket.socket, hello_hash: str) -> str | None:
    """Answer linphonec's INVITE with 200 OK and our SDP; return its a=zrtp-hash."""
    data, source = sip.recvfrom(65535)
    head, _, body = data.decode().partition("\r\n\r\n")
    fields = [line.partition(":") for line in head.split("\r\n")[1:]]
    copied = [
        f"{k}: {v.strip()}" for k, _, v in fields if k.lower() in {"via", "from", "call-id", "cseq"}
    ]
    to = next(v.strip() for k, _, v in fields if k.lower() == "to")
    sdp = (
        "v=0\r\no=pidphone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {MEDIA_PORT} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=zrtp-hash:{hello_hash}\r\n"
    )
    reply = "\r\n".join(
        [
            "SIP/2.0 200 OK",
            *copied,
            f"To: {to};tag=pidphone",
            f"Contact: <sip:pidphone@127.0.0.1:{SIP_PORT}>",
            "Content-Type: application/sdp",
            f"Content-Length: {len(sdp)}",
            "",
            sdp,
        ]
    )
    sip.sendto(reply.encode(), source)
    found = re.search(r"a=zrtp-hash:(\S+ \S+)", body)
    return found.group(1) if found else None


def one_call(
    peer: Linphonec, cache: FileZidCache, *, verify: bool, config: ZrtpConfig | None = None
) -> Call:
    before = len(peer.sessions())
    zrtp = ZrtpSession(cache=cache, ssrc=0x5049_4450, config=config or ZrtpConfig())
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sip,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as media,
    ):
        sip.bind(("127.0.0.1", SIP_PORT))
        media.bind(("127.0.0.1", MEDIA_PORT))
        sip.settimeout(15)
        peer.command(f"call sip:pidphone@127.0.0.1:{SIP_PORT}")
        peer_hash = answer_invite(sip, zrtp.hello_hash)
        assert peer_hash is not None
        zrtp.set_peer_hello_hash(peer_hash, 0.0)
        origin = time.monotonic()
        zrtp.start(0.0)
        secured: Secured | None = None
        # until both ends are done: linphonec may log its SAS before our last packet is in
        while time.monotonic() - origin < 30 and (
            secured is None or len(peer.sessions()) <= before
        ):
            for packet in zrtp.datagrams_to_send():
                media.sendto(packet, ("127.0.0.1", LINPHONE_RTP_PORT))
            timer = zrtp.get_timer()
            now = time.monotonic() - origin
            wait = 0.05 if timer is None else min(0.05, max(0.0, timer - now))
            readable, _, _ = select.select([media, sip], [], [], wait)
            now = time.monotonic() - origin
            if media in readable:
                data = media.recv(2048)
                if data[:1] == b"\x10" and data[4:8] == b"ZRTP":
                    zrtp.receive_datagram(data, now)
                else:
                    zrtp.srtp_authenticated(now)  # linphonec's SRTP (not decrypted here)
            if sip in readable:
                sip.recv(65535)  # the ACK
            timer = zrtp.get_timer()
            if timer is not None and timer <= now:
                zrtp.handle_timer(now)
            while (event := zrtp.next_event()) is not None:
                assert not isinstance(event, ZrtpFailed), event
                if isinstance(event, Secured):
                    secured = event
        assert secured is not None, "no Secured event"
        if verify:
            zrtp.confirm_sas(True)
            peer.set_verified(before + 1)
            time.sleep(0.5)
        peer.command("terminate all")
        peer.wait_ended(before + 1)  # the next call finds linphonec without one
    sas, verified, algorithms = peer.sessions()[before]
    return Call(secured, sas, verified, algorithms)


X255_SUITES = {
    "zrtp_key_agreements_suites": "MS_ZRTP_KEY_AGREEMENT_X255",
    "zrtp_cipher_suites": "MS_ZRTP_CIPHER_AES3",
    "zrtp_auth_suites": "MS_ZRTP_AUTHTAG_HS32",
    "zrtp_hash_suites": "MS_ZRTP_HASH_S384",
    "zrtp_sas_suites": "MS_ZRTP_SAS_B256",
}
# whichever side wins the Commit contention picks, so both prefer the same algorithms
SUITES: dict[str, tuple[dict[str, str], ZrtpConfig, tuple[str, ...]]] = {
    "default DH3k": ({}, ZrtpConfig(key_agreements=("DH3k",)), ("DH3k", "AES1", "HS80", "S256")),
    "X255 AES3 HS32 S384 B256": (
        X255_SUITES,
        ZrtpConfig(
            key_agreements=("X255",),
            ciphers=("AES3",),
            auth_tags=("HS32",),
            hashes=("S384",),
            sas_types=("B256",),
        ),
        ("X255", "AES3", "HS32", "S384", "B256"),
    ),
    "X448": (
        {"zrtp_key_agreements_suites": "MS_ZRTP_KEY_AGREEMENT_X448"},
        ZrtpConfig(key_agreements=("X448",)),
        ("X448",),
    ),
    "DH2k": (
        {"zrtp_key_agreements_suites": "MS_ZRTP_KEY_AGREEMENT_DH2K"},
        ZrtpConfig(key_agreements=("DH2k",)),
        ("DH2k",),
    ),
}


@pytest.mark.parametrize("name", list(SUITES))
def test_same_sas_as_linphonec(network: None, tmp_path: Path, name: str) -> None:
    suites, config, expected = SUITES[name]
    peer = Linphonec(tmp_path / "linphone", suites)
    try:
        call = one_call(peer, FileZidCache(tmp_path / "zid.json"), verify=False, config=config)
    finally:
        peer.stop()
    ours = call.ours
    assert ours.sas == call.theirs_sas
    chosen = (ours.key_agreement, ours.cipher, ours.auth_tag, ours.hash, ours.sas_scheme)
    assert chosen[: len(expected)] == expected
    assert not ours.verified and not call.theirs_verified and not ours.cache_mismatch


def test_retained_secret_and_verified_flag_carry_over(network: None, tmp_path: Path) -> None:
    peer = Linphonec(tmp_path / "linphone", {})
    cache = FileZidCache(tmp_path / "zid.json")
    try:
        calls = [
            one_call(peer, cache, verify=False),
            one_call(peer, cache, verify=True),
            one_call(peer, cache, verify=False),
        ]
    finally:
        peer.stop()
    assert [c.ours.sas for c in calls] == [c.theirs_sas for c in calls]
    assert not any(c.ours.cache_mismatch for c in calls)
    assert [c.ours.verified for c in calls] == [False, False, True]
    assert [c.theirs_verified for c in calls] == [False, False, True]
    entry = cache.load(calls[0].ours.peer_zid)
    assert entry is not None and entry.verified and entry.rs2 is not None
