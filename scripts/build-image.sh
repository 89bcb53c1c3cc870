#!/usr/bin/env bash
# A ready-to-flash Raspberry Pi SD-card image of the phone (arm64: Pi 3, 4, Zero 2 W), made from
# Debian's own packages the way Debian's Raspberry Pi images are: bookworm, raspi-firmware,
# linux-image-arm64, the Broadcom Wi-Fi firmware, an MBR with a FAT partition labelled RASPIFIRM
# (/boot/firmware) and an ext4 one labelled RASPIROOT, the root given to the kernel by label.
# pidphone is installed by scripts/install.sh in the image, and enabled. By hand, as root, with
# the network; arm64 programs run under qemu-user (scripts/arm64-emulation.sh).
#
#   scripts/build-image.sh [OUTPUT]    default OUTPUT: ./pidphone-raspi-arm64.img.xz
#   KEEP=1 ...                         keep the work directory $WORK (root tree, partitions)
#   NO_BOOT_CHECK=1 ...                skip booting the result under systemd-nspawn
#
# First boot (image/pidphone-image-boot): the root grows to the card; SSH stays off unless
# /boot/firmware/ssh exists (with /boot/firmware/authorized_keys: key logins for root only);
# /boot/firmware/wpa_supplicant.conf sets up Wi-Fi; the phone takes /boot/firmware/pidphone.toml
# in as on Raspberry Pi OS. config.txt carries hw/config.txt's lines (through Debian's
# /etc/default/raspi-firmware-custom, so a kernel update keeps them). Each phone makes its own
# machine id, SSH host keys and ZRTP ZID at its first start: none is in the image.
#
# The image is then checked without hardware: the partition table, the boot partition's files,
# the root's contents, and its root file system booted under systemd (nspawn + qemu-user) with a
# provisioned config, until pidphone.service is active.
set -euo pipefail

SOURCE="$(cd "$(dirname "$0")/.." && pwd)"
OUTPUT="$(realpath -m "${1:-pidphone-raspi-arm64.img.xz}")"
WORK="${WORK:-/var/tmp/pidphone-image}"
FIRMWARE_MIB=508   # the FAT partition: 4 MiB .. 512 MiB, as Debian's images
SLACK_MIB=300      # free room in the root file system before it grows to the card

# Where this machine reaches PyPI through a proxy with a CA of its own (pip's `cert` setting or
# PIP_CERT), pip in the root is given the same bundle: a Pi would not need it.
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
  TIMES+=("$(printf '%-46s %5d s' "$name" $((SECONDS - start)))")
}

[ "$(id -u)" = 0 ] || fail "run it as root"
for tool in mkfs.vfat mcopy sfdisk mke2fs xz debugfs systemd-nspawn; do
  command -v "$tool" >/dev/null || MISSING=1
done
if [ -n "${MISSING:-}" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    dosfstools mtools fdisk e2fsprogs xz-utils systemd-container >&2
fi

ROOT="$WORK/root"
FIRMWARE="$WORK/firmware"

# Commands in the image's root, in a mount namespace of its own: the boot partition's
# directory is bound on /boot/firmware (a mount point, as raspi-firmware's hooks want).
in_root() {
  unshare --mount --propagation private bash -euo pipefail -c '
    root=$1 firmware=$2; shift 2
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs tmpfs "$root/tmp"
    mount --bind "$firmware" "$root/boot/firmware"
    exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
  ' bash "$ROOT" "$FIRMWARE" "$@"
}

base() {
  local cached
  cached=$("$SOURCE/scripts/debian-root.sh" build raspi-bookworm-arm64)
  rm -rf --one-file-system "$WORK"
  mkdir -p "$WORK" "$FIRMWARE"
  cp -a "$cached" "$ROOT"
  rm -f "$ROOT/.pidphone-root"
  mkdir -p "$ROOT/boot/firmware"
  # systemd-resolved's link points into /run, empty here: the build uses this machine's DNS.
  rm -f "$ROOT/etc/resolv.conf"
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
}

kernel_and_firmware() {
  cat > "$ROOT/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main non-free-firmware
deb http://deb.debian.org/debian bookworm-updates main non-free-firmware
deb http://deb.debian.org/debian-security bookworm-security main non-free-firmware
EOF
  # hw/config.txt's settings, where raspi-firmware keeps extra config.txt lines.
  grep -v '^\s*\(#\|$\)' "$SOURCE/hw/config.txt" > "$ROOT/etc/default/raspi-firmware-custom"
  in_root apt-get update -q > "$WORK/apt.log"
  in_root apt-get install -y -q --no-install-recommends \
    linux-image-arm64 raspi-firmware firmware-brcm80211 >> "$WORK/apt.log" 2>&1 \
    || { tail -30 "$WORK/apt.log" >&2; return 1; }
  # The root by label, for the kernels of later updates too.
  sed -i 's/^#\?ROOTPART=.*/ROOTPART=LABEL=RASPIROOT/' "$ROOT/etc/default/raspi-firmware"
  local version
  version=$(basename "$(ls -d "$ROOT"/lib/modules/* | sort -V | tail -1)")
  in_root env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware "$version" \
    >> "$WORK/apt.log" 2>&1
  # Device trees of the boards, as Debian's recipe copies them.
  cp "$ROOT"/usr/lib/linux-image-"$version"/broadcom/bcm*-rpi-*.dtb "$FIRMWARE/"
}

system() {
  install -m 0644 "$SOURCE/image/fstab" "$ROOT/etc/fstab"
  echo pidphone > "$ROOT/etc/hostname"
  install -m 0644 "$SOURCE/image/20-wired.network" "$SOURCE/image/25-wireless.network" \
    "$ROOT/etc/systemd/network/"
  install -m 0755 "$SOURCE/image/pidphone-image-boot" "$ROOT/usr/local/sbin/"
  install -m 0644 "$SOURCE/image/pidphone-image-boot.service" "$ROOT/etc/systemd/system/"
  in_root systemctl enable pidphone-image-boot.service systemd-networkd.service \
    systemd-resolved.service systemd-timesyncd.service
  in_root systemctl disable ssh.service
  ln -sf ../run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf.image"
}

install_phone() {
  if [ -n "$PIP_CA" ]; then install -m 0644 "$PIP_CA" "$ROOT/root/pip-ca.pem"; fi
  mkdir -p "$ROOT/root/pidphone"
  tar -C "$SOURCE" --exclude=./.git --exclude=./.venv --exclude='*.egg-info' \
      --exclude=__pycache__ --exclude='./.*_cache' --exclude=./.hypothesis --exclude=./build \
      --exclude='./*.img*' -cf - . | tar -C "$ROOT/root/pidphone" -xf -
  in_root env PIP_LOG=/root/pip.log ${PIP_CA:+PIP_CERT=/root/pip-ca.pem} \
    sh -c 'cd /root/pidphone && scripts/install.sh' \
    > "$WORK/install.log" 2>&1 || { tail -40 "$WORK/install.log" >&2; return 1; }
  install -m 0644 "$SOURCE/examples/pidphone.toml" "$FIRMWARE/pidphone.toml.example"
}

clean() {
  # Nothing of the build, nothing that must be each phone's own.
  rm -rf "$ROOT/root/pidphone" "$ROOT/root/pip.log" "$ROOT/root/pip-ca.pem" "$ROOT/root/.cache" \
         "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* \
         "$ROOT"/etc/ssh/ssh_host_*_key* "$ROOT/var/lib/pidphone" \
         "$ROOT/var/lib/dbus/machine-id" "$ROOT/etc/machine-id"
  find "$ROOT/var/log" -type f -exec truncate -s 0 {} +
  find "$ROOT/tmp" "$ROOT/var/tmp" -mindepth 1 -delete
  mv "$ROOT/etc/resolv.conf.image" "$ROOT/etc/resolv.conf"
}

assemble() {
  local root_mib image="$WORK/pidphone.img"
  root_mib=$(( $(du -s -m --one-file-system "$ROOT" | cut -f1) + SLACK_MIB ))
  rm -f "$WORK/firmware.img" "$WORK/root.img" "$image"
  mkfs.vfat -n RASPIFIRM -F 32 -C "$WORK/firmware.img" $((FIRMWARE_MIB * 1024)) >/dev/null
  mcopy -s -p -m -i "$WORK/firmware.img" "$FIRMWARE"/* ::/
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
}

compress() {
  xz -T0 -6 -c "$WORK/pidphone.img" > "$OUTPUT.part"
  mv "$OUTPUT.part" "$OUTPUT"
}

# ------------------------------------------------------------------ checks, without hardware

check_partitions() {
  local table
  table=$(sfdisk -d "$WORK/pidphone.img")
  echo "$table" | grep -q 'label: dos' || fail "no MBR"
  echo "$table" | grep -Eq "start= *8192, size= *$((FIRMWARE_MIB * 2048)), type=c" \
    || fail "the FAT partition is not at 4 MiB..512 MiB: $table"
  echo "$table" | grep -q 'type=83' || fail "no Linux partition: $table"
}

check_boot_files() {
  local listing missing=()
  listing=$(MTOOLS_SKIP_CHECK=1 mdir -/ -b -i "$WORK/pidphone.img@@4M" ::/)
  for f in config.txt cmdline.txt start4.elf fixup4.dat bootcode.bin start.elf \
           pidphone.toml.example; do
    echo "$listing" | grep -q "/$f\$" || missing+=("$f")
  done
  # Device trees by board (upstream kernels name them bcm2837-..., Raspberry Pi's bcm2710-...).
  for board in rpi-3-b rpi-3-b-plus rpi-zero-2-w rpi-4-b; do
    echo "$listing" | grep -Eq "/bcm27[0-9]+-$board\.dtb\$|/bcm2837-$board\.dtb\$" \
      || missing+=("$board device tree")
  done
  echo "$listing" | grep -q '/vmlinuz-' || missing+=(vmlinuz)
  echo "$listing" | grep -q '/initrd.img-' || missing+=(initrd.img)
  [ ${#missing[@]} -eq 0 ] || fail "missing on the boot partition: ${missing[*]}"
  local config cmdline
  config=$(MTOOLS_SKIP_CHECK=1 mtype -i "$WORK/pidphone.img@@4M" ::/config.txt)
  cmdline=$(MTOOLS_SKIP_CHECK=1 mtype -i "$WORK/pidphone.img@@4M" ::/cmdline.txt)
  while read -r line; do
    echo "$config" | grep -qxF "$line" || fail "config.txt lacks '$line'"
  done < "$ROOT/etc/default/raspi-firmware-custom"
  echo "$cmdline" | grep -q 'root=LABEL=RASPIROOT' || fail "cmdline.txt: $cmdline"
  echo "  device trees: $(echo "$listing" | grep -o 'bcm[0-9]*-rpi-[a-z0-9-]*\.dtb' | sort -u \
    | tr '\n' ' ')"
  echo "$listing" | grep -q '/bcm2712-rpi-5-b.dtb$' \
    && echo "  Pi 5 device tree: present" \
    || echo "  Pi 5 device tree: absent (bookworm's kernel predates the Pi 5)"
}

check_root() {
  local fs="$WORK/root.img"
  debugfs -R "stat /opt/pidphone/bin/pidphone" "$fs" 2>/dev/null | grep -q 'Type: regular' \
    || fail "no /opt/pidphone/bin/pidphone"
  debugfs -R "stat /etc/systemd/system/multi-user.target.wants/pidphone.service" "$fs" \
    2>/dev/null | grep -q 'Type: symlink' || fail "pidphone.service is not enabled"
  debugfs -R "stat /etc/systemd/system/sysinit.target.wants/pidphone-image-boot.service" "$fs" \
    2>/dev/null | grep -q 'Type: symlink' || fail "pidphone-image-boot.service is not enabled"
  if debugfs -R "ls /etc/systemd/system/multi-user.target.wants" "$fs" 2>/dev/null \
     | grep -q 'ssh.service'; then
    fail "SSH is on in the image"
  fi
  for gone in /var/lib/pidphone /etc/machine-id /root/pidphone /root/.cache \
              /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_rsa_key /etc/pidphone/pidphone.toml; do
    if debugfs -R "stat $gone" "$fs" 2>&1 | grep -q 'Inode:'; then
      fail "$gone is in the image"
    fi
  done
  # No private key anywhere outside the packages' own test data.
  local keys
  keys=$(grep -rlI --exclude-dir=test --exclude-dir=tests -e 'PRIVATE KEY-----' \
           "$ROOT/etc" "$ROOT/root" "$ROOT/opt" "$ROOT/var" "$ROOT/home" 2>/dev/null || true)
  [ -z "$keys" ] || fail "private keys in the image: $keys"
}

check_boot() {
  [ -z "${NO_BOOT_CHECK:-}" ] || return 0
  local log="$WORK/boot.log" leader="" nspawn state=""
  # The config a person drops on the boot partition (the phone on its own, simulated devices:
  # there is no hardware here). The boot partition is a bound directory, not the card's FAT
  # (its fstab line is masked), and nothing waits for a network the container does not own.
  local boot="$WORK/boot-check"
  rm -rf "$boot"
  cp -a "$FIRMWARE" "$boot"
  printf 'hardware = "simulated"\n[display]\ndriver = "none"\n' > "$boot/pidphone.toml"
  timeout 900 systemd-nspawn -q -D "$ROOT" --volatile=overlay --register=no --keep-unit \
    --bind="$boot:/boot/firmware" --console=pipe -b \
    systemd.mask=boot-firmware.mount systemd.mask=systemd-networkd-wait-online.service \
    </dev/null > "$log" 2>&1 &
  nspawn=$!
  for _ in $(seq 600); do
    for p in $(pgrep -P "$(pgrep -P $nspawn || echo 0)" 2>/dev/null; pgrep -P $nspawn); do
      grep -q 'NSpid:.*\s1$' "/proc/$p/status" 2>/dev/null && leader=$p
    done
    [ -n "$leader" ] && break
    sleep 0.5
  done
  [ -n "$leader" ] || fail "the root did not boot: $(tail -5 "$log")"
  local ctl=(nsenter -t "$leader" -m -u -i -p -r -w env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin)
  for _ in $(seq 600); do
    state=$("${ctl[@]}" systemctl is-active pidphone.service 2>/dev/null || true)
    [ "$state" = active ] && break
    sleep 1
  done
  "${ctl[@]}" systemctl status --no-pager pidphone.service | head -12 || true
  local mode owner installed=no
  mode=$("${ctl[@]}" stat -c '%a %U' /etc/pidphone/pidphone.toml 2>/dev/null || true)
  [ -e "$boot/pidphone.toml" ] || installed=yes
  "${ctl[@]}" systemctl poweroff --no-block || true
  wait $nspawn || true
  [ "$state" = active ] || fail "pidphone.service is $state"
  [ "$mode" = "600 pidphone" ] || fail "the provisioned config is '$mode'"
  [ "$installed" = yes ] || fail "pidphone.toml is still on the boot partition"
  echo "  booted under systemd: pidphone.service active; /boot/firmware/pidphone.toml taken in"
  echo "  as /etc/pidphone/pidphone.toml ($mode) and removed from the boot partition"
}

cleanup() { if [ -z "${KEEP:-}" ]; then rm -rf --one-file-system "$WORK"; fi; }
trap cleanup EXIT

step "arm64 emulation" "$SOURCE/scripts/arm64-emulation.sh"
step "bookworm arm64 system (cached after the first)" base
step "kernel, raspi-firmware, Wi-Fi firmware" kernel_and_firmware
step "pidphone with scripts/install.sh" install_phone
step "first-boot units, network, SSH off" system
step "clean: no build files, keys or ids" clean
step "partitions and file systems" assemble
step "check the root file system's contents" check_root
step "check the partition table" check_partitions
step "check the boot partition" check_boot_files
step "boot it under systemd, provisioned" check_boot
step "compress (xz)" compress

echo
echo "Image: $OUTPUT"
echo "  raw $(( $(stat -c %s "$WORK/pidphone.img") / 1048576 )) MiB, compressed" \
     "$(( $(stat -c %s "$OUTPUT") / 1048576 )) MiB"
echo "Times (arm64 steps emulated with qemu-user on $(uname -m)):"
printf '  %s\n' "${TIMES[@]}"
