"""The command line: exit statuses, check-config output, lazy subcommands, provisioning."""

from __future__ import annotations

import argparse
import os
import pwd
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pidphone import __version__, cli
from pidphone.cli import call as cli_call
from pidphone.cli import common
from pidphone.cli import demo as cli_demo
from pidphone.cli import render_screens as cli_render_screens
from pidphone.cli import run as cli_run
from pidphone.config import Config

GOOD = 'hardware = "simulated"\n[account]\naor = "sip:alice@example.org"\npassword = "top-secret"\n'


def write(tmp_path: Path, text: str, name: str = "pidphone.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"pidphone {__version__}"


def test_help_states_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "0 success, 1 failure, 2 usage error, 78 configuration error" in " ".join(
        capsys.readouterr().out.split()
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["run", "--help"],
        ["provision", "--help"],
        ["check-config", "--help"],
        ["demo", "--help"],
        ["call", "--help"],
        ["answer", "--help"],
        ["render-screens", "--help"],
        ["zid", "--help"],
        ["zid", "list", "--help"],
        ["zid", "verify", "--help"],
        ["zid", "forget", "--help"],
        ["zid", "name", "--help"],
    ],
)
def test_help_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pidphone")
    if len(argv) > 1:  # each command says what it does in a line, and ends with an example
        paragraphs = out.split("\n\n")
        assert paragraphs[1].strip().endswith("."), paragraphs[1]
        assert out.rstrip().splitlines()[-1].startswith("example: pidphone") or (
            "example: sudo" in out.rstrip().splitlines()[-1]
        )


@pytest.mark.parametrize(
    "argv", [[], ["frobnicate"], ["call"], ["zid"], ["zid", "name", "abc"], ["run", "--bogus"]]
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert "usage: pidphone" in capsys.readouterr().err


def test_check_config_prints_effective_config_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD)
    assert cli.main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"# {path}: valid.")
    assert "top-secret" not in out + err
    effective = tomllib.loads(out)
    assert effective["account"]["password"] == "********"
    assert effective["server"]["registrar"] == "example.org"
    assert effective["hardware"] == "simulated"
    assert err == ""


def test_check_config_output_loads_back_with_a_password_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = write(tmp_path, "from-the-file\n", "password")
    path = write(tmp_path, '[account]\naor = "sip:a@example.org"\npassword_file = "password"\n')
    assert cli.main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"# account.password is read from {secret}" in out
    assert "from-the-file" not in out
    again = write(tmp_path, out, "again.toml")
    assert cli.main(["check-config", str(again)]) == 0


def test_check_config_takes_config_option_and_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, GOOD)
    assert cli.main(["--config", str(path), "check-config"]) == 0
    assert cli.main(["check-config", "-c", str(path)]) == 0
    monkeypatch.setenv("PIDPHONE_CONFIG", str(path))
    assert cli.main(["check-config"]) == 0
    assert capsys.readouterr().out.count("valid.") == 3


def test_check_config_bad_file_exits_78_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "[account]\npassword = 42\n[keypad]\nrows = [5, 6, 40, 13]\n")
    assert cli.main(["check-config", str(path)]) == 78
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [  # every problem at once, not only the first
        "pidphone: 2 configuration errors:",
        "pidphone: configuration error: account.password: expected a string, got an integer",
        "pidphone: configuration error: keypad.rows[2]: GPIO 40 does not exist on a Raspberry"
        " Pi (0\u201327)",
    ]


def test_check_config_warns_about_a_readable_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD)
    path.chmod(0o644)
    assert cli.main(["check-config", str(path)]) == 0
    err = capsys.readouterr().err
    assert "pidphone: warning:" in err
    assert "chmod 600" in err


def test_missing_config_exits_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", str(tmp_path / "none.toml")]) == 78
    assert "cannot read the config file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "module"),
    [
        (["demo"], "pidphone.cli.demo"),
        (["render-screens", "x"], "pidphone.cli.render_screens"),
        (["call", "sip:bob@example.org"], "pidphone.cli.call"),
        (["answer"], "pidphone.cli.call"),
        (["run", "--no-provision"], "pidphone.daemon"),
    ],
)
def test_missing_modules_are_reported_not_crashed(
    argv: list[str],
    module: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if this build had no such module
    path = write(tmp_path, GOOD)
    assert cli.main(["--config", str(path), *argv]) == 1
    assert f"pidphone: {module} is not available in this build" in capsys.readouterr().err


def test_subcommands_dispatch_to_their_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[str, object]] = []

    def fake_call(args: argparse.Namespace, config: Config) -> int:
        calls.append(("call", (args.uri, args.duration, args.json, config.hardware)))
        return 0

    def fake_answer(args: argparse.Namespace, config: Config) -> int:
        calls.append(("answer", (args.count, args.duration, config.account.aor)))
        return 3

    def fake_demo(args: argparse.Namespace) -> int:
        calls.append(("demo", args.screens))
        return 0

    def fake_render(directory: Path) -> list[Path]:
        calls.append(("render", directory))
        return [directory / "idle.png"]

    monkeypatch.setattr(cli_call, "run_call", fake_call)
    monkeypatch.setattr(cli_call, "run_answer", fake_answer)
    monkeypatch.setattr(cli_demo, "run_demo", fake_demo)
    monkeypatch.setattr(cli_render_screens, "render_screens", fake_render)
    path = write(tmp_path, GOOD)
    assert (
        cli.main(["call", "-c", str(path), "sip:bob@example.org", "--duration", "4", "--json"]) == 0
    )
    assert cli.main(["answer", "--config", str(path), "--count", "2"]) == 3
    assert cli.main(["demo", "--screens", str(tmp_path)]) == 0
    assert cli.main(["render-screens", str(tmp_path)]) == 0
    assert calls == [
        ("call", ("sip:bob@example.org", 4.0, True, "simulated")),
        ("answer", (2, None, "sip:alice@example.org")),
        ("demo", tmp_path),
        ("render", tmp_path),
    ]
    assert capsys.readouterr().out == f"{tmp_path / 'idle.png'}\n"


def test_lazy_import_keeps_real_import_errors() -> None:
    with pytest.raises(common.CommandError, match="not available"):
        common.lazy("pidphone.no_such_module", "run")
    assert common.lazy("pidphone.config", "load_config") is not None


def test_run_exits_78_on_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[display]\nrotation = 7\n")
    assert cli.main(["run", "-c", str(path), "--no-provision"]) == 78
    assert "display.rotation: 7 is out of range" in capsys.readouterr().err


def test_run_shows_a_bad_config_on_the_display(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    screens = tmp_path / "screens"
    path = write(
        tmp_path,
        f'hardware = "simulated"\n[sim]\nscreens_dir = "{screens}"\n[display]\nrotation = 7\n',
    )
    assert cli.main(["run", "-c", str(path), "--no-provision"]) == 78
    out = capsys.readouterr().out
    assert "Config error" in out and "display.rotation" in out
    assert len(list(screens.glob("*.png"))) == 1


def test_run_provisions_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    boot = write(tmp_path, GOOD, "boot.toml")
    target = tmp_path / "etc" / "pidphone.toml"
    seen: dict[str, object] = {}

    def fake_run(config: Config, **kwargs: object) -> int:
        seen["aor"] = config.account.aor
        seen.update(kwargs)
        return 0

    monkeypatch.setattr(cli_run, "lazy", lambda module, function: fake_run)
    assert cli.main(["run", "-c", str(target), "--provision-from", str(boot)]) == 0
    assert not boot.exists()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert seen["aor"] == "sip:alice@example.org"
    assert seen["notice"] == ""
    reload_config = seen["reload_config"]
    assert callable(reload_config)
    assert reload_config().account.aor == "sip:alice@example.org"


def test_run_with_invalid_provisioning_file_keeps_config_and_passes_the_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    boot = write(tmp_path, "[keypad]\nrows = [1]\n", "boot.toml")
    target = write(tmp_path, GOOD)
    seen: dict[str, object] = {}

    def fake_run(config: Config, **kwargs: object) -> int:
        seen.update(kwargs)
        return 0

    monkeypatch.setattr(cli_run, "lazy", lambda module, function: fake_run)
    monkeypatch.setenv("PIDPHONE_PROVISION_FILE", str(boot))
    assert cli.main(["run", "-c", str(target)]) == 0
    assert boot.exists()
    notice = str(seen["notice"])
    assert notice.startswith(f"{boot} not installed: keypad.rows: layout")
    assert "provisioning:" in capsys.readouterr().err


def test_provision_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "etc" / "pidphone.toml"
    boot = tmp_path / "boot.toml"
    argv = ["provision", "-c", str(target), "--provision-from", str(boot)]
    assert cli.main(argv) == 0
    assert "nothing to provision" in capsys.readouterr().err
    write(tmp_path, "[display]\nrotation = 7\n", "boot.toml")
    assert cli.main(argv) == 78
    assert "display.rotation" in capsys.readouterr().err
    write(tmp_path, GOOD, "boot.toml")
    me = pwd.getpwuid(os.getuid()).pw_name
    assert cli.main([*argv, "--owner", me]) == 0
    assert "installed" in capsys.readouterr().err
    assert target.stat().st_uid == os.getuid()
    assert cli.main([*argv, "--owner", "no-such-user-here"]) == 2


@pytest.mark.parametrize(
    ("key_agreement", "says"),
    [
        (None, ["X3M3 first", "lower code wins", "AES3 and S512", "X255 is offered next"]),
        ('["X255", "X3M3"]', ["X3M3 listed after X255: never used"]),
        ('["X255", "EC25"]', ["no post-quantum key agreement", 'Put "X3M3" first']),
        ('["MLK3"]', ["MLK3 first", "only post-quantum", "DH3k"]),
    ],
)
def test_check_config_explains_the_post_quantum_key_agreements(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key_agreement: str | None, says: list[str]
) -> None:
    extra = "" if key_agreement is None else f"\n[security]\nkey_agreement = {key_agreement}\n"
    path = write(tmp_path, GOOD + extra)
    assert cli.main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    notes = " ".join(line for line in out.splitlines() if line.startswith("# security."))
    for words in says:
        assert words in notes
    effective = tomllib.loads(out)["security"]
    assert effective["key_agreement"] == (
        ["X3M3", "X255", "EC25", "DH3k"]
        if key_agreement is None
        else tomllib.loads(f"k = {key_agreement}")["k"]
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["render-screens", "/dev/null/x"],
        ["demo", "--screens", "/dev/null/x"],
    ],
)
def test_a_directory_that_cannot_be_written_is_a_message_not_a_traceback(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("pidphone: cannot write the screens to /dev/null/x: ")
    assert "Traceback" not in err


def test_an_unwritable_screens_directory_is_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):  # root writes anyway: a file in the way says the same
        locked = tmp_path / "file"
        locked.write_text("")
    assert cli.main(["render-screens", str(locked / "screens")]) == 1
    assert "cannot write the screens to" in capsys.readouterr().err


def test_demo_takes_no_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It was accepted and ignored."""
    assert cli.main(["demo", "-c", str(tmp_path / "nonexistent.toml")]) == 2
    assert "reads no config" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("", "# note: no account and no server.listen: the phone registers nowhere"),
        ('[account]\naor = "sips:alice@example.org"\n', "# note: account.aor has no password"),
    ],
)
def test_check_config_says_what_a_valid_but_thin_config_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, note: str
) -> None:
    path = write(tmp_path, text)
    assert cli.main(["check-config", str(path)]) == 0
    assert note in capsys.readouterr().out


def test_check_config_has_no_note_for_a_full_account(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["check-config", str(write(tmp_path, GOOD))]) == 0
    assert "# note:" not in capsys.readouterr().out


def test_zid_takes_its_cache_after_the_action_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`zid list --cache X` was a usage error: only `zid --cache X list` worked."""
    from pidphone.drivers.zid_cache import FileZidCache

    path = tmp_path / "zid-cache.json"
    ours = FileZidCache(path).our_zid.hex()
    assert cli.main(["zid", "list", "--cache", str(path)]) == 0
    assert cli.main(["zid", "--cache", str(path), "list"]) == 0
    assert capsys.readouterr().out.count(f"our ZID: {ours}") == 2


def test_check_config_refuses_two_different_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, other = write(tmp_path, GOOD, "one.toml"), write(tmp_path, GOOD, "other.toml")
    assert cli.main(["check-config", "-c", str(one), str(other)]) == 2
    assert "two files given" in capsys.readouterr().err
    assert cli.main(["check-config", "-c", str(one), str(one)]) == 0


RUN_CLI = "import sys; from pidphone.cli import main; sys.exit(main(sys.argv[1:]))"
"""The installed `pidphone` script's body: what a shell runs."""


def test_a_reader_that_goes_away_ends_the_command_without_a_traceback(tmp_path: Path) -> None:
    """`pidphone check-config FILE | head -2`: the pipe closes early; the command stops quietly
    (it printed a BrokenPipeError traceback)."""
    config = tmp_path / "pidphone.toml"
    config.write_text('hardware = "simulated"\n')
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before the command writes a byte
    try:
        done = subprocess.run(
            [sys.executable, "-c", RUN_CLI, "check-config", str(config)],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(writer)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == common.EXIT_FAILURE
