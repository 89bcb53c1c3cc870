"""The phone book in the phone: who a number belongs to, and finding a name on the keypad.

`lookup` matches a caller's URI or a dialled number against the contacts' numbers: a SIP URI
by its user and host (case-insensitive host, the scheme and parameters ignored), a telephone
number by its digits (spaces, dashes and a leading + ignored) against the user part of the
URI (the registrar vouches for the caller's URI; a contact's ZID is what proves who it is).
`search` is T9-style: each digit 2-9 stands for its letters (2 = abc ... 9 = wxyz), and
a contact matches when one of the words of its name begins with what was typed.
"""

from __future__ import annotations

from pidphone.ports import Contact

T9_LETTERS = {
    "2": "abc",
    "3": "def",
    "4": "ghi",
    "5": "jkl",
    "6": "mno",
    "7": "pqrs",
    "8": "tuv",
    "9": "wxyz",
}
_T9 = {letter: digit for digit, letters in T9_LETTERS.items() for letter in letters}


def t9(text: str) -> str:
    """The digits that type `text` (letters by their key, digits as they are, the rest
    dropped)."""
    return "".join(_T9.get(c, c if c.isdigit() else "") for c in text.lower())


def search(contacts: tuple[Contact, ...], typed: str) -> tuple[Contact, ...]:
    """The contacts one of whose name's words starts with the letters `typed` stands for,
    in the phone book's order; all of them when nothing is typed."""
    if not typed:
        return contacts
    return tuple(c for c in contacts if any(t9(w).startswith(typed) for w in c.name.split()))


def lookup(contacts: tuple[Contact, ...], remote: str) -> Contact | None:
    """The contact `remote` (a URI or a dialled number) belongs to, if any."""
    key = _key(remote)
    if key is None:
        return None
    for contact in contacts:
        if any(_key(number) == key for number in contact.numbers):
            return contact
    return None


def _key(address: str) -> tuple[str, str] | None:
    """(user, host) of a URI, or (digits, "") of a number."""
    text = address.strip()
    for scheme in ("sips:", "sip:", "tel:"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
            break
    text = text.split(";")[0].split("?")[0].strip("<> ")
    user, at, host = text.rpartition("@")
    if not at:
        user, host = text, ""
    host = host.split(":")[0].lower() if not host.startswith("[") else host.lower()
    digits = user.replace(" ", "").replace("-", "").lstrip("+")
    if digits.isdigit() and digits.isascii():
        return digits, ""
    return (user, host) if user else None
