#!/usr/bin/env bash
# The Python packages scripts/install.sh installs (pip, pidphone's dependencies, lgpio, and
# what builds the ones that PyPI has only as source), downloaded once, so that the test under
# real systemd runs install.sh in a container with no network, through pip's own settings:
# PIP_NO_INDEX=1 PIP_FIND_LINKS=<this directory>. Source packages stay source: they are
# compiled in the container, with the build dependencies install.sh gives it.
#
#   scripts/wheelhouse.sh fetch   download them (network: scripts/setup.sh runs it); print the
#                                 directory
#   scripts/wheelhouse.sh path    print the directory
#
# The directory is $PIDPHONE_CACHE/wheels-KEY (default ~/.cache/pidphone), KEY a hash of
# pyproject.toml's requirements and this Python's version: a changed requirement makes a new one.
# Another key's directory is removed when no fetch has used it for a week.
set -euo pipefail

SOURCE="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${PIDPHONE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pidphone}"
PY=${PYTHON:-python3}
EXTRA=(pip setuptools wheel lgpio)

requirements=$("$PY" - "$SOURCE/pyproject.toml" <<'EOF'
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    data = tomllib.load(f)
for line in data["build-system"]["requires"] + data["project"]["dependencies"]:
    print(line)
EOF
)
version=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
KEY=$(printf '%s\n' "$version" "$requirements" "${EXTRA[@]}" | sha256sum | cut -c1-12)
DIR="$CACHE/wheels-$KEY"

case "${1:-}" in
  path) echo "$DIR"; exit 0 ;;
  fetch) ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

if [ -f "$DIR/.complete" ]; then
  touch "$DIR"   # in use: kept (see below)
  echo "$DIR"
  exit 0
fi
mkdir -p "$CACHE"
rm -rf "$DIR.part"
mkdir "$DIR.part"
printf '%s\n' "$requirements" > "$DIR.part/requirements.txt"
"$PY" -m pip download -q --no-cache-dir -d "$DIR.part" -r "$DIR.part/requirements.txt" \
    "${EXTRA[@]}" >&2
touch "$DIR.part/.complete"
rm -rf "$DIR"
mv "$DIR.part" "$DIR"
# Other keys go once unused for a week: worktrees of other branches may share this cache.
touch "$DIR"
find "$CACHE" -maxdepth 1 -name 'wheels-*' ! -name "wheels-$KEY" -mtime +7 -exec rm -rf {} +
echo "$DIR"
