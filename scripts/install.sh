#!/usr/bin/env bash
# Installs pidphone on Raspberry Pi OS (Debian 12 "bookworm" or later) from this source tree:
# the system packages, the user "pidphone" (groups audio gpio i2c spi), the venv /opt/pidphone,
# /etc/pidphone, and the systemd unit. Idempotent: run it again after `git pull` to upgrade.
#
#   sudo scripts/install.sh              install or upgrade, enable the service
#   scripts/install.sh --dry-run         print what would be done, change nothing
#   options: --no-apt (skip apt-get), --start (start or restart the service now),
#            --print-packages (list the Debian packages it installs, one a line, and stop)
#   environment: PREFIX (default /opt/pidphone), PYTHON (default python3)
set -euo pipefail

SOURCE="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${PREFIX:-/opt/pidphone}"
PYTHON="${PYTHON:-python3}"
SERVICE_USER=pidphone
GROUPS_NEEDED=(audio gpio i2c spi)
UNIT_DIR=/etc/systemd/system
CONFIG_DIR=/etc/pidphone
# Debian's own packages only (Raspberry Pi OS is Debian plus its own archive): everything here
# exists on plain Debian bookworm, arm64 and amd64. swig builds lgpio from its source where
# PyPI has no wheel for this machine (see LGPIO_BUILD below). libopus0 (Opus) and libspandsp2
# (G.722) are the voice codecs' libraries, loaded by pidphone.audio; Debian 13 renamed the
# latter libspandsp2t64 (same soname), which step 1 asks for there.
APT_PACKAGES=(python3 python3-venv python3-dev build-essential pkg-config libasound2-dev
              libsystemd-dev alsa-utils i2c-tools openssl swig libopus0 libspandsp2)

DRY_RUN=false
APT=true
START=false
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=true ;;
    --no-apt) APT=false ;;
    --start) START=true ;;
    --print-packages) printf '%s\n' "${APT_PACKAGES[@]}"; exit 0 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "install: $*" >&2; }

# Every change goes through `run`, so --dry-run shows exactly the commands a real run would use.
run() {
  if $DRY_RUN; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

if ! $DRY_RUN && [ "$(id -u)" != 0 ]; then
  echo "install.sh: run it as root (sudo scripts/install.sh), or with --dry-run" >&2
  exit 1
fi

# 1. System packages (only the missing ones).
if $APT; then
  if ! apt-cache show libspandsp2 >/dev/null 2>&1 && apt-cache show libspandsp2t64 >/dev/null 2>&1
  then
    APT_PACKAGES=("${APT_PACKAGES[@]/#libspandsp2/libspandsp2t64}")
  fi
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    run apt-get update -q
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi

# 2. Groups and the service user. Raspberry Pi OS has the groups; elsewhere they are made.
for g in "${GROUPS_NEEDED[@]}"; do
  getent group "$g" >/dev/null || run groupadd --system "$g"
done
if ! id "$SERVICE_USER" >/dev/null 2>&1; then
  say "creating the system user $SERVICE_USER"
  run useradd --system --user-group --home-dir /var/lib/pidphone --no-create-home \
      --shell /usr/sbin/nologin --comment "pidphone desk phone" "$SERVICE_USER"
fi
groups_csv=$(IFS=,; echo "${GROUPS_NEEDED[*]}")
run usermod --append --groups "$groups_csv" "$SERVICE_USER"

# 3. The venv and the program.
if [ ! -x "$PREFIX/bin/python" ]; then
  say "creating the venv $PREFIX"
  run "$PYTHON" -m venv "$PREFIX"
fi
run "$PREFIX/bin/python" -m pip install -q --upgrade pip
# gpiozero's pin backend is lgpio: PyPI has wheels for aarch64 and x86_64 that carry the C
# library inside. Elsewhere pip builds it from its source, and PYPI=1 makes lgpio's own
# setup.py link the library's sources it ships (no liblgpio-dev, which only Raspberry Pi OS has).
run env PYPI=1 "$PREFIX/bin/python" -m pip install -q --upgrade "$SOURCE" lgpio
run install -d -m 0755 "$PREFIX/share/doc/pidphone"
# The user's documents, named from the source tree whatever the current directory
# (docs/readme-sections.md is the README's source, not a document of its own).
for doc in "$SOURCE"/README.md "$SOURCE"/SECURITY.md "$SOURCE"/docs/*.md "$SOURCE"/examples/pidphone.toml; do
  if [ -f "$doc" ] && [ "$(basename "$doc")" != readme-sections.md ]; then
    run install -m 0644 "$doc" "$PREFIX/share/doc/pidphone/"
  fi
done

# 4. The config directory. The config itself is yours to write (or to provision headless);
#    an existing one is never touched.
run install -d -m 0755 -o root -g root "$CONFIG_DIR"
run install -m 0644 "$SOURCE/examples/pidphone.toml" "$CONFIG_DIR/pidphone.toml.example"
if [ ! -e "$CONFIG_DIR/pidphone.toml" ]; then
  say "no $CONFIG_DIR/pidphone.toml yet: copy $CONFIG_DIR/pidphone.toml.example and edit it,"
  say "or put pidphone.toml on the boot partition (docs/install.md, headless provisioning)"
fi

# 5. Device access for the groups above (Raspberry Pi OS has such rules; plain Debian does
#    not), and the I2C character devices (/dev/i2c-*) at boot.
install_if_changed() {  # SOURCE TARGET
  if ! cmp -s "$1" "$2"; then
    run install -m 0644 "$1" "$2"
  fi
}
install_if_changed "$SOURCE/systemd/60-pidphone.rules" /etc/udev/rules.d/60-pidphone.rules
if $DRY_RUN; then
  echo "+ write /etc/modules-load.d/pidphone.conf (i2c-dev)"
elif [ "$(cat /etc/modules-load.d/pidphone.conf 2>/dev/null)" != i2c-dev ]; then
  mkdir -p /etc/modules-load.d
  echo i2c-dev > /etc/modules-load.d/pidphone.conf
fi

# 6. The systemd unit (paths follow PREFIX).
unit_text=$(sed "s#/opt/pidphone#$PREFIX#g" "$SOURCE/systemd/pidphone.service")
if [ ! -f "$UNIT_DIR/pidphone.service" ] || [ "$(cat "$UNIT_DIR/pidphone.service")" != "$unit_text" ]; then
  say "installing $UNIT_DIR/pidphone.service"
  if $DRY_RUN; then
    echo "+ write $UNIT_DIR/pidphone.service (systemd/pidphone.service, prefix $PREFIX)"
  else
    printf '%s\n' "$unit_text" > "$UNIT_DIR/pidphone.service.tmp"
    chmod 0644 "$UNIT_DIR/pidphone.service.tmp"
    mv "$UNIT_DIR/pidphone.service.tmp" "$UNIT_DIR/pidphone.service"
  fi
fi
# In a chroot (an SD-card image being made) systemd is not running: `enable` works on the files
# alone and the unit is read at the first boot.
if $DRY_RUN || [ -d /run/systemd/system ]; then
  run systemctl daemon-reload
fi
run systemctl enable pidphone.service
if $START; then
  run systemctl restart pidphone.service
fi

# 7. What is left to do by hand.
if ! grep -qs '^dtparam=i2c_arm=on' /boot/firmware/config.txt; then
  say "I2C is not enabled: see hw/config.txt (or: raspi-config nonint do_i2c 0)"
fi
say "done. Check the config with: $PREFIX/bin/pidphone check-config"
say "then: systemctl start pidphone; journalctl -u pidphone -f"
