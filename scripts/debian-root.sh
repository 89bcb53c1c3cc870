#!/usr/bin/env bash
# Debian root file systems made by debootstrap and kept in a cache, keyed by what goes in them:
# the phone under real systemd (tests/test_systemd_container.py), the Debian 13 linphonec peer
# (tests/peers/linphone.py), the arm64 check and the SD-card image (scripts/check-arm64.sh,
# scripts/build-image.sh).
#
#   scripts/debian-root.sh fetch NAME   download its packages into the cache (needs the network:
#                                       scripts/setup.sh runs it, outside the tests' namespace)
#   scripts/debian-root.sh build NAME   make the root from the fetched packages (offline), or
#                                       straight from the mirror when nothing was fetched;
#                                       prints the root's directory
#   scripts/debian-root.sh path NAME    prints where the root is (built or not)
#   scripts/debian-root.sh packages NAME
#
# NAME: systemd-bookworm   bookworm with systemd as PID 1 and what scripts/install.sh installs
#       linphone-trixie    Debian 13 with linphone-cli 5.3 (a chroot for linphonec)
#       pi-bookworm-arm64  arm64 bookworm with what scripts/install.sh installs, plus git
#       raspi-bookworm-arm64  the SD-card image's system (scripts/build-image.sh); a list of
#                          its own, so install.sh's changes do not make it again
#
# The cache is $PIDPHONE_CACHE/roots (default ~/.cache/pidphone/roots). A root's key is a hash
# of its suite, architecture, variant, components and package list, so changing the list (in
# this file, or in install.sh for the roots that take its list) makes a new root; another
# key's root is removed once unused for a week. Roots are minbase (Essential packages and apt)
# plus the list, nothing recommended.
# Users of a root must not change it: boot it with an overlay (nspawn --volatile=overlay).
# Environment: MIRROR (default: the Debian mirror apt uses here, else deb.debian.org);
# DEBIAN_ROOT_OFFLINE=1: `build` never goes to the mirror (exit 3 when nothing was fetched).
set -euo pipefail

SOURCE="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${PIDPHONE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pidphone}/roots"
FORMAT=1  # bump when the way a root is made changes

usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
say() { echo "debian-root: $*" >&2; }

[ $# -eq 2 ] || usage
ACTION=$1
NAME=$2

VARIANT=minbase
ARCH=$(dpkg --print-architecture)
COMPONENTS=main
case "$NAME" in
  systemd-bookworm)
    SUITE=bookworm
    mapfile -t PACKAGES < <("$SOURCE/scripts/install.sh" --print-packages)
    PACKAGES+=(systemd systemd-sysv dbus ca-certificates) ;;
  linphone-trixie)
    SUITE=trixie
    # bind9-host: linphone-cli depends on "host", which bind9-host provides (debootstrap does
    # not pick a package for a virtual one)
    PACKAGES=(linphone-cli bind9-host) ;;
  pi-bookworm-arm64)
    SUITE=bookworm
    ARCH=arm64
    mapfile -t PACKAGES < <("$SOURCE/scripts/install.sh" --print-packages)
    PACKAGES+=(git ca-certificates) ;;
  raspi-bookworm-arm64)
    # The SD-card image's system before its kernel and firmware (scripts/build-image.sh adds
    # those with apt, with the boot partition in place, as Debian's own Raspberry Pi images do).
    # A list of its own, not install.sh's: the image's system (with its initramfs, made once
    # under emulation in about two hours) is kept per this list, and pidphone's packages go on
    # top of it at every build (install.sh installs what of its list is missing, in minutes).
    # Besides the system and its first-boot tools: Python, the compilers and headers that
    # build the aarch64 wheels PyPI lacks, and a Pi's ALSA and I2C tools.
    SUITE=bookworm
    ARCH=arm64
    PACKAGES=(python3 python3-venv python3-dev build-essential pkg-config libasound2-dev
              libsystemd-dev alsa-utils i2c-tools openssl swig
              systemd-sysv udev kmod dbus systemd-timesyncd systemd-resolved openssh-server
              wpasupplicant iw ca-certificates cloud-guest-utils fdisk dosfstools
              initramfs-tools zstd) ;;
  *) say "unknown root $NAME"; usage ;;
esac

if [ -z "${MIRROR:-}" ]; then
  MIRROR=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ {print $2; exit}' \
             /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

sorted=$(printf '%s\n' "${PACKAGES[@]}" | sort -u | paste -sd, -)
KEY=$(printf '%s\n' "$FORMAT" "$SUITE" "$ARCH" "$VARIANT" "$COMPONENTS" "$sorted" \
        | sha256sum | cut -c1-12)
ROOT="$CACHE/$NAME-$KEY"
TARBALL="$ROOT.tgz"
STAMP="$ROOT/.pidphone-root"
DEBOOTSTRAP=(debootstrap "--variant=$VARIANT" "--arch=$ARCH" "--components=$COMPONENTS"
             "--include=$sorted")

# Other keys of the same root: what another package list made. Another key's root or packages go once unused for a week: worktrees of branches whose package
# lists differ share this cache, and would otherwise remove each other's roots at every run.
remove_stale() {
  local old
  for old in "$CACHE/$NAME"-*; do
    case "$old" in "$ROOT"|"$TARBALL"|"$CACHE/$NAME-$KEY."*) continue ;; esac
    [ -e "$old" ] || continue
    [ -z "$(find "$old" -maxdepth 0 -mtime -7)" ] || continue
    say "removing the outdated $old"
    rm -rf --one-file-system "$old"
  done
}

case "$ACTION" in
  packages) printf '%s\n' "${PACKAGES[@]}"; exit 0 ;;
  path) echo "$ROOT"; exit 0 ;;
  fetch|build) ;;
  *) usage ;;
esac

command -v debootstrap >/dev/null || { say "debootstrap is missing (scripts/setup.sh installs it)"; exit 2; }
mkdir -p "$CACHE"
exec 9>"$CACHE/$NAME.lock"
flock 9  # one maker at a time; the others find the result

if [ "$ACTION" = fetch ]; then
  if [ -f "$STAMP" ] || [ -f "$TARBALL" ]; then
    if [ -f "$STAMP" ]; then touch "$ROOT"; else touch "$TARBALL"; fi   # in use: remove_stale
    exit 0
  fi
  say "downloading the packages of $NAME ($SUITE $ARCH) from $MIRROR"
  rm -rf --one-file-system "$ROOT.fetch"
  start=$SECONDS
  "${DEBOOTSTRAP[@]}" --make-tarball="$TARBALL.part" "$SUITE" "$ROOT.fetch" "$MIRROR" \
      > "$CACHE/$NAME-$KEY.fetch.log" 2>&1 \
    || { tail -20 "$CACHE/$NAME-$KEY.fetch.log" >&2; exit 1; }
  rm -rf --one-file-system "$ROOT.fetch"
  mv "$TARBALL.part" "$TARBALL"
  say "fetched $NAME in $((SECONDS - start)) s: $(du -h "$TARBALL" | cut -f1)"
  remove_stale
  exit 0
fi

# build
if [ -f "$STAMP" ]; then
  touch "$ROOT"   # in use (see remove_stale)
  echo "$ROOT"
  exit 0
fi
if [ ! -f "$TARBALL" ] && [ "${DEBIAN_ROOT_OFFLINE:-}" = 1 ]; then
  say "the packages of $NAME are not in $CACHE: run scripts/setup.sh (it fetches them)"
  exit 3
fi
rm -rf --one-file-system "$ROOT" "$ROOT.part"
start=$SECONDS
log="$CACHE/$NAME-$KEY.build.log"
# dpkg syncs every file it writes: on a RAM disk that costs nothing (80 s instead of 120 s for
# systemd-bookworm here); the finished root is then copied to the cache in a few seconds.
work="$ROOT.part"
if [ -d /dev/shm ] && [ "$(stat -f -c %T /dev/shm)" = tmpfs ] \
   && [ "$(df -k --output=avail /dev/shm | tail -1)" -gt 4000000 ]; then
  work=$(mktemp -d "/dev/shm/pidphone-root-$NAME.XXXXXX")
  chmod 0755 "$work"
  trap 'rm -rf --one-file-system "$work"' EXIT
fi
if [ -f "$TARBALL" ]; then
  say "making $NAME from the fetched packages"
  "${DEBOOTSTRAP[@]}" --unpack-tarball="$TARBALL" "$SUITE" "$work" > "$log" 2>&1 \
    || { tail -20 "$log" >&2; exit 1; }
else
  say "making $NAME ($SUITE $ARCH) from $MIRROR"
  "${DEBOOTSTRAP[@]}" "$SUITE" "$work" "$MIRROR" > "$log" 2>&1 \
    || { tail -20 "$log" >&2; exit 1; }
fi
# What apt downloaded is not part of the root.
rm -rf "$work"/var/cache/apt/archives/*.deb
printf '%s %s %s %s\n' "$NAME" "$SUITE" "$ARCH" "$sorted" > "$work/.pidphone-root"
if [ "$work" != "$ROOT.part" ]; then
  cp -a "$work" "$ROOT.part"
fi
mv "$ROOT.part" "$ROOT"
rm -f "$TARBALL"
say "made $NAME in $((SECONDS - start)) s: $(du -sh --one-file-system "$ROOT" | cut -f1)"
remove_stale
echo "$ROOT"
