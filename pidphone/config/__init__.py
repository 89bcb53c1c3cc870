"""The phone's configuration: one TOML file read with tomllib into frozen dataclasses.

- schema.py: the dataclasses, one per table, every field with its default, unit and docstring;
- build.py: a TOML table to a dataclass, every key and value checked;
- checks.py: the value checks, and the parsing helpers they share with the config's users;
- cross.py: the checks that involve several keys, and the defaults derived from other keys;
- load.py: reading the files (bounded, never blocking), then build and cross-checks;
- dump.py: the effective config back as TOML, secrets masked (`pidphone check-config`).

Every problem is a `ConfigError` naming the key path, the bad value and what is allowed; the
daemon exits 78 on it. What the rest of pidphone uses is exported here.
"""

from __future__ import annotations

from .dump import dump_config
from .load import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_PROVISION_PATH,
    MAX_FILE_BYTES,
    Warn,
    load_config,
    load_display_config,
    parse_config,
    read_small_file,
)
from .schema import (
    AccountConfig,
    AudioConfig,
    Config,
    DisplayConfig,
    KeypadConfig,
    LoggingConfig,
    PhoneConfig,
    SecurityConfig,
    ServerConfig,
    SimConfig,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_PROVISION_PATH",
    "MAX_FILE_BYTES",
    "AccountConfig",
    "AudioConfig",
    "Config",
    "DisplayConfig",
    "KeypadConfig",
    "LoggingConfig",
    "PhoneConfig",
    "SecurityConfig",
    "ServerConfig",
    "SimConfig",
    "Warn",
    "dump_config",
    "load_config",
    "load_display_config",
    "parse_config",
    "read_small_file",
]
