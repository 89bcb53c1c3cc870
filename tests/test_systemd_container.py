"""The phone as it is installed: scripts/install.sh run for real in a Debian bookworm system
booted by systemd (PID 1) in systemd-nspawn, then the shipped unit, unchanged, under systemd.

The root is scripts/debian-root.sh's systemd-bookworm (minbase plus what install.sh asks for:
no procps, so no /bin/kill), booted with a RAM overlay; install.sh's pip runs from the
wheelhouse scripts/setup.sh downloaded (the tests have no network), and compiles the packages
PyPI has as source with what install.sh installed. Kamailio (TLS registrar) and linphonec (the
peer, ZRTP by bzrtp) run on the loopback of the test's private network namespace, which the
container shares. The phone's screen is the simulated display, whose text boxes go to stdout
and so to the journal.

The tests run in file order on one booted system and build on each other.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pidphone.drivers.certs import Pki, make_test_pki
from tests.conftest import need_path, need_program
from tests.peers.debian_root import debian_root, wheelhouse
from tests.peers.kamailio import Kamailio, tls_module
from tests.peers.linphone import Linphone
from tests.peers.netns import need_private_network, private_network
from tests.peers.nspawn import Container
from tests.peers.wav import write_tone

# The first test also sets the system up: a cold root build (debian_root: up to 600 s) and
# install.sh (up to 600 s) do not fit pytest's default 300 s on a loaded machine.
pytestmark = [
    pytest.mark.kamailio,
    pytest.mark.linphone,
    pytest.mark.slow,
    pytest.mark.timeout(1200),
]

CHECKOUT = Path(__file__).resolve().parent.parent
SOURCE = "/root/pidphone"
"""Where the checkout is copied in the container, as a user's clone would be."""
SKIP = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", "build", ".*_cache", ".hypothesis"
)
PASSWORD = "alice-" + secrets.token_hex(8)
"""The account's password: it must never appear in the journal."""
BOOT_SECRET = "boot-" + secrets.token_hex(8)
"""A password in a broken boot-partition file: never in the journal either."""
CONFIG = "/etc/pidphone/pidphone.toml"
BOOT_FILE = "/boot/firmware/pidphone.toml"
ZID_CACHE = "/var/lib/pidphone/zid-cache.json"


def phone_config(display_name: str, keys_script: bool = False) -> str:
    keys = 'keys_script = "keys.txt"\n' if keys_script else ""
    return f"""hardware = "simulated"
[account]
aor = "sip:alice@127.0.0.1"
password = "{PASSWORD}"
display_name = "{display_name}"
[server]
registrar = "127.0.0.1:5061"
ca_file = "ca.pem"
[display]
driver = "ssd1306"
[phone]
speed_dials = {{ "1" = "sip:bob@127.0.0.1" }}
[sim]
{keys}screens_dir = "/var/lib/pidphone/screens"
"""


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.2)


class Phone:
    """The installed phone, seen through systemctl and journalctl."""

    def __init__(self, box: Container) -> None:
        self.box = box

    def show(self, *properties: str) -> dict[str, str]:
        return self.box.systemctl_show("pidphone.service", *properties)

    def journal(self, *matches: str, invocation: str = "") -> str:
        args = ["journalctl", "--no-pager", "-o", "cat", "-u", "pidphone.service", *matches]
        if invocation:
            args.append(f"_SYSTEMD_INVOCATION_ID={invocation}")
        return self.box.run(*args).stdout

    def invocation(self) -> str:
        return self.show("InvocationID")["InvocationID"]

    def registered(self) -> bool:
        return self.show("StatusText")["StatusText"].startswith("registered: sip:alice@")

    def wait_registered(self, timeout: float = 30.0) -> None:
        wait_for(self.registered, "registration in STATUS=", timeout)

    def restart(self) -> str:
        """Restart and wait for READY=1 (systemctl waits for it: Type=notify); the new run's
        invocation id."""
        self.box.run("systemctl", "restart", "pidphone.service")
        return self.invocation()


@pytest.fixture(scope="module")
def network() -> Iterator[None]:
    need_program("kamailio", "kamailio")
    need_path(tls_module(), "kamailio-tls-modules")
    need_program("linphonec", "linphone-cli")
    need_program("systemd-nspawn", "systemd-container")
    need_program("nsenter", "util-linux")
    need_private_network()
    with private_network():
        yield


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def kamailio(
    network: None, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kamailio]:
    users = {"alice": PASSWORD, "bob": "bobpw"}
    with Kamailio(tmp_path_factory.mktemp("kamailio"), pki, users=users).started() as server:
        yield server


@pytest.fixture(scope="module")
def box(
    network: None, kamailio: Kamailio, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Container]:
    root = debian_root("systemd-bookworm")
    wheels = wheelhouse()
    work = tmp_path_factory.mktemp("container")
    with Container(root, work / "console.log", binds_ro={wheels: "/mnt/wheels"}).started() as c:
        shutil.copytree(CHECKOUT, c.path(SOURCE), ignore=SKIP, symlinks=True)
        result = c.run(
            f"{SOURCE}/scripts/install.sh",
            env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/mnt/wheels"},
            timeout=600,
            check=False,
        )
        (work / "install.log").write_text(result.stdout + result.stderr)
        assert result.returncode == 0, result.stdout + result.stderr
        yield c


@pytest.fixture(scope="module")
def phone(box: Container, pki: Pki) -> Phone:
    """Headless provisioning: the config is dropped on the boot partition and the service
    started; the CA the config names is put beside it first."""
    box.write("/etc/pidphone/ca.pem", pki.ca_cert.read_text())
    box.path("/boot/firmware").mkdir(parents=True, exist_ok=True)
    box.path(BOOT_FILE).write_text(phone_config("Desk One"))
    box.path(BOOT_FILE).chmod(0o755)  # FAT shows every file as readable by all
    box.run("systemctl", "start", "pidphone.service", timeout=90)
    return Phone(box)


@pytest.fixture(scope="module")
def bob(
    network: None, kamailio: Kamailio, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Linphone]:
    work = tmp_path_factory.mktemp("bob")
    peer = Linphone(
        work,
        "bob",
        "bobpw",
        ca_file=pki.ca_cert,
        registrar=kamailio.address,
        rtp_port=17178,
        media_encryption="zrtp",
        encryption_mandatory=True,
        auto_answer=True,
    )
    peer.start()
    try:
        peer.wait_registered()
        peer.use_files(play=write_tone(work / "700.wav", 700), record=work / "heard.wav")
        yield peer
    finally:
        peer.stop()


def test_install_sh_installed_the_phone_and_enabled_it(box: Container) -> None:
    assert box.run("systemctl", "is-enabled", "pidphone.service").stdout.strip() == "enabled"
    assert box.path("/opt/pidphone/bin/pidphone").exists()
    # The unit as shipped (install.sh only rewrites the prefix, which is the default here).
    installed = box.path("/etc/systemd/system/pidphone.service").read_text()
    assert installed == (CHECKOUT / "systemd" / "pidphone.service").read_text()
    # Every Debian package install.sh wants was in the root made from its own list, so apt
    # was not needed; what PyPI has only as source was compiled here.
    output = (box.log.parent / "install.log").read_text()
    assert not re.search(r"^install: installing [^/]", output, re.MULTILINE), output
    assert not box.path("/bin/kill").exists()  # no procps: ExecReload= must not need it
    # GPIO, I2C and SPI devices for the service's groups, as Raspberry Pi OS has them.
    rules = box.path("/etc/udev/rules.d/60-pidphone.rules").read_text()
    assert 'KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"' in rules
    assert box.path("/etc/modules-load.d/pidphone.conf").read_text() == "i2c-dev\n"


def test_provisioned_start_reaches_ready_with_its_status(phone: Phone) -> None:
    box = phone.box
    assert not box.path(BOOT_FILE).exists()
    config = box.path(CONFIG)
    assert config.read_text() == phone_config("Desk One")
    info = config.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert box.run("stat", "-c", "%U:%G", CONFIG).stdout.strip() == "pidphone:pidphone"
    phone.wait_registered()
    status = box.run("systemctl", "status", "--no-pager", "pidphone.service", check=False).stdout
    assert "active (running)" in status
    shown = phone.show("Type", "ActiveState", "SubState", "StatusText", "NotifyAccess")
    assert (shown["Type"], shown["ActiveState"], shown["SubState"]) == (
        "notify",
        "active",
        "running",
    )
    assert f'Status: "{shown["StatusText"]}"' in status
    assert "installed /etc/pidphone/pidphone.toml from /boot/firmware/pidphone.toml" in (
        phone.journal()
    )


def test_hardening_holds_under_real_systemd(phone: Phone) -> None:
    box = phone.box
    out = box.run("systemd-analyze", "security", "--no-pager", "pidphone.service").stdout
    match = re.search(r"Overall exposure level for pidphone\.service: (\d+\.\d+)", out)
    assert match is not None, out
    assert float(match.group(1)) <= 1.5
    pid = phone.show("MainPID")["MainPID"]
    status = dict(
        line.split(":", 1) for line in box.path(f"/proc/{pid}/status").read_text().splitlines()
    )
    uid = box.run("id", "-u", "pidphone").stdout.strip()
    assert status["Uid"].split() == [uid] * 4
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[caps], 16) == 0, caps
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"
    # The modes docs/install.md promises.
    owner_mode = {
        "/etc/pidphone": ("root:root", 0o755),
        CONFIG: ("pidphone:pidphone", 0o600),
        "/var/lib/pidphone": ("pidphone:pidphone", 0o700),
        ZID_CACHE: ("pidphone:pidphone", 0o600),
    }
    for path, (owner, mode) in owner_mode.items():
        assert box.run("stat", "-c", "%U:%G", path).stdout.strip() == owner, path
        assert stat.S_IMODE(box.path(path).stat().st_mode) == mode, path


def test_secured_call_survives_a_reload_that_takes_effect_after_it(
    phone: Phone, bob: Linphone
) -> None:
    box = phone.box
    box.write("/etc/pidphone/keys.txt", "1.0 lift\n0.5 speed1\n")
    box.write(CONFIG, phone_config("Desk One", keys_script=True), 0o600, "pidphone")
    invocation = phone.restart()  # the keypad script lifts the handset and calls bob
    bob.wait_call_state("StreamsRunning", timeout=30)
    sas = bob.wait_zrtp().sas

    def shown_sas() -> bool:
        return any(
            line.strip("| ").strip() == sas
            for line in phone.journal(invocation=invocation).splitlines()
        )

    wait_for(shown_sas, f"SAS {sas} on the phone's screen")
    assert "call secured" in phone.journal(invocation=invocation)

    # A changed setting, reloaded during the call: kept until the call ends.
    box.write(CONFIG, phone_config("Desk Two"), 0o600, "pidphone")
    box.run("systemctl", "reload", "pidphone.service")
    wait_for(
        lambda: (
            "new config kept until the call in progress ends"
            in phone.journal(invocation=invocation)
        ),
        "the reload in the journal",
    )
    time.sleep(2)
    assert bob.call_states()[-1] == "StreamsRunning"
    assert "call ended" not in phone.journal(invocation=invocation)
    assert phone.invocation() == invocation  # the same process: a reload, not a restart

    bob.terminate()
    bob.wait_call_state("Released")
    wait_for(lambda: "| Desk Two" in phone.journal(invocation=invocation), "the new name on screen")
    phone.wait_registered()

    # journalctl CALL_ID= finds the call's own lines.
    records = [
        json.loads(line)
        for line in phone.box.run(
            "journalctl", "-u", "pidphone.service", "-o", "json", "--no-pager"
        ).stdout.splitlines()
    ]
    call_ids = {r["CALL_ID"] for r in records if r.get("CALL_ID")}
    assert len(call_ids) == 1
    lines = phone.journal(f"CALL_ID={call_ids.pop()}")
    assert "calling sip:bob@127.0.0.1" in lines
    assert "call secured" in lines
    assert "call ended" in lines
    assert "ready" not in lines.splitlines()


def test_a_wedged_event_loop_is_killed_by_the_watchdog_and_restarted(phone: Phone) -> None:
    box = phone.box
    # The test-only trigger, in the manager's environment: the unit file stays as shipped.
    box.run("systemctl", "set-environment", "PIDPHONE_TEST_WEDGE_ON_SIGUSR2=1")
    try:
        phone.restart()
        phone.wait_registered()
        before = phone.show("NRestarts", "MainPID")
        box.run("systemctl", "kill", "--kill-who=main", "--signal=SIGUSR2", "pidphone.service")

        def restarted() -> bool:
            now = phone.show("NRestarts", "MainPID", "ActiveState")
            return (
                int(now["NRestarts"]) == int(before["NRestarts"]) + 1
                and now["MainPID"] not in {"0", before["MainPID"]}
                and now["ActiveState"] == "active"
            )

        wait_for(restarted, "a restart by the watchdog", timeout=75)  # WatchdogSec=30s
        phone.wait_registered()
        assert "Watchdog timeout" in box.run("journalctl", "--no-pager", "-o", "cat").stdout
    finally:
        box.run("systemctl", "unset-environment", "PIDPHONE_TEST_WEDGE_ON_SIGUSR2")


def test_a_broken_boot_file_keeps_the_old_config_and_says_why(phone: Phone) -> None:
    box = phone.box
    config = box.path(CONFIG).read_bytes()
    broken = f'[keypad]\nrows = [5, 6, 40, 13]\n[account]\npassword = "{BOOT_SECRET}"\n'
    box.path(BOOT_FILE).write_text(broken)
    invocation = phone.restart()
    # It runs on the config it had (the name on the idle screen, registered), and STATUS=
    # tells what is wrong with the new file.
    wait_for(
        lambda: "| Registered" in phone.journal(invocation=invocation), "registration on screen"
    )
    assert "| Desk Two" in phone.journal(invocation=invocation)
    assert phone.show("StatusText")["StatusText"].startswith(f"{BOOT_FILE} not installed")
    assert box.path(CONFIG).read_bytes() == config
    assert box.path(BOOT_FILE).read_text() == broken
    journal = phone.journal(invocation=invocation)
    assert f"{BOOT_FILE} not installed: keypad.rows[2]: GPIO 40 does not exist" in journal
    assert "| keypad.rows[2]: GPIO" in journal  # the simulated screen: the key first

    # Not even TOML: the error names the boot file, not /etc/pidphone/pidphone.toml.
    box.path(BOOT_FILE).write_text("[account\n")
    invocation = phone.restart()
    journal = phone.journal(invocation=invocation)
    assert f"{BOOT_FILE} not installed: not valid TOML" in journal
    assert f"{CONFIG}: not valid TOML" not in journal
    box.path(BOOT_FILE).unlink()
    assert box.path(CONFIG).read_bytes() == config


def test_install_sh_again_upgrades_in_place(phone: Phone) -> None:
    box = phone.box
    config = box.path(CONFIG).read_bytes()
    cache = box.path(ZID_CACHE).read_bytes()
    zid = json.loads(cache)["zid"]
    box.run(
        f"{SOURCE}/scripts/install.sh",
        env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/mnt/wheels"},
        timeout=600,
    )
    assert box.path(CONFIG).read_bytes() == config
    assert box.path(ZID_CACHE).read_bytes() == cache
    phone.restart()
    phone.wait_registered()
    assert json.loads(box.path(ZID_CACHE).read_text())["zid"] == zid
    assert box.run("systemctl", "is-enabled", "pidphone.service").stdout.strip() == "enabled"


def test_no_secret_ever_reaches_the_journal(phone: Phone) -> None:
    everything = phone.box.run("journalctl", "--no-pager", "-o", "export", timeout=120).stdout
    assert "pidphone" in everything
    assert PASSWORD not in everything
    assert BOOT_SECRET not in everything
