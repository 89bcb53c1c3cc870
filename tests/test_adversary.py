"""Two pidphones in a secured call while an attacker process hammers their media ports, as
real processes on loopback: direct over TLS, and through Kamailio.

The attacker (tests/peers/attacker.py) watches the traffic and, from addresses of its own,
sends forged ZRTP messages of every type with valid CRCs at every phase of the exchange (with
random SSRCs, and with the senders' real ones), junk and oversized datagrams all along, and
once SRTP flows, replayed, truncated and bit-flipped SRTP and SRTCP, plus every ZRTP message
again, also under the other phone's own address. The call must stay secure with one SAS and
no loss of security, no clear audio on the wire (tshark), the tones must get through both
ways, and each phone's counters must show the drops.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pidphone.drivers.certs import Pki
from pidphone.rtp.classify import PacketKind
from tests.peers.attacker import AttackerRun
from tests.peers.capture import Capture, Datagram
from tests.peers.interop import PidphoneRun, Rig, has_tone, interop_rig, need_interop

pytestmark = [pytest.mark.kamailio, pytest.mark.slow]

ALICE_TONE = 1000.0
BOB_TONE = 700.0
CALL_SECONDS = 6.5
"""Long enough for each phone's first RTCP report (5 s), so SRTCP is attacked too."""
TAG_BYTES = {"HS80": 10, "HS32": 4, "GCM": 16}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    need_interop(linphone=False)
    with interop_rig(tmp_path_factory.mktemp("adversary")) as rig:
        yield rig


def direct_config(path: Path, pki: Pki, tone: float, listen: int | None = None) -> Path:
    """A pidphone without account: it calls sips: URIs directly, or listens on `listen`."""
    server = f'ca_file = "{pki.ca_cert}"\nkeepalive_interval = 0\n'
    if listen is not None:  # any TLS client may call: these calls are about the media path
        server += (
            f'listen = "127.0.0.1:{listen}"\nlisten_anyone = true\n'
            f'client_cert = "{pki.server_cert}"\nclient_key = "{pki.server_key}"\n'
        )
    text = (
        f'hardware = "simulated"\n\n[server]\n{server}\n[security]\nzrtp_policy = "require"\n'
        f'zid_cache = "{path.with_suffix(".zid.json")}"\n\n[sim]\ntone_frequency = {tone}\n'
        # G.711: every SRTP packet on the wire has one size, which the wire check relies on
        '\n[audio]\ncodecs = ["PCMU"]\n'
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


def wait_listening(port: int, run: PidphoneRun, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if run.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"pidphone answer is not listening:\n{run.describe()}")
        time.sleep(0.05)


def assert_survived(
    alice: dict[str, Any], bob: dict[str, Any], attack: dict[str, Any], wire: list[Datagram]
) -> None:
    # the call stayed secure, with one SAS and no loss of security at either end
    for report in (alice, bob):
        assert report["state"] == "secure" and report["security_lost"] == "", report
        assert report["clear_packets_sent"] == 0, report
    assert alice["sas"] == bob["sas"] and alice["sas"], (alice["sas"], bob["sas"])
    assert not alice["cache_mismatch"] and not bob["cache_mismatch"]
    # audio kept flowing both ways
    assert has_tone(alice["received_frequencies"], BOB_TONE), alice
    assert has_tone(bob["received_frequencies"], ALICE_TONE), bob
    # the attack struck every phase of the exchange, and after it
    phases = {phase.rsplit(" ", 1)[1] for phase in attack["phases"]}
    for phase in ("Hello", "HelloACK", "Commit", "DHPart1", "DHPart2", "Confirm1", "Confirm2"):
        assert phase in phases, (phase, sorted(phases))
    assert "secure" in phases and attack["secure_seen"], attack
    sent = attack["sent"]
    for kind in ("zrtp_off_path", "zrtp_on_path", "zrtp_spoofed", "junk", "oversize"):
        assert sent.get(kind, 0) > 0, sent
    # a post-quantum call (the default): its Commit and DHPart1 came in fragments, and
    # fragments forged from them went to both phones, from anywhere and as the other phone
    assert alice["post_quantum"] and bob["post_quantum"]
    assert sent.get("fragment_on_path", 0) > 0 and sent.get("fragment_spoofed", 0) > 0, sent
    for kind in ("srtp_replay", "srtp_truncated", "srtcp_replay", "srtcp_truncated"):
        assert sent.get(kind, 0) > 0, sent
    # each phone counted what it dropped, by reason
    for report in (alice, bob):
        drops = report["drops"]
        assert drops.get("oversize", 0) > 0 and drops.get("garbage", 0) > 0, drops
        assert drops.get("zrtp_crc", 0) > 0 and drops.get("zrtp_malformed", 0) > 0, drops
        assert drops.get("zrtp_foreign_ssrc", 0) > 0, drops  # off-path forgeries
        assert drops.get("zrtp_source", 0) > 0, drops  # after SECURE, from elsewhere
        assert drops.get("zrtp_after_secure", 0) > 0, drops  # spoofed as the peer
        assert drops.get("srtp_replay", 0) > 0 and drops.get("srtp_auth", 0) > 0, drops
        assert drops.get("srtcp_replay", 0) + drops.get("srtcp_auth", 0) > 0, drops
    # on the wire: every RTP datagram the phones sent is SRTP (G.711 20 ms + the tag)
    srtp_len = 12 + 160 + TAG_BYTES[alice["auth_tag"]]
    from_phones = [d for d in wire if d.src == "127.0.0.1" and d.kind is PacketKind.RTP]
    assert len(from_phones) > 100
    assert {len(d.payload) for d in from_phones} == {srtp_len}


def attacked_call(rig: Rig, name: str, start: Any) -> tuple[Any, Any, Any, list[Datagram]]:
    workdir = rig.workdir / name
    with Capture(workdir / "media.pcapng", "udp") as capture:
        attacker = AttackerRun(workdir, spoof=True)
        try:
            alice_run, bob_run = start(workdir)
            at_alice = alice_run.result(timeout=60)
            at_bob = bob_run.result(timeout=30)
        finally:
            attack = attacker.stop()
    assert alice_run.returncode == 0, alice_run.describe()
    assert bob_run.returncode == 0, bob_run.describe()
    return at_alice, at_bob, attack, capture.datagrams()


def test_a_direct_call_stays_secure_under_attack(rig: Rig) -> None:
    port = 5071

    def start(workdir: Path) -> tuple[PidphoneRun, PidphoneRun]:
        bob_config = direct_config(workdir / "bob" / "bob.toml", rig.pki, BOB_TONE, port)
        alice_config = direct_config(workdir / "alice" / "alice.toml", rig.pki, ALICE_TONE)
        bob = PidphoneRun.answer(bob_config, duration=30, name="answer")
        rig._runs.append(bob)
        wait_listening(port, bob)
        alice = PidphoneRun.call(
            alice_config, f"sips:bob@127.0.0.1:{port}", duration=CALL_SECONDS, name="call"
        )
        rig._runs.append(alice)
        return alice, bob

    assert_survived(*attacked_call(rig, "direct", start))


def test_a_call_through_kamailio_stays_secure_under_attack(rig: Rig) -> None:
    def start(workdir: Path) -> tuple[PidphoneRun, PidphoneRun]:
        bob = rig.answer(rig.config("bob", tone=BOB_TONE), duration=30)
        alice = rig.call(
            rig.config("alice", tone=ALICE_TONE), "sip:bob@127.0.0.1", duration=CALL_SECONDS
        )
        return alice, bob

    assert_survived(*attacked_call(rig, "kamailio", start))
