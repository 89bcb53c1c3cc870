"""pidphone against linphonec (liblinphone 5.1, bzrtp) through Kamailio over TLS, in both
directions, with each side's default ZRTP preferences (issue 5's acceptance test).

ZRTP completes with the same SAS on both sides (linphonec's from its debug log, pidphone's
from `--json`); a tone goes each way through SRTP (pidphone reports the frequencies it
received; linphonec records what it hears to a WAV, analysed here); the call ends with a BYE
from either side; a hold and resume keep the ZRTP session. On the wire (tshark on `lo`),
pidphone's media is SRTP from the start: no RTP before the ZRTP Confirm messages, every
packet carries the negotiated tag, and the tone that linphonec hears is nowhere in the
payloads. One Kamailio in a private network namespace for the module.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pidphone.audio.analysis import goertzel_power, rms
from pidphone.audio.g711 import ulaw_decode
from pidphone.rtp.classify import PacketKind
from tests.conftest import need_program
from tests.peers.capture import Capture
from tests.peers.interop import (
    Rig,
    has_tone,
    interop_rig,
    need_interop,
    same_sas,
    wav_frequencies,
)

pytestmark = [pytest.mark.kamailio, pytest.mark.linphone, pytest.mark.slow]

PIDPHONE_TONE = 1000.0
LINPHONE_TONE = 700.0


@pytest.fixture(scope="module")
def module_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    need_interop()
    need_program("tshark", "tshark")
    with interop_rig(tmp_path_factory.mktemp("interop-calls")) as rig:
        yield rig


@pytest.fixture
def rig(module_rig: Rig) -> Iterator[Rig]:
    yield module_rig
    module_rig.close()


def test_pidphone_calls_linphonec_and_hangs_up(rig: Rig, tmp_path: Path) -> None:
    linphone = rig.linphone("linphone", tone=LINPHONE_TONE, auto_answer=True)
    config = rig.config("alice", tone=PIDPHONE_TONE)
    with Capture(tmp_path / "call.pcapng") as capture:
        run = rig.call(config, linphone.uri, duration=3)
        report = run.result(timeout=60)
        linphone.wait_call_state("End", timeout=15)  # our BYE reached it through Kamailio

    assert run.returncode == 0, run.describe()
    assert report["state"] == "secure", run.describe()
    secrets = linphone.zrtp_secrets()
    assert len(secrets) == 1
    assert same_sas(report["sas"], secrets[0].sas), (report["sas"], secrets[0].sas)
    assert report["sas_scheme"] == "B32" and len(report["sas"]) == 4
    assert not report["verified"] and not secrets[0].previously_verified
    # both ends agree on what was negotiated
    algorithms = linphone.zrtp_algorithms()
    assert algorithms is not None
    assert algorithms.cipher == {"AES1": "AES-128", "AES3": "AES-256"}[report["cipher"]]
    assert algorithms.hash == {"S256": "SHA-256", "S384": "SHA-384"}[report["hash"]]
    # audio both ways, decrypted at both ends
    assert has_tone(report["received_frequencies"], LINPHONE_TONE), report
    heard = wav_frequencies(linphone.recording(1))
    assert has_tone(heard, PIDPHONE_TONE), heard
    assert report["packets_received"] > 50 and report["packets_sent"] > 50
    assert "End" in linphone.call_states()
    assert any("proto=tls" in line for line in rig.kamailio.requests("BYE"))

    # on the wire: what pidphone sent to linphonec's media port
    sent = [
        d
        for d in capture.datagrams()
        if d.dst_port == linphone.rtp_port and d.src_port != linphone.rtp_port
    ]
    confirms = [d.time for d in sent if d.kind is PacketKind.ZRTP and b"Confirm" in d.payload]
    rtp = [d for d in sent if d.kind is PacketKind.RTP]
    assert confirms and len(rtp) > 50
    assert min(d.time for d in rtp) > min(confirms)  # no media before the keys
    tag = {"HS80": 10, "HS32": 4}[report["auth_tag"]]
    assert {len(d.payload) for d in rtp} == {12 + 160 + tag}  # PCMU 20 ms + SRTP tag
    assert all(d.rtp_payload_type == 0 for d in rtp)
    # decoded as if clear, the payloads are noise: a tone would hold about all of the power
    on_the_wire = ulaw_decode(b"".join(d.payload[12:172] for d in rtp))
    assert goertzel_power(on_the_wire, PIDPHONE_TONE) < 0.01 * rms(on_the_wire) ** 2


def test_linphonec_calls_pidphone_and_hangs_up(rig: Rig) -> None:
    config = rig.config("bob", tone=PIDPHONE_TONE)
    run = rig.answer(config, duration=30)
    linphone = rig.linphone("linphone", tone=LINPHONE_TONE)
    linphone.call("sip:bob@127.0.0.1")
    secrets = linphone.wait_zrtp(timeout=30)
    linphone.wait_call_state("StreamsRunning")
    # let the tones flow for a while, then linphonec hangs up
    time.sleep(3)
    linphone.terminate()
    report = run.result(timeout=30)

    assert run.returncode == 0, run.describe()
    assert report["state"] == "secure", run.describe()
    assert same_sas(report["sas"], secrets.sas), (report["sas"], secrets.sas)
    assert report["reason"] == "Hung up by peer", report
    assert has_tone(report["received_frequencies"], LINPHONE_TONE), report
    linphone.wait_call_state("End", timeout=10)
    heard = wav_frequencies(linphone.recording(1))
    assert has_tone(heard, PIDPHONE_TONE), heard


def test_hold_and_resume_keep_the_zrtp_session(rig: Rig) -> None:
    config = rig.config("bob", tone=PIDPHONE_TONE)
    run = rig.answer(config, duration=30)
    linphone = rig.linphone("linphone", tone=LINPHONE_TONE)
    linphone.call("sip:bob@127.0.0.1")
    secrets = linphone.wait_zrtp(timeout=30)
    time.sleep(1)
    linphone.pause()  # re-INVITE, sendonly
    linphone.wait_call_state("Paused", timeout=10)
    time.sleep(1)
    linphone.resume()  # re-INVITE, sendrecv: the same stream, so the same SRTP keys
    linphone.wait_call_state("StreamsRunning", count=2, timeout=10)
    time.sleep(2.5)
    linphone.terminate()
    report = run.result(timeout=30)
    linphone.wait_call_state("End", timeout=10)

    assert run.returncode == 0, run.describe()
    assert report["state"] == "secure" and same_sas(report["sas"], secrets.sas)
    assert len(linphone.zrtp_secrets()) == 1  # no second key agreement for the re-INVITEs
    assert has_tone(report["received_frequencies"], LINPHONE_TONE), report
    heard_after_resume = wav_frequencies(linphone.recording(1), last=1.5)
    assert has_tone(heard_after_resume, PIDPHONE_TONE), heard_after_resume
