#!/usr/bin/env bash
# Installs what pidphone needs to build, run and test on Debian 12 / Raspberry Pi OS, and creates
# the virtual environment in .venv. Idempotent: a second run only checks.
#   scripts/setup.sh            runtime + test packages (what the test suite and the demo need)
#   scripts/setup.sh --runtime  only what the phone needs to run (for a Pi)
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-test}
# libopus0 (Opus) and libspandsp2 (G.722) are loaded through ctypes by pidphone.audio; Debian 13
# renamed the latter libspandsp2t64 (same soname).
RUNTIME_APT=(build-essential pkg-config python3-dev python3-venv libasound2-dev libsystemd-dev
             alsa-utils openssl libopus0 libspandsp2)
TEST_APT=(kamailio kamailio-tls-modules kamailio-presence-modules linphone-cli iproute2 util-linux systemd tshark
          debootstrap systemd-container espeak-ng)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
if ! apt-cache show libspandsp2 >/dev/null 2>&1 && apt-cache show libspandsp2t64 >/dev/null 2>&1; then
  RUNTIME_APT=("${RUNTIME_APT[@]/#libspandsp2/libspandsp2t64}")
fi
pkgs=("${RUNTIME_APT[@]}")
[ "$MODE" = --runtime ] || pkgs+=("${TEST_APT[@]}")
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer once, non-interactively.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | as_root debconf-set-selections || true
  as_root apt-get update -q >&2
  as_root apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.pidphone-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >&2
  if [ "$MODE" = --runtime ]; then
    .venv/bin/python -m pip install -q -e . >&2
  else
    .venv/bin/python -m pip install -q -e '.[test]' >&2
  fi
  touch "$stamp"
fi

# The tests have no network: what they need from outside is downloaded here, in parallel. The
# Debian roots' packages (made into roots by the tests themselves, on first use) and the Python
# packages scripts/install.sh installs (tests/test_systemd_container.py runs it offline).
if [ "$MODE" != --runtime ]; then
  pids=()
  for root in systemd-bookworm linphone-trixie; do
    scripts/debian-root.sh fetch "$root" & pids+=($!)
  done
  PYTHON="$PY" scripts/wheelhouse.sh fetch >/dev/null & pids+=($!)
  for pid in "${pids[@]}"; do wait "$pid"; done
fi
