"""`pidphone contacts ...`: the phone book (phone.contacts_file) on the command line.

`list` prints the contacts (`--json`: one object per contact), `check` reads a phone book as
the phone would and names the first problem (exit 78), `import` turns an address book's vCard
export into the phone book's TOML (to stdout, or `--output`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from pidphone.config import Config, load_config
from pidphone.config.contacts import dump_contacts, load_contacts, parse_vcards
from pidphone.config.load import read_small_file
from pidphone.ports import Contact

from .common import EXIT_OK, CommandError, config_path, warn


def _book_path(args: argparse.Namespace) -> Path:
    given: Path | None = getattr(args, "file", None)
    if given is not None:
        return given
    path = config_path(args)
    explicit = getattr(args, "config", None) is not None
    config = load_config(path, warn=warn) if explicit or path.exists() else Config()
    if not config.phone.contacts_file:
        raise CommandError("no phone book: set phone.contacts_file in the config")
    return Path(config.phone.contacts_file)


def cmd_list(args: argparse.Namespace) -> int:
    show(load_contacts(_book_path(args)), sys.stdout, as_json=args.json)
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    path = _book_path(args)
    if not path.exists():
        raise CommandError(f"no phone book at {path}")
    contacts = load_contacts(path)
    print(f"{path}: {len(contacts)} contacts, OK")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    try:
        data = read_small_file(args.vcard, limit=1 << 20)
    except FileNotFoundError:
        raise CommandError(f"no such file: {args.vcard}") from None
    contacts = parse_vcards(data)
    text = dump_contacts(contacts)
    if args.output is None:
        sys.stdout.write(text)
    elif args.output.exists():
        raise CommandError(f"{args.output} exists; merge by hand or choose another --output")
    else:
        args.output.write_text(text)
        print(f"{args.output}: {len(contacts)} contacts", file=sys.stderr)
    return EXIT_OK


def show(contacts: tuple[Contact, ...], out: TextIO, *, as_json: bool) -> None:
    for contact in contacts:
        zid = contact.zid.hex() if contact.zid is not None else None
        if as_json:
            item = {"name": contact.name, "numbers": list(contact.numbers), "zid": zid}
            print(json.dumps(item, ensure_ascii=True), file=out)
        else:
            linked = f"  (ZID {zid})" if zid else ""
            print(f"{contact.name}: {', '.join(contact.numbers)}{linked}", file=out)
