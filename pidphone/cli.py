"""The `pidphone` command line."""

from __future__ import annotations

import argparse
import sys

from pidphone import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pidphone", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pidphone {__version__}")
    parser.parse_args(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
