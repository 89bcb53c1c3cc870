"""A peer without ZRTP: linphonec with media_encryption=none, through Kamailio over TLS.

liblinphone does ZRTP opportunistically, even with encryption none: it answers a=zrtp-hash
with its own, and its idle ZRTP engine starts when a Hello reaches it. So in this module
Kamailio removes a=zrtp-hash from the SDP it relays and points pidphone at a relay in front of
linphonec's media port that drops ZRTP packets (tests/peers/nozrtp.py): together, a phone
that ignores ZRTP and sends clear RTP.

Under the "require" policy pidphone ends the call with the clear reason "Peer does not support
ZRTP", and not one RTP packet leaves it: a tshark capture on `lo` (the only interface of the
test's network namespace) sees pidphone's ZRTP Hellos but no RTP or RTCP from its port, while
linphonec's own clear RTP shows the capture does see media. Under "prefer" the call goes on
in the clear, marked NOT SECURE, with audio both ways.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pidphone.rtp.classify import PacketKind
from tests.conftest import need_program
from tests.peers.capture import Capture, Datagram
from tests.peers.interop import (
    Rig,
    has_tone,
    interop_rig,
    need_interop,
    wav_frequencies,
)
from tests.peers.nozrtp import ZrtpDropRelay

pytestmark = [pytest.mark.kamailio, pytest.mark.linphone, pytest.mark.slow]

NO_ZRTP = "Peer does not support ZRTP"
LINPHONE_PORT = 17078
RELAY_PORT = 27078


@pytest.fixture(scope="module")
def module_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    need_interop()
    need_program("tshark", "tshark")
    with interop_rig(tmp_path_factory.mktemp("interop-nozrtp"), no_zrtp=True) as rig:
        yield rig


@pytest.fixture
def relay(module_rig: Rig) -> Iterator[ZrtpDropRelay]:
    dropper = ZrtpDropRelay(port=RELAY_PORT, target=LINPHONE_PORT)
    try:
        yield dropper
    finally:
        dropper.close()


@pytest.fixture
def rig(module_rig: Rig, relay: ZrtpDropRelay) -> Iterator[Rig]:
    yield module_rig
    module_rig.close()


def kinds(datagrams: list[Datagram]) -> dict[PacketKind, int]:
    counted: dict[PacketKind, int] = {}
    for datagram in datagrams:
        counted[datagram.kind] = counted.get(datagram.kind, 0) + 1
    return counted


def split(capture: Capture) -> tuple[list[Datagram], list[Datagram]]:
    """(what linphonec and the relay sent, what pidphone sent) over UDP."""
    theirs = {LINPHONE_PORT, LINPHONE_PORT + 1, RELAY_PORT, RELAY_PORT + 1}
    datagrams = capture.datagrams()
    return (
        [d for d in datagrams if d.src_port in theirs],
        [d for d in datagrams if d.src_port not in theirs],
    )


def test_require_policy_ends_the_call_and_sends_no_rtp(
    rig: Rig, relay: ZrtpDropRelay, tmp_path: Path
) -> None:
    linphone = rig.linphone("linphone", tone=700, encryption="none", auto_answer=True)
    config = rig.config("alice", tone=1000, policy="require", hello_timeout=3)
    with Capture(tmp_path / "require.pcapng") as capture:
        run = rig.call(config, linphone.uri, duration=20)
        report = run.result(timeout=60)
        linphone.wait_call_state("End", timeout=15)

    assert run.returncode == 3, run.describe()  # answered, not secure
    assert report["state"] != "secure" and not report["ok"]
    assert report["reason"] == NO_ZRTP, report
    assert report["sas"] == ""
    assert report["packets_sent"] == 0, report
    from_linphone, from_pidphone = split(capture)
    # the capture saw media: linphonec sends its audio in the clear
    assert kinds(from_linphone).get(PacketKind.RTP, 0) > 20, kinds(from_linphone)
    # pidphone offered ZRTP on the media path, and sent nothing else there
    ours = kinds(from_pidphone)
    assert ours.get(PacketKind.ZRTP, 0) > 0, ours
    assert relay.dropped > 0  # and linphonec never saw them
    assert ours.get(PacketKind.RTP, 0) == 0, ours
    assert ours.get(PacketKind.RTCP, 0) == 0, ours


def test_require_policy_when_the_peer_without_zrtp_calls(
    rig: Rig, relay: ZrtpDropRelay, tmp_path: Path
) -> None:
    config = rig.config("bob", tone=1000, policy="require", hello_timeout=3)
    run = rig.answer(config, duration=30)
    linphone = rig.linphone("linphone", tone=700, encryption="none")
    with Capture(tmp_path / "require-in.pcapng") as capture:
        linphone.call("sip:bob@127.0.0.1")
        report = run.result(timeout=60)
        linphone.wait_call_state("End", timeout=15)

    assert run.returncode == 3, run.describe()  # answered, not secure
    assert report["reason"] == NO_ZRTP, report
    from_linphone, from_pidphone = split(capture)
    assert kinds(from_linphone).get(PacketKind.RTP, 0) > 20
    ours = kinds(from_pidphone)
    assert ours.get(PacketKind.ZRTP, 0) > 0, ours
    assert relay.dropped > 0  # and linphonec never saw them
    assert ours.get(PacketKind.RTP, 0) == 0, ours
    assert ours.get(PacketKind.RTCP, 0) == 0, ours


def test_prefer_policy_goes_on_in_the_clear_marked_not_secure(rig: Rig) -> None:
    linphone = rig.linphone("linphone", tone=700, encryption="none", auto_answer=True)
    config = rig.config("alice", tone=1000, policy="prefer", hello_timeout=2)
    run = rig.call(config, linphone.uri, duration=8)  # the not-secure tone, then 5 s of audio
    report = run.result(timeout=60)
    linphone.wait_call_state("End", timeout=15)

    assert run.returncode == 3, run.describe()  # as the policy allows, but not secure
    assert report["state"] == "insecure" and report["ok"], report
    assert report["sas"] == ""
    assert has_tone(report["received_frequencies"], 700), report
    heard = wav_frequencies(linphone.recording(1))
    assert has_tone(heard, 1000), heard


def test_require_policy_a_transfer_to_a_peer_without_zrtp_fails_with_the_reason(
    rig: Rig, relay: ZrtpDropRelay
) -> None:
    """Alice transfers Bob (both pidphone, "require") to linphonec without ZRTP: Bob's new
    call runs its own exchange, which fails; Bob tells Alice why (NOTIFY "488 Peer does not
    support ZRTP"), and Alice's transfer fails with that reason, her call with Bob still up."""
    linphone = rig.linphone("linphone", tone=700, encryption="none", auto_answer=True)
    bob = rig.answer(
        rig.config("bob", tone=500, policy="require", hello_timeout=3), duration=30, count=2
    )
    alice = rig.call(
        rig.config("alice", tone=1000, policy="require"),
        "sip:bob@127.0.0.1",
        duration=30,
        extra=["--transfer-to", linphone.uri, "--transfer-after", "2"],
    )
    at_alice = alice.result(timeout=90)
    bob.wait(60)
    first, referred = bob.reports()

    assert alice.returncode == 1, alice.describe()
    assert at_alice["state"] == "secure" and at_alice["transfer"] == f"Transfer failed: {NO_ZRTP}"
    assert at_alice["reason"] == "Hung up"  # the call with Bob came back; Alice ended it
    assert first["state"] == "secure" and first["reason"] == "Hung up by peer"
    assert referred["via"] == "referred" and referred["reason"] == NO_ZRTP, bob.describe()
    assert referred["sas"] == "" and not referred["ok"], referred
    assert relay.dropped > 0
