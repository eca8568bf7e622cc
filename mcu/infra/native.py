"""The compiled forwarding path: the per-packet modules built to C by mypyc, used only when the
build matches the source.

The modules in :data:`COMPILED` run once per packet per subscriber (the producer's fan-out, the
consumer's rewrite, the sequence rewriter, the SRTP transmitter, the packet itself).
``scripts/build_native`` compiles them from this same source with mypyc, in place: an extension
module next to each ``.py`` file, one shared library for the group, and a stamp
(:data:`STAMP_NAME`) with the SHA-256 of every source the build read (the compiled modules and
every module of ours they import, whose types the compiler relied on).

Python prefers an extension module to a source file of the same name, so an edited source
would silently lose to an old build. :func:`select` (run by ``mcu/__init__.py`` before anything
imports those modules) therefore compares the stamp with the sources. When they differ, or
``MCU_NATIVE=0`` asks for it, it makes the import system load the ``.py`` files instead (with a
warning for a stale build): the server then runs the same code interpreted, slower, never an old
version of it. :data:`STATUS` says which one runs; the server logs it at start and the
``mcu_worker`` metric carries it.

Standard library only: this runs while the ``mcu`` package itself is being imported.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

COMPILED = (
    "mcu.media",
    "mcu.sfu.rewrite",
    "mcu.sfu.producer",
    "mcu.sfu.consumer",
    "mcu.sfu.aiortc_send",
)
"The modules compiled, all under the ``mcu/`` folder."
HELPERS = ("mcu.sfu._wire",)
"""C extension modules the compiled ones call, built from the ``.c`` file of the same name with
them (and used only with them: the source runs without)."""
GROUP = "mcu.forwarding"
"mypyc's group: its shared library is ``mcu/forwarding__mypyc.<abi>.so``."
STAMP_NAME = "forwarding.json"
"The build's stamp, in the ``mcu/`` folder (not in the repository)."
ENVIRONMENT = "MCU_NATIVE"
"Set to 0 to run the Python source even when a current build exists."

PACKAGE_DIR = Path(__file__).resolve().parent.parent
"The ``mcu/`` folder: module files and stamp paths are relative to it."
STAMP = PACKAGE_DIR / STAMP_NAME

COMPILED_STATUS = "compiled"
STATUS = "python: not built"
"""``compiled``, or ``python: <why>`` (not built, out of date, turned off): what runs."""
STALE = False
"True when a build exists but does not match the source (worth a warning at start)."


def source_path(module: str) -> Path:
    """The ``.py`` file of one of :data:`COMPILED` (all live under ``mcu/``)."""
    parts = module.split(".")
    if parts[0] != "mcu" or len(parts) < 2:
        raise ValueError(f"{module} is not a module of the mcu package")
    return PACKAGE_DIR.joinpath(*parts[1:]).with_suffix(".py")


def helper_source_path(module: str) -> Path:
    """The ``.c`` file of one of :data:`HELPERS`."""
    return source_path(module).with_suffix(".c")


def extension_path(module: str) -> Path:
    """Where the compiled build of ``module`` is, for this interpreter's ABI."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    path = source_path(module)
    return path.with_name(path.stem + suffix)


def shared_library_path() -> Path:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return PACKAGE_DIR / (GROUP.split(".", 1)[1] + "__mypyc" + suffix)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_stamp() -> dict[str, object] | None:
    try:
        stamp = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def build_is_current(stamp: dict[str, object] | None) -> str | None:
    """None when the build matches the source; otherwise why it does not."""
    if stamp is None:
        return "no stamp"
    if stamp.get("modules") != list(COMPILED):
        return "built for other modules"
    if stamp.get("abi") != importlib.machinery.EXTENSION_SUFFIXES[0]:
        return "built for another Python"
    sources = stamp.get("sources")
    if not isinstance(sources, dict) or not sources:
        return "no sources in the stamp"
    for relative, expected in sources.items():
        try:
            actual = digest(PACKAGE_DIR / relative)
        except OSError:
            return f"{relative} is gone"
        if actual != expected:
            return f"{relative} changed since the build"
    missing = [m for m in COMPILED + HELPERS if not extension_path(m).exists()]
    if missing or not shared_library_path().exists():
        return "part of the build is missing"
    return None


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds :data:`COMPILED` as their ``.py`` files, ahead of the extension modules."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED:
            return None
        return importlib.util.spec_from_file_location(fullname, source_path(fullname))


def select() -> str:
    """Choose the compiled build or the source for :data:`COMPILED`; returns :data:`STATUS`.

    Must run before any of them is imported; running it again changes nothing.
    """
    global STATUS, STALE
    if any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        return STATUS
    built = any(extension_path(m).exists() for m in COMPILED)
    if not built:
        STATUS = "python: not built (scripts/build_native compiles the forwarding path)"
        return STATUS
    if os.environ.get(ENVIRONMENT, "") == "0":
        STATUS = f"python: {ENVIRONMENT}=0"
    else:
        why = build_is_current(read_stamp())
        if why is None:
            STATUS = COMPILED_STATUS
            return STATUS
        STALE = True
        STATUS = f"python: the compiled build is out of date ({why}; run scripts/build_native)"
    sys.meta_path.insert(0, _SourceFinder())
    return STATUS
