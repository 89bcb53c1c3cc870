#!/usr/bin/env bash
# A ready-to-flash Raspberry Pi SD-card image of the phone (arm64: Pi 3, 4, 400, Zero 2 W and the
# Compute Modules 3 and 4), made from Debian's own packages the way Debian's Raspberry Pi images
# are: bookworm with its security updates, raspi-firmware, linux-image-arm64, the Broadcom Wi-Fi
# firmware, an MBR with a FAT partition labelled RASPIFIRM (/boot/firmware) and an ext4 one
# labelled RASPIROOT, the root given to the kernel by label. pidphone is installed by
# scripts/install.sh in the image, and enabled. By hand, as root, with the network; arm64
# programs run under qemu-user (scripts/arm64-emulation.sh).
#
#   scripts/build-image.sh [OUTPUT]    default OUTPUT: ./pidphone-raspi-arm64.img.xz
#   NO_CHECK=1 ...                     skip scripts/check-image.sh on the result
#   KEEP=1 ...                         keep the work directory $WORK (image, partitions, logs)
#
# What is slow under emulation is done once and kept in the cache (~/.cache/pidphone/roots):
# the Debian system with its kernel, firmware, security updates and initramfs
# (raspi-image-system-KEY, refreshed with apt at every build; the initramfs is made again only
# when a package asked for it), and pip's cache of the wheels compiled for aarch64
# (pip-raspi-arm64). KEY follows the system's own package lists (debian-root.sh's
# raspi-bookworm-arm64 and SYSTEM_PACKAGES below), not install.sh's: pidphone and the packages
# install.sh asks for go on top of a copy at every build, so a change there costs minutes.
# During apt, update-initramfs is deferred: the kernel's hook and initramfs-tools' trigger would
# each make the initramfs (each run takes tens of minutes under emulation); it is made once
# afterwards.
#
# First boot (image/pidphone-image-boot): the root grows to the card; SSH stays off unless
# /boot/firmware/ssh exists (/boot/firmware/authorized_keys: key logins for root, no password
# login); /boot/firmware/wpa_supplicant.conf sets up Wi-Fi; the phone takes
# /boot/firmware/pidphone.toml in as on Raspberry Pi OS. config.txt carries hw/config.txt's
# lines (through Debian's /etc/default/raspi-firmware-custom, so a kernel update keeps them).
# Each phone makes its own machine id, SSH host keys and ZRTP ZID: none is in the image.
set -euo pipefail

SOURCE="$(cd "$(dirname "$0")/.." && pwd)"
OUTPUT="$(realpath -m "${1:-pidphone-raspi-arm64.img.xz}")"
WORK="${WORK:-/var/tmp/pidphone-image}"
CACHE="${PIDPHONE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pidphone}"
FORMAT=1           # bump when the way the cached system is made changes
FIRMWARE_MIB=508   # the FAT partition: 4 MiB .. 512 MiB, as Debian's images
SLACK_MIB=300      # free room in the root file system before it grows to the card
# On top of scripts/debian-root.sh's raspi-bookworm-arm64 (what install.sh needs, systemd, the
# first-boot tools): the kernel, the boot firmware, the Wi-Fi firmware and its regulatory data.
SYSTEM_PACKAGES=(linux-image-arm64 raspi-firmware firmware-brcm80211 wireless-regdb)
SOURCES='deb http://deb.debian.org/debian bookworm main non-free-firmware
deb http://deb.debian.org/debian bookworm-updates main non-free-firmware
deb http://deb.debian.org/debian-security bookworm-security main non-free-firmware'

# Where this machine reaches PyPI through a proxy with a CA of its own (pip's `cert` setting or
# PIP_CERT), pip in the root is given the same bundle, on a file system that is not the image's.
PIP_CA=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}
[ -f "$PIP_CA" ] || PIP_CA=""

say() { echo "build-image: $*" >&2; }
fail() { echo "build-image: FAILED: $*" >&2; exit 1; }
declare -a TIMES=()
step() {
  local name=$1 start=$SECONDS
  shift
  say "$name ..."
  "$@"
  TIMES+=("$(printf '%-50s %5d s' "$name" $((SECONDS - start)))")
}

[ "$(id -u)" = 0 ] || fail "run it as root"
for tool in mkfs.vfat mcopy sfdisk mke2fs xz; do
  command -v "$tool" >/dev/null || MISSING=1
done
if [ -n "${MISSING:-}" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    dosfstools mtools fdisk e2fsprogs xz-utils >&2
fi

# The root is made on a RAM disk where there is room (dpkg syncs every file it writes), the
# partitions and the image in $WORK.
rm -rf --one-file-system "$WORK"
mkdir -p "$WORK"
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] \
   && [ "$(df -k --output=avail /dev/shm | tail -1)" -gt 8000000 ]; then
  TREE=$(mktemp -d /dev/shm/pidphone-image.XXXXXX)
else
  TREE="$WORK/tree"
  mkdir -p "$TREE"
fi
ROOT="$TREE/root"
FIRMWARE="$TREE/firmware"   # the boot partition's files
mkdir -p "$FIRMWARE"
cleanup() {
  rm -rf --one-file-system "$TREE"
  if [ -z "${KEEP:-}" ]; then rm -rf --one-file-system "$WORK"; fi
}
trap cleanup EXIT

# Commands in the image's root, in a mount namespace of their own (nothing stays mounted): the
# boot partition's directory on /boot/firmware (a mount point, as raspi-firmware's hooks want),
# a fresh /tmp. With PHONE=1 also this source tree in /tmp/pidphone, the proxy's CA in /tmp, and
# pip's cache of aarch64 wheels on /root/.cache/pip: all gone from the root afterwards.
in_root() {
  unshare --mount --propagation private bash -euo pipefail -c '
    root=$1 firmware=$2 source=$3 ca=$4 pipcache=$5; shift 5
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs tmpfs "$root/tmp"
    mount --bind "$firmware" "$root/boot/firmware"
    pip_cert=()
    if [ "${PHONE:-}" = 1 ]; then
      mkdir -p "$root/tmp/pidphone" "$root/root/.cache/pip" "$pipcache"
      mount --bind "$pipcache" "$root/root/.cache/pip"
      if git -C "$source" rev-parse --git-dir >/dev/null 2>&1; then
        # the tracked files as they are in the work tree: what a clone would have
        (cd "$source" && git ls-files -z | tar --null --ignore-failed-read -T - -cf -) \
          | tar -C "$root/tmp/pidphone" -xf -
      else
        tar -C "$source" --exclude=./.git --exclude=./.venv --exclude=__pycache__ -cf - . \
          | tar -C "$root/tmp/pidphone" -xf -
      fi
      if [ -n "$ca" ]; then
        cp "$ca" "$root/tmp/pip-ca.pem"
        pip_cert=(PIP_CERT=/tmp/pip-ca.pem)
      fi
    fi
    exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${pip_cert[@]}" "$@"
  ' bash "$ROOT" "$FIRMWARE" "$SOURCE" "$PIP_CA" "$CACHE/pip-raspi-arm64" "$@"
}
APT=(apt-get -y -q -o Dpkg::Options::=--force-unsafe-io -o Dpkg::Options::=--force-confdef
     -o Dpkg::Options::=--force-confold)

# ------------------------------------------------------------------------------ the system

# The Debian system of the image: the cached one brought up to date, or made from the debootstrap
# root. It ends with the initramfs of its newest kernel and nothing of the phone.
system() {
  local base key cached
  base=$("$SOURCE/scripts/debian-root.sh" build raspi-bookworm-arm64)
  key=$(printf '%s\n' "$FORMAT" "$(basename "$base")" "${SYSTEM_PACKAGES[@]}" "$SOURCES" \
          | sha256sum | cut -c1-12)
  cached="$CACHE/roots/raspi-image-system-$key"
  if [ -f "$cached/.pidphone-root" ]; then
    say "starting from the cached $cached"
    cp -a "$cached" "$ROOT"
  else
    cp -a "$base" "$ROOT"
  fi
  rm -f "$ROOT/.pidphone-root"
  mkdir -p "$ROOT/boot/firmware"
  # systemd-resolved's link points into /run, empty here: the build uses this machine's DNS.
  rm -f "$ROOT/etc/resolv.conf"
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  printf '%s\n' "$SOURCES" > "$ROOT/etc/apt/sources.list"

  local before after
  before=$(system_state)
  defer_initramfs
  in_root apt-get update -q > "$WORK/apt.log" 2>&1 || { tail -20 "$WORK/apt.log" >&2; return 1; }
  in_root "${APT[@]}" full-upgrade >> "$WORK/apt.log" 2>&1 \
    || { tail -30 "$WORK/apt.log" >&2; return 1; }
  in_root "${APT[@]}" install --no-install-recommends "${SYSTEM_PACKAGES[@]}" \
    >> "$WORK/apt.log" 2>&1 || { tail -30 "$WORK/apt.log" >&2; return 1; }
  old_kernels
  in_root apt-get clean
  undefer_initramfs
  after=$(system_state)

  if [ "$before" != "$after" ] || [ ! -f "$cached/.pidphone-root" ]; then
    say "keeping the system in $cached"
    rm -rf --one-file-system "$cached.part"
    cp -a "$ROOT" "$cached.part"
    echo "raspi-image-system $key" > "$cached.part/.pidphone-root"
    rm -rf --one-file-system "$cached"
    mv "$cached.part" "$cached"
    for old in "$CACHE"/roots/raspi-image-system-*; do
      [ "$old" = "$cached" ] || rm -rf --one-file-system "$old"
    done
  fi
}

# What tells whether the system changed: the installed packages and the initramfs (none at first).
system_state() {
  { cat "$ROOT/var/lib/dpkg/status"; cat "$ROOT"/boot/initrd.img-* 2>/dev/null || true; } | md5sum
}

# update-initramfs is diverted while apt runs: a call only notes that the initramfs is due.
defer_initramfs() {
  in_root dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.apt \
    --add /usr/sbin/update-initramfs
  cat > "$ROOT/usr/sbin/update-initramfs" <<'EOF'
#!/bin/sh
# scripts/build-image.sh: deferred until apt is done, then run once.
echo "update-initramfs $* (deferred)"
touch /var/tmp/initramfs-due
EOF
  chmod 0755 "$ROOT/usr/sbin/update-initramfs"
}

undefer_initramfs() {
  rm -f "$ROOT/usr/sbin/update-initramfs"
  in_root dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.apt \
    --remove /usr/sbin/update-initramfs
  local version
  version=$(newest_kernel)
  if [ ! -e "$ROOT/boot/initrd.img-$version" ]; then
    say "making the initramfs of $version (once; slow under emulation)"
    in_root update-initramfs -c -k "$version" >> "$WORK/apt.log" 2>&1 \
      || { tail -20 "$WORK/apt.log" >&2; return 1; }
  elif [ -e "$ROOT/var/tmp/initramfs-due" ]; then
    say "updating the initramfs of $version (once; slow under emulation)"
    in_root update-initramfs -u -k "$version" >> "$WORK/apt.log" 2>&1 \
      || { tail -20 "$WORK/apt.log" >&2; return 1; }
  fi
  rm -f "$ROOT/var/tmp/initramfs-due"
}

newest_kernel() {
  basename "$(ls -d "$ROOT"/lib/modules/*/ | sort -V | tail -1)"
}

# After a kernel update the previous kernel package stays installed; the image needs one.
old_kernels() {
  local version old
  version=$(newest_kernel)
  old=$(in_root dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 'linux-image-[0-9]*' \
          | awk -v keep="linux-image-$version" '$1 ~ /^.i/ && $2 != keep {print $2}')
  if [ -n "$old" ]; then
    # shellcheck disable=SC2086
    in_root "${APT[@]}" purge $old >> "$WORK/apt.log" 2>&1
  fi
}

# ------------------------------------------------------------------------------- the phone

# On top of the cached system, at every build: install.sh adds the packages of its list the
# system lacks (apt, with update-initramfs deferred as above), the venv and the unit.
install_phone() {
  defer_initramfs
  PHONE=1 in_root sh -c 'cd /tmp/pidphone && scripts/install.sh' \
    > "$WORK/install.log" 2>&1 || { tail -40 "$WORK/install.log" >&2; return 1; }
  in_root apt-get clean
  undefer_initramfs
}

# The image's own settings: mounts, host name, network, first-boot unit, SSH off.
settings() {
  install -m 0644 "$SOURCE/image/fstab" "$ROOT/etc/fstab"
  echo pidphone > "$ROOT/etc/hostname"
  install -m 0644 "$SOURCE/image/hosts" "$ROOT/etc/hosts"
  install -m 0644 "$SOURCE/image/20-wired.network" "$SOURCE/image/25-wireless.network" \
    "$ROOT/etc/systemd/network/"
  install -m 0644 "$SOURCE/image/sshd-keys-only.conf" "$ROOT/etc/ssh/sshd_config.d/"
  install -m 0755 "$SOURCE/image/pidphone-image-boot" "$ROOT/usr/local/sbin/"
  install -m 0644 "$SOURCE/image/pidphone-image-boot.service" "$ROOT/etc/systemd/system/"
  # After raspi-firmware's hooks (z50): the Zero 2 W's device tree under both names the firmware
  # may look for, at every kernel or initramfs update.
  install -m 0755 "$SOURCE/image/raspi-dtb-names" \
    "$ROOT/etc/kernel/postinst.d/z60-pidphone-dtb-names"
  install -m 0755 "$SOURCE/image/raspi-dtb-names" \
    "$ROOT/etc/initramfs/post-update.d/z60-pidphone-dtb-names"
  in_root systemctl enable --quiet pidphone-image-boot.service systemd-networkd.service \
    systemd-resolved.service systemd-timesyncd.service
  in_root systemctl disable --quiet ssh.service
  # raspi-firmware's settings for the boot partition (kept by later kernel updates): the root
  # by label; the consoles of arm64 boards (HDMI, the mini UART); no cma= (Debian's default
  # 64M stops a Pi 4 from booting, and the phone does not use the HDMI output's GPU).
  sed -i -e 's/^#\?ROOTPART=.*/ROOTPART=LABEL=RASPIROOT/' \
         -e 's/^#\?CONSOLES=.*/CONSOLES="tty0 ttyS1,115200"/' \
         -e 's/^#\?CMA=.*/CMA=0/' "$ROOT/etc/default/raspi-firmware"
  # hw/config.txt's settings, where raspi-firmware keeps extra config.txt lines.
  grep -v '^\s*\(#\|$\)' "$SOURCE/hw/config.txt" > "$ROOT/etc/default/raspi-firmware-custom"
}

# The boot partition, filled by raspi-firmware itself: the boot firmware, the kernel, its
# initramfs and the boards' device trees, config.txt and cmdline.txt.
boot_partition() {
  find "$FIRMWARE" -mindepth 1 -delete
  in_root dpkg-reconfigure raspi-firmware > "$WORK/firmware.log" 2>&1 \
    || { cat "$WORK/firmware.log" >&2; return 1; }
  # raspi-firmware's postinst runs its own hook only, not the others of /etc/kernel/postinst.d
  in_root /etc/kernel/postinst.d/z60-pidphone-dtb-names
  install -m 0644 "$SOURCE/examples/pidphone.toml" "$FIRMWARE/pidphone.toml.example"
}

clean() {
  # Nothing of the build, nothing that must be each phone's own.
  rm -rf "$ROOT/root/.cache" "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/lib/apt/lists/* \
         "$ROOT"/etc/ssh/ssh_host_*_key* "$ROOT/var/lib/pidphone" "$ROOT/var/lib/pidphone-image" \
         "$ROOT/var/lib/systemd/random-seed" "$ROOT/var/lib/systemd/credential.secret" \
         "$ROOT/root/.ssh" "$ROOT/root/.bash_history" "$ROOT"/var/cache/debconf/*-old \
         "$ROOT"/var/lib/dpkg/*-old
  mkdir -p "$ROOT/var/lib/apt/lists/partial"
  # An empty machine-id: a new one is made and kept at the first boot (a missing file would also
  # start systemd's first-boot wizard on the console). D-Bus reads the same.
  : > "$ROOT/etc/machine-id"
  ln -sf /etc/machine-id "$ROOT/var/lib/dbus/machine-id"
  find "$ROOT/var/log" -type f -exec truncate -s 0 {} +
  find "$ROOT/tmp" "$ROOT/var/tmp" -mindepth 1 -delete
  ln -sf ../run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"
}

# ------------------------------------------------------------------------------- the image

assemble() {
  local root_mib image="$WORK/pidphone.img"
  root_mib=$(( $(du -s -m --one-file-system "$ROOT" | cut -f1) + SLACK_MIB ))
  rm -f "$WORK/firmware.img" "$WORK/root.img" "$image"
  mkfs.vfat -n RASPIFIRM -F 32 -C "$WORK/firmware.img" $((FIRMWARE_MIB * 1024)) >/dev/null
  MTOOLS_SKIP_CHECK=1 mcopy -s -p -m -i "$WORK/firmware.img" "$FIRMWARE"/* ::/
  mke2fs -q -t ext4 -L RASPIROOT -d "$ROOT" "$WORK/root.img" "${root_mib}M"
  truncate -s $(( (4 + FIRMWARE_MIB + root_mib) * 1024 * 1024 )) "$image"
  sfdisk -q "$image" <<EOF
label: dos
start=4MiB, size=${FIRMWARE_MIB}MiB, type=c
start=$((4 + FIRMWARE_MIB))MiB, type=83
EOF
  dd if="$WORK/firmware.img" of="$image" bs=1M seek=4 conv=notrunc,sparse status=none
  dd if="$WORK/root.img" of="$image" bs=1M seek=$((4 + FIRMWARE_MIB)) conv=notrunc,sparse \
     status=none
  rm -f "$WORK/firmware.img" "$WORK/root.img"
}

compress() {
  xz -T0 -6 -c "$WORK/pidphone.img" > "$OUTPUT.part"
  mv "$OUTPUT.part" "$OUTPUT"
  (cd "$(dirname "$OUTPUT")" && sha256sum "$(basename "$OUTPUT")") > "$OUTPUT.sha256"
}

check() {
  [ -z "${NO_CHECK:-}" ] || return 0
  "$SOURCE/scripts/check-image.sh" "$WORK/pidphone.img"
}

start=$SECONDS
step "arm64 emulation" "$SOURCE/scripts/arm64-emulation.sh"
step "Debian system: kernel, firmware, updates (cached)" system
step "pidphone with scripts/install.sh" install_phone
step "settings: mounts, network, first boot, SSH off" settings
step "boot partition (raspi-firmware)" boot_partition
step "clean: no build files, keys or ids" clean
step "partitions and file systems" assemble
step "compress (xz)" compress
built=$((SECONDS - start))
step "scripts/check-image.sh" check

echo
echo "Image: $OUTPUT"
echo "  raw $(( $(stat -c %s "$WORK/pidphone.img") / 1048576 )) MiB, compressed" \
     "$(( $(stat -c %s "$OUTPUT") / 1048576 )) MiB; sha256 in $OUTPUT.sha256"
echo "Times (arm64 steps emulated with qemu-user on $(uname -m)):"
printf '  %s\n' "${TIMES[@]}"
echo "  built in $built s"
