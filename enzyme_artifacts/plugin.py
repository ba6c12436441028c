"""Inspecting an LLVMEnzyme library before anything loads it into this process.

Two levels, each used by ``enzyme-artifacts dev [PATH]``, ``Overrides.toml`` entries and
``ENZYME_ARTIFACTS_LIBRARY`` alike:

1. cheap, in this process, nothing loaded (:func:`check_needed`): an ELF shared library
   (on ELF platforms) whose ``DT_NEEDED`` names no libLLVM of another major and whose
   name says no other major (:func:`plugin_llvm_major` reads the major a build is for);
2. in a child process (:func:`validate_plugin`, the check itself in
   ``_plugin_child.py``): load the host libLLVM-N ``RTLD_GLOBAL``, load the library,
   check that it exports every symbol its C-API profile requires, and run the profile's
   call sequence (for v0.0.289: ``CreateEnzymeLogic``, ``CreateTypeAnalysis``,
   ``FreeTypeAnalysis``, ``FreeEnzymeLogic``, each create checked non-NULL).  A crash of
   the child -- a constructor that aborts, a call that segfaults -- is a refusal, never a
   crash of the caller.  Every refusal is a
   :class:`~enzyme_artifacts.errors.PluginValidationError` saying which step failed.

A library that passed is remembered by its real path, size and mtime (with the libLLVM
and the profile it was checked against, and the version of the check), in this process
and in ``<cache root>/validated/`` (best effort: a read-only cache only means checking
again), so a process start does not pay for a child once the file is known.

:func:`check_plugin` runs the child for several candidate profiles at once and reports
each: the place where identifying a library's profile by probing belongs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .errors import InvalidOverrideError, NotElfError, PluginValidationError

if TYPE_CHECKING:
    from .llvm import LLVMLibrary

__all__ = [
    "BUILD_SUBFOLDERS",
    "PLUGIN_NAME",
    "VALIDATE_TIMEOUT",
    "PluginReport",
    "ProfileResult",
    "check_needed",
    "check_plugin",
    "clear_memory",
    "file_stamp",
    "find_build_library",
    "major_of_build",
    "plugin_llvm_major",
    "validate_plugin",
]

PLUGIN_NAME = re.compile(r"^(?:lib)?(?:LLVM|Clang|LLD)?Enzyme-(\d+)\b")
"""``LLVMEnzyme-15.so``, ``libEnzyme-20.so``, ``ClangEnzyme-16.dylib`` ... (group 1: the major)."""
BUILD_SUBFOLDERS = ("", "lib", "Enzyme", "enzyme/Enzyme", "build/Enzyme")
"""Where :func:`find_build_library` looks inside a folder: a prefix or a cmake build tree."""
VALIDATE_TIMEOUT = 120.0
_CHILD = Path(__file__).with_name("_plugin_child.py")


# ---------------------------------------------------------------------- cheap checks
def _needed_or_empty(path: Path) -> tuple[str, ...]:
    from .elf import read_needed

    try:
        return read_needed(path)
    except (NotElfError, OSError):
        return ()


def plugin_llvm_major(path: Path) -> tuple[int | None, str]:
    """The LLVM major a plugin was built for, from its name or its ``DT_NEEDED``, and how
    that was read (``(None, "nothing")`` when neither says)."""
    from .llvm._probe import major_from_name

    for name in (path.name, Path(os.path.realpath(path)).name):
        m = PLUGIN_NAME.match(name)
        if m:
            return int(m.group(1)), f"its file name {name}"
    for needed in _needed_or_empty(path):
        info = major_from_name(needed)
        if info is not None:
            return info.major, f"its DT_NEEDED {needed}"
    return None, "nothing"


def _elf_platform() -> bool:
    return sys.platform.startswith(("linux", "freebsd"))


def check_needed(path: Path, llvm: int, *, what: str, remedy: str) -> None:
    """Cheap checks without loading: a shared library built for LLVM ``llvm``.

    Refuses (:class:`InvalidOverrideError`) a file that is not an ELF shared library (on
    ELF platforms), one whose ``DT_NEEDED`` names a libLLVM of another major, and one
    whose file name says another major.
    """
    from .elf import is_elf, read_needed
    from .llvm._probe import major_from_name

    if not path.is_file():
        raise InvalidOverrideError(f"{what} does not exist or is not a file; {remedy}")
    if _elf_platform():
        if not is_elf(path):
            raise InvalidOverrideError(
                f"{what} is not an ELF shared library, so it cannot be an LLVMEnzyme plugin; {remedy}"
            )
        try:
            needed = read_needed(path)
        except NotElfError as e:
            raise InvalidOverrideError(f"{what} is not a loadable shared library ({e}); {remedy}") from None
        for name in needed:
            info = major_from_name(name)
            if info is not None and info.major != llvm:
                raise InvalidOverrideError(
                    f"{what} was built for LLVM {info.major} (its DT_NEEDED names {name}), "
                    f"not for LLVM {llvm}; loading it would crash. Use a build made against LLVM {llvm}; {remedy}"
                )
    for name in (path.name, Path(os.path.realpath(path)).name):
        m = PLUGIN_NAME.match(name)
        if m and int(m.group(1)) != llvm:
            raise InvalidOverrideError(
                f"{what} was built for LLVM {m.group(1)} (its name is {name}), not for LLVM {llvm}; {remedy}"
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
        for sub in BUILD_SUBFOLDERS:
            for name in names:
                cand = path / sub / name if sub else path / name
                if cand.is_file():
                    return cand
        raise InvalidOverrideError(
            f"{path} holds no {names[0]} (looked in ., lib/, Enzyme/, enzyme/Enzyme/, build/Enzyme/); "
            f"pass the library file itself, or build Enzyme against LLVM {llvm} first"
        )
    raise InvalidOverrideError(f"{path} is neither a file nor a folder")


def major_of_build(path: Path) -> int | None:
    """The LLVM major a local build is for, when ``path`` says so unambiguously: the
    plugin's name or ``DT_NEEDED`` for a file, the one ``LLVMEnzyme-N`` library of a
    build folder."""
    if path.is_file():
        return plugin_llvm_major(path)[0]
    if not path.is_dir():
        return None
    majors = set()
    for sub in BUILD_SUBFOLDERS:
        folder = path / sub if sub else path
        for lib in folder.glob("*LLVMEnzyme-*"):
            m = PLUGIN_NAME.match(lib.name)
            if m and lib.is_file():
                majors.add(int(m.group(1)))
    return majors.pop() if len(majors) == 1 else None


def file_stamp(path: Path) -> tuple[str, int, int]:
    """``(real path, size, mtime_ns)`` of the file ``path`` resolves to (raises OSError)."""
    real = os.path.realpath(path)
    st = os.stat(real)
    return real, st.st_size, st.st_mtime_ns


# ---------------------------------------------------------------------- the child
@dataclass(frozen=True, slots=True)
class ProfileResult:
    """What the child found for one C-API profile: ``ok``, or the ``check`` that failed
    (``"symbols"`` with ``missing``, ``"calls"`` with ``error``)."""

    profile: str
    ok: bool
    check: str = ""
    missing: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PluginReport:
    """One run of the child: ``profiles`` by name when it ran to its end; otherwise
    ``failure`` says why (``check`` ``"load"``, ``"crash"`` or ``"timeout"``), ``step``
    the step it was in and ``stderr_tail`` its last words."""

    library: str
    llvm: str
    profiles: Mapping[str, ProfileResult] = field(default_factory=lambda: MappingProxyType({}))
    failure: str | None = None
    check: str = ""
    step: str | None = None
    stderr_tail: str = ""

    def ok(self, profile: str) -> bool:
        """True when the child ran to its end and ``profile`` passed."""
        result = self.profiles.get(profile)
        return self.failure is None and result is not None and result.ok


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def check_plugin(path: Path, llvm_lib: LLVMLibrary, profiles: Sequence[str], *,
                 timeout: float = VALIDATE_TIMEOUT) -> PluginReport:
    """Load ``path`` against ``llvm_lib`` in a child process and check each of
    ``profiles`` (names known to :mod:`enzyme_artifacts.capi`).  Never raises for what
    the library does; raises :class:`KeyError` for an unknown profile name."""
    from . import capi

    request = {
        "llvm": str(llvm_lib.path),
        "library": str(path),
        "profiles": [
            {"name": p, "symbols": sorted(capi.required_symbols(p)), "calls": capi.smoke_calls(p)}
            for p in profiles
        ],
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-S", str(_CHILD)],
            input=json.dumps(request), capture_output=True, text=True, timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return PluginReport(str(path), str(llvm_lib.path), failure=f"it did not finish within {timeout:g} s",
                            check="timeout", step=_last_step(out))
    step = _last_step(proc.stdout)
    result = _result(proc.stdout)
    tail = " ".join(proc.stderr.strip().splitlines()[-3:])[-400:]
    if result is None:
        how = (f"was killed by signal {-proc.returncode} ({_signal_name(-proc.returncode)})"
               if proc.returncode < 0 else f"exited with status {proc.returncode}")
        return PluginReport(str(path), str(llvm_lib.path), failure=f"the process {how}", check="crash",
                            step=step, stderr_tail=tail)
    if "error" in result:
        return PluginReport(str(path), str(llvm_lib.path), failure=str(result["error"]),
                            check=str(result.get("check", "load")), step=step, stderr_tail=tail)
    found = {
        name: ProfileResult(name, bool(r.get("ok")), str(r.get("check", "")), tuple(r.get("missing", ())),
                            r.get("error"))
        for name, r in dict(result.get("profiles", {})).items()
    }
    return PluginReport(str(path), str(llvm_lib.path), MappingProxyType(found), step=step, stderr_tail=tail)


def _lines(stdout: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict):
            out.append(data)
    return out


def _last_step(stdout: str) -> str | None:
    steps = [d["step"] for d in _lines(stdout) if "step" in d]
    return str(steps[-1]) if steps else None


def _result(stdout: str) -> dict[str, Any] | None:
    results = [d["result"] for d in _lines(stdout) if isinstance(d.get("result"), dict)]
    return results[-1] if results else None


# ---------------------------------------------------------------------- validation, remembered
_MEMORY: set[tuple[str, int, int, str, str]] = set()
_MEMORY_LOCK = threading.Lock()


def clear_memory() -> None:
    """Forget the validations remembered in this process (the records on disk stay)."""
    with _MEMORY_LOCK:
        _MEMORY.clear()


@functools.cache
def _checker_version() -> str:
    """Changes whenever the child's checks change, so older records are not trusted."""
    return hashlib.sha256(_CHILD.read_bytes()).hexdigest()[:16]


def _record_path(real: str, llvm: str, capi: str) -> Path:
    from .paths import validations_dir

    key = hashlib.sha256(f"{real}\0{llvm}\0{capi}".encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return validations_dir() / f"{key}.json"


def _record(real: str, size: int, mtime: int, llvm_lib: LLVMLibrary, capi: str) -> dict[str, Any]:
    from . import capi as capi_mod

    llvm_real, llvm_size, llvm_mtime = file_stamp(llvm_lib.path)
    return {
        "file": real, "size": size, "mtime_ns": mtime,
        "llvm": llvm_real, "llvm_size": llvm_size, "llvm_mtime_ns": llvm_mtime,
        "capi": capi, "symbols": sorted(capi_mod.required_symbols(capi)),
        "checker": _checker_version(),
    }


def _remembered(real: str, size: int, mtime: int, llvm_lib: LLVMLibrary, capi: str) -> bool:
    with _MEMORY_LOCK:
        if (real, size, mtime, str(llvm_lib.path), capi) in _MEMORY:
            return True
    try:
        want = _record(real, size, mtime, llvm_lib, capi)
        got = json.loads(_record_path(real, want["llvm"], capi).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if got != want:
        return False
    with _MEMORY_LOCK:
        _MEMORY.add((real, size, mtime, str(llvm_lib.path), capi))
    return True


def _remember(real: str, size: int, mtime: int, llvm_lib: LLVMLibrary, capi: str) -> None:
    with _MEMORY_LOCK:
        _MEMORY.add((real, size, mtime, str(llvm_lib.path), capi))
    with contextlib.suppress(OSError, ValueError):  # remembering on disk is an optimisation only
        record = _record(real, size, mtime, llvm_lib, capi)
        path = _record_path(real, record["llvm"], capi)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)


def validate_plugin(path: Path, llvm_lib: LLVMLibrary, capi: str, *, what: str, remedy: str) -> None:
    """Refuse ``path`` unless it is a working LLVMEnzyme library of profile ``capi`` for
    ``llvm_lib`` (see the module docstring); cheap when it passed before, unchanged.

    Raises :class:`InvalidOverrideError` for the cheap checks and an unknown profile,
    :class:`PluginValidationError` when the child refuses it (or dies).
    """
    from . import capi as capi_mod

    check_needed(path, llvm_lib.major, what=what, remedy=remedy)
    try:
        capi_mod.get_profile(capi)
    except KeyError as e:
        raise InvalidOverrideError(f"{what}: {e.args[0]}; {remedy}") from None
    try:
        real, size, mtime = file_stamp(path)
    except OSError as e:
        raise InvalidOverrideError(f"{what} cannot be read: {e.strerror or e}; {remedy}") from None
    if _remembered(real, size, mtime, llvm_lib, capi):
        return
    report = check_plugin(Path(real), llvm_lib, [capi])
    if report.ok(capi):
        _remember(real, size, mtime, llvm_lib, capi)
        return
    raise _refusal(report, capi, what=what, remedy=remedy)


def _refusal(report: PluginReport, capi: str, *, what: str, remedy: str) -> PluginValidationError:
    def error(message: str, check: str) -> PluginValidationError:
        return PluginValidationError(message, library=report.library, check=check, capi=capi)

    if report.failure is not None:
        if report.check == "load":
            return error(f"{what}: {report.failure}; {remedy}", "load")
        during = f" while it was at step {report.step!r}" if report.step else ""
        tail = f" ({report.stderr_tail})" if report.stderr_tail else ""
        return error(
            f"loading {what} against {report.llvm} in a test process failed: {report.failure}{during}{tail}. "
            f"Loading it here would have done the same to this process; {remedy}",
            report.check,
        )
    result = report.profiles.get(capi)
    if result is None:
        return error(f"{what}: the test process reported nothing for profile {capi}; {remedy}", "crash")
    if result.check == "symbols":
        missing = list(result.missing)
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        return error(
            f"{what} does not export {shown}, which the Enzyme C-API profile {capi} needs: it is not an "
            f"LLVMEnzyme plugin of that profile (set ENZYME_ARTIFACTS_CAPI if it is another version); {remedy}",
            "symbols",
        )
    return error(
        f"{what} exports the names of the Enzyme C-API profile {capi}, but {result.error}: it is not a "
        f"working Enzyme of that profile (a stub, or a build of another C API); {remedy}",
        "calls",
    )
