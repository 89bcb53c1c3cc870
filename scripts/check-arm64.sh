#!/usr/bin/env bash
# The phone on arm64, the Raspberry Pi's architecture, checked on a PC under emulation (by hand;
# run as root, with the network):
#
#   1. qemu-user-static and binfmt_misc, so that arm64 programs run here;
#   2. a Debian bookworm arm64 root (scripts/debian-root.sh pi-bookworm-arm64: minbase, what
#      install.sh needs and git; cached), used through a throw-away overlay;
#   3. the project installed in it as the README tells a Raspberry Pi user: this tree as a
#      clone in /root/pidphone, then `scripts/install.sh` as root (apt, the user, the venv,
#      pip from PyPI, the unit enabled);
#   4. `pidphone demo` and the pure-core tests (tests of pidphone.sip/sdp/rtp/zrtp/srtp/audio
#      only) under emulation.
#
# It prints which Python packages came as prebuilt aarch64 (or pure-Python) wheels and which
# were compiled here from source, and the time of each step (emulated: many times slower than
# a Pi). It fails when any step fails, so a missing build dependency (a header, a compiler, a
# package that has no aarch64 wheel and cannot be built) shows as a failed install.sh.
#
#   scripts/check-arm64.sh              everything
#   KEEP=1 scripts/check-arm64.sh       keep the overlay in $WORK to look at afterwards (and
#                                       start from the one a previous KEEP=1 run kept)
# Environment: WORK (default /var/tmp/pidphone-arm64).
set -euo pipefail

SOURCE="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${WORK:-/var/tmp/pidphone-arm64}"

# Where this machine reaches PyPI through a proxy with a CA of its own (pip's `cert` setting or
# PIP_CERT), pip in the root is given the same bundle: a Pi would not need it.
PIP_CA=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}
[ -f "$PIP_CA" ] || PIP_CA=""

say() { echo "check-arm64: $*" >&2; }
declare -a TIMES=()
step() {  # step NAME COMMAND...: run it, remember how long it took
  local name=$1 start=$SECONDS
  shift
  say "$name ..."
  "$@"
  TIMES+=("$(printf '%-44s %5d s' "$name" $((SECONDS - start)))")
}

if [ "$(id -u)" != 0 ]; then
  echo "check-arm64.sh: run it as root (it uses chroot, mounts and apt-get)" >&2
  exit 1
fi

emulation() { "$SOURCE/scripts/arm64-emulation.sh"; }

ROOT=""
make_root() { ROOT=$("$SOURCE/scripts/debian-root.sh" build pi-bookworm-arm64); }

# Everything that mounts runs in a mount namespace of its own: nothing is left mounted.
inside() {
  unshare --mount --propagation private bash -euo pipefail -c '
    root=$1 work=$2 source=$3; shift 3
    mkdir -p "$work/upper" "$work/work" "$work/merged"
    mount -t overlay overlay \
      -o "lowerdir=$root,upperdir=$work/upper,workdir=$work/work" "$work/merged"
    m=$work/merged
    mount -t proc proc "$m/proc"
    mount --rbind /dev "$m/dev"
    mount -t sysfs sysfs "$m/sys"
    mount -t tmpfs tmpfs "$m/tmp"
    cp /etc/resolv.conf "$m/etc/resolv.conf"
    exec chroot "$m" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
  ' bash "$ROOT" "$WORK" "$SOURCE" "$@"
}

copy_tree() {
  rm -rf "$WORK/upper/root/pidphone"
  mkdir -p "$WORK/upper/root/pidphone"
  tar -C "$SOURCE" --exclude=./.git --exclude=./.venv --exclude='*.egg-info' \
      --exclude=__pycache__ --exclude='./.*_cache' --exclude=./.hypothesis --exclude=./build \
      -cf - . | tar -C "$WORK/upper/root/pidphone" -xf -
}

machine() {
  local m
  m=$(inside python3 -c 'import platform; print(platform.machine())')
  say "python3 in the root runs as $m"
  [ "$m" = aarch64 ]
}

install_phone() {
  if [ -n "$PIP_CA" ]; then install -m 0644 "$PIP_CA" "$WORK/upper/root/pip-ca.pem"; fi
  # Raspberry Pi OS comes with systemd (install.sh enables the unit with systemctl); the root
  # is minbase, so add it as the system would have it.
  inside sh -c 'command -v systemctl >/dev/null || { apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd; }' \
    > "$WORK/systemd.log" 2>&1 || { tail -20 "$WORK/systemd.log" >&2; return 1; }
  # PIP_LOG: pip's verbose log, to tell downloaded wheels from packages built here.
  inside env PIP_LOG=/root/pip.log ${PIP_CA:+PIP_CERT=/root/pip-ca.pem} \
    sh -c 'cd /root/pidphone && scripts/install.sh' \
    > "$WORK/install.log" 2>&1 || { tail -40 "$WORK/install.log" >&2; return 1; }
}

wheels() {
  local log="$WORK/upper/root/pip.log"
  echo
  echo "Python packages in /opt/pidphone (aarch64):"
  inside /opt/pidphone/bin/python - <<'EOF'
import pathlib
import sys

log = pathlib.Path("/root/pip.log").read_text(errors="replace")
site = pathlib.Path(sys.prefix, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}",
                    "site-packages")
for info in sorted(site.glob("*.dist-info")):
    name, version = info.name[: -len(".dist-info")].split("-")[:2]
    if name in {"pip", "setuptools", "wheel", "pkg_resources"}:
        continue
    tags = [line.split(": ", 1)[1] for line in (info / "WHEEL").read_text().splitlines()
            if line.startswith("Tag: ")]
    built = f"building wheel for {name.lower().replace('_', '-')} " in log.lower().replace("_", "-")
    if built:
        how = "compiled here from source" if any(t.endswith("linux_aarch64") for t in tags) \
            else "built here from source (pure Python)"
    elif any("aarch64" in t for t in tags):
        how = "prebuilt aarch64 wheel"
    else:
        how = "pure-Python wheel"
    print(f"  {name:<16} {version:<12} {how:<36} {', '.join(tags)}")
EOF
  [ -f "$log" ]
}

demo() {
  inside sh -c 'cd /tmp && /opt/pidphone/bin/pidphone demo' > "$WORK/demo.log" 2>&1 \
    || { tail -40 "$WORK/demo.log" >&2; return 1; }
  tail -15 "$WORK/demo.log"
}

core_tests() {
  # The tests whose pidphone imports are only the pure core, and no peers.
  local files
  files=$(cd "$SOURCE" && python3 - <<'EOF'
import ast
import pathlib

CORE = {"sip", "sdp", "rtp", "zrtp", "srtp", "audio", "errors"}
for path in sorted(pathlib.Path("tests").glob("test_*.py")):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    ours = [n for n in names if n.split(".")[0] in {"pidphone", "tests"}]
    if ours and all(n.split(".")[0] == "pidphone" and len(n.split(".")) > 1
                    and n.split(".")[1] in CORE for n in ours):
        print(path)
EOF
)
  say "core tests: $(echo "$files" | wc -l) files"
  inside env ${PIP_CA:+PIP_CERT=/root/pip-ca.pem} \
    /opt/pidphone/bin/python -m pip install -q pytest pytest-timeout hypothesis pylibsrtp \
    > "$WORK/pytest-install.log" 2>&1 || { tail -20 "$WORK/pytest-install.log" >&2; return 1; }
  # shellcheck disable=SC2086
  inside sh -c "cd /root/pidphone && /opt/pidphone/bin/python -m pytest -q -p no:cacheprovider \
      -o addopts= --timeout=1800 $(echo $files)" > "$WORK/core-tests.log" 2>&1 \
    || { tail -40 "$WORK/core-tests.log" >&2; return 1; }
  tail -3 "$WORK/core-tests.log"
}

cleanup() {
  if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; fi
}

# KEEP=1 also starts from the overlay a previous KEEP=1 run left: install.sh then upgrades.
if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; fi
mkdir -p "$WORK"
trap cleanup EXIT
step "qemu-user-static and binfmt_misc" emulation
step "bookworm arm64 root (cached after the first)" make_root
step "a clone of this tree in /root/pidphone" copy_tree
step "python3 runs as aarch64" machine
step "scripts/install.sh (apt, user, venv, pip)" install_phone
step "which wheels were prebuilt" wheels
step "pidphone demo" demo
step "pure-core tests" core_tests

echo
echo "Times under emulation (qemu-user on $(uname -m), not a Pi's):"
printf '  %s\n' "${TIMES[@]}"
echo "check-arm64: all steps passed"
