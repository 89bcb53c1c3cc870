"""`pidphone provision`: import the boot partition's config now (the unit runs it as root,
before `pidphone run`, so that the installed file belongs to the phone's user)."""

from __future__ import annotations

import argparse
import pwd
import sys

from pidphone.provisioning import Outcome, provision

from .common import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, config_path, provision_path


def cmd_provision(args: argparse.Namespace) -> int:
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
