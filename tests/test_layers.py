"""The layer rule (core, ports, app, drivers, root: imports point down only), checked on every
module's imports, and unique class names.

errors.py is the bottom: it imports nothing of pidphone and does no I/O. core (sip sdp rtp
zrtp srtp audio) imports no I/O and nothing above it (a module named in `CORE_IO_EXCEPTIONS`
may import what it names there, and nothing more); ports imports only core; app never imports
drivers, and its pure modules (`APP_PURE`) have no threads, sockets, asyncio or clock; drivers
never import app. Every form of import counts: `import x`, `from x import y` (y may be a
module), `from pidphone import x` and relative imports, at any depth of the module.

One exception, named module by module: a codec library (libopus, spandsp) is C code, and its
binding in the core needs `ctypes`. Those modules only call pure functions of the library
(PCM in, payload out), load it by soname (no `ctypes.util.find_library`, which runs programs)
and do nothing else; every other core module stays without `ctypes`.
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "pidphone"
CORE = {"sip", "sdp", "rtp", "zrtp", "srtp", "audio"}
CONCURRENCY = {
    "asyncio",
    "threading",
    "_thread",
    "multiprocessing",
    "concurrent",
    "queue",
    "subprocess",
    "signal",
    "select",
    "selectors",
    "socket",
    "socketserver",
    "ssl",
    "time",
    "sched",
}
"""What a pure module must not touch: threads, processes, sockets, clocks."""
IO_MODULES = CONCURRENCY | {
    "datetime",
    "random",
    "importlib",
    "ctypes",
    "alsaaudio",
    "gpiozero",
    "luma",
    "systemd",
    "PIL",
    "dns",
    "os",
    "shutil",
    "tempfile",
    "pathlib",
    "io",
    "logging",
}
"""What the core must not touch. Randomness comes in as a parameter or through `secrets`
(`random` is neither: its global state makes runs unrepeatable); `os.urandom` likewise, so plain
`os` stays forbidden. Time comes in as `now`."""
CORE_IO_EXCEPTIONS: dict[str, frozenset[str]] = {
    "pidphone.audio.libopus": frozenset({"ctypes"}),
    "pidphone.audio.libspandsp": frozenset({"ctypes"}),
}
"""Core modules allowed a named exception, with the reason in the module docstring: the codec
bindings may use ctypes, and no other module gains it with them."""
NEVER_IN_CORE = {"ctypes.util"}
"""Not even under an exception: `ctypes.util.find_library` runs programs."""
APP_PURE = {
    "pidphone.app.state",
    "pidphone.app.phone_state",
    "pidphone.app.call_facts",
    "pidphone.app.screen",
    "pidphone.app.call",
    "pidphone.app.call_addresses",
    "pidphone.app.call_events",
    "pidphone.app.call_journal",
    "pidphone.app.call_sdp",
    "pidphone.app.call_state",
    "pidphone.app.call_transfers",
    "pidphone.app.contacts",
    "pidphone.app.history",
    "pidphone.app.media",
    "pidphone.app.media_config",
    "pidphone.app.media_events",
    "pidphone.app.media_handle",
    "pidphone.app.media_security",
    "pidphone.app.media_stream",
    "pidphone.app.media_messages",
    "pidphone.app.phone_events",
}
"""The app's pure modules: reducer, screen model, call, media session and the events."""


def module_name(path: Path) -> str:
    return ("pidphone." + ".".join(path.relative_to(PKG).with_suffix("").parts)).removesuffix(
        ".__init__"
    )


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "pidphone":
        return "other"
    if len(parts) == 1:
        return "root"  # the package itself
    head = parts[1]
    if head in CORE:
        return "core"
    if head in {"app", "drivers", "ports", "errors"}:
        return head
    return "root"  # cli, daemon, config, demo


def imports_in(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """Every module the source of `module` imports, absolute; for `from x import y` both x and
    x.y (y may be a module: `from pidphone import drivers`, `from . import media`)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[str] = []
    for node in ast.walk(ast.parse(source, module)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package[: len(package) - node.level + 1]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            found.append(base)
            found.extend(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def imports_of(path: Path) -> list[str]:
    return imports_in(path.read_text(), module_name(path), is_package=path.name == "__init__.py")


MODULES = sorted(PKG.rglob("*.py"))


def forbidden(importer: str, imported: str) -> str | None:
    layer, target = layer_of(importer), layer_of(imported)
    top = imported.split(".", maxsplit=1)[0]
    if layer == "errors" and (target != "other" or top in IO_MODULES):
        return "errors.py is the bottom: it imports nothing of pidphone and does no I/O"
    if layer == "core":
        if imported in NEVER_IN_CORE:
            return "core may not do I/O"
        if top in IO_MODULES and top not in CORE_IO_EXCEPTIONS.get(importer, frozenset()):
            return "core may not do I/O"
        if target in {"app", "drivers", "ports", "root"}:
            return "core may not import a layer above it"
    if layer == "ports" and target in {"app", "drivers", "root"}:
        return "ports may only import core"
    if layer == "app":
        if target in {"drivers", "root"}:
            return "app may not import drivers or the composition root"
        if importer in APP_PURE and top in CONCURRENCY:
            return "the app's pure modules have no threads, sockets, asyncio or clock"
    if layer == "drivers" and target in {"app", "root"}:
        return "drivers may not import app or the composition root"
    return None


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_module_respects_layers(path: Path) -> None:
    module = module_name(path)
    bad = [
        f"{module} imports {imp}: {why}"
        for imp in imports_of(path)
        if (why := forbidden(module, imp)) is not None
    ]
    assert bad == []


def test_rule_catches_core_io() -> None:
    assert forbidden("pidphone.zrtp.session", "socket") is not None
    assert forbidden("pidphone.app.call", "pidphone.drivers.udp") is not None
    assert forbidden("pidphone.drivers.oled", "pidphone.app.screen") is not None
    assert forbidden("pidphone.rtp.packet", "pidphone.errors") is None
    assert forbidden("pidphone.app.call", "pidphone.zrtp") is None


@pytest.mark.parametrize("io", ["queue", "datetime", "random", "importlib.util", "ctypes.util"])
def test_the_core_has_no_queue_clock_randomness_loader_or_ctypes(io: str) -> None:
    assert forbidden("pidphone.audio.g711", io) is not None
    assert forbidden("pidphone.zrtp.session", "secrets") is None


def test_only_named_bindings_may_use_ctypes() -> None:
    assert forbidden("pidphone.audio.libopus", "ctypes") is None
    assert forbidden("pidphone.audio.libopus", "ctypes.CDLL") is None  # from ctypes import CDLL
    assert forbidden("pidphone.audio.libopus", "ctypes.util") is not None
    assert forbidden("pidphone.audio.libopus", "socket") is not None
    assert forbidden("pidphone.audio.codec", "ctypes") is not None
    assert forbidden("pidphone.sdp.message", "ctypes") is not None


def test_errors_imports_nothing_of_pidphone() -> None:
    assert forbidden("pidphone.errors", "pidphone.zrtp.messages") is not None
    assert forbidden("pidphone.errors", "os") is not None
    assert forbidden("pidphone.errors", "__future__") is None


def test_the_apps_pure_modules_have_no_threads_sockets_or_clock() -> None:
    assert sum(1 for path in MODULES if module_name(path) in APP_PURE) >= 4
    for io in ("threading", "socket", "asyncio", "time", "queue", "selectors"):
        assert forbidden("pidphone.app.media", io) is not None
    assert forbidden("pidphone.app.media", "logging") is None
    assert forbidden("pidphone.app.engine", "threading") is None  # not a pure module


def test_relative_and_package_imports_are_resolved() -> None:
    relative = imports_in("from .. import drivers\nfrom ..app import media\n", "pidphone.zrtp.x")
    assert {"pidphone.drivers", "pidphone.app.media"} <= set(relative)
    deeper = imports_in("from ... import daemon\n", "pidphone.zrtp.sub", is_package=True)
    assert "pidphone.daemon" in deeper
    package = imports_in("from pidphone import app\n", "pidphone.rtp.y")
    assert "pidphone.app" in package
    for imported in (*relative, *deeper, *package):
        if imported.startswith(("pidphone.drivers", "pidphone.app", "pidphone.daemon")):
            assert forbidden("pidphone.zrtp.x", imported) is not None


KNOWN_SHARED_NAMES: dict[str, set[str]] = {}
"""Names that two modules still share, each waiting for its owner to rename one. The list only
shrinks: a new shared name fails, and so does an entry that no longer collides."""


def test_no_two_classes_share_a_name() -> None:
    defined: dict[str, set[str]] = collections.defaultdict(set)
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                defined[node.name].add(module_name(path))
    shared = {name: modules for name, modules in defined.items() if len(modules) > 1}
    assert shared == KNOWN_SHARED_NAMES
