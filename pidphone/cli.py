"""The `pidphone` command line.

Exit status: 0 success, 1 failure, 2 usage error, 78 configuration error (EX_CONFIG, which the
systemd unit lists in RestartPreventExitStatus= so a bad config is not restarted in a loop).
The subcommands that run the phone import their module only when used, so `check-config` and
`zid` work on a machine without the audio and GPIO libraries.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import pwd
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from pidphone import __version__
from pidphone.config import DEFAULT_CONFIG_PATH, DEFAULT_PROVISION_PATH, Config, load_config
from pidphone.config_dump import dump_config
from pidphone.errors import ConfigError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78

CONFIG_ENV = "PIDPHONE_CONFIG"
PROVISION_ENV = "PIDPHONE_PROVISION_FILE"

log = logging.getLogger("pidphone.cli")


class CommandError(Exception):
    """The command could not do its work; the message says why (exit status 1)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"pidphone: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except CommandError as exc:
        print(f"pidphone: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pidphone",
        description="A secure desk phone for the Raspberry Pi: SIP over TLS, ZRTP, SRTP.",
        epilog="exit status: 0 success, 1 failure, 2 usage error, 78 configuration error. "
        "`pidphone COMMAND --help` describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"pidphone {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help=f"config file (default: ${CONFIG_ENV} or {DEFAULT_CONFIG_PATH})",
    )
    parser.set_defaults(handler=lambda _: _usage(parser))
    # The subcommands accept --config too; SUPPRESS keeps a value given before the subcommand.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", type=Path, default=argparse.SUPPRESS, help="config file")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help="run the phone (what systemd starts)")
    run.add_argument(
        "--provision-from",
        type=Path,
        default=None,
        help=f"config to import once (default: ${PROVISION_ENV} or {DEFAULT_PROVISION_PATH})",
    )
    run.add_argument("--no-provision", action="store_true", help="skip headless provisioning")
    run.set_defaults(handler=cmd_run)

    prov = sub.add_parser(
        "provision",
        parents=[common],
        help="import the config from the boot partition now (the unit runs it as root)",
    )
    prov.add_argument("--provision-from", type=Path, default=None, help="file to import")
    prov.add_argument("--owner", default=None, help="user who will own the installed config")
    prov.set_defaults(handler=cmd_provision)

    check = sub.add_parser(
        "check-config",
        parents=[common],
        help="check a config file and print the effective config, secrets masked",
    )
    check.add_argument("file", nargs="?", type=Path, help="config file to check")
    check.set_defaults(handler=cmd_check_config)

    demo = sub.add_parser("demo", parents=[common], help="two simulated phones call each other")
    demo.add_argument("--screens", type=Path, default=None, help="write each screen here as PNG")
    demo.set_defaults(handler=cmd_demo)

    report = argparse.ArgumentParser(add_help=False)
    report.add_argument(
        "--duration", type=float, default=None, help="seconds to stay in each call (default: 10)"
    )
    report.add_argument(
        "--json", action="store_true", help="print one JSON report per call instead of lines"
    )
    call = sub.add_parser(
        "call", parents=[common, report], help="place one call from the command line and report it"
    )
    call.add_argument("uri", help="SIP address or number to call")
    call.set_defaults(handler=cmd_call)

    answer = sub.add_parser(
        "answer", parents=[common, report], help="answer incoming calls and report them"
    )
    answer.add_argument("--count", type=int, default=1, help="calls to answer (default: 1)")
    answer.set_defaults(handler=cmd_answer)

    render = sub.add_parser("render-screens", help="draw every screen of the phone as PNG")
    render.add_argument(
        "directory", nargs="?", type=Path, default=Path("screens"), help="default: ./screens"
    )
    render.set_defaults(handler=cmd_render_screens)

    zid = sub.add_parser(
        "zid", parents=[common], help="inspect and manage the ZID cache (peers and SAS flags)"
    )
    zid.add_argument("--cache", type=Path, default=None, help="cache file (default: from config)")
    zid.set_defaults(handler=lambda _: _usage(zid))
    zsub = zid.add_subparsers(title="zid commands", metavar="ACTION")
    zsub.add_parser("list", parents=[common], help="list the peers in the cache").set_defaults(
        handler=cmd_zid_list
    )
    peer_help = "a peer: its ZID in hex, a unique hex prefix, or its name"
    verify = zsub.add_parser(
        "verify", parents=[common], help="mark a peer's SAS as compared and matching"
    )
    verify.add_argument("peer", help=peer_help)
    verify.set_defaults(handler=cmd_zid_verify)
    forget = zsub.add_parser(
        "forget", parents=[common], help="erase a peer: its secrets and its verified flag"
    )
    forget.add_argument("peer", help=peer_help)
    forget.set_defaults(handler=cmd_zid_forget)
    name = zsub.add_parser("name", parents=[common], help="give a peer a name")
    name.add_argument("peer", help=peer_help)
    name.add_argument("name", help="the name to show for this peer")
    name.set_defaults(handler=cmd_zid_name)
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: a command is required", file=sys.stderr)
    return EXIT_USAGE


def config_path(args: argparse.Namespace) -> Path:
    given: Path | None = getattr(args, "config", None)
    if given is not None:
        return given
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def provision_path(args: argparse.Namespace) -> Path:
    given: Path | None = args.provision_from
    if given is not None:
        return given
    return Path(os.environ.get(PROVISION_ENV) or DEFAULT_PROVISION_PATH)


def _warn(message: str) -> None:
    print(f"pidphone: warning: {message}", file=sys.stderr)


def _lazy(module: str, function: str) -> Callable[..., Any]:
    """`module.function`, or CommandError if this build does not have the module."""
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            raise CommandError(f"{module} is not available in this build") from None
        raise
    target: Callable[..., Any] = getattr(found, function)
    return target


# --------------------------------------------------------------------------- the phone


def cmd_run(args: argparse.Namespace) -> int:
    from pidphone.drivers.logging_setup import setup_logging
    from pidphone.provisioning import Outcome, provision

    setup_logging("info")
    path = config_path(args)
    provisioning_error = screen_notice = ""
    if not args.no_provision:
        result = provision(provision_path(args), path)
        if result.outcome is Outcome.INSTALLED:
            log.info("installed %s from %s", result.target, result.source)
        elif result.outcome is not Outcome.ABSENT:
            log.error("provisioning: %s", result.message)
            provisioning_error, screen_notice = result.message, result.summary
    try:
        config = load_config(path, warn=log.warning)
    except ConfigError as exc:  # exits 78 in main(); first the screen says why
        show_config_error = _lazy("pidphone.daemon", "show_config_error")
        show_config_error(provisioning_error or str(exc), [provision_path(args), path])
        raise
    setup_logging(config.logging.level)
    run = _lazy("pidphone.daemon", "run")

    def reload_config() -> Config:
        return load_config(path, warn=log.warning)

    status: int = run(
        config,
        reload_config=reload_config,
        notice=provisioning_error,
        screen_notice=screen_notice,
    )
    return status


def cmd_provision(args: argparse.Namespace) -> int:
    from pidphone.provisioning import Outcome, provision

    owner = None
    if args.owner is not None:
        try:
            entry = pwd.getpwnam(args.owner)
        except KeyError:
            print(f"pidphone: no user {args.owner!r}", file=sys.stderr)
            return EXIT_USAGE
        owner = (entry.pw_uid, entry.pw_gid)
    result = provision(provision_path(args), config_path(args), owner)
    if result.outcome is Outcome.ABSENT:
        print(f"pidphone: nothing to provision ({result.source} does not exist)", file=sys.stderr)
        return EXIT_OK
    if result.outcome is Outcome.INSTALLED:
        print(f"pidphone: installed {result.target} from {result.source}", file=sys.stderr)
        return EXIT_OK
    print(f"pidphone: {result.message}", file=sys.stderr)
    return EXIT_CONFIG if result.outcome is Outcome.INVALID else EXIT_FAILURE


def cmd_check_config(args: argparse.Namespace, out: TextIO | None = None) -> int:
    path: Path = args.file or config_path(args)
    config = load_config(path, warn=_warn)
    stream = out or sys.stdout
    stream.write(f"# {path}: valid. The effective config, secrets masked:\n")
    if config.account.password_file:
        # Shown as it is written: the password comes from the file, not from this key.
        stream.write(f"# account.password is read from {config.account.password_file}\n")
        account = dataclasses.replace(config.account, password="")
        config = dataclasses.replace(config, account=account)
    stream.write(dump_config(config))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    run_demo = _lazy("pidphone.demo", "run_demo")
    status: int = run_demo(args)
    return status


def cmd_call(args: argparse.Namespace) -> int:
    run_call = _lazy("pidphone.callcmd", "run_call")
    status: int = run_call(args, load_config(config_path(args), warn=_warn))
    return status


def cmd_answer(args: argparse.Namespace) -> int:
    run_answer = _lazy("pidphone.callcmd", "run_answer")
    status: int = run_answer(args, load_config(config_path(args), warn=_warn))
    return status


def cmd_render_screens(args: argparse.Namespace) -> int:
    render_screens = _lazy("pidphone.screens", "render_screens")
    written: list[Path] = render_screens(args.directory)
    for path in written:
        print(path)
    return EXIT_OK


# --------------------------------------------------------------------------- ZID cache


def cmd_zid_list(args: argparse.Namespace) -> int:
    from pidphone import cli_zid

    return _zid_command(args, lambda cache: cli_zid.list_peers(cache, sys.stdout))


def cmd_zid_verify(args: argparse.Namespace) -> int:
    from pidphone import cli_zid

    return _zid_command(args, lambda cache: cli_zid.verify(cache, args.peer, sys.stdout))


def cmd_zid_forget(args: argparse.Namespace) -> int:
    from pidphone import cli_zid

    return _zid_command(args, lambda cache: cli_zid.forget(cache, args.peer, sys.stdout))


def cmd_zid_name(args: argparse.Namespace) -> int:
    from pidphone import cli_zid

    return _zid_command(args, lambda cache: cli_zid.rename(cache, args.peer, args.name, sys.stdout))


def _zid_command(args: argparse.Namespace, action: Callable[[Any], int]) -> int:
    """Run one `pidphone zid` action, as root first becoming the cache directory's owner; a
    peer not found or a file we may not touch is a one-line failure (exit 1), never a
    traceback."""
    from pidphone import cli_zid

    path = _zid_cache_path(args)
    file_zid_cache = _lazy("pidphone.drivers.zid_cache", "FileZidCache")
    try:
        cli_zid.become_owner_of(path.parent)
    except OSError as exc:
        raise CommandError(
            f"cannot act as the owner of {path.parent}: {exc.strerror or exc}"
            " (run as the phone's user: sudo -u pidphone pidphone zid ...)"
        ) from None
    try:
        return action(file_zid_cache(path))
    except cli_zid.PeerNotFoundError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(
            f"cannot use the ZID cache {path}: {exc.strerror or exc}"
            " (run as the phone's user: sudo -u pidphone pidphone zid ...)"
        ) from None


def _zid_cache_path(args: argparse.Namespace) -> Path:
    cache_path: Path | None = args.cache
    if cache_path is None:
        path = config_path(args)
        explicit = getattr(args, "config", None) is not None
        config = load_config(path, warn=_warn) if explicit or path.exists() else Config()
        cache_path = Path(config.security.zid_cache)
    if not cache_path.exists():
        raise CommandError(f"no ZID cache at {cache_path} (no secure call has been made yet)")
    return cache_path


if __name__ == "__main__":
    sys.exit(main())
