"""libLLVM discovery on Windows (``.dll``).

Order: ``ENZYME_ARTIFACTS_LLVM_LIBRARY``; an ``LLVM-N.dll`` already loaded in this process
(``EnumProcessModules``); ``llvm-config-N`` / ``llvm-config``; ``%CONDA_PREFIX%\\Library\\bin``;
the loader's search (``ctypes.util.find_library("LLVM-N")``).  The official Windows
installer ships ``LLVM-C.dll``, whose name carries no major: point
``ENZYME_ARTIFACTS_LLVM_LIBRARY`` at it only together with a folder named ``llvm-N``.

Written against documented Win32 calls; not exercised by the test suite, which runs on Linux.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from pathlib import Path

from . import _probe
from .api import Candidate, LLVMFinder

__all__ = ["WindowsLLVMFinder", "loaded_libllvms"]


def loaded_libllvms() -> list[Path]:
    """Paths of the LLVM DLLs loaded in this process."""
    try:
        psapi = ctypes.WinDLL("psapi")  # type: ignore[attr-defined]
        kernel32 = ctypes.WinDLL("kernel32")  # type: ignore[attr-defined]
    except (OSError, AttributeError):
        return []
    process = kernel32.GetCurrentProcess()
    modules = (ctypes.c_void_p * 4096)()
    needed = ctypes.c_ulong()
    if not psapi.EnumProcessModules(process, modules, ctypes.sizeof(modules), ctypes.byref(needed)):
        return []
    found: list[Path] = []
    buf = ctypes.create_unicode_buffer(32768)
    for i in range(min(needed.value // ctypes.sizeof(ctypes.c_void_p), len(modules))):
        if kernel32.GetModuleFileNameW(ctypes.c_void_p(modules[i]), buf, len(buf)):
            p = Path(buf.value)
            if _probe.major_from_name(p.name) is not None:
                found.append(p)
    return found


class WindowsLLVMFinder(LLVMFinder):
    """Windows: see the module docstring for the order."""

    suffixes = (".dll",)
    conda_libdir = "Library/bin"
    library_label = "LLVM-{major}.dll"
    loader_label = "DLL search path"

    def loaded_libraries(self) -> list[Path]:
        return loaded_libllvms()

    def libraries_in(self, folder: Path, major: int) -> Iterator[Path]:
        lib = folder / f"LLVM-{major}.dll"
        if lib.is_file():
            yield lib

    def candidates(self, major: int) -> Iterator[Candidate]:
        yield from self.env_candidates(major)
        yield from self.loaded_candidates(major)
        yield from self.llvm_config_candidates(major)
        yield from self.conda_candidates(major)
        yield from self.loader_candidates(major)
