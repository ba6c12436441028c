"""libLLVM discovery on macOS (Mach-O, ``.dylib``).

Order: ``ENZYME_ARTIFACTS_LLVM_LIBRARY``; a libLLVM already among this process's dyld
images (``_dyld_image_count``/``_dyld_get_image_name``); ``llvm-config-N`` /
``llvm-config``; ``$CONDA_PREFIX/lib``; Homebrew ``opt/llvm@N/lib`` under
``$HOMEBREW_PREFIX``, ``/opt/homebrew`` and ``/usr/local``; the dynamic loader
(``ctypes.util.find_library("LLVM-N")``).  Homebrew's ``libLLVM.dylib`` carries no major
in its name: its major is read from the ``llvm@N`` folder before it is loaded.

This module is written against dyld's documented C functions but is not exercised by
the test suite, which runs on Linux.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from pathlib import Path

from . import _probe
from .api import Candidate, LLVMFinder

__all__ = ["MacOSLLVMFinder", "loaded_libllvms"]


def loaded_libllvms() -> list[Path]:
    """Paths of every libLLVM among this process's dyld images."""
    try:
        libc = ctypes.CDLL(None)
        count_fn = libc._dyld_image_count
        name_fn = libc._dyld_get_image_name
    except (OSError, AttributeError):
        return []
    count_fn.restype = ctypes.c_uint32
    name_fn.argtypes = [ctypes.c_uint32]
    name_fn.restype = ctypes.c_char_p
    found: list[Path] = []
    for i in range(count_fn()):
        raw = name_fn(i)
        if not raw:
            continue
        path = Path(os.fsdecode(raw))
        if path.name.startswith("libLLVM") and path.suffix == ".dylib" and path not in found:
            found.append(path)
    return found


class MacOSLLVMFinder(LLVMFinder):
    """macOS: see the module docstring for the order."""

    suffixes = (".dylib",)
    homebrew_prefixes = ("/opt/homebrew", "/usr/local")
    library_label = "libLLVM-{major}.dylib"

    def loaded_libraries(self) -> list[Path]:
        return loaded_libllvms()

    def major_of_loaded(self, path: Path) -> int | None:
        try:
            return _probe.read_major_without_loading(path)[0]
        except _probe.Rejected:
            return None


    def candidates(self, major: int) -> Iterator[Candidate]:
        yield from self.env_candidates(major)
        yield from self.loaded_candidates(major)
        yield from self.llvm_config_candidates(major)
        yield from self.conda_candidates(major)
        yield from self.homebrew_candidates(major)
        yield from self.loader_candidates(major)
