"""The call history: which calls become records (missed, received, dialled), the missed-call
notice, paging through the list on the keypad and calling back, the file it is kept in across
restarts, and what a hostile name, number or file can do to it (nothing)."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from pidphone import cli
from pidphone.app.call_events import CallConnected, CallFinished, CallIncoming, CallSecure
from pidphone.app.phone_events import (
    OutgoingCall,
    PhoneSettings,
    PlaceCall,
    RegistrationChanged,
    Tick,
)
from pidphone.app.phone_state import PhoneState, initial_state
from pidphone.app.screen import render
from pidphone.app.state import reduce
from pidphone.config import Config, DisplayConfig, PhoneConfig, SecurityConfig, SimConfig
from pidphone.daemon import Phone as DaemonPhone
from pidphone.drivers.call_log import FileCallLog
from pidphone.drivers.draw import draw_screen
from pidphone.ports import CallRecord, HookEvent, KeyEvent
from tests.test_state import secured

WALL = 1_765_000_000.0  # 2025-12-06 05:46:40 UTC
SETTINGS = PhoneSettings(account="alice@example.org", history_size=5)


class Phone:
    """The reducer, with the commands it gave."""

    def __init__(self, settings: PhoneSettings = SETTINGS) -> None:
        self.state: PhoneState = initial_state(settings, now=100.0)
        self.commands: list[object] = []
        self.feed(Tick(100.0, "06:46", wall=WALL, utc_offset=3600))
        self.feed(RegistrationChanged("registered"))

    def feed(self, *events: object) -> PhoneState:
        for event in events:
            self.state, commands = reduce(self.state, event, now=self.state.now)  # type: ignore[arg-type]
            self.commands += commands
        return self.state

    def later(self, seconds: float) -> None:
        now = self.state.now + seconds
        self.feed(Tick(now, wall=WALL + now - 100.0, utc_offset=3600))

    def saved(self) -> tuple[CallRecord, ...]:
        return self.state.history

    def screen_lines(self) -> tuple[str, ...]:
        return render(self.state, self.state.now).lines


def test_an_unanswered_call_is_missed_and_noticed_on_the_idle_screen() -> None:
    phone = Phone()
    phone.feed(CallIncoming("c1", remote_uri="sip:bob@example.org", remote_name="Bob"))
    phone.later(12)
    phone.feed(CallFinished("c1", "Cancelled", by_peer=True))
    (record,) = phone.saved()
    assert record == CallRecord(
        "missed", "sip:bob@example.org", "Bob", WALL + 12, 0.0, secure=False, verified=False
    )
    assert phone.state.missed == 1
    assert "1 missed call" in phone.screen_lines()


def test_an_answered_secure_call_is_received_with_its_duration_and_sas() -> None:
    phone = Phone()
    phone.feed(CallIncoming("c1", remote_uri="sip:bob@example.org", remote_name=""))
    phone.feed(HookEvent(off_hook=True))
    phone.feed(CallConnected("c1"), CallSecure("c1", secured("4jw5", "B32", verified=False)))
    phone.feed(KeyEvent("sas_confirm"))
    phone.later(151)
    phone.feed(HookEvent(off_hook=False))
    (record,) = phone.saved()
    assert record.kind == "received" and record.duration == 151
    assert record.secure and record.verified
    assert record.time == WALL
    assert phone.state.missed == 0


def test_a_dialled_call_and_a_refusal_under_do_not_disturb() -> None:
    phone = Phone()
    phone.feed(HookEvent(off_hook=True), *(KeyEvent(k) for k in "1234#"))
    phone.feed(OutgoingCall("c1", "1234"))
    phone.later(3)
    phone.feed(CallFinished("c1", "Busy Here", by_peer=True, status=486), HookEvent(off_hook=False))
    assert phone.saved()[0].kind == "dialled" and phone.saved()[0].number == "1234"
    phone.feed(
        KeyEvent("dnd"), CallIncoming("c2", remote_uri="sip:eve@example.org", remote_name="")
    )
    assert [r.kind for r in phone.saved()] == ["missed", "dialled"]
    assert phone.state.missed == 1


def test_the_history_pages_with_the_keypad_and_calls_back() -> None:
    phone = Phone()
    for n in range(3):
        phone.feed(CallIncoming(f"c{n}", remote_uri=f"sip:{n}@example.org", remote_name=""))
        phone.feed(CallFinished(f"c{n}", "Cancelled", by_peer=True))
    phone.feed(KeyEvent("history"))
    assert phone.state.missed == 0
    screen = render(phone.state, phone.state.now)
    assert screen.title == "Missed 1/3"
    assert screen.lines == ("sip:2@example.org", "06 Dec 06:46")
    phone.feed(KeyEvent("8"), KeyEvent("8"), KeyEvent("8"))
    assert render(phone.state, phone.state.now).title == "Missed 3/3"
    phone.feed(KeyEvent("2"))
    phone.commands.clear()
    phone.feed(KeyEvent("#"))
    assert PlaceCall("sip:1@example.org") in phone.commands
    assert phone.state.browsing is None


def test_lifting_the_handset_on_a_record_calls_it_back_and_back_closes() -> None:
    phone = Phone()
    phone.feed(CallIncoming("c1", remote_uri="sip:bob@example.org", remote_name=""))
    phone.feed(CallFinished("c1", "Cancelled", by_peer=True))
    phone.feed(KeyEvent("history"), KeyEvent("back"))
    assert phone.state.browsing is None
    phone.feed(KeyEvent("history"))
    phone.commands.clear()
    phone.feed(HookEvent(off_hook=True))
    assert PlaceCall("sip:bob@example.org") in phone.commands


def test_an_empty_history_says_so() -> None:
    phone = Phone()
    phone.feed(KeyEvent("history"))
    assert render(phone.state, phone.state.now).lines[0] == "No calls yet"
    phone.feed(KeyEvent("#"))
    assert phone.state.browsing is None and phone.state.call is None


def test_the_history_is_bounded() -> None:
    phone = Phone()
    for n in range(8):
        phone.feed(CallIncoming(f"c{n}", remote_uri=f"sip:{n}@example.org", remote_name=""))
        phone.feed(CallFinished(f"c{n}", "Cancelled", by_peer=True))
    assert [r.number for r in phone.saved()] == [f"sip:{n}@example.org" for n in (7, 6, 5, 4, 3)]


HOSTILE_NAMES = [
    "\x1b[2J\x1b[31mEVIL",
    "A" * 10_000,
    "\u202eevil\u202c",
    "null\x00byte\r\nInjected: yes",
    "\ud800",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_name_breaks_neither_the_screen_nor_the_file(name: str, tmp_path: Path) -> None:
    phone = Phone()
    phone.feed(CallIncoming("c1", remote_uri="sip:" + name, remote_name=name))
    phone.feed(CallFinished("c1", "Cancelled", by_peer=True))
    (record,) = phone.saved()
    assert len(record.name) <= 64 and record.name.isprintable()
    assert len(record.number) <= 64 and record.number.isprintable()
    phone.feed(KeyEvent("history"))
    draw_screen(render(phone.state, phone.state.now))
    log = FileCallLog(tmp_path / "history.json")
    log.save(phone.saved())
    assert log.write_error is None
    assert FileCallLog(tmp_path / "history.json").load() == phone.saved()


# --------------------------------------------------------------------------- the file

RECORDS = (
    CallRecord("received", "sip:bob@example.org", "Bob", WALL, 61.5, True, True),
    CallRecord("missed", "+41446681800", "", WALL - 60, 0.0, False, False),
)


def test_the_file_keeps_the_history_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "state" / "history.json"
    FileCallLog(path).save(RECORDS)
    assert FileCallLog(path).load() == RECORDS
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["history.json"]  # no temporary left


def test_loading_keeps_at_most_the_configured_number(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    FileCallLog(path).save(RECORDS)
    assert FileCallLog(path, max_records=1).load() == RECORDS[:1]


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"format": "other"}',
        b'{"format": "pidphone-call-history"}',
        b"\xff" * 10,
    ],
)
def test_a_corrupt_file_is_moved_aside_and_the_phone_starts_empty(
    content: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "history.json"
    path.write_bytes(content)
    log = FileCallLog(path, clock=lambda: WALL)
    assert log.load() == ()
    assert log.recovered_from is not None and log.recovered_from.read_bytes() == content
    assert not path.exists()


def test_a_record_with_a_bad_field_is_dropped_alone(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    FileCallLog(path).save(RECORDS)
    document = json.loads(path.read_text())
    good = document["calls"][0]
    for bad in ({"duration": float("nan")}, {"kind": "stolen"}, {"secure": "yes"}, {"time": None}):
        document["calls"].insert(0, {**good, **bad})
    document["calls"].insert(0, {**good, "name": "x\x00" * 500})
    path.write_text(json.dumps(document))
    loaded = FileCallLog(path).load()
    assert loaded[1:] == RECORDS, loaded
    assert loaded[0].name == "x" * 64


def test_a_symbolic_link_or_a_huge_file_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("do not read")
    link = tmp_path / "history.json"
    link.symlink_to(secret)
    assert FileCallLog(link).load() == ()
    assert secret.read_text() == "do not read"
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * ((1 << 20) + 1))
    assert FileCallLog(huge).load() == ()


def test_a_write_that_fails_is_reported_not_raised(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    log = FileCallLog(blocked / "history.json")
    log.save(RECORDS)
    assert log.write_error is not None


# --------------------------------------------------------------------------- the daemon's phone


def test_the_daemon_phone_shows_the_kept_history(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    FileCallLog(path).save(RECORDS)
    script = tmp_path / "keys.txt"
    script.write_text("0.2 history\n")
    config = Config(
        hardware="simulated",
        security=SecurityConfig(zid_cache=str(tmp_path / "zid.json")),
        display=DisplayConfig(driver="ssd1306"),
        phone=PhoneConfig(history_file=str(path)),
        sim=SimConfig(keys_script=str(script)),
    )

    async def main() -> tuple[str, tuple[str, ...]]:
        phone = DaemonPhone(config, lambda status: None)
        await phone.start()
        try:
            async with asyncio.timeout(10):
                while True:
                    controller = phone.controller
                    screen = controller.screen() if controller is not None else None
                    if screen is not None and screen.title.startswith("Received"):
                        return screen.title, screen.lines
                    await asyncio.sleep(0.05)
        finally:
            await phone.stop()

    title, lines = asyncio.run(main())
    assert title == "Received 1/2"
    assert lines[:2] == ("Bob", "sip:bob@example.org")


def test_a_state_with_a_hostile_history_still_renders() -> None:
    state = replace(
        initial_state(SETTINGS),
        history=(CallRecord("dialled", "", "", -1e12, 1e9, True, False),),
        browsing=0,
    )
    screen = render(state, 0.0)
    assert screen.lines == ("unknown number", "unknown time 277777:46:40", "Secure, SAS unverified")
    draw_screen(screen)


# --------------------------------------------------------------------------- the command line


def test_pidphone_history_lists_the_calls_and_prints_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zid = tmp_path / "state" / "zid-cache.json"
    config = tmp_path / "pidphone.toml"
    config.write_text(f'[security]\nzid_cache = "{zid}"\n')
    FileCallLog(zid.parent / "call-history.json").save(RECORDS)
    assert cli.main(["history", "-c", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "received" in lines[0] and "1:01" in lines[0] and "verified" in lines[0]
    assert lines[0].endswith("Bob <sip:bob@example.org>")
    assert cli.main(["history", "-c", str(config), "--json", "--kind", "missed"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    item = json.loads(line)
    assert item["number"] == "+41446681800" and item["kind"] == "missed"
    assert item["secure"] is False and item["duration"] == 0.0


def test_pidphone_history_without_a_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["history", "--file", str(tmp_path / "none.json")]) == 1
    assert "no call history" in capsys.readouterr().err
