#!/usr/bin/env bash
# Makes arm64 programs run on this machine: Debian's qemu-user-static, registered with
# binfmt_misc (mounted first where it is not). Used by scripts/check-arm64.sh and
# scripts/build-image.sh; run as root.
set -euo pipefail
if ! command -v qemu-aarch64-static >/dev/null || ! command -v update-binfmts >/dev/null \
   || ! command -v debootstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    qemu-user-static binfmt-support debootstrap >&2
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --enable qemu-aarch64
fi
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64
# F: the interpreter is opened now, so it works inside chroots and containers too.
grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64
