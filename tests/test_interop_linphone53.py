"""pidphone against linphonec 5.3 (liblinphone 5.3.105, Debian 13) through Kamailio over TLS.

Debian 13's linphone-cli runs from a Debian 13 root (scripts/debian-root.sh linphone-trixie) in
a chroot. Besides the secured calls both ways (the same SAS at both ends, a tone each way
through SRTP), it tells apart RTP and RTCP sent from different ports: linphonec 5.3 declines
a=rtcp-mux yet sends its RTCP to our RTP port, from its own RTCP port. While it sends no RTP
(its microphone stopped), that RTCP must not draw our audio away from its RTP port.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pidphone.rtp.classify import PacketKind
from tests.conftest import need_program
from tests.peers.capture import Capture
from tests.peers.debian_root import debian_root
from tests.peers.interop import (
    Rig,
    ZrtpSuite,
    has_tone,
    interop_rig,
    need_interop,
    same_sas,
    wav_frequencies,
)
from tests.peers.wav import tone_level

pytestmark = [pytest.mark.kamailio, pytest.mark.linphone, pytest.mark.slow]

PIDPHONE_TONE = 1000.0
LINPHONE_TONE = 700.0


@pytest.fixture(scope="module")
def trixie() -> Path:
    need_interop(linphone=False)
    return debian_root("linphone-trixie")


@pytest.fixture(scope="module")
def module_rig(trixie: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with interop_rig(tmp_path_factory.mktemp("interop-53")) as rig:
        yield rig


@pytest.fixture
def rig(module_rig: Rig) -> Iterator[Rig]:
    yield module_rig
    module_rig.close()


def test_the_peer_is_linphonec_5_3(rig: Rig, trixie: Path) -> None:
    linphone = rig.linphone("linphone", tone=LINPHONE_TONE, root=trixie)
    version = re.search(r"Initializing LinphoneCore (\S+)", linphone.log())
    assert version is not None and version.group(1).startswith("5.3."), linphone.log_tail()


def test_x25519_and_pgp_words_with_linphonec_5_3(rig: Rig, trixie: Path) -> None:
    """5.3 names the X255 key agreement "X25519" (5.1: "ECDH-255")."""
    suite = ZrtpSuite("X255", "AES3", "HS32", "S384", "B256")
    linphone = rig.linphone(
        "linphone", tone=LINPHONE_TONE, auto_answer=True, root=trixie, suite=suite
    )
    config = rig.config("alice", tone=PIDPHONE_TONE, suite=suite)
    report = rig.call(config, linphone.uri, duration=2).result(timeout=60)
    assert report["state"] == "secure", report
    (secrets,) = linphone.zrtp_secrets()
    assert same_sas(report["sas"], secrets.sas), (report["sas"], secrets.sas)
    algorithms = linphone.zrtp_algorithms()
    assert algorithms is not None
    expected = {**suite.linphone_names(), "key_agreement": "X25519"}
    assert dataclasses.asdict(algorithms) == expected


def test_pidphone_calls_linphonec_5_3(rig: Rig, trixie: Path) -> None:
    linphone = rig.linphone("linphone", tone=LINPHONE_TONE, auto_answer=True, root=trixie)
    config = rig.config("alice", tone=PIDPHONE_TONE)
    run = rig.call(config, linphone.uri, duration=3)
    report = run.result(timeout=60)
    linphone.wait_call_state("End", timeout=15)

    assert run.returncode == 0, run.describe()
    assert report["state"] == "secure", run.describe()
    (secrets,) = linphone.zrtp_secrets()
    assert same_sas(report["sas"], secrets.sas), (report["sas"], secrets.sas)
    assert has_tone(report["received_frequencies"], LINPHONE_TONE), report
    heard = wav_frequencies(linphone.recording(1))
    assert has_tone(heard, PIDPHONE_TONE), heard


def test_linphonec_5_3_calls_pidphone(rig: Rig, trixie: Path) -> None:
    config = rig.config("bob", tone=PIDPHONE_TONE)
    run = rig.answer(config, duration=30)
    linphone = rig.linphone("linphone", tone=LINPHONE_TONE, root=trixie)
    linphone.call("sip:bob@127.0.0.1")
    secrets = linphone.wait_zrtp(timeout=30)
    linphone.wait_call_state("StreamsRunning")
    time.sleep(3)
    linphone.terminate()
    report = run.result(timeout=30)

    assert run.returncode == 0, run.describe()
    assert report["state"] == "secure", run.describe()
    assert same_sas(report["sas"], secrets.sas), (report["sas"], secrets.sas)
    assert has_tone(report["received_frequencies"], LINPHONE_TONE), report
    linphone.wait_call_state("End", timeout=10)
    heard = wav_frequencies(linphone.recording(1))
    assert has_tone(heard, PIDPHONE_TONE), heard


def test_a_silent_linphonec_5_3_still_hears_pidphone(
    rig: Rig, trixie: Path, tmp_path: Path
) -> None:
    need_program("tshark", "tshark")
    linphone = rig.linphone("linphone", tone=LINPHONE_TONE, auto_answer=True, root=trixie)
    config = rig.config("alice", tone=PIDPHONE_TONE)
    with Capture(tmp_path / "call.pcapng") as capture:
        run = rig.call(config, linphone.uri, duration=16)
        linphone.wait_zrtp(timeout=30)
        linphone.wait_call_state("StreamsRunning")
        time.sleep(2)
        # A microphone file that cannot be opened: its file player stops, and so does its RTP;
        # RTCP goes on (every few seconds).
        linphone.command(f"play {linphone.home.parent / 'no-such-file.wav'}")
        report = run.result(timeout=60)
        linphone.wait_call_state("End", timeout=15)

    assert run.returncode == 0, run.describe()
    assert report["state"] == "secure", run.describe()
    ours = next(
        d.src_port
        for d in capture.datagrams()
        if d.dst_port == linphone.rtp_port and d.kind is PacketKind.RTP
    )
    theirs = [d for d in capture.datagrams() if d.dst_port == ours]
    last_rtp = max(d.time for d in theirs if d.kind is PacketKind.RTP)
    silent_rtcp = [
        d
        for d in theirs
        if d.kind is PacketKind.RTCP and d.src_port == linphone.rtp_port + 1 and d.time > last_rtp
    ]
    spoken = [d for d in theirs if d.kind is PacketKind.RTP and d.src_port == linphone.rtp_port]
    end = max(d.time for d in capture.datagrams())
    assert len(spoken) > 50, len(spoken)  # it spoke first
    assert end - last_rtp > 8 and silent_rtcp, (end - last_rtp, len(silent_rtcp))
    # The last seconds of what it heard, long after it fell silent and sent RTCP: our tone.
    heard = linphone.recording(1)
    level = tone_level(heard, PIDPHONE_TONE, skip_end=1.0, window=4.0)
    assert level.dominates(tone_level(heard, LINPHONE_TONE, skip_end=1.0, window=4.0)), level
