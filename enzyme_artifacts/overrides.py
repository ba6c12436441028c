"""``Overrides.toml``: which LLVMEnzyme library replaces the published artifact, per LLVM major.

The counterpart of Julia's ``Overrides.toml``.  The file lives in the config folder
(:func:`enzyme_artifacts.paths.overrides_path`: ``$ENZYME_ARTIFACTS_CONFIG``, default
``platformdirs``' user config folder) and maps an LLVM major to a library::

    [LLVMEnzyme.15]
    library = "/home/me/.local/share/enzyme-artifacts/dev/LLVMEnzyme-15/override/lib/LLVMEnzyme-15.so"
    kind = "copy"              # "copy" (made by dev without PATH) or "path" (dev PATH)
    capi = "v0.0.289"          # C-API profile to bind (optional)
    enzyme_version = "0.0.289" # optional
    source = "..."             # free text: where it came from
    created = "2026-01-01T00:00:00Z"

    [LLVMEnzyme.15.validated]  # the file as it was last validated (written, not read, by people)
    file = "/real/path/LLVMEnzyme-15.so"
    size = 8922897
    mtime_ns = 1700000000000000000
    llvm = "/usr/lib/llvm-15/lib/libLLVM-15.so.1"
    capi = "v0.0.289"

``library`` may also name a folder: an artifact-like prefix holding ``lib/LLVMEnzyme-N.so``,
or an Enzyme cmake build folder holding ``Enzyme/LLVMEnzyme-N.so``.

This module reads and writes the file only: the workflow that fills it (``dev``,
``undev``) and the validation of what it names live in :mod:`enzyme_artifacts.develop` and
:mod:`enzyme_artifacts.plugin`.  Hand edits are allowed; a malformed file raises
:class:`~enzyme_artifacts.errors.InvalidOverrideError` naming the file and the table.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._lock import locked
from .errors import InvalidOverrideError
from .paths import overrides_path

__all__ = [
    "OVERRIDES_TABLE",
    "Override",
    "ValidationStamp",
    "get_override",
    "load_overrides",
    "overrides_path",
    "update_override",
]

OVERRIDES_TABLE = "LLVMEnzyme"
_TABLE = OVERRIDES_TABLE


@dataclass(frozen=True, slots=True)
class ValidationStamp:
    """The file an override resolved to when it last passed validation, and against what."""

    file: str
    size: int
    mtime_ns: int
    llvm: str
    capi: str


@dataclass(frozen=True, slots=True)
class Override:
    """One active override.  ``library`` is stored as written (symlinks are not resolved,
    so replacing a symlinked file takes effect without running ``dev`` again)."""

    llvm: int
    library: Path
    kind: str = "path"
    capi: str | None = None
    enzyme_version: str | None = None
    source: str = ""
    created: str = ""
    validated: ValidationStamp | None = None


# ---------------------------------------------------------------------- the file
def _bad(path: Path, where: str, msg: str) -> InvalidOverrideError:
    return InvalidOverrideError(f"{path}: {where}: {msg}; fix or delete that file (or run `enzyme-artifacts undev`)")


def _parse(path: Path, data: dict[str, Any]) -> dict[int, Override]:
    table = data.get(_TABLE, {})
    if not isinstance(table, dict):
        raise _bad(path, _TABLE, "must be a table of LLVM majors")
    result: dict[int, Override] = {}
    for key, t in table.items():
        where = f"[{_TABLE}.{key}]"
        if not re.fullmatch(r"[1-9][0-9]*", key):
            raise _bad(path, where, "the key must be an LLVM major such as 15")
        if not isinstance(t, dict):
            raise _bad(path, where, "must be a table")
        unknown = set(t) - {"library", "kind", "capi", "enzyme_version", "source", "created", "validated"}
        if unknown:
            raise _bad(path, where, f"unknown key(s) {', '.join(sorted(unknown))}")
        lib = t.get("library")
        if not isinstance(lib, str) or not lib:
            raise _bad(path, where, "'library' must be a non-empty string")
        for k in ("kind", "capi", "enzyme_version", "source", "created"):
            if k in t and not isinstance(t[k], str):
                raise _bad(path, where, f"{k!r} must be a string")
        stamp = None
        v = t.get("validated")
        if isinstance(v, dict):
            try:
                stamp = ValidationStamp(
                    str(v["file"]), int(v["size"]), int(v["mtime_ns"]), str(v["llvm"]), str(v["capi"])
                )
            except (KeyError, TypeError, ValueError):
                stamp = None  # a damaged stamp only means: validate again
        result[int(key)] = Override(
            llvm=int(key),
            library=Path(lib).expanduser(),
            kind=t.get("kind", "path"),
            capi=t.get("capi"),
            enzyme_version=t.get("enzyme_version"),
            source=t.get("source", ""),
            created=t.get("created", ""),
            validated=stamp,
        )
    return result


def load_overrides(path: Path | None = None) -> dict[int, Override]:
    """Every override in ``Overrides.toml`` by LLVM major; ``{}`` when the file is absent."""
    p = path or overrides_path()
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise InvalidOverrideError(f"cannot read {p}: {e.strerror or e}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise _bad(p, "TOML", str(e)) from None
    return _parse(p, data)


def get_override(llvm: int) -> Override | None:
    """The override for LLVM major ``llvm``, if any (no validation)."""
    return load_overrides().get(llvm)


def _s(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _dump(overrides: dict[int, Override]) -> str:
    lines = [
        "# enzyme-artifacts overrides: LLVM major -> LLVMEnzyme library.",
        "# Written by `enzyme-artifacts dev` / `undev`; hand edits are allowed.",
    ]
    for major in sorted(overrides):
        o = overrides[major]
        lines += ["", f"[{_TABLE}.{major}]", f"library = {_s(str(o.library))}", f"kind = {_s(o.kind)}"]
        if o.capi:
            lines.append(f"capi = {_s(o.capi)}")
        if o.enzyme_version:
            lines.append(f"enzyme_version = {_s(o.enzyme_version)}")
        if o.source:
            lines.append(f"source = {_s(o.source)}")
        if o.created:
            lines.append(f"created = {_s(o.created)}")
        if o.validated is not None:
            v = o.validated
            lines += [
                "",
                f"[{_TABLE}.{major}.validated]",
                f"file = {_s(v.file)}",
                f"size = {v.size}",
                f"mtime_ns = {v.mtime_ns}",
                f"llvm = {_s(v.llvm)}",
                f"capi = {_s(v.capi)}",
            ]
    return "\n".join(lines) + "\n"


def _write(overrides: dict[int, Override]) -> None:
    p = overrides_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(_dump(overrides), encoding="utf-8")
    os.replace(tmp, p)


def update_override(major: int, new: Override | None) -> Override | None:
    """Set (or remove, with ``None``) the entry for ``major`` under an inter-process lock;
    return the entry it replaced."""
    p = overrides_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    with locked(p.with_name(p.name + ".lock"), timeout=60, purpose=f"update {p}"):
        current = load_overrides(p)
        old = current.pop(major, None)
        if new is not None:
            current[major] = new
        _write(current)
    return old
