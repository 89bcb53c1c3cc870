#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite: ruff, mypy --strict, pytest.
# Extra arguments go to pytest. Exit status is non-zero when anything fails.
# pytest runs inside a private network namespace that has only loopback (when we may create one),
# so no test can reach another machine and fixed ports never collide with the host's.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PYTHONDONTWRITEBYTECODE=1
.venv/bin/ruff check pidphone tests bench fuzz
.venv/bin/ruff format --check pidphone tests bench fuzz
.venv/bin/mypy
pytest=(.venv/bin/python -bb -m pytest -n 3 --dist loadfile "$@")
if [ -z "${PIDPHONE_NETNS:-}" ] && unshare -n true 2>/dev/null; then
  export PIDPHONE_NETNS=1
  exec unshare -n bash -c 'ip link set lo up && exec "$@"' bash "${pytest[@]}"
fi
exec "${pytest[@]}"
