"""The linphonec rig itself, as the end-to-end tests will use it: two linphonec over Kamailio
with ZRTP, their SAS, algorithms, verified flag and the tones each one heard."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pidphone.drivers.certs import Pki, make_test_pki
from pidphone.sdp import SessionDescription
from tests.conftest import need_path, need_program
from tests.peers.kamailio import Kamailio, tls_module
from tests.peers.linphone import Linphone
from tests.peers.netns import need_private_network, private_network
from tests.peers.wav import tone_level, write_tone

pytestmark = [pytest.mark.kamailio, pytest.mark.linphone, pytest.mark.slow]


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kamailio, Pki]]:
    need_program("kamailio", "kamailio")
    need_path(tls_module(), "kamailio-tls-modules")
    need_program("linphonec", "linphone-cli")
    need_private_network()
    pki = make_test_pki(tmp_path_factory.mktemp("pki"))
    with (
        private_network(),
        Kamailio(tmp_path_factory.mktemp("kamailio"), pki).started() as server,
    ):
        yield server, pki


def pair(
    workdir: Path, kamailio: Kamailio, pki: Pki, extra_sip: dict[str, str] | None = None
) -> tuple[Linphone, Linphone]:
    def phone(user: str, rtp_port: int, auto_answer: bool) -> Linphone:
        return Linphone(
            workdir,
            user,
            f"{user}pw",
            ca_file=pki.ca_cert,
            registrar=kamailio.address,
            rtp_port=rtp_port,
            media_encryption="zrtp",
            encryption_mandatory=True,
            auto_answer=auto_answer,
            extra_sip=extra_sip,
        )

    return phone("linphone", 17078, False), phone("lin2", 17178, True)


def test_zrtp_call_sas_tones_and_verified_flag(
    kamailio: tuple[Kamailio, Pki], tmp_path: Path
) -> None:
    server, pki = kamailio
    caller, callee = pair(tmp_path, server, pki)
    high = write_tone(tmp_path / "1000.wav", 1000)
    low = write_tone(tmp_path / "700.wav", 700)
    try:
        for phone in (caller, callee):
            phone.start()
        caller.use_files(play=high, record=tmp_path / "caller-heard.wav")
        callee.use_files(play=low, record=tmp_path / "callee-heard.wav")
        caller.wait_registered()
        callee.wait_registered()

        caller.call(callee.uri)
        first = caller.wait_zrtp()
        assert callee.wait_zrtp() == first
        assert not first.previously_verified
        assert len(first.sas) == 4
        algorithms = caller.zrtp_algorithms()
        assert algorithms is not None
        assert algorithms.cipher == "AES-128"
        assert algorithms.hash == "SHA-256"
        assert algorithms.sas_rendering == "Base32"
        assert callee.zrtp_algorithms() == algorithms
        # the offer carried a=zrtp-hash and the plain RTP/AVP profile
        offer = SessionDescription.parse(caller.sdp_bodies("sent")[0])
        assert offer.media[0].proto == "RTP/AVP"
        assert offer.media[0].values("zrtp-hash")

        caller.wait_call_state("StreamsRunning")
        time.sleep(3)  # let audio flow long enough to measure it
        caller.set_sas_verified()
        callee.set_sas_verified()
        caller.terminate()
        callee.wait_call_state("End")
        caller.wait_call_state("Released")

        heard_by_callee = tmp_path / "callee-heard.wav"
        heard_by_caller = tmp_path / "caller-heard.wav"
        assert tone_level(heard_by_callee, 1000).dominates(tone_level(heard_by_callee, 700))
        assert tone_level(heard_by_caller, 700).dominates(tone_level(heard_by_caller, 1000))

        caller.call(callee.uri)  # the cache remembers the verification
        second = caller.wait_zrtp(count=2)
        assert second.previously_verified
        assert callee.wait_zrtp(count=2) == second
        assert second.sas != first.sas
        caller.terminate()
        callee.wait_call_state("End", count=2)
    finally:
        caller.stop()
        callee.stop()


def test_extra_sip_forces_a_key_agreement(kamailio: tuple[Kamailio, Pki], tmp_path: Path) -> None:
    server, pki = kamailio
    caller, callee = pair(
        tmp_path,
        server,
        pki,
        extra_sip={
            "zrtp_key_agreements_suites": "MS_ZRTP_KEY_AGREEMENT_X255",
            "zrtp_sas_suites": "MS_ZRTP_SAS_B256",
        },
    )
    try:
        for phone in (caller, callee):
            phone.start()
            phone.use_files()
        caller.wait_registered()
        callee.wait_registered()
        caller.call(callee.uri)
        secrets = caller.wait_zrtp()
        assert ":" in secrets.sas  # PGP word list: two words
        algorithms = caller.zrtp_algorithms()
        assert algorithms is not None
        assert algorithms.key_agreement == "ECDH-255"
        assert algorithms.sas_rendering != "Base32"
        caller.terminate()
        callee.wait_call_state("End")
    finally:
        caller.stop()
        callee.stop()
