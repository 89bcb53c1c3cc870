"""`pidphone history`: the calls the phone kept (missed, received, dialled), newest first.

Reads the history file the daemon writes (phone.history_file, by default beside the ZID
cache); `--json` prints one object per call for scripts, with the time in ISO 8601.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TextIO

from pidphone.config import Config, load_config
from pidphone.ports import CallRecord

from .common import EXIT_OK, CommandError, config_path, lazy, warn


def cmd_history(args: argparse.Namespace) -> int:
    path: Path | None = args.file
    if path is None:
        file = config_path(args)
        explicit = getattr(args, "config", None) is not None
        config = load_config(file, warn=warn) if explicit or file.exists() else Config()
        path = Path(config.history_path)
    if not path.exists():
        raise CommandError(f"no call history at {path} (no call has been kept yet)")
    file_call_log = lazy("pidphone.drivers.call_log", "FileCallLog")
    log = file_call_log(path, max_records=1000)
    records = log.load()
    if log.recovered_from is not None:
        warn(f"{path} was not a call history; moved to {log.recovered_from}")
    if args.kind:
        records = tuple(r for r in records if r.kind == args.kind)
    show(records, sys.stdout, as_json=args.json)
    return EXIT_OK


def show(records: tuple[CallRecord, ...], out: TextIO, *, as_json: bool) -> None:
    for record in records:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(record.time))
        if as_json:
            item = {
                "kind": record.kind,
                "number": record.number,
                "name": record.name,
                "time": stamp,
                "duration": record.duration,
                "secure": record.secure,
                "verified": record.verified,
            }
            print(json.dumps(item, ensure_ascii=True), file=out)
            continue
        security = "verified" if record.verified else ("secure" if record.secure else "")
        who = f"{record.name} <{record.number}>" if record.name else record.number
        seconds = int(record.duration)
        print(
            f"{stamp[:16].replace('T', ' ')}  {record.kind:8}  "
            f"{seconds // 60:3d}:{seconds % 60:02d}  {security:8}  {who}",
            file=out,
        )
