"""Binary checks run on every LLVMEnzyme library before it is packaged.

:func:`check_library` runs, in order:

``needed``
    every ``DT_NEEDED`` entry is on the allow-list: the target's libLLVM of the *same*
    major (by any of its soname spellings: ``libLLVM-15.so.1``, ``libLLVM-15.so``,
    ``libLLVM.so.18.1``), the C library and its parts (``libc``, ``libm``, ``libpthread``,
    ``libdl``, ``librt``, the dynamic loader ``ld-linux-*``/``ld-musl-*``), ``libstdc++``
    and ``libgcc_s``.  A libLLVM of another major or a renamed, bundled copy
    (``libLLVM-15-a95c9aa1.so.1``) fails.
``runpath``
    no ``DT_RUNPATH``/``DT_RPATH`` entry names a folder of the build machine (an absolute
    path such as ``/usr/lib/llvm-16/lib``, which LLVM's CMake adds); ``$ORIGIN``-relative
    entries are fine.  Under the policy ``none`` (a build for this machine) absolute entries
    are reported, not failed.
``bundled-llvm``
    the library does not *define* LLVM itself (a static LLVM would clash with the
    host's): ``LLVMContextCreate`` and ``llvm::LLVMContext``'s constructor must not be
    exported.
``symbol-versions``
    the highest ``GLIBC_``/``GLIBCXX_``/``CXXABI_`` version required (read from
    ``.gnu.version_r`` with pyelftools) stays within the ceilings of the target's wheel
    policy (``manylinux_2_28`` allows ``GLIBC_2.28``).
``exports``
    every symbol of the C-API profile (:func:`enzyme_artifacts.capi.required_symbols`)
    is defined and exported.
``capi``
    the library *is* that C-API profile (:func:`identify_capi_profile`, the loader's own
    identification): same names are not enough, the C API changed its parameter lists
    across releases.  In child processes, known functions are differentiated through each
    candidate profile's parameter lists and the numbers checked (so a ``-DNDEBUG`` build,
    which embeds no signature strings, is identified too); fails when the library probes
    as another profile or as none.  Without a libLLVM to probe with (``--no-load``, a cross
    build) the embedded signature strings decide, and a library without them fails.
``load``
    in a child process, the target's libLLVM is opened ``RTLD_GLOBAL``, then the library;
    each C-API symbol is looked up, and the libraries mapped into the process are listed
    (``/proc/self/maps``; dyld's image list on macOS): a second libLLVM pulled in by the
    library fails the check.  Only possible on a matching host; skipped with a reason
    otherwise.

ELF libraries get every check; Mach-O and PE files ``signatures`` and ``load`` (on a
matching host).  A failure never raises: it is a :class:`CheckResult` with ``ok=False``;
callers decide (``python -m build_recipes check`` exits 1).  An unknown profile name raises
:class:`~build_recipes.errors.UnknownProfileError` before anything runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enzyme_artifacts import capi
from enzyme_artifacts.platforms import Platform

from .errors import UnknownProfileError
from .recipe import Policy

__all__ = [
    "LOAD_TIMEOUT",
    "CheckReport",
    "CheckResult",
    "ProfileIdentification",
    "check_library",
    "classify_needed",
    "find_target_libllvm",
    "identify_capi_profile",
    "libllvm_major",
    "require_profile",
]

LOAD_TIMEOUT = 120.0
"""Seconds the child process of the ``load`` check may take."""

_LIBLLVM = re.compile(
    r"libLLVM(?:-(?P<a>\d+)(?:\.\d+)*)?(?P<tag>-[0-9a-f]{6,})?\.so(?:\.(?P<b>\d+)(?:\.\d+)*)?"
)
_GLIBC_PARTS = re.compile(
    r"(?:libc|libm|libpthread|libdl|librt|libutil)\.so\.\d+|ld-linux-[a-z0-9_-]+\.so\.\d+|ld-linux\.so\.\d+"
)
_MUSL_PARTS = re.compile(r"(?:libc|ld)-musl-[a-z0-9_]+\.so\.1|libc\.musl-[a-z0-9_]+\.so\.1")
_CXX_RUNTIME = re.compile(r"libstdc\+\+\.so\.6|libgcc_s\.so\.1")
_LLVM_DEFINITIONS = ("LLVMContextCreate", "_ZN4llvm11LLVMContextC1Ev", "_ZN4llvm11LLVMContextC2Ev")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: its ``name``, whether it passed, a one-line ``detail``.

    ``skipped`` checks count as passed and say why in ``detail``; ``info`` checks never fail.
    """

    name: str
    ok: bool
    detail: str
    skipped: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``PASS``, ``FAIL`` or ``SKIP``."""
        return "SKIP" if self.skipped else ("PASS" if self.ok else "FAIL")


@dataclass(frozen=True, slots=True)
class CheckReport:
    """Every check of one library."""

    path: Path
    llvm: int
    platform: Platform
    policy: str
    capi: str
    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(r.ok for r in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """The failed checks."""
        return tuple(r for r in self.results if not r.ok)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``check --json``)."""
        return {
            "path": str(self.path),
            "llvm": self.llvm,
            "platform": str(self.platform),
            "policy": self.policy,
            "capi": self.capi,
            "ok": self.ok,
            "checks": [
                {"name": r.name, "status": r.status, "ok": r.ok, "detail": r.detail, **dict(r.data)}
                for r in self.results
            ],
        }

    def format(self) -> str:
        """A human report, one line per check."""
        head = (f"{self.path.name}  (LLVM {self.llvm}, {self.platform}, policy {self.policy}, "
                f"C API {self.capi})")
        lines = [head] + [f"  {r.status:4}  {r.name:16} {r.detail}" for r in self.results]
        lines.append("  => " + ("all checks passed" if self.ok else
                                f"{len(self.failures)} check(s) failed: "
                                + ", ".join(r.name for r in self.failures)))
        return "\n".join(lines)


def require_profile(profile: str) -> str:
    """``profile`` when :mod:`enzyme_artifacts.capi` knows it; else
    :class:`~build_recipes.errors.UnknownProfileError` naming the known ones."""
    if profile not in capi.known_profiles():
        raise UnknownProfileError(
            f"unknown Enzyme C-API profile {profile!r}; known: {', '.join(capi.known_profiles())}. A "
            "profile is a C-API shape, not an Enzyme version: omit --capi to check against the "
            "recipe's, or add a profile to enzyme_artifacts/capi.py"
        )
    return profile


@dataclass(frozen=True, slots=True)
class ProfileIdentification:
    """What a library's C-API profile is, judged against ``expected``.

    ``matching``: the profiles the library has -- the one the probe identified (or none)
    when it was probed, else the known profiles its embedded signatures agree with;
    ``embedded``: function name -> the signature strings found; ``differences``: one
    sentence per function whose embedded signature differs from ``expected``; ``method``:
    how the profile was identified; ``probed``: whether the loader's probe ran (a child
    process differentiating known functions through each candidate profile),
    ``outcomes`` its outcome per profile.
    """

    expected: str
    matching: tuple[str, ...]
    embedded: Mapping[str, tuple[str, ...]]
    differences: tuple[str, ...]
    method: str
    probed: bool = False
    outcomes: str = ""

    @property
    def verdict(self) -> str:
        """``match`` (the library is ``expected``), ``mismatch`` (it is another C API, or
        none this package knows) or ``unknown`` (not probed, and nothing in it tells)."""
        if self.probed:
            return "match" if self.matching == (self.expected,) else "mismatch"
        if self.differences:
            return "mismatch"
        return "match" if self.expected in self.matching else "unknown"


def _probe_library(path: Path, llvm: int | None, llvm_library: Path | None) -> Any:
    """The libLLVM to probe ``path`` with (an :class:`enzyme_artifacts.llvm.LLVMLibrary`),
    or None when none is at hand."""
    from enzyme_artifacts.llvm import LLVMLibrary
    from enzyme_artifacts.plugin import plugin_llvm_major

    major = llvm if llvm is not None else plugin_llvm_major(path)[0]
    if major is None:
        return None
    if llvm_library is not None:
        return LLVMLibrary(Path(llvm_library), major, str(major), True, False, None, "env")
    lib = find_target_libllvm(major)
    return None if lib is None else LLVMLibrary(lib, major, str(major), True, False, None, "loader")


def identify_capi_profile(path: str | os.PathLike[str], expected: str, *, llvm: int | None = None,
                          llvm_library: Path | None = None, probe: bool = True) -> ProfileIdentification:
    """Which C-API profile the library at ``path`` has, judged against ``expected``.

    This is the one place that identifies a library's profile for the checks, and it does
    so as the loader does (:func:`enzyme_artifacts.plugin.identify_plugin`): in child
    processes, known functions are differentiated through each candidate profile's
    parameter lists against the libLLVM of major ``llvm`` (default: the one the plugin's
    name or ``DT_NEEDED`` names; ``llvm_library`` chooses the file), and the profile whose
    derivatives come out right is the library's -- for a ``-DNDEBUG`` build too, which
    embeds no signature strings.  Without a libLLVM to probe with (``probe=False``, a
    cross build), the signature strings an assertions build embeds decide.
    """
    from enzyme_artifacts.plugin import check_plugin, identify_plugin

    require_profile(expected)
    p = Path(path)
    embedded = capi.embedded_signatures(p.read_bytes())
    wanted = capi.signatures(expected)
    differences = tuple(
        f"{name} has {capi.parameter_count(got[0])} parameters in the library, {wanted[name].count} in {expected}"
        for name, got in embedded.items() if name in wanted and wanted[name].marker not in got
    )
    lib = _probe_library(p, llvm, llvm_library) if probe else None
    if lib is not None:
        try:
            ident = identify_plugin(p, lib)
        except OSError as e:
            return ProfileIdentification(expected, (), embedded, differences,
                                         f"probe against {lib.path}: {e}", probed=True, outcomes=str(e))
        outcomes = ident.outcomes
        if ident.profile != expected and (ident.report is None or expected not in ident.report.profiles):
            through = check_plugin(p, lib, [expected]).profiles.get(expected)  # say what the profile asked for does
            if through is not None:
                outcomes = f"through {expected}: {through.describe()}; {outcomes}"
        return ProfileIdentification(
            expected, (ident.profile,) if ident.profile else (), embedded, differences,
            f"probe: derivatives through each C-API profile, in a child process against {lib.path}",
            probed=True, outcomes=outcomes,
        )
    return ProfileIdentification(expected, capi.profiles_matching(embedded), embedded, differences,
                                 "C signature strings embedded by assertions (no libLLVM to probe with)")


def _check_capi(path: Path, profile: str, llvm: int, llvm_library: Path | None, probe: bool) -> CheckResult:
    ident = identify_capi_profile(path, profile, llvm=llvm, llvm_library=llvm_library, probe=probe)
    data = {"verdict": ident.verdict, "matching": list(ident.matching), "method": ident.method,
            "probed": ident.probed, "outcomes": ident.outcomes,
            "embedded": {k: list(v) for k, v in ident.embedded.items()}}
    strings = (f"; its embedded signatures: {'; '.join(ident.differences)}" if ident.differences
               else "; its embedded signatures agree" if ident.embedded else "; it embeds no signature strings")
    if ident.verdict == "match":
        how = "probed: its derivatives are right through that profile" if ident.probed else \
            "the embedded C signatures are those of that profile"
        return CheckResult("capi", True, f"C API {profile} ({how}{strings if ident.probed else ''})", data=data)
    if ident.verdict == "mismatch":
        others = [p for p in ident.matching if p != profile]
        found = (f"it is C API {', '.join(others)} ({capi.releases(others[0])}): pass --capi {others[0]}"
                 if others else "no known profile fits it")
        told = f"probed {ident.outcomes}" if ident.probed else "; ".join(ident.differences)
        return CheckResult(
            "capi", False,
            f"not C API {profile}: {found}; {told}{strings if ident.probed else ''}. Binding it with the wrong "
            "profile passes arguments in the wrong slots: build the Enzyme release of the profile asked for, "
            "or add a profile for this C API to enzyme_artifacts/capi.py", data=data)
    names = ", ".join(capi.ENTRY_POINTS)
    return CheckResult(
        "capi", False,
        f"its C API cannot be told here: no libLLVM-{llvm} to probe it with (--no-load, a cross build, or "
        f"LLVM {llvm} not installed) and it embeds none of the signatures of {names} (a -DNDEBUG build); "
        "check it on a machine of its platform with LLVM installed", data=data)


def libllvm_major(name: str) -> tuple[int | None, bool] | None:
    """``(major, bundled)`` for a libLLVM soname, ``None`` for anything else.

    ``bundled`` is True for renamed copies carrying a hash tag.

    >>> libllvm_major("libLLVM-15.so.1"), libllvm_major("libLLVM.so.18.1")
    ((15, False), (18, False))
    >>> libllvm_major("libLLVM-15-a95c9aa1.so.1"), libllvm_major("libc.so.6")
    ((15, True), None)
    """
    m = _LIBLLVM.fullmatch(name)
    if m is None:
        return None
    major = m["a"] or m["b"]
    return (int(major) if major else None, m["tag"] is not None)


def classify_needed(needed: Iterable[str], *, llvm: int, platform: Platform) -> tuple[list[str], list[str]]:
    """Split ``DT_NEEDED`` names into (allowed, problems); each problem is a sentence."""
    allowed: list[str] = []
    problems: list[str] = []
    libc_parts = _MUSL_PARTS if platform.libc == "musl" else _GLIBC_PARTS
    for name in needed:
        ll = libllvm_major(name)
        if ll is not None:
            major, bundled = ll
            if bundled:
                problems.append(f"{name} is a renamed, bundled copy of libLLVM; bind to the host's "
                                f"libLLVM-{llvm} by its soname instead")
            elif major != llvm:
                problems.append(f"{name} is LLVM {major}, not LLVM {llvm}")
            else:
                allowed.append(name)
        elif libc_parts.fullmatch(name) or _CXX_RUNTIME.fullmatch(name):
            allowed.append(name)
        else:
            problems.append(f"{name} is not on the allow-list (libLLVM-{llvm}, libc, libm, libstdc++, "
                            "libgcc_s, the dynamic loader)")
    return allowed, problems


def _version_tuple(text: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(x) for x in text.split("."))
    except ValueError:
        return None


def _elf_facts(path: Path) -> dict[str, Any]:
    """DT_NEEDED, DT_RUNPATH/DT_RPATH, version needs and exported symbols, read with pyelftools."""
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerNeedSection
    from elftools.elf.sections import SymbolTableSection

    from enzyme_artifacts.elf import read_needed

    needed = list(read_needed(path))
    version_needs: dict[str, list[str]] = {}
    exported: set[str] = set()
    runpath: list[str] = []
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                for tag in section.iter_tags():
                    if tag.entry.d_tag in ("DT_RUNPATH", "DT_RPATH"):
                        value = getattr(tag, "runpath" if tag.entry.d_tag == "DT_RUNPATH" else "rpath")
                        runpath += [p for p in str(value).split(":") if p]
            if isinstance(section, GNUVerNeedSection):
                for verneed, auxs in section.iter_versions():
                    version_needs.setdefault(str(verneed.name), []).extend(str(a.name) for a in auxs)
            elif isinstance(section, SymbolTableSection) and section.name == ".dynsym":
                for sym in section.iter_symbols():
                    e = sym.entry
                    if e.st_shndx == "SHN_UNDEF" or not sym.name:
                        continue
                    if e.st_info.bind in ("STB_GLOBAL", "STB_WEAK") and \
                            e.st_other.visibility in ("STV_DEFAULT", "STV_PROTECTED"):
                        exported.add(str(sym.name))
    return {"needed": needed, "version_needs": version_needs, "exported": exported, "runpath": runpath}


def _check_runpath(runpath: Sequence[str], policy: Policy) -> CheckResult:
    host = [p for p in runpath if not p.startswith(("$ORIGIN", "${ORIGIN}", "@loader_path"))]
    data = {"runpath": list(runpath)}
    if not runpath:
        return CheckResult("runpath", True, "no RUNPATH: libLLVM is bound by its soname", data=data)
    if not host:
        return CheckResult("runpath", True, f"only $ORIGIN-relative entries ({':'.join(runpath)})", data=data)
    if policy.name == "none":
        return CheckResult("runpath", True, f"names build-machine folders ({':'.join(host)}); kept for "
                                            "policy none (a build for this machine)", data=data)
    return CheckResult("runpath", False,
                       f"RUNPATH names folders of the build machine ({':'.join(host)}), which mean nothing "
                       "(or another LLVM) on a user's machine; configure with -DCMAKE_SKIP_RPATH=ON (the "
                       "recipe's Linux platforms do) or run patchelf --remove-rpath on the library",
                       data=data)


def _check_versions(version_needs: Mapping[str, Sequence[str]], policy: Policy) -> CheckResult:
    highest: dict[str, tuple[tuple[int, ...], str]] = {}
    for names in version_needs.values():
        for name in names:
            prefix, _, ver = name.partition("_")
            v = _version_tuple(ver)
            if prefix in ("GLIBC", "GLIBCXX", "CXXABI", "GCC") and v is not None and (
                    prefix not in highest or v > highest[prefix][0]):
                highest[prefix] = (v, name)
    parts, problems = [], []
    for prefix, (v, name) in sorted(highest.items()):
        ceiling = policy.ceilings.get(prefix)
        if ceiling is None:
            parts.append(f"{name} (no ceiling)")
        elif v <= ceiling:
            parts.append(f"{name} <= {policy.ceiling_text(prefix)}")
        else:
            problems.append(f"{name} > {policy.ceiling_text(prefix)}")
    data = {"highest": {p: n for p, (_, n) in highest.items()}}
    if problems:
        return CheckResult("symbol-versions", False,
                           f"beyond policy {policy.name}: {'; '.join(problems)} (build in an older image "
                           "or target a newer policy)", data=data)
    return CheckResult("symbol-versions", True, "; ".join(parts) or "no versioned symbols required",
                       data=data)


def find_target_libllvm(llvm: int) -> Path | None:
    """The shared libLLVM of major ``llvm`` on this host, or None.

    Asks :func:`enzyme_artifacts.llvm.find_libllvm` (which honours
    ``ENZYME_ARTIFACTS_LLVM_LIBRARY``), so the check loads against the same libLLVM the
    frontend would use.
    """
    from enzyme_artifacts.errors import ArtifactError
    from enzyme_artifacts.llvm import find_libllvm

    try:
        return Path(find_libllvm(llvm).path)
    except (ArtifactError, OSError):
        return None


_CHILD = r"""
import ctypes, json, os, sys
llvm, lib, *names = sys.argv[1:]
ctypes.CDLL(llvm, mode=ctypes.RTLD_GLOBAL)
handle = ctypes.CDLL(lib, mode=ctypes.RTLD_LOCAL)
missing = [n for n in names if not hasattr(handle, n)]
mapped = None
if os.path.exists("/proc/self/maps"):
    with open("/proc/self/maps") as f:
        mapped = sorted({parts[5].strip() for parts in (line.split(None, 5) for line in f)
                         if len(parts) == 6 and parts[5].startswith("/")})
elif sys.platform == "darwin":
    dyld = ctypes.CDLL("/usr/lib/libSystem.B.dylib")
    dyld._dyld_get_image_name.restype = ctypes.c_char_p
    mapped = sorted(dyld._dyld_get_image_name(i).decode() for i in range(dyld._dyld_image_count()))
print(json.dumps({"missing": missing, "mapped": mapped}))
"""

_LIBLLVM_FILE = re.compile(r"libLLVM(?:-\d+)?(?:\.\d+)*\.dylib|LLVM(?:-C)?\.dll")


def _is_libllvm(path: str) -> bool:
    name = os.path.basename(path)
    ll = libllvm_major(name)
    return (ll is not None) or bool(_LIBLLVM_FILE.fullmatch(name))


def _same_file(a: str, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _host_runs(platform: Platform) -> bool:
    """Whether a library for ``platform`` can be loaded (and probed) on this host."""
    from enzyme_artifacts.platforms import host_platform

    try:
        return host_platform().matches(platform.with_cxxstring_abi(None))
    except Exception:  # noqa: BLE001 - an unknown host probes nothing
        return False


def _check_load(path: Path, llvm: int, platform: Platform, names: Sequence[str],
                llvm_library: Path | None) -> CheckResult:
    from enzyme_artifacts.platforms import host_platform

    try:
        host = host_platform()
    except Exception as e:  # noqa: BLE001
        return CheckResult("load", True, f"skipped: host platform unknown ({e})", skipped=True)
    if not host.matches(platform.with_cxxstring_abi(None)):
        return CheckResult("load", True, f"skipped: the host is {host.triplet}, the library is for "
                                         f"{platform.triplet}", skipped=True)
    lib = llvm_library or find_target_libllvm(llvm)
    if lib is None:
        return CheckResult("load", False, f"no shared libLLVM-{llvm} found to load against; install "
                                          f"LLVM {llvm} (e.g. apt-get install libllvm{llvm}) or pass "
                                          "--llvm-library PATH")
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(lib), str(path.resolve()), *names],
                              capture_output=True, text=True, timeout=LOAD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return CheckResult("load", False, f"loading took more than {LOAD_TIMEOUT:.0f} s against {lib}")
    if proc.returncode != 0:
        err = proc.stderr.strip().splitlines()
        reason = err[-1] if err else f"exit status {proc.returncode}"
        return CheckResult("load", False, f"does not load against {lib}: {reason}",
                           data={"llvm_library": str(lib), "returncode": proc.returncode})
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    missing, mapped = out["missing"], out["mapped"]
    data: dict[str, Any] = {"llvm_library": str(lib)}
    if mapped is not None:
        llvms = [m for m in mapped if _is_libllvm(m)]
        others = [m for m in llvms if not _same_file(m, lib)]
        data["libllvm_mapped"] = llvms
        if others:
            return CheckResult("load", False,
                               f"loading it against {lib} pulled a second libLLVM into the process "
                               f"({', '.join(others)}): two LLVMs in one process crash at the first "
                               f"call. The library must bind to the libLLVM already loaded: check that "
                               f"--llvm {llvm} and --llvm-library name the LLVM it was built against, and "
                               "that it links no other libLLVM", data=data)
    if missing:
        return CheckResult("load", False, f"loads against {lib} but dlsym misses {', '.join(missing)}",
                           data={**data, "missing": missing})
    single = ("; no second libLLVM mapped" if mapped is not None
              else "; the libraries of the process cannot be listed on this system")
    return CheckResult("load", True, f"loads against {lib}; {len(names)} C-API symbols resolve{single}",
                       data=data)


def check_library(path: str | os.PathLike[str], *, llvm: int, platform: Platform, policy: Policy,
                  capi_profile: str, load: bool = True, llvm_library: Path | None = None) -> CheckReport:
    """Run every check on the library at ``path`` for LLVM major ``llvm`` on ``platform``.

    ``load=False`` skips the child-process load.  ``llvm_library`` chooses the libLLVM the
    load check binds to (default: :func:`find_target_libllvm`).  Raises
    :class:`FileNotFoundError` when ``path`` does not exist and
    :class:`~build_recipes.errors.UnknownProfileError` for an unknown ``capi_profile``;
    everything else is reported.
    """
    p = Path(path)
    require_profile(capi_profile)
    if not p.is_file():
        raise FileNotFoundError(f"no library at {p}")
    names = sorted(capi.required_symbols(capi_profile))
    results: list[CheckResult] = []
    with open(p, "rb") as f:
        head = f.read(4)
    if head == b"\x7fELF":
        try:
            facts = _elf_facts(p)
        except Exception as e:  # noqa: BLE001 - a malformed file is a failed check, not a crash
            facts = None
            results.append(CheckResult("elf", False, f"cannot read the ELF tables: {e}"))
        if facts is not None:
            allowed, problems = classify_needed(facts["needed"], llvm=llvm, platform=platform)
            has_llvm = any(libllvm_major(n) == (llvm, False) for n in facts["needed"])
            data = {"needed": facts["needed"]}
            if problems:
                results.append(CheckResult("needed", False, "; ".join(problems), data=data))
            else:
                note = "" if has_llvm else " (no libLLVM entry: LLVM symbols resolve from the process)"
                results.append(CheckResult("needed", True, ", ".join(allowed) + note, data=data))
            results.append(_check_runpath(facts["runpath"], policy))
            bundled = [s for s in _LLVM_DEFINITIONS if s in facts["exported"]]
            results.append(
                CheckResult("bundled-llvm", False, f"defines LLVM itself ({', '.join(bundled)}): it carries "
                                                   "a static LLVM; link against the shared libLLVM instead")
                if bundled else CheckResult("bundled-llvm", True, "defines no LLVM core symbols")
            )
            results.append(_check_versions(facts["version_needs"], policy))
            missing = [n for n in names if n not in facts["exported"]]
            results.append(
                CheckResult("exports", False, f"C API {capi_profile} misses {', '.join(missing)}",
                            data={"missing": missing})
                if missing else CheckResult("exports", True, f"all {len(names)} symbols of {capi_profile}")
            )
    else:
        kind = {b"\xcf\xfa\xed\xfe": "Mach-O", b"\xca\xfe\xba\xbe": "Mach-O"}.get(head, "")
        kind = kind or ("PE" if head[:2] == b"MZ" else "unknown")
        results.append(CheckResult("needed", True, f"skipped: {kind} file, dependency checks read ELF only",
                                   skipped=True))
    results.append(_check_capi(p, capi_profile, llvm, llvm_library, load and _host_runs(platform)))
    if load:
        results.append(_check_load(p, llvm, platform, names, llvm_library))
    else:
        results.append(CheckResult("load", True, "skipped: --no-load", skipped=True))
    return CheckReport(p, llvm, platform, policy.name, capi_profile, tuple(results))
