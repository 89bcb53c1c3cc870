"""Every ZRTP algorithm linphonec (bzrtp) offers and pidphone supports, part 2: the finite
field Diffie-Hellman key agreements DH3k and DH2k (RFC 3526), each with a different cipher,
auth tag, hash and SAS rendering, one call in each direction. Part 1
(test_interop_linphone_suites_ec.py) covers X255 and X448; together every algorithm is chosen
at least once. Both sides put the suite first, so the exchange must pick exactly it; the SAS,
the tones both ways and the algorithms reported at both ends are compared. The two parts run
in parallel under xdist, each in its own network namespace with its own Kamailio. One call
of each part is in G.711 A-law (PCMA), the other in mu-law (PCMU)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers.interop import Rig, ZrtpSuite, check_suite_call, interop_rig, need_interop

pytestmark = [pytest.mark.kamailio, pytest.mark.linphone, pytest.mark.slow]

CASES = [
    pytest.param(
        ZrtpSuite("DH2k", "AES3", "HS80", "S256", "B256"), True, "PCMA", id="DH2k-pidphone-calls"
    ),
    pytest.param(
        ZrtpSuite("DH3k", "AES1", "HS32", "S256", "B32"), False, "PCMU", id="DH3k-linphonec-calls"
    ),
]


@pytest.fixture(scope="module")
def module_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    need_interop()
    with interop_rig(tmp_path_factory.mktemp("interop-suites-dh")) as rig:
        yield rig


@pytest.fixture
def rig(module_rig: Rig) -> Iterator[Rig]:
    yield module_rig
    module_rig.close()


@pytest.mark.parametrize(("suite", "pidphone_calls", "codec"), CASES)
def test_suite(rig: Rig, suite: ZrtpSuite, pidphone_calls: bool, codec: str) -> None:
    check_suite_call(rig, suite, pidphone_calls=pidphone_calls, codec=codec)
