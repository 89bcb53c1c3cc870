"""`python -m pidphone.cli`: the `pidphone` command without its console script."""

from __future__ import annotations

import sys

from pidphone.cli import main

sys.exit(main())
