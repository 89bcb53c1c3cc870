"""Every document the code and the docs send a reader to is in the repository.

A docstring once pointed at an ARCHITECTURE.md the repository never had; a reader of the
installed package, or of the source, found nothing there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMED = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.md)\b")
"""A Markdown file named in text: "SECURITY.md", "docs/sas.md"."""


def sources() -> list[Path]:
    return [
        *sorted((ROOT / "pidphone").rglob("*.py")),
        *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "README.md",
        ROOT / "SECURITY.md",
    ]


def test_every_named_document_exists() -> None:
    missing = []
    for source in sources():
        for name in NAMED.findall(source.read_text(encoding="utf-8")):
            candidates = (ROOT / name, ROOT / "docs" / name, source.parent / name)
            if not any(path.is_file() for path in candidates):
                missing.append(f"{source.relative_to(ROOT)} names {name}")
    assert missing == []
    assert len(sources()) > 50  # the package was found
