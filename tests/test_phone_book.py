"""The phone book: the TOML file and vCard import (with hostile input), matching callers to
contacts, finding a name on the keypad (T9), the name on incoming and outgoing calls, the
contact linked to a ZID ("Verified: Alice", or her identity changed), and `pidphone contacts`."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from pidphone import cli
from pidphone.app.call_events import CallConnected, CallIncoming, CallSecure
from pidphone.app.contacts import lookup, search, t9
from pidphone.app.phone_events import OutgoingCall, PhoneSettings, PlaceCall
from pidphone.app.phone_state import PhoneState, initial_state
from pidphone.app.screen import render
from pidphone.app.state import reduce
from pidphone.config import Config, PhoneConfig
from pidphone.config.contacts import dump_contacts, load_contacts, parse_contacts, parse_vcards
from pidphone.drivers.draw import draw_screen
from pidphone.errors import ConfigError
from pidphone.ports import Contact, HookEvent, KeyEvent
from pidphone.wiring import phone_book
from tests.test_state import secured

ALICE_ZID = bytes.fromhex("4f1c0b9e2d7a63a0c1e5b8d2")
ALICE = Contact("Alice Example", ("sips:alice@example.org", "+41 44 668 18 00"), ALICE_ZID)
BOB = Contact("Bob Builder", ("1234",))
CAROL = Contact("Carol", ("sip:carol@example.net",))
BOOK = (ALICE, BOB, CAROL)

TOML = b"""
[[contact]]
name = "Alice Example"
numbers = ["sips:alice@example.org", "+41 44 668 18 00"]
zid = "4f1c0b9e2d7a63a0c1e5b8d2"

[[contact]]
name = "Bob Builder"
numbers = ["1234"]
"""


def test_the_toml_phone_book_is_read_and_written_back(tmp_path: Path) -> None:
    contacts = parse_contacts(TOML)
    assert contacts[1] == BOB
    assert contacts[0].zid == ALICE_ZID
    assert contacts[0].numbers == ("sips:alice@example.org", "+41446681800")
    path = tmp_path / "contacts.toml"
    path.write_text(dump_contacts(contacts))
    assert load_contacts(path) == contacts
    assert load_contacts(tmp_path / "missing.toml") == ()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (b"[[contact]]\nnumbers = ['1']", "contact[0].name"),
        (b"[[contact]]\nname = 'A'\nnumbers = []", "contact[0].numbers"),
        (b"[[contact]]\nname = 'A'\nnumbers = ['bob@example.org']", "contact[0].numbers[0]"),
        (b"[[contact]]\nname = 'A'\nnumbers = ['1']\nzid = 'xyz'", "contact[0].zid"),
        (b'[[contact]]\nname = "A\\u001b[2J"\nnumbers = ["1"]', "contact[0].name"),
        (b"[[contact]]\nname = 'A'\nnumbers = ['1']\nemail = 'a@b'", "contact[0].email"),
        (b"[[contact]]\nname = 'A'\nnumbers = [" + b"'1'," * 9 + b"]", "contact[0].numbers"),
        (b"contact = 3", "contact"),
        (b"[[contact]\n", "contacts"),
        (b"\xff\xfe", "contacts"),
        (b"[[contact]]\nname='A'\nnumbers=['1']\n" * 1001, "contact"),
    ],
)
def test_a_bad_phone_book_names_the_entry_and_the_key(text: bytes, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_contacts(text)
    assert caught.value.key == key


VCARDS = (
    b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Alice Example\r\nN:Example;Alice;;;\r\n"
    b"TEL;TYPE=CELL:+41 (44) 668-18-00\r\nTEL;TYPE=WORK:\r\n"
    b"IMPP:sip:alice@exa\r\n mple.org\r\nEMAIL:alice@example.org\r\nEND:VCARD\r\n"
    b"BEGIN:VCARD\nVERSION:4.0\nN:Builder;Bob;;;\nTEL;VALUE=uri:tel:1234\nEND:VCARD\n"
    b"BEGIN:VCARD\nVERSION:2.1\nFN:Nobody\nEMAIL:x@y\nEND:VCARD\n"
    b"BEGIN:VCARD\nFN:\x1b[31mEvil\x00\nTEL:555\nEND:VCARD\n"
)


def test_vcards_as_address_books_export_them_become_contacts() -> None:
    contacts = parse_vcards(VCARDS)
    assert contacts == (
        Contact("Alice Example", ("+41446681800", "sip:alice@example.org")),
        Contact("Bob Builder", ("1234",)),
        Contact("[31mEvil", ("555",)),
    )


def test_a_vcard_export_can_be_the_phone_book_itself(tmp_path: Path) -> None:
    path = tmp_path / "export.vcf"
    path.write_bytes(VCARDS)
    assert load_contacts(path) == parse_vcards(VCARDS)


def test_a_hostile_vcard_file_is_bounded() -> None:
    with pytest.raises(ConfigError):
        parse_vcards(b"BEGIN:VCARD\nFN:x\nTEL:1\nEND:VCARD\n" * 40_000)
    assert parse_vcards(bytes(range(256)) * 100) == ()


def test_callers_are_matched_by_uri_or_by_digits() -> None:
    assert lookup(BOOK, "sips:alice@EXAMPLE.org;transport=tls") is ALICE
    assert lookup(BOOK, "sip:+41446681800@pbx.example.org") is ALICE
    assert lookup(BOOK, "sip:1234@127.0.0.1") is BOB
    assert lookup(BOOK, "1234") is BOB
    assert lookup(BOOK, "sip:carol@example.net") is CAROL
    assert lookup(BOOK, "sip:carol@evil.example") is None
    assert lookup(BOOK, "sip:12345@example.org") is None
    assert lookup(BOOK, "") is None


def test_names_are_found_by_their_letters_on_the_keypad() -> None:
    assert t9("Alice") == "25423"
    assert search(BOOK, "") == BOOK
    assert search(BOOK, "2") == (ALICE, BOB, CAROL)  # a, b, c
    assert search(BOOK, "25") == (ALICE,)  # "al"
    assert search(BOOK, "39") == (ALICE,)  # "ex" of Example
    assert search(BOOK, "28") == (BOB,)  # "bu" of Builder
    assert search(BOOK, "99") == ()


# --------------------------------------------------------------------------- on the phone

SETTINGS = PhoneSettings(account="me", contacts=BOOK)


def feed(state: PhoneState, *events: object) -> tuple[PhoneState, list[object]]:
    commands: list[object] = []
    for event in events:
        state, more = reduce(state, event)  # type: ignore[arg-type]
        commands += more
    return state, commands


def test_an_incoming_call_from_a_contact_shows_the_name() -> None:
    state, _ = feed(initial_state(SETTINGS), CallIncoming("c1", "sip:1234@pbx", "Spoofed"))
    assert render(state, 0).lines[0] == "Bob Builder"


def test_the_contacts_key_finds_a_name_and_dials_it() -> None:
    state, _ = feed(initial_state(SETTINGS), KeyEvent("contacts"))
    assert render(state, 0).title == "Alice Example"
    state, _ = feed(state, KeyEvent("2"), KeyEvent("*"))
    screen = render(state, 0)
    assert screen.title == "Bob Builder" and screen.lines[1] == "2/3  [2]"
    state, _ = feed(state, KeyEvent("8"))
    assert render(state, 0).title == "Bob Builder"
    state, commands = feed(state, KeyEvent("#"))
    assert PlaceCall("1234") in commands
    assert state.call is not None and state.call.name == "Bob Builder"
    assert state.finding is None


def test_back_and_hangup_leave_the_phone_book() -> None:
    state, _ = feed(initial_state(SETTINGS), KeyEvent("contacts"), KeyEvent("9"), KeyEvent("9"))
    assert render(state, 0).lines[0] == "No such name"
    state, _ = feed(state, KeyEvent("back"), KeyEvent("back"), KeyEvent("back"))
    assert state.finding is None
    state, _ = feed(state, KeyEvent("contacts"), KeyEvent("hangup"))
    assert state.finding is None


def _secure_call_from(zid: bytes, *, verified: bool) -> PhoneState:
    state, _ = feed(
        initial_state(SETTINGS),
        CallIncoming("c1", "sips:alice@example.org", ""),
        HookEvent(off_hook=True),
        CallConnected("c1"),
        CallSecure("c1", replace(secured("4jw5", "B32", verified=verified), peer_zid=zid)),
    )
    return state


def test_the_phone_knows_who_it_verified() -> None:
    state = _secure_call_from(ALICE_ZID, verified=True)
    screen = render(state, state.now)
    assert screen.title == "Alice Example" and screen.lines == ("Verified: Alice Example",)


def test_a_contact_calling_from_another_phone_is_an_identity_change() -> None:
    state = _secure_call_from(bytes(12), verified=True)
    screen = render(state, state.now)
    assert screen.title == "Alice Example" and screen.lines == ("NEW ID: read the SAS",)
    draw_screen(screen)


# --------------------------------------------------------------------------- wiring and CLI


def test_a_broken_phone_book_does_not_stop_the_phone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "contacts.toml"
    path.write_text("[[contact]]\nname = 1\n")
    with caplog.at_level(logging.ERROR):
        assert phone_book(Config(phone=PhoneConfig(contacts_file=str(path)))) == ()
    assert "contact[0].name" in caplog.text


def test_pidphone_contacts_list_check_and_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book = tmp_path / "contacts.toml"
    book.write_bytes(TOML)
    config = tmp_path / "pidphone.toml"
    config.write_text('[phone]\ncontacts_file = "contacts.toml"\n')
    assert cli.main(["contacts", "-c", str(config), "list", "--json"]) == 0
    items = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert items[0] == {
        "name": "Alice Example",
        "numbers": ["sips:alice@example.org", "+41446681800"],
        "zid": ALICE_ZID.hex(),
    }
    assert cli.main(["contacts", "check", str(book)]) == 0
    assert "2 contacts, OK" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("[[contact]]\nname = 'A'\nnumbers = ['not a number']\n")
    assert cli.main(["contacts", "check", str(bad)]) == 78
    assert "contact[0].numbers[0]" in capsys.readouterr().err
    vcf = tmp_path / "export.vcf"
    vcf.write_bytes(VCARDS)
    out = tmp_path / "imported.toml"
    assert cli.main(["contacts", "import", str(vcf), "--output", str(out)]) == 0
    assert load_contacts(out)[0] == Contact(
        "Alice Example", ("+41446681800", "sip:alice@example.org")
    )
    assert cli.main(["contacts", "import", str(vcf), "--output", str(out)]) == 1  # no overwrite


def test_an_outgoing_call_to_a_contact_shows_the_name() -> None:
    state, _ = feed(initial_state(SETTINGS), HookEvent(off_hook=True))
    state, _ = feed(state, *(KeyEvent(k) for k in "1234#"), OutgoingCall("c1", "1234"))
    assert render(state, 0).lines[0] == "Bob Builder"
