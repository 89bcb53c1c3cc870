"""Reading the bzrtp 5.5 transcripts of tests/data/zrtp (recorded with tests/peers/bzrtp.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pidphone.zrtp.fragment import Reassembler
from pidphone.zrtp.messages import split_packet

DATA = Path(__file__).parent / "data" / "zrtp"
PQ_TRANSCRIPTS = sorted(p.stem for p in DATA.glob("bzrtp55-*.json"))


@dataclass(frozen=True)
class Row:
    at_ms: int
    sender: str
    kind: str
    data: bytes


@dataclass(frozen=True)
class Transcript:
    name: str
    rows: list[Row]
    record: dict[str, Any]

    @property
    def initiator(self) -> str:
        return str(self.record["initiator"])

    @property
    def responder(self) -> str:
        return "alice" if self.initiator == "bob" else "bob"

    def messages(self) -> list[tuple[str, bytes]]:
        """(sender, message) in wire order, fragments reassembled."""
        reassembler = Reassembler()
        found: list[tuple[str, bytes]] = []
        for row in self.rows:
            if row.kind == "fragment":
                whole = reassembler.receive(row.data, row.at_ms / 1000)
                if whole is not None:
                    found.append((row.sender, whole.message))
            else:
                found.append((row.sender, split_packet(row.data)[2]))
        return found

    def message(self, sender: str, type_block: bytes) -> bytes:
        return next(m for who, m in self.messages() if who == sender and m[4:12] == type_block)


def load(name: str) -> Transcript:
    rows = []
    for line in (DATA / f"{name}.tsv").read_text().splitlines():
        if line.startswith("#"):
            continue
        at_ms, sender, kind, data = line.split("\t")
        rows.append(Row(int(at_ms), sender, kind, bytes.fromhex(data)))
    return Transcript(name, rows, json.loads((DATA / f"{name}.json").read_text()))
