"""Probing one shared libLLVM: its major read from names, then the library loaded and asked.

Private to :mod:`enzyme_artifacts.llvm`.  Two stages, in this order:

1. :func:`major_from_name` and :func:`read_major_without_loading` decide the LLVM major
   *without* loading anything, from the ELF ``DT_SONAME`` (Linux/FreeBSD), the file
   name, the name of the file a symlink points at, or a folder name such as
   ``llvm-15`` / ``llvm@15``.  A library whose major cannot be read this way, or reads as
   another major, is never loaded: two LLVMs of different majors in one process is the
   crash this package exists to prevent.
2. :func:`probe` loads the library with :mod:`ctypes` (``RTLD_LOCAL``; the frontend
   re-opens it ``RTLD_GLOBAL`` later, which the dynamic loader allows) and reads:

   * ``LLVMContextCreate`` exported: it is a libLLVM at all;
   * ``LLVMGetVersion`` (exported from LLVM 16 on; LLVM 15 has none): the exact version,
     which must agree with the major read from its name;
   * ``_ZN4llvm3sys16getProcessTripleB5cxx11Ev`` exported: built with the C++11 string
     ABI (``cxx11``), as the plugin must be;
   * ``_ZN4llvm24DisableABIBreakingChecksE`` absent: an assertions build (LLVM defines
     ``EnableABIBreakingChecks`` instead when ABI-breaking checks, which follow
     ``LLVM_ENABLE_ASSERTIONS`` by default, are on).

Loaded handles are kept for the life of the process (unloading an LLVM is never safe).
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "NameInfo",
    "ProbeResult",
    "Rejected",
    "major_from_name",
    "probe",
    "read_major_without_loading",
    "version_from_siblings",
]

CXX11_SYMBOL = "_ZN4llvm3sys16getProcessTripleB5cxx11Ev"
NO_ASSERTIONS_SYMBOL = "_ZN4llvm24DisableABIBreakingChecksE"
ASSERTIONS_SYMBOL = "_ZN4llvm23EnableABIBreakingChecksE"
MARKER_SYMBOL = "LLVMContextCreate"

# libLLVM-15.so, libLLVM-15.so.1, libLLVM-15.0.6.so, libLLVM-15git.so, libLLVM-15-a95c9aa1.so.1,
# libLLVM-15.dylib
_DASH_NAME = re.compile(r"^libLLVM-(\d+)(?:\.(\d+)\.(\d+))?(?![0-9])")
# libLLVM.so.18.1 (LLVM >= 18), libLLVM.so.15
_DOT_NAME = re.compile(r"^libLLVM\.so\.(\d+)(?:\.(\d+))?(?:\.(\d+))?$")
# libLLVM.18.1.dylib
_DYLIB_NAME = re.compile(r"^libLLVM\.(\d+)(?:\.(\d+))?(?:\.(\d+))?\.dylib$")
# LLVM-15.dll
_DLL_NAME = re.compile(r"^LLVM-(\d+)\.dll$", re.IGNORECASE)
# /usr/lib/llvm-15/lib, /opt/homebrew/opt/llvm@15/lib, /usr/lib64/llvm15/lib
_DIR_NAME = re.compile(r"^llvm(?:-|@|)(\d+)$")


class Rejected(Exception):
    """A candidate does not fit; the message is the reason, shown to the user."""


@dataclass(frozen=True, slots=True)
class NameInfo:
    """What a file name says: the major, and the full version when the name spells it."""

    major: int
    version: str | None


def major_from_name(name: str) -> NameInfo | None:
    """Read an LLVM major (and a version, when spelt out) from a libLLVM file name or soname.

    >>> major_from_name("libLLVM-15.so.1")
    NameInfo(major=15, version=None)
    >>> major_from_name("libLLVM-15.0.6.so")
    NameInfo(major=15, version='15.0.6')
    >>> major_from_name("libLLVM.so.18.1")
    NameInfo(major=18, version='18.1')
    >>> major_from_name("libLLVM-15-a95c9aa1.so.1").major
    15
    >>> major_from_name("libLLVMSupport.a") is None, major_from_name("libLLVM.so") is None
    (True, True)
    """
    for pattern in (_DASH_NAME, _DOT_NAME, _DYLIB_NAME, _DLL_NAME):
        m = pattern.match(name)
        if m:
            parts = [g for g in m.groups() if g is not None]
            version = ".".join(parts) if len(parts) > 1 else None
            return NameInfo(int(parts[0]), version)
    return None


def _major_from_folders(path: Path) -> int | None:
    for part in reversed(path.parent.parts):
        m = _DIR_NAME.match(part.lower())
        if m:
            return int(m.group(1))
    return None


def _soname(path: Path) -> str | None:
    from ..elf import NotElfError, read_soname

    try:
        return read_soname(path)
    except (NotElfError, OSError):
        return None


def read_major_without_loading(path: Path) -> tuple[int, str, str | None]:
    """``(major, how it was read, soname)`` for ``path``, without loading it.

    Sources, first that answers: the ELF ``DT_SONAME``; the file name; the name of the
    file it resolves to; a folder such as ``llvm-15`` or ``llvm@15``.  Raises
    :class:`Rejected` when none names a major.
    """
    soname = _soname(path)
    if soname is not None:
        info = major_from_name(soname)
        if info is not None:
            return info.major, f"its SONAME {soname}", soname
    for name, how in ((path.name, "its file name"), (Path(os.path.realpath(path)).name, "the file it links to")):
        info = major_from_name(name)
        if info is not None:
            return info.major, f"{how} {name}", soname
    for p in (path, Path(os.path.realpath(path))):
        major = _major_from_folders(p)
        if major is not None:
            return major, f"its folder {p.parent}", soname
    raise Rejected(
        "its LLVM major cannot be read from its SONAME, file name or folder, and a libLLVM of "
        "unknown major is never loaded"
    )


def version_from_siblings(path: Path, major: int) -> str | None:
    """A full version spelt by a file beside ``path`` that is the same file.

    Debian ships ``libLLVM-15.0.6.so`` next to ``libLLVM-15.so.1``; LLVM 18+ names the
    file itself ``libLLVM.so.18.1``.
    """
    real = os.path.realpath(path)
    names = [path.name, Path(real).name]
    try:
        names += sorted(os.listdir(path.parent))
    except OSError:
        pass
    for name in names:
        info = major_from_name(name)
        if info is None or info.major != major or info.version is None:
            continue
        if name in (path.name, Path(real).name) or os.path.realpath(path.parent / name) == real:
            return info.version
    return None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What loading a libLLVM told us."""

    exported_version: str | None  # from LLVMGetVersion, when exported
    cxx11_abi: bool
    assertions: bool


_HANDLES: dict[str, ctypes.CDLL] = {}


def load(path: Path | str) -> ctypes.CDLL:
    """Load (once per process) and keep the handle."""
    key = str(path)
    handle = _HANDLES.get(key)
    if handle is None:
        try:
            handle = ctypes.CDLL(key)
        except OSError as e:
            raise Rejected(f"it cannot be loaded: {e}") from None
        _HANDLES[key] = handle
    return handle


def probe(path: Path | str, handle: ctypes.CDLL | None = None) -> ProbeResult:
    """Load ``path`` and read its version, C++ string ABI and assertions setting."""
    lib = handle if handle is not None else load(path)
    if not hasattr(lib, MARKER_SYMBOL):
        raise Rejected(f"it does not export {MARKER_SYMBOL}, so it is not a libLLVM")
    exported = None
    if hasattr(lib, "LLVMGetVersion"):
        fn = lib.LLVMGetVersion
        fn.restype = None
        fn.argtypes = [ctypes.POINTER(ctypes.c_uint)] * 3
        a, b, c = ctypes.c_uint(), ctypes.c_uint(), ctypes.c_uint()
        fn(ctypes.byref(a), ctypes.byref(b), ctypes.byref(c))
        exported = f"{a.value}.{b.value}.{c.value}"
    cxx11 = hasattr(lib, CXX11_SYMBOL)
    assertions = hasattr(lib, ASSERTIONS_SYMBOL) or not hasattr(lib, NO_ASSERTIONS_SYMBOL)
    return ProbeResult(exported, cxx11, assertions)


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def path_of_loaded(handle: ctypes.CDLL) -> Path | None:
    """The file a handle opened by soname came from (``dladdr`` on one of its symbols)."""
    if sys.platform == "win32":
        return None
    try:
        dladdr = ctypes.CDLL(None).dladdr
    except (OSError, AttributeError):
        return None
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    dladdr.restype = ctypes.c_int
    info = _DlInfo()
    addr = ctypes.cast(getattr(handle, MARKER_SYMBOL), ctypes.c_void_p)
    if not dladdr(addr, ctypes.byref(info)) or not info.dli_fname:
        return None
    return Path(os.fsdecode(info.dli_fname))
