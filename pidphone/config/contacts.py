"""The phone book: a TOML file beside the config (phone.contacts_file), or vCards as common
address books export them, imported into one.

    [[contact]]
    name = "Alice Example"
    numbers = ["sips:alice@example.org", "+41446681800"]
    zid = "4f1c0b9e2d7a63a0c1e5b8d2"      # optional: her phone's ZRTP identity (24 hex digits)

Everything is bounded (`MAX_CONTACTS` contacts, `MAX_NUMBERS` numbers each, names of at most
`MAX_NAME` printable characters, files of at most `MAX_FILE_BYTES`) and every problem is a
`ConfigError` naming the entry and the key (`contact[3].numbers[0]`) and what to write
instead. A vCard import keeps what a desk phone needs (FN, else N; TEL and IMPP/X-SIP
addresses) and drops the rest; cards without a name or a usable number are skipped.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pidphone.errors import ConfigError
from pidphone.ports import Contact

from . import checks
from .load import read_small_file

MAX_CONTACTS = 1000
MAX_NUMBERS = 8
MAX_NAME = 64
MAX_FILE_BYTES = 1 << 20
ZID_HEX = re.compile(r"[0-9a-fA-F]{24}")


def load_contacts(path: str | Path) -> tuple[Contact, ...]:
    """The contacts of the file at `path` (none when there is no such file): TOML, or a
    vCard export as it is when the name ends in .vcf or .vcard."""
    path = Path(path)
    try:
        data = read_small_file(path, limit=MAX_FILE_BYTES)
    except FileNotFoundError:
        return ()
    if path.suffix.lower() in (".vcf", ".vcard"):
        return parse_vcards(data)
    return parse_contacts(data, str(path))


def parse_contacts(data: bytes, source: str = "contacts") -> tuple[Contact, ...]:
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(source, "the phone book is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, f"not TOML: {exc}") from None
    unknown = set(document) - {"contact"}
    if unknown:
        raise ConfigError(source, f"unknown key {sorted(unknown)[0]!r}; entries are [[contact]]")
    entries = document.get("contact", [])
    if not isinstance(entries, list):
        raise ConfigError("contact", "write each contact as a [[contact]] table")
    if len(entries) > MAX_CONTACTS:
        raise ConfigError("contact", f"{len(entries)} contacts; at most {MAX_CONTACTS}")
    return tuple(_contact(entry, f"contact[{i}]") for i, entry in enumerate(entries))


def _contact(entry: Any, key: str) -> Contact:
    if not isinstance(entry, dict):
        raise ConfigError(key, "write the contact as a table: name, numbers and zid")
    unknown = set(entry) - {"name", "numbers", "zid"}
    if unknown:
        raise ConfigError(f"{key}.{sorted(unknown)[0]}", "a contact has name, numbers and zid")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{key}.name", "give the contact a name")
    if len(name) > MAX_NAME or not name.isprintable():
        raise ConfigError(f"{key}.name", f"at most {MAX_NAME} printable characters")
    numbers = entry.get("numbers")
    if not isinstance(numbers, list) or not numbers:
        raise ConfigError(f"{key}.numbers", 'a list of numbers or SIP addresses: ["1234"]')
    if len(numbers) > MAX_NUMBERS:
        raise ConfigError(f"{key}.numbers", f"at most {MAX_NUMBERS} numbers")
    kept: list[str] = []
    for i, number in enumerate(numbers):
        if isinstance(number, str) and not number.lower().startswith(("sip:", "sips:")):
            number = re.sub(r"[\s().\-/]", "", number)  # "+41 (44) 668-18-00" as dialled
        problem = checks.dial_target(number) if isinstance(number, str) else "not a string"
        if problem is not None:
            raise ConfigError(f"{key}.numbers[{i}]", problem)
        kept.append(number)
    zid = entry.get("zid")
    if zid is not None and (not isinstance(zid, str) or not ZID_HEX.fullmatch(zid)):
        raise ConfigError(f"{key}.zid", "a ZID is 24 hex digits, as `pidphone zid list` shows")
    return Contact(
        name=name.strip(),
        numbers=tuple(kept),
        zid=bytes.fromhex(zid) if zid is not None else None,
    )


def dump_contacts(contacts: tuple[Contact, ...]) -> str:
    """The phone book as the TOML file `load_contacts` reads."""
    out: list[str] = []
    for contact in contacts:
        numbers = ", ".join(_quote(n) for n in contact.numbers)
        out += ["[[contact]]", f"name = {_quote(contact.name)}", f"numbers = [{numbers}]"]
        if contact.zid is not None:
            out.append(f'zid = "{contact.zid.hex()}"')
        out.append("")
    return "\n".join(out)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


# --------------------------------------------------------------------------- vCard


def parse_vcards(data: bytes) -> tuple[Contact, ...]:
    """The contacts of a .vcf export (vCard 2.1, 3.0 or 4.0, RFC 6350): FN (else N) and the
    TEL, IMPP and X-SIP values that a phone can dial."""
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError("vcard", f"larger than {MAX_FILE_BYTES} bytes")
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    lines = re.sub(r"\n[ \t]", "", text).split("\n")  # RFC 6350 §3.2 unfolding
    contacts: list[Contact] = []
    card: dict[str, list[str]] | None = None
    for line in lines:
        name, _, value = line.partition(":")
        prop = name.split(";")[0].split(".")[-1].strip().upper()
        if prop == "BEGIN" and value.strip().upper() == "VCARD":
            card = {}
        elif prop == "END" and card is not None:
            contact = _card(card)
            if contact is not None:
                contacts.append(contact)
            card = None
            if len(contacts) > MAX_CONTACTS:
                raise ConfigError("vcard", f"more than {MAX_CONTACTS} contacts")
        elif card is not None and prop in ("FN", "N", "TEL", "IMPP", "X-SIP"):
            card.setdefault(prop, []).append(value.strip())
    return tuple(contacts)


def _card(card: dict[str, list[str]]) -> Contact | None:
    name = (card.get("FN") or [""])[0]
    if not name and card.get("N"):
        family, _, rest = card["N"][0].partition(";")
        name = f"{rest.split(';')[0]} {family}".strip()
    name = "".join(c for c in name.replace("\\,", ",") if c.isprintable()).strip()[:MAX_NAME]
    numbers: list[str] = []
    for value in [*card.get("TEL", []), *card.get("IMPP", []), *card.get("X-SIP", [])]:
        number = _dialable(value)
        if number is not None and number not in numbers:
            numbers.append(number)
    if not name or not numbers:
        return None
    return Contact(name=name, numbers=tuple(numbers[:MAX_NUMBERS]))


def _dialable(value: str) -> str | None:
    value = value.strip()
    if value.lower().startswith("tel:"):
        value = value[4:].split(";")[0]
    if value.lower().startswith(("sip:", "sips:")):
        return value if checks.dial_target(value) is None else None
    digits = re.sub(r"[\s().\-/]", "", value)
    return digits if checks.dial_target(digits) is None else None
