"""The layer rule of ARCHITECTURE.md, checked on every module's imports.

core (sip sdp rtp zrtp srtp audio) imports no I/O and nothing above it; ports imports only
core; app never imports drivers; drivers never import app.

One exception, named module by module: a codec library (libopus, spandsp) is C code, and its
binding in the core needs `ctypes`. Those modules only call pure functions of the library
(PCM in, payload out), load it by soname (no `ctypes.util.find_library`, which runs programs)
and do nothing else; every other core module stays without `ctypes`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "pidphone"
CORE = {"sip", "sdp", "rtp", "zrtp", "srtp", "audio"}
IO_MODULES = {
    "asyncio",
    "socket",
    "ssl",
    "threading",
    "time",
    "subprocess",
    "select",
    "selectors",
    "multiprocessing",
    "concurrent",
    "signal",
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
    "ctypes",
}
NATIVE_BINDINGS = {"pidphone.audio.libopus", "pidphone.audio.libspandsp"}
"""Core modules that may import `ctypes` to bind a pure codec library (see the docstring)."""
# `os.urandom` is the one thing from os the core needs; it must come in as a parameter or
# through `secrets`, so plain `os` stays forbidden.


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "pidphone" or len(parts) == 1:
        return "other"
    head = parts[1]
    if head in CORE:
        return "core"
    if head in {"app", "drivers", "ports", "errors"}:
        return head
    return "root"  # cli, daemon, config, demo


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    module = "pidphone." + ".".join(path.relative_to(PKG).with_suffix("").parts)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                found.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.append(node.module)
    return found


MODULES = sorted(PKG.rglob("*.py"))


def forbidden(importer: str, imported: str) -> str | None:
    layer, target = layer_of(importer), layer_of(imported)
    top = imported.split(".", maxsplit=1)[0]
    if layer == "core":
        if top == "ctypes" and importer in NATIVE_BINDINGS and imported != "ctypes.util":
            return None
        if top in IO_MODULES:
            return "core may not do I/O"
        if target in {"app", "drivers", "ports", "root"}:
            return "core may not import a layer above it"
    if layer == "ports" and target in {"app", "drivers", "root"}:
        return "ports may only import core"
    if layer == "app" and target in {"drivers", "root"}:
        return "app may not import drivers or the composition root"
    if layer == "drivers" and target in {"app", "root"}:
        return "drivers may not import app or the composition root"
    return None


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_module_respects_layers(path: Path) -> None:
    module = "pidphone." + ".".join(path.relative_to(PKG).with_suffix("").parts)
    module = module.removesuffix(".__init__")
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


def test_only_named_bindings_may_use_ctypes() -> None:
    assert forbidden("pidphone.audio.libopus", "ctypes") is None
    assert forbidden("pidphone.audio.libopus", "ctypes.util") is not None
    assert forbidden("pidphone.audio.codec", "ctypes") is not None
    assert forbidden("pidphone.sdp.message", "ctypes") is not None
