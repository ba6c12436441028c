"""libLLVM discovery on Linux and the BSDs (ELF, ``.so``).

Order:

1. ``ENZYME_ARTIFACTS_LLVM_LIBRARY``;
2. a libLLVM already mapped into this process (``/proc/self/maps``), so a process that
   has one never gets a second;
3. ``llvm-config-N``, then ``llvm-config`` when it reports major N (``--libdir``,
   ``--shared-mode``, ``--version``);
4. ``$CONDA_PREFIX/lib``;
5. Homebrew on Linux: ``$HOMEBREW_PREFIX``, ``/home/linuxbrew/.linuxbrew``, then ``opt/llvm@N/lib``;
6. distribution folders: ``/usr/lib/llvm-N/lib`` (Debian/Ubuntu), ``/usr/lib64/llvmN/lib``
   (Fedora compat packages), ``/usr/lib/llvmN/lib`` (Arch), ``/usr/local/llvmN/lib`` (FreeBSD);
7. the dynamic loader's own search: ``ctypes.util.find_library("LLVM-N")`` and a
   ``dlopen`` of the sonames ``libLLVM-N.so.1``, ``libLLVM-N.so``, ``libLLVM.so.N``
   (the soname carries the major, so nothing of another major can be loaded).
"""

from __future__ import annotations

import ctypes.util
import os
from collections.abc import Iterator
from pathlib import Path

from . import _probe
from .api import Candidate, LLVMFinder

__all__ = ["UnixLLVMFinder", "loaded_libllvms"]


def loaded_libllvms() -> list[Path]:
    """Paths of every libLLVM mapped into this process, from ``/proc/self/maps``."""
    found: list[Path] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) < 6:
                    continue
                path = parts[5].strip()
                name = os.path.basename(path)
                if name.startswith("libLLVM") and _probe.major_from_name(name) is not None:
                    p = Path(path)
                    if p not in found:
                        found.append(p)
    except OSError:
        pass
    return found


class UnixLLVMFinder(LLVMFinder):
    """Linux / FreeBSD: see the module docstring for the order."""

    suffixes = (".so",)
    homebrew_prefixes = ("/home/linuxbrew/.linuxbrew",)

    def loaded_libraries(self) -> list[Path]:
        return loaded_libllvms()

    def system_folders(self, major: int) -> tuple[Path, ...]:
        return (
            Path(f"/usr/lib/llvm-{major}/lib"),
            Path(f"/usr/lib64/llvm{major}/lib"),
            Path(f"/usr/lib/llvm{major}/lib"),
            Path(f"/usr/local/llvm{major}/lib"),
        )

    def system_candidates(self, major: int) -> Iterator[Candidate]:
        any_dir = False
        for folder in self.system_folders(major):
            if folder.is_dir():
                any_dir = True
                yield from self.folder_candidates("system", folder, major)
        if not any_dir:
            yield Candidate("system", str(self.system_folders(major)[0]), skip="no such folder")

    def loader_candidates(self, major: int) -> Iterator[Candidate]:
        names = [f"libLLVM-{major}.so.1", f"libLLVM-{major}.so", f"libLLVM.so.{major}"]
        found = ctypes.util.find_library(f"LLVM-{major}")
        if found and found not in names:
            names.insert(0, found)
        for name in names:
            info = _probe.major_from_name(name)
            if info is None or info.major != major:
                continue
            try:
                handle = ctypes.CDLL(name)
            except OSError:
                continue
            path = _probe.path_of_loaded(handle)
            if path is not None:
                _probe._HANDLES.setdefault(str(path), handle)
                yield Candidate("loader", name, path=path)
                return
        yield Candidate("loader", "dynamic loader", skip=f"knows none of {', '.join(names)}")

    def candidates(self, major: int) -> Iterator[Candidate]:
        yield from self.env_candidates(major)
        yield from self.loaded_candidates(major)
        yield from self.llvm_config_candidates(major)
        yield from self.conda_candidates(major)
        yield from self.homebrew_candidates(major)
        yield from self.system_candidates(major)
        yield from self.loader_candidates(major)
