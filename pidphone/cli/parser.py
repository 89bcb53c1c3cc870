"""The `pidphone` command line: the parser, and `main`, which runs one command.

Each command lives in its own module of this package and is imported only when it runs, so
`check-config` and `zid` work on a machine without the libraries that run the phone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pidphone import __version__
from pidphone.config import DEFAULT_CONFIG_PATH, DEFAULT_PROVISION_PATH
from pidphone.errors import ConfigError

from .common import (
    CONFIG_ENV,
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_USAGE,
    PROVISION_ENV,
    CommandError,
    UsageError,
    lazy,
)

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        errors: list[ConfigError] = getattr(exc, "errors", [exc])
        if len(errors) > 1:  # every one at once, one a line
            print(f"pidphone: {len(errors)} configuration errors:", file=sys.stderr)
            for error in errors:
                print(f"pidphone: configuration error: {error}", file=sys.stderr)
        else:
            print(f"pidphone: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except UsageError as exc:
        print(f"pidphone: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        print(f"pidphone: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except BrokenPipeError:  # the reader left (`pidphone history | head`): stop, no traceback
        with contextlib.suppress(OSError):  # and no second one when Python flushes at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE


def command(module: str, function: str) -> Handler:
    """The handler `module.function`, imported when the command runs."""

    def run(args: argparse.Namespace) -> int:
        handler: Handler = lazy(module, function)
        return handler(args)

    return run


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

    run = _add(sub, "run", parents=[common], help="run the phone (what systemd starts)")
    run.add_argument(
        "--provision-from",
        type=Path,
        default=None,
        help=f"config to import once (default: ${PROVISION_ENV} or {DEFAULT_PROVISION_PATH})",
    )
    run.add_argument("--no-provision", action="store_true", help="skip headless provisioning")
    run.set_defaults(handler=command("pidphone.cli.run", "cmd_run"))

    prov = _add(
        sub,
        "provision",
        parents=[common],
        help="import the config from the boot partition now (the unit runs it as root)",
    )
    prov.add_argument("--provision-from", type=Path, default=None, help="file to import")
    prov.add_argument("--owner", default=None, help="user who will own the installed config")
    prov.set_defaults(handler=command("pidphone.cli.provision", "cmd_provision"))

    check = _add(
        sub,
        "check-config",
        parents=[common],
        help="check a config file and print the effective config, secrets masked",
    )
    check.add_argument("file", nargs="?", type=Path, help="config file to check")
    check.set_defaults(handler=command("pidphone.cli.check_config", "cmd_check_config"))

    demo = _add(sub, "demo", parents=[common], help="two simulated phones call each other")
    demo.add_argument("--screens", type=Path, default=None, help="write each screen here as PNG")
    demo.set_defaults(handler=command("pidphone.cli.demo", "run_demo"))

    report = argparse.ArgumentParser(add_help=False)
    report.add_argument(
        "--duration",
        type=_positive(float),
        default=None,
        help="seconds to stay in each call (default: 10)",
    )
    report.add_argument(
        "--json", action="store_true", help="print one JSON report per call instead of lines"
    )
    call = _add(
        sub,
        "call",
        parents=[common, report],
        help="place one call from the command line and report it",
    )
    call.add_argument("uri", help="SIP address or number to call")
    call.add_argument(
        "--transfer-to",
        default=None,
        metavar="URI",
        help="once the call is secure, transfer the peer to this address (REFER)",
    )
    call.add_argument(
        "--attended",
        action="store_true",
        help="with --transfer-to: hold the call, call that address first, then join them",
    )
    call.add_argument(
        "--transfer-after",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="seconds in the (secure) call before transferring (default: 2)",
    )
    call.set_defaults(handler=command("pidphone.cli.call", "cmd_call"))

    answer = _add(
        sub, "answer", parents=[common, report], help="answer incoming calls and report them"
    )
    answer.add_argument(
        "--count", type=_positive(int), default=1, help="calls to answer (default: 1)"
    )
    answer.set_defaults(handler=command("pidphone.cli.call", "cmd_answer"))

    render = _add(sub, "render-screens", help="draw every screen of the phone as PNG")
    render.add_argument(
        "directory", nargs="?", type=Path, default=Path("screens"), help="default: ./screens"
    )
    render.set_defaults(handler=command("pidphone.cli.render_screens", "cmd_render_screens"))

    history = _add(
        sub, "history", parents=[common], help="list the calls the phone kept, newest first"
    )
    history.add_argument("--file", type=Path, default=None, help="default: from the config")
    history.add_argument("--kind", choices=("missed", "received", "dialled"), default=None)
    history.add_argument("--json", action="store_true", help="one JSON object per call")
    history.set_defaults(handler=command("pidphone.cli.history", "cmd_history"))

    contacts = _add(sub, "contacts", parents=[common], help="the phone book")
    contacts.set_defaults(handler=lambda _: _usage(contacts))
    csub = contacts.add_subparsers(title="contacts commands", metavar="ACTION")
    clist = csub.add_parser("list", parents=[common], help="list the contacts")
    clist.add_argument("--file", type=Path, default=None, help="default: phone.contacts_file")
    clist.add_argument("--json", action="store_true", help="one JSON object per contact")
    clist.set_defaults(handler=command("pidphone.cli.contacts", "cmd_list"))
    ccheck = csub.add_parser("check", parents=[common], help="check a phone book file")
    ccheck.add_argument("file", nargs="?", type=Path, default=None)
    ccheck.set_defaults(handler=command("pidphone.cli.contacts", "cmd_check"))
    cimport = csub.add_parser("import", parents=[common], help="make a phone book from vCards")
    cimport.add_argument("vcard", type=Path, help="a .vcf export of an address book")
    cimport.add_argument("--output", type=Path, default=None, help="default: stdout")
    cimport.set_defaults(handler=command("pidphone.cli.contacts", "cmd_import"))

    zid = _add(
        sub, "zid", parents=[common], help="inspect and manage the ZID cache (peers and SAS flags)"
    )
    zid.add_argument("--cache", type=Path, default=None, help="cache file (default: from config)")
    zid.set_defaults(handler=lambda _: _usage(zid))
    zsub = zid.add_subparsers(title="zid commands", metavar="ACTION")
    # --cache after the action too (`zid list --cache X`); SUPPRESS keeps one given before it
    cached = argparse.ArgumentParser(add_help=False)
    cached.add_argument("--cache", type=Path, default=argparse.SUPPRESS, help="cache file")
    _add(zsub, "list", parents=[common, cached], help="list the peers in the cache").set_defaults(
        handler=command("pidphone.cli.zid", "cmd_list")
    )
    peer_help = "a peer: its ZID in hex, a unique hex prefix, or its name"
    verify = _add(
        zsub,
        "verify",
        parents=[common, cached],
        help="mark a peer's SAS as compared and matching (settles a cached-secret mismatch)",
    )
    verify.add_argument(
        "peer",
        nargs="?",
        default=None,
        help=f"{peer_help} (default: the peer of the last cached-secret mismatch)",
    )
    verify.set_defaults(handler=command("pidphone.cli.zid", "cmd_verify"))
    forget = _add(
        zsub,
        "forget",
        parents=[common, cached],
        help="erase a peer: its secrets and its verified flag",
    )
    forget.add_argument("peer", help=peer_help)
    forget.set_defaults(handler=command("pidphone.cli.zid", "cmd_forget"))
    name = _add(zsub, "name", parents=[common, cached], help="give a peer a name")
    name.add_argument("peer", help=peer_help)
    name.add_argument("name", help="the name to show for this peer")
    name.set_defaults(handler=command("pidphone.cli.zid", "cmd_name"))
    return parser


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: a number above zero, else a usage error naming the value."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text} is not above zero")
        return value

    return parse


EXAMPLES = {
    "run": "pidphone run -c /etc/pidphone/pidphone.toml",
    "provision": "sudo pidphone provision --owner pidphone",
    "check-config": "pidphone check-config /boot/firmware/pidphone.toml",
    "demo": "pidphone demo --screens ./screens",
    "call": "pidphone call sips:bob@example.org --duration 10 --json",
    "answer": "pidphone answer --count 1 --json",
    "render-screens": "pidphone render-screens images/screens",
    "history": "pidphone history --kind missed",
    "contacts": "pidphone contacts import addresses.vcf --output contacts.toml",
    "zid": "sudo -u pidphone pidphone zid list",
    "list": "sudo -u pidphone pidphone zid list --cache /var/lib/pidphone/zid-cache.json",
    "verify": "sudo -u pidphone pidphone zid verify   (no PEER: the last cached-secret mismatch)",
    "forget": "sudo -u pidphone pidphone zid forget 3f2a",
    "name": 'sudo -u pidphone pidphone zid name 3f2a "Bob"',
}
"""What each command's --help ends with."""


def _add(
    group: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    *,
    help: str,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """A subcommand whose --help says what it does in one line and ends with an example."""
    parser: argparse.ArgumentParser = group.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog=f"example: {EXAMPLES[name]}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kwargs,
    )
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: a command is required", file=sys.stderr)
    return EXIT_USAGE
