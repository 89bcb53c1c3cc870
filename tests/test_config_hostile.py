"""Config and provisioning files written by someone hostile (issue 10): whoever holds the SD
card writes /boot/firmware/pidphone.toml. Whatever the file is, the outcome is a ConfigError
naming the file (exit 78, on the journal and the screen), never a crash into a restart loop,
a start that blocks for ever, or a file read into memory without bound."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pidphone import cli
from pidphone.config import MAX_FILE_BYTES, load_config, parse_config
from pidphone.errors import ConfigError
from pidphone.provisioning import Outcome, ProvisionResult, provision

VALID = b'hardware = "simulated"\n[account]\naor = "sip:alice@example.org"\npassword = "pw1"\n'

HOSTILE_TOML = {
    "nested arrays": b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "nested inline tables": b"a = " + b"{b = " * 2000 + b"1" + b"}" * 2000 + b"\n",
    "huge integer": b"[display]\ncontrast = " + b"9" * 5000 + b"\n",
    "NUL byte": b'hardware = "pi"\x00\n',
    "not UTF-8": b'hardware = "\xff\xfe"\n',
}
"""(A UTF-8 byte order mark is no longer among them: Windows editors write one, and the file
is read with it; tests/test_config.py.)"""


def finishes(action: Callable[[], object], seconds: float = 10.0) -> object:
    """What `action` returns or raises, or a test failure if it blocks (a FIFO is opened
    for writing afterwards, so that nothing is left hanging)."""
    outcome: list[object] = []

    def work() -> None:
        try:
            outcome.append(action())
        except Exception as exc:
            outcome.append(exc)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail("blocked reading a file")
    return outcome[0]


def unblock(fifo: Path) -> None:
    """Open `fifo` for writing so that a reader blocked on it goes on (and fails)."""
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    threading.Timer(12.0, os.close, [fd]).start()


@pytest.mark.parametrize("data", HOSTILE_TOML.values(), ids=HOSTILE_TOML.keys())
def test_hostile_toml_is_a_config_error_naming_the_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "pidphone.toml"
    with pytest.raises(ConfigError) as caught:
        parse_config(data, path, warn=lambda _: None)
    assert caught.value.key == str(path)
    assert caught.value.__cause__ is None


def make(kind: str, path: Path) -> None:
    """Put something that is not a config file at `path`."""
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
        unblock(path)
    elif kind == "device":
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null
    elif kind == "too large":
        path.write_bytes(VALID + b"#" * MAX_FILE_BYTES + b"\n")
    else:
        raise AssertionError(kind)


PROBLEMS = {
    "directory": "it is a directory",
    "fifo": "not a regular file",
    "device": "not a regular file",
    "too large": "larger than 64 KiB",
}


@pytest.mark.parametrize("kind", PROBLEMS)
def test_a_config_that_is_not_a_small_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "pidphone.toml"
    make(kind, path)
    caught = finishes(lambda: load_config(path))
    assert isinstance(caught, ConfigError), caught
    assert caught.key == str(path)
    assert PROBLEMS[kind] in caught.problem


@pytest.mark.parametrize("kind", [*PROBLEMS, "NUL in the name"])
def test_a_password_file_that_is_not_a_small_regular_file_is_refused(
    tmp_path: Path, kind: str
) -> None:
    secret = tmp_path / "password"
    if kind == "NUL in the name":
        name, problem = "pass\\u0000word", "NUL"
    else:
        make(kind, secret)
        name, problem = "password", PROBLEMS[kind].replace("64", "4")
    config = f'[account]\naor = "sip:a@example.org"\npassword_file = "{name}"\n'.encode()
    caught = finishes(lambda: parse_config(config, tmp_path / "pidphone.toml"))
    assert isinstance(caught, ConfigError), caught
    assert caught.key == "account.password_file"
    assert problem in caught.problem


# ---- provisioning from the boot partition


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    path = tmp_path / "boot"
    path.mkdir()
    return path


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "pidphone.toml"
    path.parent.mkdir()
    path.write_bytes(b'hardware = "pi"\n')
    return path


def refused(source: Path, target: Path) -> ProvisionResult:
    result = finishes(lambda: provision(source, target))
    assert isinstance(result, ProvisionResult), result
    assert result.outcome is Outcome.INVALID
    assert result.message.startswith(f"{source} not installed: ")
    assert str(target) not in result.message  # the file at fault is the one named
    assert target.read_bytes() == b'hardware = "pi"\n'
    return result


@pytest.mark.parametrize("data", HOSTILE_TOML.values(), ids=HOSTILE_TOML.keys())
def test_hostile_toml_on_the_boot_partition_is_refused(
    boot: Path, target: Path, data: bytes
) -> None:
    source = boot / "pidphone.toml"
    source.write_bytes(data)
    refused(source, target)
    assert source.read_bytes() == data


@pytest.mark.parametrize("kind", PROBLEMS)
def test_a_boot_file_that_is_not_a_small_regular_file_is_refused(
    boot: Path, target: Path, kind: str
) -> None:
    source = boot / "pidphone.toml"
    make(kind, source)
    assert PROBLEMS[kind] in refused(source, target).message


def test_a_symbolic_link_on_the_boot_partition_is_not_followed(
    boot: Path, target: Path, tmp_path: Path
) -> None:
    """A link would have root install (and hand to the phone's user) a file of its choosing."""
    elsewhere = tmp_path / "root-only.toml"
    elsewhere.write_bytes(VALID)
    elsewhere.chmod(0o600)
    source = boot / "pidphone.toml"
    source.symlink_to(elsewhere)
    assert "symbolic link" in refused(source, target).message
    assert source.is_symlink() and elsewhere.read_bytes() == VALID


@pytest.mark.parametrize("data", [HOSTILE_TOML["nested arrays"], VALID + b"#" * MAX_FILE_BYTES])
def test_a_refused_boot_file_reaches_the_journal_and_the_screen_and_exits_78(
    tmp_path: Path, boot: Path, capsys: pytest.CaptureFixture[str], data: bytes
) -> None:
    """`pidphone run` as systemd starts it: the installed config is broken too, so the
    provisioning error is what the screen shows before the exit with 78 (no restart loop)."""
    screens = tmp_path / "screens"
    installed = tmp_path / "pidphone.toml"
    installed.write_text(f'hardware = "simulated"\n[sim]\nscreens_dir = "{screens}"\n[x]\n')
    source = boot / "pidphone.toml"
    source.write_bytes(data)
    argv = ["run", "-c", str(installed), "--provision-from", str(source)]
    assert cli.main(argv) == 78
    captured = capsys.readouterr()
    assert f"provisioning: {source} not installed" in captured.err
    assert "Config error" in captured.out
    shots = sorted(screens.glob("*.png"))  # one, or every page and then the first again
    assert len(shots) == 1 or shots[0].read_bytes() == shots[-1].read_bytes()
    assert source.read_bytes() == data
    assert cli.main(["provision", "-c", str(installed), "--provision-from", str(source)]) == 78


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('[account]\naor = "sip:alice\\u0000@example.org"', "control character"),
        ('[account]\naor = "sip:alice@example.org\\u001b[2J"', "control character"),
        ('[server]\nregistrar = "example.org:\\u0661\\u0662"', "not a port number"),
        ('[server]\nregistrar = "example.org:50\\u00b2"', "not a port number"),
    ],
)
def test_addresses_hold_no_control_characters_and_only_ascii_digits(
    tmp_path: Path, line: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_config(line.encode() + b"\n", tmp_path / "pidphone.toml")


def test_a_boot_file_quoting_a_nul_keeps_the_phone_running_under_systemd(tmp_path: Path) -> None:
    """The provisioning error quotes the bad value, NUL included, and goes to STATUS=:
    sd_notify refused it with a ValueError and `pidphone run` exited 1 in a restart loop."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(20)
    installed = tmp_path / "pidphone.toml"
    installed.write_text('hardware = "simulated"\n[sim]\ntone_frequency = 0\n')
    boot = tmp_path / "boot.toml"
    boot.write_text('[account]\naor = "\\u0000x"\n')
    command = [sys.executable, "-m", "pidphone.cli", "run", "-c", str(installed)]
    phone = subprocess.Popen(
        [*command, "--provision-from", str(boot)],
        env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        states = [notify.recv(4096) for _ in range(2)]
        assert b"READY=1" in states
        status = next(s for s in states if s.startswith(b"STATUS="))
        assert status.startswith(b"STATUS=" + str(boot).encode() + b" not installed")
        assert b"\x00" not in status
        assert phone.poll() is None
    finally:
        phone.terminate()
        _, err = phone.communicate(timeout=30)
        notify.close()
    assert phone.returncode == 0, err.decode(errors="replace")
