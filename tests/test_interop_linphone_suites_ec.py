"""Every ZRTP algorithm linphonec (bzrtp) offers and pidphone supports, part 1: the elliptic
curve key agreements X255 and X448 (RFC 7748), each with a different cipher, auth tag, hash
and SAS rendering, one call in each direction. Part 2 (test_interop_linphone_suites_dh.py)
covers DH3k and DH2k; together every algorithm is chosen at least once. Both sides put the
suite first, so the exchange must pick exactly it; the SAS, the tones both ways and the
algorithms reported at both ends are compared. The two parts run in parallel under xdist,
each in its own network namespace with its own Kamailio. One call of each part is in
G.711 A-law (PCMA), the other in mu-law (PCMU)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers.interop import Rig, ZrtpSuite, check_suite_call, interop_rig, need_interop

pytestmark = [pytest.mark.kamailio, pytest.mark.linphone, pytest.mark.slow]

CASES = [
    pytest.param(
        ZrtpSuite("X255", "AES3", "HS32", "S384", "B256"), True, "PCMU", id="X255-pidphone-calls"
    ),
    pytest.param(
        ZrtpSuite("X448", "AES1", "HS80", "S384", "B32"), False, "PCMA", id="X448-linphonec-calls"
    ),
]


@pytest.fixture(scope="module")
def module_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    need_interop()
    with interop_rig(tmp_path_factory.mktemp("interop-suites-ec")) as rig:
        yield rig


@pytest.fixture
def rig(module_rig: Rig) -> Iterator[Rig]:
    yield module_rig
    module_rig.close()


@pytest.mark.parametrize(("suite", "pidphone_calls", "codec"), CASES)
def test_suite(rig: Rig, suite: ZrtpSuite, pidphone_calls: bool, codec: str) -> None:
    check_suite_call(rig, suite, pidphone_calls=pidphone_calls, codec=codec)
