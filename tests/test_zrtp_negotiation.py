"""Which algorithms an exchange takes (RFC 6189 §4.1.2, §5.1.5), as Linphone's bzrtp 5.5 does.

bzrtp's rules (cryptoUtils.cc, `bzrtp_cryptoAlgoAgreement`): each side's first common key
agreement, the lower bzrtp code when they differ; with EC38, X448 or a post-quantum key
agreement, AES3 and S512 (then S384) among what both offer, whatever the order of preference;
otherwise the initiator's first common choice.
"""

from __future__ import annotations

import pytest

from pidphone.zrtp.algorithms import KEY_AGREEMENT_CODES, Suite, choose_suite
from tests.harness import exchange, zrtp_end

BZRTP_DEFAULTS = {
    "hashes": ("S256", "S384", "S512"),
    "ciphers": ("AES1", "AES3"),
    "auth_tags": ("HS80", "HS32"),
    "key_agreements": ("X255", "X448", "DH3k"),
    "sas_types": ("B32 ",),
}


def offer(**lists: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return {**BZRTP_DEFAULTS, **lists}


def test_x448_takes_aes3_and_the_strongest_common_hash_whatever_the_order() -> None:
    # the initiator lists AES1 and S256 first; bzrtp would pick AES3 and S512 here
    ours = offer(key_agreements=("X448",))
    assert choose_suite(ours, offer(key_agreements=("X448",))) == Suite(
        "S512", "AES3", "HS80", "X448", "B32 "
    )
    # without S512 on one side, S384
    assert choose_suite(ours, offer(hashes=("S384",), key_agreements=("X448",))).hash == "S384"


def test_a_classical_key_agreement_keeps_the_initiators_order() -> None:
    suite = choose_suite(offer(), offer())
    assert suite == Suite("S256", "AES1", "HS80", "X255", "B32 ")


def test_ec38_takes_s384_as_rfc_6189_requires() -> None:
    suite = choose_suite(offer(key_agreements=("EC38",)), offer(key_agreements=("EC38",)))
    assert (suite.hash, suite.cipher) == ("S384", "AES3")


@pytest.mark.parametrize(
    ("ours", "theirs", "chosen"),
    [
        (("X448", "X255"), ("X255", "X448"), "X255"),
        (("DH3k", "X255"), ("X255", "DH3k"), "X255"),
        (("DH2k", "DH3k"), ("DH3k", "DH2k"), "DH2k"),
        (("EC38", "X448"), ("X448", "EC38"), "X448"),
    ],
)
def test_when_first_choices_differ_the_lower_bzrtp_code_wins(
    ours: tuple[str, ...], theirs: tuple[str, ...], chosen: str
) -> None:
    suite = choose_suite(offer(key_agreements=ours), offer(key_agreements=theirs))
    assert suite.key_agreement == chosen
    # and it is symmetric: the responder would have agreed
    assert choose_suite(offer(key_agreements=theirs), offer(key_agreements=ours)) == suite


def test_post_quantum_codes_are_above_every_classical_one() -> None:
    classical = [KEY_AGREEMENT_CODES[n] for n in ("DH2k", "X255", "EC25", "X448", "DH3k", "EC38")]
    assert max(classical) < min(KEY_AGREEMENT_CODES[n] for n in ("MLK2", "MLK3", "X3M3"))
    assert KEY_AGREEMENT_CODES["MLK3"] < KEY_AGREEMENT_CODES["X3M3"]


def test_two_sessions_with_x448_secure_with_aes3() -> None:
    # ZrtpConfig's default ciphers are AES1 first: X448 still gets AES-256
    from pidphone.zrtp import ZrtpConfig

    config = ZrtpConfig(key_agreements=("X448",))
    a, b = zrtp_end(config, ssrc=1), zrtp_end(config, ssrc=2)
    exchange(a, b)
    assert a.secured is not None and b.secured is not None
    assert (a.secured.key_agreement, a.secured.cipher) == ("X448", "AES3")
    assert a.secured.sas == b.secured.sas
    assert len(a.keys.send_key) == 32
