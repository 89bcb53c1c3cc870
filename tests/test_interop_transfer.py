"""Call transfer against linphonec (liblinphone 5.1, bzrtp) through Kamailio over TLS.

pidphone transfers linphonec to another pidphone, blind (REFER, linphonec follows it and
reports by NOTIFY) and attended (pidphone holds linphonec, calls the other pidphone first,
then joins them: linphonec sends an INVITE with Replaces that the other pidphone answers in
place of its call); and linphonec's own `transfer` command transfers its call with pidphone
to another pidphone. In every case the new call runs its own ZRTP exchange: both ends show
the same SAS, a different one from the first call's, and a tone goes each way through SRTP.
One Kamailio in a private network namespace for the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.peers.interop import (
    Rig,
    has_tone,
    interop_rig,
    need_interop,
    same_sas,
    wav_frequencies,
)

pytestmark = [pytest.mark.kamailio, pytest.mark.linphone, pytest.mark.slow]

ALICE_TONE = 1000.0
BOB_TONE = 500.0
LINPHONE_TONE = 700.0
BOB = "sip:bob@127.0.0.1"


@pytest.fixture(scope="module")
def module_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    need_interop()
    with interop_rig(tmp_path_factory.mktemp("interop-transfer")) as rig:
        yield rig


@pytest.fixture
def rig(module_rig: Rig) -> Iterator[Rig]:
    yield module_rig
    module_rig.close()


def secure_with_linphone(report: dict[str, Any], sas: str) -> None:
    assert report["state"] == "secure", report
    assert same_sas(report["sas"], sas), (report["sas"], sas)
    assert has_tone(report["received_frequencies"], LINPHONE_TONE), report


def test_pidphone_transfers_linphonec_blind_to_another_pidphone(rig: Rig) -> None:
    bob = rig.answer(rig.config("bob", tone=BOB_TONE), duration=4)
    linphone = rig.linphone("linphone", tone=LINPHONE_TONE, auto_answer=True)
    alice = rig.call(
        rig.config("alice", tone=ALICE_TONE),
        linphone.uri,
        duration=30,
        extra=["--transfer-to", BOB, "--transfer-after", "3"],
    )
    linphone.wait_zrtp(1)
    linphone.next_call(2)  # what linphonec hears in the call it is transferred into
    at_alice = alice.result(timeout=90)
    at_bob = bob.result(timeout=60)

    assert alice.returncode == 0, alice.describe()
    assert at_alice["transfer"] == "Transferred", alice.describe()
    assert bob.returncode == 0, bob.describe()
    secrets = linphone.wait_zrtp(2)
    first = linphone.zrtp_secrets()[0]
    secure_with_linphone(at_alice, first.sas)
    secure_with_linphone(at_bob, secrets.sas)  # its own exchange: bob and linphonec agree
    assert at_bob["sas"] != at_alice["sas"]
    assert "linphone" in at_bob["remote"]
    heard = wav_frequencies(linphone.recording(2))
    assert has_tone(heard, BOB_TONE), heard
    assert rig.kamailio.requests("REFER") and rig.kamailio.requests("NOTIFY")


def test_pidphone_transfers_linphonec_attended_to_another_pidphone(rig: Rig) -> None:
    bob = rig.answer(rig.config("bob", tone=BOB_TONE), duration=8, count=2)
    linphone = rig.linphone("linphone", tone=LINPHONE_TONE, auto_answer=True)
    alice = rig.call(
        rig.config("alice", tone=ALICE_TONE),
        linphone.uri,
        duration=30,
        extra=["--transfer-to", BOB, "--attended", "--transfer-after", "2"],
    )
    linphone.wait_zrtp(1)
    linphone.next_call(2)
    at_alice = alice.result(timeout=90)
    bob.wait(60)
    consultation, joined = bob.reports()

    assert alice.returncode == 0, alice.describe()
    assert at_alice["transfer"] == "Transferred", alice.describe()
    assert bob.returncode == 0, bob.describe()
    secure_with_linphone(at_alice, linphone.zrtp_secrets()[0].sas)
    # Alice talked to Bob first, secured on its own
    assert consultation["state"] == "secure" and consultation["via"] == ""
    assert consultation["sas"] == at_alice["consultation_sas"]
    assert consultation["reason"] == "Replaced by transfer"
    # then linphonec took Alice's place: INVITE with Replaces, answered at once, new SAS
    assert joined["via"] == "replaced" and "linphone" in joined["remote"]
    secure_with_linphone(joined, linphone.wait_zrtp(2).sas)
    assert joined["sas"] not in (at_alice["sas"], consultation["sas"])
    heard = wav_frequencies(linphone.recording(2))
    assert has_tone(heard, BOB_TONE), heard
    assert rig.kamailio.requests("REFER")


def test_linphonec_transfers_its_call_with_pidphone(rig: Rig) -> None:
    bob = rig.answer(rig.config("bob", tone=BOB_TONE), duration=4)
    alice = rig.answer(rig.config("alice", tone=ALICE_TONE), duration=30, count=2, name="alice")
    linphone = rig.linphone("linphone", tone=LINPHONE_TONE)
    linphone.call("sip:alice@127.0.0.1")
    first = linphone.wait_zrtp(1)
    linphone.wait_token(1)
    linphone.command(f"transfer 1 {BOB}")
    alice.wait(90)
    at_bob = bob.result(timeout=60)
    transferred, new = alice.reports()

    assert alice.returncode == 0, alice.describe()
    assert bob.returncode == 0, bob.describe()
    assert transferred["state"] == "secure" and same_sas(transferred["sas"], first.sas)
    assert transferred["reason"] in ("Transferred", "Hung up by peer")
    assert new["via"] == "referred" and new["state"] == "secure", alice.describe()
    assert new["sas"] == at_bob["sas"] and new["sas"] != transferred["sas"]
    assert has_tone(new["received_frequencies"], BOB_TONE), new
    assert has_tone(at_bob["received_frequencies"], ALICE_TONE), at_bob
    assert "alice" in at_bob["remote"]


def test_linphonec_joins_its_two_calls_with_pidphones(rig: Rig) -> None:
    """linphonec calls Alice, then Bob (Alice on hold), then `transfer 1 --to-call 2`: Alice
    gets a REFER with Replaces and calls Bob in linphonec's place; Bob answers it at once."""
    alice = rig.answer(rig.config("alice", tone=ALICE_TONE), duration=30, count=2, name="alice")
    bob = rig.answer(rig.config("bob", tone=BOB_TONE), duration=6, count=2, name="bob")
    linphone = rig.linphone("linphone", tone=LINPHONE_TONE)
    linphone.call("sip:alice@127.0.0.1")
    linphone.wait_zrtp(1)
    linphone.wait_token(1)
    linphone.next_call(2)
    linphone.pause()  # linphonec places a second call only with the first paused
    linphone.wait_call_state("Paused")
    linphone.call(BOB)
    linphone.wait_zrtp(2)
    linphone.wait_token(2)
    linphone.command("transfer 1 --to-call 2")
    alice.wait(90)
    bob.wait(60)
    first, referred = alice.reports()
    consultation, joined = bob.reports()

    assert alice.returncode == 0, alice.describe()
    assert bob.returncode == 0, bob.describe()
    secrets = linphone.zrtp_secrets()
    assert same_sas(first["sas"], secrets[0].sas) and same_sas(consultation["sas"], secrets[1].sas)
    assert referred["via"] == "referred" and joined["via"] == "replaced", (referred, joined)
    assert consultation["reason"] == "Replaced by transfer"
    # Alice and Bob: a call of their own, its own SAS, a tone each way
    assert referred["state"] == joined["state"] == "secure"
    assert referred["sas"] == joined["sas"]
    assert referred["sas"] not in (first["sas"], consultation["sas"])
    assert has_tone(referred["received_frequencies"], BOB_TONE), referred
    assert has_tone(joined["received_frequencies"], ALICE_TONE), joined
