"""The platform-independent part of libLLVM discovery: value objects and the search loop.

:class:`LLVMFinder` walks the candidates its subclass yields (one subclass per OS, in
:mod:`.unix`, :mod:`.macos`, :mod:`.windows`), validates each, and returns the first that
fits as an :class:`LLVMLibrary`.  Every candidate considered is kept as an
:class:`Attempt` with the reason it was taken or rejected, so that the error (and
``enzyme-artifacts status``) can say exactly what was tried.

Environment variables read here:

* ``ENZYME_ARTIFACTS_LLVM_LIBRARY`` -- a path tried before anything else;
* ``CONDA_PREFIX`` -- an active conda environment's ``lib`` folder;
* ``HOMEBREW_PREFIX`` -- a Homebrew prefix, tried before ``/opt/homebrew`` and ``/usr/local``;
* ``PATH`` -- where ``llvm-config-N`` and ``llvm-config`` are looked up.
"""

from __future__ import annotations

import abc
import ctypes
import ctypes.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .. import _env
from ..errors import LLVMNotFoundError
from . import _probe

__all__ = [
    "ENV_LLVM_LIBRARY",
    "Attempt",
    "Candidate",
    "LLVMFinder",
    "LLVMLibrary",
    "LLVMSearch",
    "install_commands",
    "install_hint",
]

ENV_LLVM_LIBRARY = "ENZYME_ARTIFACTS_LLVM_LIBRARY"


@dataclass(frozen=True, slots=True)
class LLVMLibrary:
    """A shared libLLVM that passed the probes.

    Invariants: ``path`` exists and was loaded successfully in this process; ``major`` is
    the major that was asked for, read from its soname or name and confirmed by
    ``LLVMGetVersion`` when exported; ``version`` is ``"15.0.6"`` when some source spells
    it (``LLVMGetVersion``, ``llvm-config --version``, a sibling ``libLLVM-15.0.6.so``,
    a ``libLLVM.so.18.1`` name) and just ``"15"`` otherwise.  ``soname`` is the ELF
    ``DT_SONAME`` (``None`` on macOS/Windows or when absent): the name a plugin's
    ``DT_NEEDED`` must carry to bind to it.  ``origin`` is one of ``"env"``, ``"loaded"``,
    ``"llvm-config"``, ``"conda"``, ``"homebrew"``, ``"system"``, ``"loader"``.
    """

    path: Path
    major: int
    version: str
    cxx11_abi: bool
    assertions: bool
    soname: str | None
    origin: str

    @property
    def cxxstring_abi(self) -> str:
        """``"cxx11"`` or ``"cxx03"``, as :func:`~enzyme_artifacts.platforms.host_platform` takes it."""
        return "cxx11" if self.cxx11_abi else "cxx03"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One place to look.  ``path is None`` means the place was looked at and held
    nothing (``skip`` says why); ``major``/``version`` are set when the source itself
    is authoritative about them (``llvm-config --version``)."""

    origin: str
    where: str
    path: Path | None = None
    skip: str | None = None
    major: int | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One candidate and what became of it (``accepted`` or the rejection reason), and
    ``fix``: what would make this place hold a usable libLLVM (``None`` when accepted, or
    when nothing can be installed there, such as this process's own libraries)."""

    origin: str
    where: str
    path: str | None
    outcome: str
    accepted: bool = False
    fix: str | None = None

    def describe(self) -> str:
        target = f"{self.where}" + (f" -> {self.path}" if self.path and self.path != self.where else "")
        return f"[{self.origin}] {target}: {self.outcome}"


@dataclass(frozen=True, slots=True)
class LLVMSearch:
    """The result of one search: the library found (or ``None``) and every attempt."""

    major: int
    found: LLVMLibrary | None
    attempts: tuple[Attempt, ...] = field(default=())

    def error(self) -> LLVMNotFoundError:
        """The :class:`LLVMNotFoundError` describing this failed search."""
        lines = [f"no usable shared libLLVM of LLVM {self.major} was found."]
        if self.attempts:
            lines.append("Tried:")
            lines += [f"  {a.describe()}" for a in self.attempts]
        lines.append(install_hint(self.major))
        return LLVMNotFoundError("\n".join(lines), major=self.major, attempts=self.attempts)


def install_hint(major: int) -> str:
    """How to install a shared libLLVM of ``major`` on the common platforms."""
    return (
        f"Install LLVM {major} as a shared library, then retry:\n"
        f"  Debian/Ubuntu:    sudo apt-get install libllvm{major}\n"
        f"                    (if your release lacks it, add LLVM's own apt repository first)\n"
        f"  macOS (Homebrew): brew install llvm@{major}\n"
        f"  conda:            conda install -c conda-forge libllvm{major}\n"
        f"or point {ENV_LLVM_LIBRARY} at an existing libLLVM-{major} shared library."
    )


def install_commands(major: int) -> dict[str, str]:
    """The install command per platform family, for machine-readable output."""
    return {
        "debian": f"sudo apt-get install libllvm{major}",
        "homebrew": f"brew install llvm@{major}",
        "conda": f"conda install -c conda-forge libllvm{major}",
    }


class LLVMFinder(abc.ABC):
    """Finds a shared libLLVM of a given major.  Subclasses yield candidates in order.

    Invariant: a candidate whose major (read from its soname, name or folder) differs
    from the one wanted, or cannot be read, is never loaded into the process.
    """

    #: shared library suffixes this OS uses, for globbing folders
    suffixes: tuple[str, ...] = (".so",)
    #: how this OS names libLLVM-N in messages (``{major}`` is filled in)
    library_label: str = "libLLVM-{major}.so"
    #: where the dynamic loader looks, in messages
    loader_label: str = "dynamic loader"

    @abc.abstractmethod
    def candidates(self, major: int) -> Iterator[Candidate]:
        """Places to look, most specific first."""

    # ----------------------------------------------------------------- shared sources
    def loaded_libraries(self) -> list[Path]:
        """The libLLVM files already loaded in this process (none by default)."""
        return []

    def major_of_loaded(self, path: Path) -> int | None:
        """The LLVM major of a loaded library, read without loading anything."""
        info = _probe.major_from_name(path.name)
        return None if info is None else info.major

    def loaded_candidates(self, major: int) -> Iterator[Candidate]:
        loaded = self.loaded_libraries()
        mine = [p for p in loaded if self.major_of_loaded(p) == major]
        if not mine:
            others = ", ".join(p.name for p in loaded)
            label = self.library_label.format(major=major)
            yield Candidate(
                "loaded",
                "this process",
                skip=f"holds no {label}" + (f" (it holds {others})" if others else ""),
            )
        for p in mine:
            yield Candidate("loaded", "this process", path=p)

    def loader_candidates(self, major: int) -> Iterator[Candidate]:
        found = ctypes.util.find_library(f"LLVM-{major}")
        if found:
            yield Candidate("loader", f"find_library('LLVM-{major}')", path=Path(found))
        else:
            label = self.library_label.format(major=major)
            yield Candidate("loader", self.loader_label, skip=f"knows no {label}")

    def env_candidates(self, major: int) -> Iterator[Candidate]:
        value = _env.text(ENV_LLVM_LIBRARY)
        if not value:
            yield Candidate("env", ENV_LLVM_LIBRARY, skip="not set")
            return
        path = Path(value).expanduser()
        if not path.is_file():
            yield Candidate("env", f"{ENV_LLVM_LIBRARY}={value}", skip="no such file")
            return
        yield Candidate("env", f"{ENV_LLVM_LIBRARY}", path=path)

    def llvm_config_candidates(self, major: int) -> Iterator[Candidate]:
        for tool in (f"llvm-config-{major}", f"llvm-config{major}", "llvm-config"):
            exe = shutil.which(tool)
            if exe is None:
                if tool != f"llvm-config{major}":
                    yield Candidate("llvm-config", tool, skip="not on PATH")
                continue
            try:
                # llvm-config prints the answers in its own order, one per line.
                out = subprocess.run(
                    [exe, "--version", "--shared-mode", "--libdir"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=True,
                ).stdout.splitlines()
                libdir = next(line for line in out if line.startswith(("/", "\\")) or ":" in line[:3])
                mode = next(line for line in out if line in ("shared", "static"))
                version = next(line for line in out if line[:1].isdigit())
                tool_major = int(version.split(".")[0])
            except (OSError, subprocess.SubprocessError, StopIteration, ValueError) as e:
                yield Candidate("llvm-config", exe, skip=f"cannot be run: {e}")
                continue
            if tool_major != major:
                yield Candidate("llvm-config", exe, skip=f"reports LLVM {version}, not {major}")
                continue
            if mode != "shared":
                yield Candidate("llvm-config", exe, skip=f"LLVM {version} was built without a shared libLLVM")
                continue
            found = False
            for lib in self.libraries_in(Path(libdir), major):
                found = True
                yield Candidate("llvm-config", exe, path=lib, major=major, version=version)
            if not found:
                yield Candidate("llvm-config", exe, skip=f"no libLLVM-{major} in its --libdir {libdir}")

    def folder_candidates(self, origin: str, folder: Path, major: int) -> Iterator[Candidate]:
        if not folder.is_dir():
            yield Candidate(origin, str(folder), skip="no such folder")
            return
        found = False
        for lib in self.libraries_in(folder, major):
            found = True
            yield Candidate(origin, str(folder), path=lib)
        if not found:
            yield Candidate(origin, str(folder), skip=f"no libLLVM-{major} shared library in it")

    def conda_candidates(self, major: int) -> Iterator[Candidate]:
        prefix = _env.text("CONDA_PREFIX")
        if not prefix:
            yield Candidate("conda", "$CONDA_PREFIX", skip="no conda environment is active")
            return
        yield from self.folder_candidates("conda", Path(prefix) / self.conda_libdir, major)

    conda_libdir = "lib"

    def homebrew_candidates(self, major: int) -> Iterator[Candidate]:
        prefixes: list[str] = []
        for p in (_env.text("HOMEBREW_PREFIX"), *self.homebrew_prefixes):
            if p and p not in prefixes:
                prefixes.append(p)
        present = [p for p in prefixes if Path(p).is_dir()]
        if not present:
            yield Candidate("homebrew", " or ".join(prefixes), skip="Homebrew is not installed")
        for prefix in present:
            yield from self.folder_candidates("homebrew", Path(prefix) / "opt" / f"llvm@{major}" / "lib", major)

    homebrew_prefixes: tuple[str, ...] = ()

    def libraries_in(self, folder: Path, major: int) -> Iterator[Path]:
        """Files in ``folder`` whose names say libLLVM of ``major`` (plus un-versioned
        ``libLLVM`` names, whose major is checked before loading)."""
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            return
        named: list[Path] = []
        plain: list[Path] = []
        for name in names:
            info = _probe.major_from_name(name)
            if info is not None and info.major == major:
                named.append(folder / name)
            elif name in {f"libLLVM{s}" for s in self.suffixes}:
                plain.append(folder / name)
        # Soname-like names (libLLVM-15.so.1) before link-time names (libLLVM-15.so), then
        # shorter before longer (libLLVM-15.so.1 before libLLVM-15.0.6.so.1).
        named.sort(key=lambda p: (".so." not in p.name, len(p.name), p.name))
        yield from named + plain

    # ----------------------------------------------------------------- the search loop
    def fix_for(self, origin: str, major: int) -> str | None:
        """What would put a usable libLLVM-N where ``origin`` looks (for diagnostics)."""
        cmds = install_commands(major)
        label = self.library_label.format(major=major)
        return {
            "env": f"export {ENV_LLVM_LIBRARY}=/path/to/{label}",
            "llvm-config": f"{cmds['debian']} llvm-{major} (puts llvm-config-{major} on PATH)",
            "conda": f"{cmds['conda']} (in an active conda environment)",
            "homebrew": cmds["homebrew"],
            "system": cmds["debian"],
            "loader": cmds["debian"],
        }.get(origin)

    def search(self, major: int) -> LLVMSearch:
        """Try every candidate in order; never raises for a bad candidate."""
        attempts: list[Attempt] = []
        seen: set[str] = set()
        for cand in self.candidates(major):
            if cand.path is None:
                attempts.append(Attempt(cand.origin, cand.where, None, cand.skip or "nothing there",
                                        fix=self.fix_for(cand.origin, major)))
                continue
            real = os.path.realpath(cand.path)
            if real in seen:
                continue
            seen.add(real)
            try:
                lib = self.validate(cand, major)
            except _probe.Rejected as r:
                attempts.append(Attempt(cand.origin, cand.where, str(cand.path), f"rejected: {r}",
                                        fix=self.fix_for(cand.origin, major)))
                continue
            attempts.append(Attempt(cand.origin, cand.where, str(cand.path), "accepted", accepted=True))
            return LLVMSearch(major, lib, tuple(attempts))
        return LLVMSearch(major, None, tuple(attempts))

    def validate(self, cand: Candidate, major: int) -> LLVMLibrary:
        """Check the name, then load and probe; raise :class:`_probe.Rejected` on misfit."""
        assert cand.path is not None
        path = cand.path
        read_major, how, soname = _probe.read_major_without_loading(path)
        if read_major != major:
            raise _probe.Rejected(f"it is LLVM {read_major} (from {how}), not {major}; not loaded")
        if cand.major is not None and cand.major != major:
            raise _probe.Rejected(f"its llvm-config reports LLVM {cand.major}, not {major}")
        result = _probe.probe(path)
        version = result.exported_version or cand.version or _probe.version_from_siblings(path, major)
        if result.exported_version is not None and int(result.exported_version.split(".")[0]) != major:
            raise _probe.Rejected(
                f"LLVMGetVersion reports {result.exported_version} although its name says LLVM {major}"
            )
        return LLVMLibrary(
            path=path,
            major=major,
            version=version or str(major),
            cxx11_abi=result.cxx11_abi,
            assertions=result.assertions,
            soname=soname,
            origin=cand.origin,
        )
