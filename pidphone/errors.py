"""The error family shared by every layer.

Parsers raise one `ParseError` subclass each; a state machine misused by our own code raises
`LocalProtocolError`; what the peer did wrong is a `RemoteProtocolError`. `error_status_hint`
carries the SIP status a server should answer with (400 unless a parser knows better).
"""

from __future__ import annotations


class PidphoneError(Exception):
    """Base of every error pidphone raises on purpose."""


class ProtocolError(PidphoneError):
    """A protocol rule was broken, by us or by the peer."""

    def __init__(self, msg: str, *, error_status_hint: int = 400) -> None:
        super().__init__(msg)
        self.error_status_hint = error_status_hint


class ParseError(ProtocolError):
    """Bytes from the wire that do not form a valid message."""


class LocalProtocolError(ProtocolError):
    """Our own code asked a state machine for something its state does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something valid in form but not allowed now."""


class ConfigError(PidphoneError):
    """A configuration problem a person can act on: names the key, the value and the fix.

    The daemon exits with status 78 (EX_CONFIG) on it.
    """

    exit_status = 78

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


class ManyConfigErrorsError(ConfigError):
    """Every problem of one config file at once (a person fixes them all in one go); the
    first names the key, the others follow, one a line."""

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        rest = "".join(f"\n{error}" for error in errors[1:])
        super().__init__(first.key, first.problem + rest)
        self.errors = list(errors)


class DeviceError(PidphoneError):
    """A piece of hardware is missing or misbehaves; the daemon logs it and retries."""

    def __init__(self, device: str, config_key: str, problem: str) -> None:
        super().__init__(f"{device} ({config_key}): {problem}")
        self.device = device
        self.config_key = config_key
        self.problem = problem
