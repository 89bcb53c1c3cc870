"""`pidphone run`: take in a provisioning file, read the config, and run the phone until
SIGTERM (pidphone.daemon). A bad config is shown on the display before the exit with 78."""

from __future__ import annotations

import argparse
import logging

from pidphone.config import Config, load_config
from pidphone.errors import ConfigError

from .common import config_path, lazy, provision_path

log = logging.getLogger("pidphone.cli")


def cmd_run(args: argparse.Namespace) -> int:
    from pidphone.drivers.logging_setup import setup_logging
    from pidphone.provisioning import Outcome, provision

    setup_logging("info")
    path = config_path(args)
    # What went wrong with a boot-partition file: in full (journal, STATUS=), key first (screen).
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
        show_config_error = lazy("pidphone.wiring", "show_config_error")
        show_config_error(screen_notice or str(exc), [provision_path(args), path])
        raise
    setup_logging(config.logging.level)
    run = lazy("pidphone.daemon", "run")

    def reload_config() -> Config:
        return load_config(path, warn=log.warning)

    status: int = run(
        config,
        reload_config=reload_config,
        notice=provisioning_error,
        screen_notice=screen_notice,
    )
    return status
