"""Inspecting an LLVMEnzyme library before anything loads it into this process, and
identifying its C-API profile.

Two levels, each used by ``enzyme-artifacts dev [PATH]``, ``Overrides.toml`` entries,
``ENZYME_ARTIFACTS_LIBRARY`` and the installed artifacts alike:

1. cheap, in this process, nothing loaded (:func:`check_needed`): an ELF shared library
   (on ELF platforms) whose ``DT_NEEDED`` names no libLLVM of another major and whose
   name says no other major (:func:`plugin_llvm_major` reads the major a build is for);
2. in child processes (:func:`identify_plugin`, the probe itself in ``_plugin_child.py``):
   load the host libLLVM-N ``RTLD_GLOBAL``, load the library, check the exported symbols,
   create and free a logic and a type analysis, then *differentiate known functions
   through each candidate profile's parameter lists* (reverse, forward and split mode,
   run by LLVM's interpreter) and check the numbers.  The first profile whose
   derivatives come out right is the library's; a library of another C API gets its
   arguments in the wrong slots and aborts, crashes or computes garbage, so no profile
   passes.  Candidates are tried in this order: the profiles the embedded signature
   strings agree with (assertions builds carry them), the one asked for, the others
   newest first; a profile that fails ends its child, and the next runs in a fresh one.
   A crash or hang of a child is a refusal, never a crash of the caller.

:func:`validate_plugin` turns the identification into a verdict: every refusal is a
:class:`~enzyme_artifacts.errors.PluginValidationError` (a
:class:`~enzyme_artifacts.errors.ProfileMismatchError` when the library works but has
another profile than the one asked for) naming what was found: the parameter counts the
embedded strings give, the probe's outcome per profile, the signal a child died of.

An identification is remembered by the file's real path, size and mtime (with the
libLLVM's, the candidate profiles and the version of the check), in this process and in
``<cache root>/validated/`` (best effort: a read-only cache only means probing again), so
a process start does not pay for a child once the file is known.  The probe of a working
library takes one child process, about 0.1-0.2 s (loading libLLVM and the library is
most of it; the derivatives take milliseconds).
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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .errors import InvalidOverrideError, NotElfError, PluginValidationError, ProfileMismatchError

if TYPE_CHECKING:
    from .llvm import LLVMLibrary

__all__ = [
    "BUILD_SUBFOLDERS",
    "PLUGIN_NAME",
    "VALIDATE_TIMEOUT",
    "Identification",
    "PluginReport",
    "ProfileResult",
    "check_needed",
    "check_plugin",
    "clear_memory",
    "file_stamp",
    "find_build_library",
    "identify_plugin",
    "major_of_build",
    "plugin_llvm_major",
    "validate_plugin",
]

PLUGIN_NAME = re.compile(r"^(?:lib)?(?:LLVM|Clang|LLD)?Enzyme-(\d+)\b")
"""``LLVMEnzyme-15.so``, ``libEnzyme-20.so``, ``ClangEnzyme-16.dylib`` ... (group 1: the major)."""
BUILD_SUBFOLDERS = ("", "lib", "Enzyme", "enzyme/Enzyme", "build/Enzyme")
"""Where :func:`find_build_library` looks inside a folder: a prefix or a cmake build tree."""
VALIDATE_TIMEOUT = 60.0
"""Seconds one child process of the check may take."""
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
    """What the child found for one C-API profile: ``ok`` (the derivatives came out
    right), or the ``check`` that failed: ``"symbols"`` (with ``missing``), ``"calls"``
    (the logic and type analysis every profile shares), ``"probe"`` (an Enzyme call
    returned NULL, or wrong numbers), ``"crash"`` or ``"timeout"`` (the process died or
    hung while differentiating through this profile), each with ``error``.  ``found``:
    the numbers the probe read; ``seconds``: the time the probe took."""

    profile: str
    ok: bool
    check: str = ""
    missing: tuple[str, ...] = ()
    error: str | None = None
    found: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    seconds: float | None = None

    def describe(self) -> str:
        """One phrase: ``derivatives correct``, or what went wrong."""
        if self.ok:
            return "derivatives correct"
        if self.check == "symbols":
            shown = ", ".join(self.missing[:4]) + (f" and {len(self.missing) - 4} more" if len(self.missing) > 4 else "")
            return f"does not export {shown}"
        return self.error or f"failed ({self.check})"


@dataclass(frozen=True, slots=True)
class PluginReport:
    """The runs of the child for one library: ``profiles`` by name (those tried); when
    the library itself failed -- it does not load, or a step every profile shares
    crashed -- ``failure`` says why (``check`` ``"load"``, ``"crash"`` or ``"timeout"``),
    ``step`` the step it was in and ``stderr_tail`` its last words.  ``processes``: the
    child processes it took (a profile that did not pass ends its process, so that what
    a wrong binding left behind cannot spoil the next)."""

    library: str
    llvm: str
    profiles: Mapping[str, ProfileResult] = field(default_factory=lambda: MappingProxyType({}))
    failure: str | None = None
    check: str = ""
    step: str | None = None
    stderr_tail: str = ""
    processes: int = 0
    seconds: float = 0.0

    def ok(self, profile: str) -> bool:
        """True when the library loaded and ``profile`` passed."""
        result = self.profiles.get(profile)
        return self.failure is None and result is not None and result.ok

    @property
    def passed(self) -> tuple[str, ...]:
        """The profiles that passed, in the order tried."""
        return tuple(p for p in self.profiles if self.ok(p))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _request(path: Path, llvm_lib: LLVMLibrary, profiles: Sequence[str], stop_at_first_pass: bool) -> str:
    from . import capi

    entries = []
    for p in profiles:
        prof = capi.get_profile(p)
        entries.append({
            "name": p, "symbols": sorted(prof.symbols), "calls": prof.calls,
            "signatures": {s.function: [[q.name, q.ctype] for q in s.params] for s in prof.entry_points},
        })
    return json.dumps({"llvm": str(llvm_lib.path), "library": str(path), "profiles": entries,
                       "stop_at_first_pass": stop_at_first_pass})


_ASSERTION = re.compile(r"([\w.+-]+\.(?:cpp|h|c|cc):\d+): .*?(Assertion `.*' failed\.)")


def _tail(stderr: str) -> str:
    """The last words of a child: an assertion as ``File.cpp:630: Assertion `...' failed.``
    (without the long function signature before it), else its last lines."""
    lines = stderr.strip().splitlines()
    for line in reversed(lines[-20:]):
        m = _ASSERTION.search(line)
        if m:
            return f"{m.group(1).rsplit('/', 1)[-1]}: {m.group(2)}"[:400]
    return " ".join(lines[-3:])[-400:]


def check_plugin(path: Path, llvm_lib: LLVMLibrary, profiles: Sequence[str], *,
                 stop_at_first_pass: bool = False, timeout: float = VALIDATE_TIMEOUT) -> PluginReport:
    """Load ``path`` against ``llvm_lib`` in child processes and probe each of
    ``profiles`` (names known to :mod:`enzyme_artifacts.capi`) in that order; with
    ``stop_at_first_pass``, stop at the first that passes.  ``timeout`` bounds each
    child.  Never raises for what the library does; raises :class:`KeyError` for an
    unknown profile name."""
    from . import capi

    order = list(dict.fromkeys(profiles))
    for p in order:
        capi.get_profile(p)
    start = time.monotonic()
    results: dict[str, ProfileResult] = {}
    processes = 0
    lib, llvm = str(path), str(llvm_lib.path)

    def report(**failure: Any) -> PluginReport:
        tried = MappingProxyType({p: results[p] for p in order if p in results})
        return PluginReport(lib, llvm, tried, processes=processes, seconds=time.monotonic() - start, **failure)

    remaining = order
    while remaining:
        processes += 1
        try:
            proc = subprocess.run(
                [sys.executable, "-I", "-S", str(_CHILD)],
                input=_request(path, llvm_lib, remaining, stop_at_first_pass),
                capture_output=True, text=True, timeout=timeout, check=False,
            )
            out, err, code = proc.stdout, proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            code = None
        lines = _lines(out)
        for d in lines:
            if isinstance(d.get("outcome"), dict) and d.get("profile") in remaining:
                results[str(d["profile"])] = _profile_result(str(d["profile"]), d["outcome"])
        step = _last_step(out)
        final = _result(out)
        if final is not None and "error" in final:
            return report(failure=str(final["error"]), check=str(final.get("check", "load")), step=step,
                          stderr_tail=_tail(err))
        if final is None:
            how = (f"did not finish within {timeout:g} s" if code is None
                   else f"was killed by signal {-code} ({_signal_name(-code)})" if code < 0
                   else f"exited with status {code}")
            current = next((p for p in remaining if p not in results and step and step.startswith(f"{p}: ")), None)
            check = "timeout" if code is None else "crash"
            if current is None:  # at load, or in a step every profile shares
                return report(failure=f"the process {how}", check=check, step=step, stderr_tail=_tail(err))
            tail = _tail(err)
            results[current] = ProfileResult(
                current, False, check,
                error=f"the test process {how} while it was at step {step!r}" + (f" ({tail})" if tail else ""))
        shared = next((r for r in results.values() if r.check == "calls"), None)
        if shared is not None:  # the logic and type analysis are the same calls in every profile
            for p in remaining:
                results.setdefault(p, replace(shared, profile=p))
        if stop_at_first_pass and any(r.ok for r in results.values()):
            break
        left = [p for p in remaining if p not in results]
        if len(left) == len(remaining):
            return report(failure="the test process reported nothing", check="crash", step=step,
                          stderr_tail=_tail(err))
        remaining = left
    return report()


def _profile_result(name: str, o: Mapping[str, Any]) -> ProfileResult:
    found = o.get("found") if isinstance(o.get("found"), dict) else {}
    seconds = o.get("seconds")
    return ProfileResult(name, bool(o.get("ok")), str(o.get("check", "")), tuple(o.get("missing", ())),
                         o.get("error"), MappingProxyType(dict(found or {})),
                         float(seconds) if isinstance(seconds, int | float) else None)


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


# ---------------------------------------------------------------------- identification
@dataclass(frozen=True, slots=True)
class Identification:
    """Which C-API profile a library has (:func:`identify_plugin`).

    ``profile``: the one profile whose probe gave the right derivatives (None when none
    did, or when the embedded signatures contradict it); ``tried``: the candidates in
    the order probed; ``embedded``: function -> the ``name(types)`` strings an assertions
    build carries (empty for a ``-DNDEBUG`` build); ``report``: the child's report
    (None when the answer was remembered from an earlier probe of the same file).
    """

    library: str
    llvm: str
    profile: str | None
    tried: tuple[str, ...]
    embedded: Mapping[str, tuple[str, ...]]
    report: PluginReport | None
    remembered: bool = False

    @property
    def strings(self) -> str:
        """What the embedded signature strings say, as a phrase."""
        from . import capi

        if not self.embedded:
            return "it embeds no C signature strings (a build with -DNDEBUG, or not Enzyme)"
        counts = ", ".join(f"{name} {capi.parameter_count(sigs[0])}" for name, sigs in self.embedded.items())
        agree = capi.profiles_matching(self.embedded)
        says = f"those of {', '.join(agree)}" if agree else "those of no known profile"
        return f"its embedded C signatures give the parameter counts {counts}: {says}"

    @property
    def outcomes(self) -> str:
        """The probe's outcome for each profile tried, as one phrase."""
        if self.report is None:
            return f"{self.profile}: derivatives correct (remembered)"
        return "; ".join(f"through {p}: {self.report.profiles[p].describe()}" for p in self.tried
                         if p in self.report.profiles)


_MEMORY: dict[tuple[str, int, int, str, tuple[str, ...]], str] = {}
_MEMORY_LOCK = threading.Lock()


def clear_memory() -> None:
    """Forget the identifications remembered in this process (the records on disk stay)."""
    with _MEMORY_LOCK:
        _MEMORY.clear()


@functools.cache
def _checker_version() -> str:
    """Changes whenever the child's checks or the profiles change, so older records are
    not trusted."""
    from . import capi

    digest = hashlib.sha256(_CHILD.read_bytes())
    digest.update(Path(capi.__file__).read_bytes())
    return digest.hexdigest()[:16]


def _record_path(real: str, llvm: str, candidates: tuple[str, ...]) -> Path:
    from .paths import validations_dir

    text = "\0".join((real, llvm, *candidates))
    key = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return validations_dir() / f"{key}.json"


def _record(real: str, size: int, mtime: int, llvm_lib: LLVMLibrary, candidates: tuple[str, ...],
            profile: str) -> dict[str, Any]:
    llvm_real, llvm_size, llvm_mtime = file_stamp(llvm_lib.path)
    return {
        "file": real, "size": size, "mtime_ns": mtime,
        "llvm": llvm_real, "llvm_size": llvm_size, "llvm_mtime_ns": llvm_mtime,
        "candidates": list(candidates), "capi": profile, "checker": _checker_version(),
    }


def _remembered(real: str, size: int, mtime: int, llvm_lib: LLVMLibrary, candidates: tuple[str, ...]) -> str | None:
    """The profile an earlier probe identified for this very file and libLLVM, or None."""
    key = (real, size, mtime, str(llvm_lib.path), candidates)
    with _MEMORY_LOCK:
        if key in _MEMORY:
            return _MEMORY[key]
    try:
        llvm_real = file_stamp(llvm_lib.path)[0]
        got = json.loads(_record_path(real, llvm_real, candidates).read_text(encoding="utf-8"))
        profile = got.get("capi")
        if not isinstance(profile, str) or got != _record(real, size, mtime, llvm_lib, candidates, profile):
            return None
    except (OSError, ValueError, AttributeError):
        return None
    with _MEMORY_LOCK:
        _MEMORY[key] = profile
    return profile


def _remember(real: str, size: int, mtime: int, llvm_lib: LLVMLibrary, candidates: tuple[str, ...],
              profile: str) -> None:
    with _MEMORY_LOCK:
        _MEMORY[(real, size, mtime, str(llvm_lib.path), candidates)] = profile
    with contextlib.suppress(OSError, ValueError):  # remembering on disk is an optimisation only
        record = _record(real, size, mtime, llvm_lib, candidates, profile)
        path = _record_path(real, record["llvm"], candidates)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)


def identify_plugin(path: Path, llvm_lib: LLVMLibrary, *, candidates: Sequence[str] | None = None,
                    prefer: str | None = None, timeout: float = VALIDATE_TIMEOUT) -> Identification:
    """Which of ``candidates`` (default: every known profile) the library at ``path`` has,
    judged by the numbers: in child processes, each candidate's parameter lists are used
    to differentiate known functions (see ``_plugin_child.py``), in this order -- the
    profiles the embedded signature strings agree with, ``prefer``, the others newest
    first -- until one gives the right derivatives.  A profile that passes while the
    library embeds signatures of another shape is not accepted.

    The answer is remembered (in this process and in ``<cache root>/validated/``) by the
    file's real path, size and mtime and the libLLVM's, so a file is probed once; a
    library no profile fits is probed again at each call.  Raises :class:`OSError` when
    the file cannot be read and :class:`KeyError` for an unknown profile name.
    """
    from . import capi

    names = tuple(sorted(set(candidates if candidates is not None else capi.known_profiles())))
    for n in names:
        capi.get_profile(n)
    real, size, mtime = file_stamp(path)
    known = _remembered(real, size, mtime, llvm_lib, names)
    if known is not None:
        return Identification(real, str(llvm_lib.path), known, (known,), MappingProxyType({}), None, True)
    embedded = capi.embedded_signatures(Path(real).read_bytes())
    agree = [p for p in capi.profiles_matching(embedded) if p in names]
    first = agree + ([prefer] if prefer in names and prefer not in agree else [])
    order = tuple(first + [p for p in capi.newest_first(names) if p not in first])
    report = check_plugin(Path(real), llvm_lib, order, stop_at_first_pass=True, timeout=timeout)
    passed = report.passed
    profile = passed[0] if passed and (not embedded or passed[0] in agree) else None
    if profile is not None:
        _remember(real, size, mtime, llvm_lib, names, profile)
    return Identification(real, str(llvm_lib.path), profile, tuple(p for p in order if p in report.profiles),
                          MappingProxyType(embedded), report)


# ---------------------------------------------------------------------- validation
def validate_plugin(path: Path, llvm_lib: LLVMLibrary, capi: str | None = None, *, what: str, remedy: str,
                    asked_by: str = "", mismatch_fix: str | None = None) -> str:
    """Refuse ``path`` unless it is a working LLVMEnzyme library for ``llvm_lib``, and
    return its C-API profile (see :func:`identify_plugin`); cheap when the same file was
    identified before.

    ``capi``: the profile the caller needs (``asked_by`` says who asks, e.g. "the
    manifest entry ..."); a library of another profile is refused with
    :class:`ProfileMismatchError` whose message ends with ``mismatch_fix`` (default
    ``remedy``).  ``None``: any known profile will do.

    Raises :class:`InvalidOverrideError` for the cheap checks and an unknown profile,
    :class:`PluginValidationError` when no profile fits (or the library dies in the
    child), :class:`ProfileMismatchError` when it has another profile than ``capi``.
    """
    from . import capi as capi_mod

    check_needed(path, llvm_lib.major, what=what, remedy=remedy)
    if capi is not None:
        try:
            capi_mod.get_profile(capi)
        except KeyError as e:
            raise InvalidOverrideError(
                f"{what}: {e.args[0]}; name one of those, or name none to have the library's profile identified "
                "by probing"
            ) from None
    try:
        ident = identify_plugin(path, llvm_lib, prefer=capi)
    except OSError as e:
        raise InvalidOverrideError(f"{what} cannot be read: {e.strerror or e}; {remedy}") from None
    if ident.profile is None:
        raise _refusal(ident, capi, what=what, remedy=remedy)
    if capi is not None and ident.profile != capi:
        raise _mismatch(ident, llvm_lib, capi, what=what, asked_by=asked_by, fix=mismatch_fix or remedy)
    return ident.profile


def _mismatch(ident: Identification, llvm_lib: LLVMLibrary, capi: str, *, what: str, asked_by: str,
              fix: str) -> ProfileMismatchError:
    """The refusal of a library that works through ``ident.profile`` but was asked for as
    ``capi``: what its strings say, and what the probe through ``capi`` does."""
    from . import capi as capi_mod

    found = str(ident.profile)
    strings = Identification(ident.library, ident.llvm, found, (), MappingProxyType(
        capi_mod.embedded_signatures(Path(ident.library).read_bytes())), None).strings
    through = check_plugin(Path(ident.library), llvm_lib, [capi])
    result = through.profiles.get(capi)
    outcome = result.describe() if result is not None else (through.failure or "no outcome")
    asked = f" as {asked_by} says" if asked_by else ""
    return ProfileMismatchError(
        f"{what} has Enzyme's C API {found} ({capi_mod.releases(found)}), not {capi}{asked} "
        f"({capi_mod.releases(capi)}): {strings}; the probe through {capi}: {outcome}. Binding it as {capi} "
        f"would pass arguments in the wrong slots; {fix}",
        library=ident.library, capi=capi, found=found,
    )


def _refusal(ident: Identification, capi: str | None, *, what: str, remedy: str) -> PluginValidationError:
    from . import capi as capi_mod

    report = ident.report
    assert report is not None  # a remembered answer always has a profile

    def error(message: str, check: str) -> PluginValidationError:
        return PluginValidationError(message, library=report.library, check=check, capi=capi or "")

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
    results = [report.profiles[p] for p in ident.tried if p in report.profiles]
    if results and all(r.check == "symbols" for r in results):
        missing = sorted(set.intersection(*(set(r.missing) for r in results)) or set(results[0].missing))
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        return error(
            f"{what} does not export {shown}, which every Enzyme C-API profile this package knows needs "
            f"({', '.join(capi_mod.known_profiles())}): it is not an LLVMEnzyme plugin; {remedy}",
            "symbols",
        )
    shared = next((r for r in results if r.check == "calls"), None)
    if shared is not None:
        return error(
            f"{what} exports the names of Enzyme's C API, but {shared.error}: it is not a working Enzyme "
            f"(a stub, or a build of another C API); {remedy}",
            "calls",
        )
    passed = report.passed
    if passed:  # it passed through a profile its embedded signatures contradict
        return error(
            f"{what} gave the right derivatives through the C-API profile {passed[0]}, but {ident.strings}; "
            f"it is not a build this package can bind safely; {remedy}",
            "probe",
        )
    covers = "; ".join(f"{p}: {capi_mod.releases(p)}" for p in capi_mod.newest_first(capi_mod.known_profiles()))
    return error(
        f"{what} matches none of the Enzyme C-API profiles this package knows: {ident.outcomes}; {ident.strings}. "
        f"Use an Enzyme release one of them covers ({covers}), or add a profile for this C API "
        f"(see 'Adding an Enzyme C-API profile' in the development guide); {remedy}",
        results[0].check if results else "probe",
    )
