"""Developer overrides: use a local Enzyme build instead of the published artifact.

This is the counterpart of Julia's ``Overrides.toml`` and ``Enzyme_jll.dev_jll()``.
``Overrides.toml`` (in ``$ENZYME_ARTIFACTS_CONFIG``, default
``platformdirs.user_config_path("enzyme-artifacts")``) maps an LLVM major to a library::

    [LLVMEnzyme.15]
    library = "/home/me/.local/share/enzyme-artifacts/dev/LLVMEnzyme-15/override/lib/LLVMEnzyme-15.so"
    kind = "copy"              # "copy" (made by dev without PATH) or "path" (dev PATH)
    capi = "v0.0.289"          # C-API profile to bind (optional)
    enzyme_version = "0.0.289" # optional
    source = "..."             # free text: where it came from
    created = "2026-01-01T00:00:00Z"

    [LLVMEnzyme.15.validated]  # written by this module: the file as it was last validated
    file = "/real/path/LLVMEnzyme-15.so"
    size = 8922897
    mtime_ns = 1700000000000000000
    llvm = "/usr/lib/llvm-15/lib/libLLVM-15.so.1"
    capi = "v0.0.289"

``library`` may also name a folder: an artifact-like prefix holding ``lib/LLVMEnzyme-N.so``,
or an Enzyme cmake build folder holding ``Enzyme/LLVMEnzyme-N.so``.

The workflow (:func:`dev`, ``enzyme-artifacts dev``):

* ``dev(N)`` copies the installed artifact (fetched first if needed) into
  ``<dev dir>/LLVMEnzyme-N/override/``, laid out like the artifact (``lib/LLVMEnzyme-N.so``
  plus ``share/licenses``), activates it and returns the library path.  The dev dir is
  ``$ENZYME_ARTIFACTS_DEV_DIR``, default ``platformdirs.user_data_path("enzyme-artifacts")/"dev"``.
  An existing ``override/`` folder is kept as it is (it may hold your symlink).  Replace
  ``override/lib/LLVMEnzyme-N.so`` with a symlink to your build; the next resolve
  validates the new file and uses it.
* ``dev(N, PATH)`` points at a local build directly.
* :func:`undev` removes the entry (the dev folder is left on disk).

Validation, before an override is activated and again at resolve time whenever the
file's real path, size or mtime changed since it was last validated:

1. cheap, in this process: an ELF shared library (on ELF platforms) whose ``DT_NEEDED``
   names no libLLVM of another major, and whose name says no other major;
2. in a child process (``sys.executable``): load the host libLLVM-N ``RTLD_GLOBAL``, load
   the library, check that it exports every symbol the C-API profile requires, and call
   ``CreateEnzymeLogic``/``FreeEnzymeLogic``.  A crash of the child is a refusal, never a
   crash of the caller.

Failures raise :class:`~enzyme_artifacts.errors.InvalidOverrideError` saying what to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InvalidOverrideError

if TYPE_CHECKING:
    from .llvm import LLVMLibrary

__all__ = [
    "ENV_CONFIG",
    "ENV_DEV_DIR",
    "Override",
    "ValidationStamp",
    "check_needed",
    "config_dir",
    "dev",
    "dev_root",
    "find_build_library",
    "get_override",
    "load_overrides",
    "overrides_path",
    "plugin_llvm_major",
    "undev",
    "use_override",
    "validate_library",
]

ENV_CONFIG = "ENZYME_ARTIFACTS_CONFIG"
ENV_DEV_DIR = "ENZYME_ARTIFACTS_DEV_DIR"
OVERRIDES_FILE = "Overrides.toml"
_TABLE = "LLVMEnzyme"
_VALIDATE_TIMEOUT = 120.0
_PLUGIN_NAME = re.compile(r"^(?:lib)?(?:LLVM|Clang|LLD)?Enzyme-(\d+)\b")


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


# ---------------------------------------------------------------------- locations
def config_dir() -> Path:
    """``$ENZYME_ARTIFACTS_CONFIG`` or ``platformdirs.user_config_path("enzyme-artifacts")``; never created here."""
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_path("enzyme-artifacts"))


def overrides_path() -> Path:
    """The ``Overrides.toml`` in :func:`config_dir`."""
    return config_dir() / OVERRIDES_FILE


def dev_root() -> Path:
    """``$ENZYME_ARTIFACTS_DEV_DIR`` or ``platformdirs.user_data_path("enzyme-artifacts")/"dev"``."""
    env = os.environ.get(ENV_DEV_DIR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_path("enzyme-artifacts")) / "dev"


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


def _update(major: int, new: Override | None) -> Override | None:
    """Set (or remove, with ``None``) the entry for ``major`` under an inter-process lock."""
    import filelock

    p = overrides_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(p) + ".lock", timeout=60):
        current = load_overrides(p)
        old = current.pop(major, None)
        if new is not None:
            current[major] = new
        _write(current)
    return old


# ---------------------------------------------------------------------- checks
def plugin_llvm_major(path: Path) -> tuple[int | None, str]:
    """The LLVM major a plugin was built for, from its name or its ``DT_NEEDED``, and how."""
    for name in (path.name, Path(os.path.realpath(path)).name):
        m = _PLUGIN_NAME.match(name)
        if m:
            return int(m.group(1)), f"its file name {name}"
    for needed in _needed_or_empty(path):
        from .llvm._probe import major_from_name

        info = major_from_name(needed)
        if info is not None:
            return info.major, f"its DT_NEEDED {needed}"
    return None, "nothing"


def _needed_or_empty(path: Path) -> tuple[str, ...]:
    from . import _elf

    try:
        return _elf.read_needed(path)
    except (_elf.NotElfError, OSError):
        return ()


def _elf_platform() -> bool:
    return sys.platform.startswith(("linux", "freebsd"))


def check_needed(path: Path, llvm: int, *, what: str, remedy: str) -> None:
    """Cheap checks without loading: a shared library built for LLVM ``llvm``.

    Refuses (``InvalidOverrideError``) a file that is not an ELF shared library (on
    ELF platforms), one whose ``DT_NEEDED`` names a libLLVM of another major, and one
    whose file name says another major.
    """
    from . import _elf
    from .llvm._probe import major_from_name

    if not path.is_file():
        raise InvalidOverrideError(f"{what} does not exist or is not a file; {remedy}")
    if _elf_platform():
        if not _elf.is_elf(path):
            raise InvalidOverrideError(
                f"{what} is not an ELF shared library, so it cannot be an LLVMEnzyme plugin; {remedy}"
            )
        try:
            needed = _elf.read_needed(path)
        except _elf.NotElfError as e:
            raise InvalidOverrideError(f"{what} is not a loadable shared library ({e}); {remedy}") from None
        for name in needed:
            info = major_from_name(name)
            if info is not None and info.major != llvm:
                raise InvalidOverrideError(
                    f"{what} was built for LLVM {info.major} (its DT_NEEDED names {name}), "
                    f"not for LLVM {llvm}; loading it would crash. Use a build made against LLVM {llvm}; {remedy}"
                )
    for name in (path.name, Path(os.path.realpath(path)).name):
        m = _PLUGIN_NAME.match(name)
        if m and int(m.group(1)) != llvm:
            raise InvalidOverrideError(
                f"{what} was built for LLVM {m.group(1)} (its name is {name}), not for LLVM {llvm}; {remedy}"
            )


_CHILD = r"""
import ctypes, json, sys
llvm, lib = sys.argv[1], sys.argv[2]
symbols = sys.argv[3:]
try:
    ctypes.CDLL(llvm, mode=ctypes.RTLD_GLOBAL)
except OSError as e:
    print(json.dumps({"error": "cannot load libLLVM %s: %s" % (llvm, e)})); sys.exit(3)
try:
    h = ctypes.CDLL(lib)
except OSError as e:
    print(json.dumps({"error": "it cannot be loaded against %s: %s" % (llvm, e)})); sys.exit(3)
missing = [s for s in symbols if not hasattr(h, s)]
if missing:
    print(json.dumps({"missing": missing})); sys.exit(4)
if "CreateEnzymeLogic" in symbols and "FreeEnzymeLogic" in symbols:
    h.CreateEnzymeLogic.restype = ctypes.c_void_p
    h.CreateEnzymeLogic.argtypes = [ctypes.c_uint8]
    h.FreeEnzymeLogic.argtypes = [ctypes.c_void_p]
    logic = h.CreateEnzymeLogic(0)
    if not logic:
        print(json.dumps({"error": "CreateEnzymeLogic returned NULL"})); sys.exit(5)
    h.FreeEnzymeLogic(logic)
print(json.dumps({"ok": True}))
"""


def validate_library(path: Path, llvm_lib: LLVMLibrary, capi: str, *, what: str, remedy: str) -> None:
    """Full validation of a plugin for ``llvm_lib`` and profile ``capi`` (see the module docstring).

    Runs :func:`check_needed`, then loads the library in a child process.  Raises
    :class:`InvalidOverrideError` on any failure, including a crash of the child.
    """
    from .capi import required_symbols

    check_needed(path, llvm_lib.major, what=what, remedy=remedy)
    try:
        symbols = sorted(required_symbols(capi))
    except KeyError as e:
        raise InvalidOverrideError(f"{what}: {e.args[0]}; {remedy}") from None
    cmd = [sys.executable, "-I", "-S", "-c", _CHILD, str(llvm_lib.path), str(path), *symbols]
    try:
        proc = subprocess.run(
            cmd, check=False, capture_output=True, text=True, timeout=_VALIDATE_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise InvalidOverrideError(
            f"{what} did not finish loading within {_VALIDATE_TIMEOUT:.0f} s in a test process; {remedy}"
        ) from None
    report: dict[str, Any] = {}
    for line in reversed(proc.stdout.splitlines()):
        try:
            report = json.loads(line)
            break
        except ValueError:
            continue
    if proc.returncode == 0 and report.get("ok"):
        return
    if "missing" in report:
        missing = report["missing"]
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise InvalidOverrideError(
            f"{what} does not export {shown}, which the Enzyme C-API profile {capi} needs: it is not an "
            f"LLVMEnzyme plugin of that profile (set ENZYME_ARTIFACTS_CAPI if it is another version); {remedy}"
        )
    if "error" in report:
        raise InvalidOverrideError(f"{what}: {report['error']}; {remedy}")
    if proc.returncode < 0:
        how = f"was killed by signal {-proc.returncode}"
    else:
        how = f"exited with status {proc.returncode}"
    tail = " ".join(proc.stderr.strip().splitlines()[-3:])[-400:]
    raise InvalidOverrideError(
        f"loading {what} against {llvm_lib.path} in a test process failed: the process {how}"
        + (f" ({tail})" if tail else "")
        + f"; {remedy}"
    )


def find_build_library(path: Path, llvm: int) -> Path:
    """The plugin inside ``path``: the file itself, ``lib/LLVMEnzyme-N.<ext>`` of an
    artifact-like prefix, or ``Enzyme/LLVMEnzyme-N.<ext>`` of an Enzyme cmake build folder."""
    if path.is_file():
        return path
    if not path.exists():
        raise InvalidOverrideError(f"{path} does not exist; pass a library file or an Enzyme build folder")
    if path.is_dir():
        from .platforms import host_platform

        ext = host_platform().shared_library_suffix
        names = [f"LLVMEnzyme-{llvm}{ext}", f"libLLVMEnzyme-{llvm}{ext}"]
        for sub in ("", "lib", "Enzyme", "enzyme/Enzyme", "build/Enzyme"):
            for name in names:
                cand = path / sub / name if sub else path / name
                if cand.is_file():
                    return cand
        raise InvalidOverrideError(
            f"{path} holds no {names[0]} (looked in ., lib/, Enzyme/, enzyme/Enzyme/, build/Enzyme/); "
            f"pass the library file itself, or build Enzyme against LLVM {llvm} first"
        )
    raise InvalidOverrideError(f"{path} is neither a file nor a folder")


def _stamp_for(path: Path, llvm_lib: LLVMLibrary, capi: str) -> ValidationStamp:
    real = os.path.realpath(path)
    st = os.stat(real)
    return ValidationStamp(real, st.st_size, st.st_mtime_ns, str(llvm_lib.path), capi)


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------- use
def _effective_capi(ov: Override, llvm_lib: LLVMLibrary) -> str:
    from .resolver import _entry_or_none, choose_capi, host_platform_for

    return choose_capi(_entry_or_none(host_platform_for(llvm_lib), ov.llvm), recorded=ov.capi)


def use_override(ov: Override, llvm_lib: LLVMLibrary, capi: str | None = None) -> Path:
    """The library of ``ov``, validated against ``llvm_lib`` unless its file is unchanged
    since the last validation (real path, size and mtime, same libLLVM and profile).

    ``capi`` is the C-API profile it will be bound with (default: as :func:`resolve`
    chooses it: ``ENZYME_ARTIFACTS_CAPI``, the override's ``capi``, the manifest entry's).

    A fresh validation is remembered in ``Overrides.toml`` (best effort: a read-only
    config folder only means validating again next time).
    """
    remedy = f"fix it or run `enzyme-artifacts undev --llvm {ov.llvm}`"
    what = f"the override for LLVM {ov.llvm} ({ov.library}, from {overrides_path()})"
    library = find_build_library(ov.library, ov.llvm) if ov.library.is_dir() else ov.library
    if not library.exists():
        raise InvalidOverrideError(f"{what} does not exist (a dangling link or a removed build); {remedy}")
    capi = capi or _effective_capi(ov, llvm_lib)
    try:
        stamp = _stamp_for(library, llvm_lib, capi)
    except OSError as e:
        raise InvalidOverrideError(f"{what} cannot be read: {e.strerror or e}; {remedy}") from None
    if ov.validated == stamp:
        return library
    validate_library(library, llvm_lib, capi, what=what, remedy=remedy)
    with contextlib.suppress(Exception):  # remembering is an optimisation only
        _update(ov.llvm, replace(ov, validated=stamp))
    return library


def _default_major(llvm: int | None) -> int:
    if llvm is not None:
        if isinstance(llvm, bool) or not isinstance(llvm, int) or llvm <= 0:
            raise ValueError(f"llvm must be a positive LLVM major version such as 15, not {llvm!r}")
        return llvm
    from .resolver import default_llvm_major

    return default_llvm_major()


def _major_of_build(path: Path) -> int | None:
    """The LLVM major a local build is for, when ``path`` says so unambiguously: the
    plugin's name or ``DT_NEEDED`` for a file, the one ``LLVMEnzyme-N`` library of a
    build folder."""
    if path.is_file():
        return plugin_llvm_major(path)[0]
    if not path.is_dir():
        return None
    majors = set()
    for sub in ("", "lib", "Enzyme", "enzyme/Enzyme", "build/Enzyme"):
        folder = path / sub if sub else path
        for lib in folder.glob("*LLVMEnzyme-*"):
            m = _PLUGIN_NAME.match(lib.name)
            if m and lib.is_file():
                majors.add(int(m.group(1)))
    return majors.pop() if len(majors) == 1 else None


def _copy_tree(src: Path, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    from .cache import RECORD_NAME

    # The cache's own record describes the cached folder, not this copy: leave it out.
    shutil.copytree(src, tmp, symlinks=True, ignore=lambda d, names: [n for n in names if n == RECORD_NAME])
    for root, dirs, files in os.walk(tmp):
        for name in dirs + files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | stat.S_IWUSR)
    os.replace(tmp, dest)


def dev(
    llvm: int | None = None,
    path: str | os.PathLike[str] | None = None,
    *,
    capi: str | None = None,
    progress: bool | None = None,
) -> Override:
    """Activate an override for LLVM major ``llvm`` and return it (see the module docstring).

    ``llvm=None`` with a ``path`` takes the major the build names (``LLVMEnzyme-N``, or its
    ``DT_NEEDED`` libLLVM); otherwise the default major (see :func:`.resolver.default_llvm_major`).
    Without ``path``: copy the installed artifact (fetching it unless offline) into
    ``<dev dir>/LLVMEnzyme-N/override`` (kept when it already exists) and activate
    ``override/lib/LLVMEnzyme-N.<ext>``.  With ``path``: a library file, an artifact-like
    prefix or an Enzyme cmake build folder.  ``capi`` names the C-API profile of a local
    build (default: ``ENZYME_ARTIFACTS_CAPI``, else the manifest entry's, else the newest).
    The library is validated before the override is written.
    """
    from .cache import Cache
    from .llvm import find_libllvm
    from .resolver import (
        ENV_OFFLINE,
        _entry_or_none,
        _manifest,
        choose_capi,
        host_platform_for,
        offline,
    )

    major = _major_of_build(Path(path).expanduser()) if llvm is None and path is not None else None
    if major is None:
        major = _default_major(llvm)
    llvm_lib = find_libllvm(major)
    platform = host_platform_for(llvm_lib)
    if path is None:
        entry = _manifest().select(platform, major)
        cache = Cache()
        installed = cache.lookup(entry, llvm_soname=llvm_lib.soname)
        if installed is None:
            if offline():
                from .errors import OfflineError

                raise OfflineError(
                    f"{entry.key} is not installed and {ENV_OFFLINE} forbids fetching it; "
                    f"run `enzyme-artifacts fetch --llvm {major}` while online first"
                )
            installed = cache.install(entry, llvm_soname=llvm_lib.soname, progress=progress)
        folder = dev_root() / f"LLVMEnzyme-{major}"
        dest = folder / "override"
        if not dest.exists():
            folder.mkdir(parents=True, exist_ok=True)
            _copy_tree(installed.path, dest)
        library = dest / entry.library_relpath
        profile = capi or choose_capi(entry)
        new = Override(
            llvm=major,
            library=library,
            kind="copy",
            capi=profile,
            enzyme_version=entry.enzyme_version,
            source=f"copy of {entry.key} ({installed.source})",
            created=_now(),
        )
        remedy = f"restore {dest} (delete it and run `enzyme-artifacts dev --llvm {major}` again)"
    else:
        given = Path(path).expanduser().absolute()
        library = find_build_library(given, major)
        profile = capi or choose_capi(_entry_or_none(platform, major))
        new = Override(
            llvm=major, library=library, kind="path", capi=profile, source=f"local build {given}", created=_now()
        )
        remedy = f"point `enzyme-artifacts dev PATH --llvm {major}` at an Enzyme built against LLVM {major}"
    validate_library(library, llvm_lib, profile, what=str(library), remedy=remedy)
    new = replace(new, validated=_stamp_for(library, llvm_lib, profile))
    _update(major, new)
    return new


def undev(llvm: int | None = None) -> Override | None:
    """Remove the override for ``llvm`` (default: the only one, else the default major).

    Returns the removed override, or ``None`` when there was none.  Files on disk (the
    dev copy, your build) are left alone.
    """
    if llvm is None:
        current = load_overrides()
        if len(current) == 1:
            llvm = next(iter(current))
        elif not current:
            return None
        else:
            from .resolver import _env_major

            llvm = _env_major()
            if llvm is None:
                raise ValueError(
                    f"overrides exist for LLVM {', '.join(map(str, sorted(current)))}; say which with --llvm N"
                )
    elif isinstance(llvm, bool) or not isinstance(llvm, int) or llvm <= 0:
        raise ValueError(f"llvm must be a positive LLVM major version such as 15, not {llvm!r}")
    if llvm not in load_overrides():
        return None
    return _update(llvm, None)
