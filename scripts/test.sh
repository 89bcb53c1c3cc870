#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite: ruff, mypy --strict, pytest.
# Extra arguments go to pytest. Exit status is non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PYTHONDONTWRITEBYTECODE=1
.venv/bin/ruff check pidphone tests bench
.venv/bin/ruff format --check pidphone tests bench
.venv/bin/mypy
exec .venv/bin/python -bb -m pytest -n 3 --dist loadfile "$@"
