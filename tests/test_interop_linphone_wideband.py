"""Wideband calls with linphonec (liblinphone 5.1) through Kamailio over TLS: Opus (which
linphonec offers first by default) and G.722 (linphonec with only it enabled), each in both
directions, secured by ZRTP with the same SAS at both ends.

pidphone's microphone sends a 5 kHz tone: G.711's 8 kHz sampling cannot carry it (it would
come out at 3 kHz, its alias), so hearing it at 5 kHz in linphonec's recording shows the call
is wideband end to end. linphonec sends 700 Hz, which pidphone reports hearing. pidphone's
report names the codec and its rates.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers.interop import (
    PCMU_ONLY,
    Rig,
    call_linphone,
    has_tone,
    interop_rig,
    need_interop,
    same_sas,
)

pytestmark = [pytest.mark.kamailio, pytest.mark.linphone, pytest.mark.slow]

WIDE_TONE = 5000.0
LINPHONE_TONE = 700.0

G722_ONLY = (("G722", 8000, 1, True), *((m, r, c, False) for m, r, c, _ in PCMU_ONLY))
"""linphonec with G.722 alone (plus telephone-event)."""

LINPHONE_CODECS = {"opus": (), "G722": G722_ONLY}
"""linphonec's codec list per case: its defaults (Opus first), or G.722 alone."""

CLOCK_RATES = {"opus": 48000, "G722": 8000}


@pytest.fixture(scope="module")
def module_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    need_interop()
    with interop_rig(tmp_path_factory.mktemp("interop-wideband")) as rig:
        yield rig


@pytest.fixture
def rig(module_rig: Rig) -> Iterator[Rig]:
    yield module_rig
    module_rig.close()


@pytest.mark.parametrize("pidphone_calls", [True, False], ids=["pidphone-calls", "linphonec-calls"])
@pytest.mark.parametrize("codec", ["opus", "G722"])
def test_wideband_call_with_linphonec(rig: Rig, codec: str, pidphone_calls: bool) -> None:
    linphone = rig.linphone(
        "linphone", tone=LINPHONE_TONE, auto_answer=pidphone_calls, codecs=LINPHONE_CODECS[codec]
    )
    config = rig.config(
        "alice" if pidphone_calls else "bob",
        tone=WIDE_TONE,
        codecs=("opus", "G722", "PCMU", "PCMA"),
    )
    result = call_linphone(rig, linphone, config, pidphone_calls=pidphone_calls)
    report = result.report

    assert result.run.returncode == 0, result.run.describe()
    assert report["state"] == "secure", result.run.describe()
    assert same_sas(report["sas"], result.linphone_sas), (report["sas"], result.linphone_sas)
    assert report["codec"] == codec, report
    assert (report["rate"], report["clock_rate"]) == (16000, CLOCK_RATES[codec]), report
    assert report["wideband"], report
    assert has_tone(report["received_frequencies"], LINPHONE_TONE), report
    assert has_tone(result.linphone_heard, WIDE_TONE), result.linphone_heard
