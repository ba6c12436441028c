"""Building LLVMEnzyme-N from source with CMake, checking it and packaging it.

:func:`build` runs, for one platform of the recipe and one LLVM major:

1. the source: a checkout (``source_dir``) or the recipe's verified release tarball;
2. ``cmake -S <tree>/enzyme -B <build> -G Ninja -D...`` (:func:`plan.configure_command`);
3. ``cmake --build <build> --target LLVMEnzyme-N`` (:func:`plan.build_command`);
4. the binary checks (:mod:`build_recipes.checks`): a failure stops here;
5. the tarball and its manifest fragment in ``out_dir`` (:mod:`build_recipes.package`).

Commands are echoed to stderr before they run; their output streams through.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .checks import CheckReport, check_library
from .package import PackagedArtifact, package_library
from .plan import build_command, configure_command, tarball_name
from .recipe import PlatformSpec, Policy, Recipe
from .repack import BinaryCheckError
from .source import SourceTree, fetch_source, find_licenses, locate_checkout

__all__ = ["BuildError", "BuildResult", "build", "check_llvm_dir",
    "default_llvm_dir", "find_output"]


class BuildError(RuntimeError):
    """CMake, the compiler or the build environment failed; the message says which step."""


@dataclass(frozen=True, slots=True)
class BuildResult:
    """The packaged artifact, the built library inside the build tree, and its checks."""

    artifact: PackagedArtifact
    library: Path
    report: CheckReport
    source: SourceTree


def check_llvm_dir(llvm_dir: str | Path, llvm: int) -> Path:
    """The LLVM CMake package folder, verified to hold ``LLVMConfig.cmake`` of major ``llvm``.

    Accepts the package folder itself or an LLVM prefix (``/usr/lib/llvm-15``).
    """
    p = Path(llvm_dir)
    for cand in (p, p / "lib" / "cmake" / "llvm"):
        if (cand / "LLVMConfig.cmake").is_file():
            version_file = cand / "LLVMConfigVersion.cmake"
            if version_file.is_file():
                import re

                text = version_file.read_text(encoding="utf-8", errors="replace")
                m = re.search(r'set\(PACKAGE_VERSION\s+"?(\d+)', text)
                if m and int(m[1]) != llvm:
                    raise BuildError(f"{cand} is the CMake package of LLVM {m[1]}, not LLVM {llvm}; "
                                     f"pass --llvm-dir of LLVM {llvm}")
            return cand
    raise BuildError(
        f"no LLVMConfig.cmake in {p}; install LLVM {llvm}'s development files (Debian/Ubuntu: "
        f"apt-get install llvm-{llvm}-dev, which puts it in /usr/lib/llvm-{llvm}/lib/cmake/llvm) and pass "
        "--llvm-dir"
    )


def default_llvm_dir(recipe: Recipe, platform: PlatformSpec, llvm: int) -> str:
    """The recipe's LLVM CMake folder for ``platform`` when it exists, else the first of
    ``llvm-config-N --cmakedir``, ``/usr/lib/llvm-N/lib/cmake/llvm`` (Debian, Ubuntu) and
    ``/usr/lib/llvmN/lib/cmake/llvm`` (Alpine) that holds ``LLVMConfig.cmake``; the
    recipe's path when none does (the error then names it)."""
    wanted = recipe.expand(platform.llvm_dir, llvm=llvm, platform=platform)
    candidates = [wanted]
    try:
        proc = subprocess.run([f"llvm-config-{llvm}", "--cmakedir"], capture_output=True, text=True,
                              timeout=30, check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            candidates.append(proc.stdout.strip())
    except OSError:
        pass  # no llvm-config-N on PATH
    candidates += [f"/usr/lib/llvm-{llvm}/lib/cmake/llvm", f"/usr/lib/llvm{llvm}/lib/cmake/llvm"]
    for cand in candidates:
        if (Path(cand) / "LLVMConfig.cmake").is_file():
            return cand
    return wanted


def libllvm_near(llvm_dir: str | Path, llvm: int) -> Path | None:
    """The shared libLLVM of major ``llvm`` beside an LLVM CMake folder
    (``<prefix>/lib/cmake/llvm`` → ``<prefix>/lib``), or None.  The load check binds the
    built library to the LLVM it was built against (in CI that LLVM is not on the
    loader's search path)."""
    lib = Path(llvm_dir).resolve().parents[1]
    if not lib.is_dir():
        return None
    for pattern in (f"libLLVM-{llvm}.so*", f"libLLVM.so.{llvm}*", f"libLLVM-{llvm}.dylib", "libLLVM.dylib",
                    f"libLLVM-{llvm}*.so*"):
        hits = sorted(p for p in lib.glob(pattern) if p.is_file())
        if hits:
            return next((h for h in hits if _soname(h) == h.name), hits[0])
    return None


def _soname(path: Path) -> str | None:
    """The ELF SONAME of ``path``, None for other files (the name a loader matches)."""
    from enzyme_artifacts.elf import NotElfError, read_soname

    try:
        return read_soname(path)
    except (NotElfError, OSError):
        return None


def find_output(recipe: Recipe, platform: PlatformSpec, llvm: int, build_dir: Path) -> Path:
    """The built library: the recipe's ``output`` path, else the only file of that name in
    the build tree (multi-config generators add a ``Release/`` folder)."""
    expected = build_dir / recipe.expand(recipe.cmake.output, llvm=llvm, platform=platform)
    if expected.is_file():
        return expected
    hits = sorted(p for p in build_dir.rglob(expected.name) if p.is_file())
    if len(hits) == 1:
        return hits[0]
    raise BuildError(f"the build finished but {expected.name} is not at {expected}"
                     + (f"; candidates: {', '.join(map(str, hits))}" if hits else " nor anywhere in the build tree"))


def _run(cmd: Sequence[str], step: str, cwd: Path | None = None) -> None:
    print("+ " + subprocess.list2cmdline(cmd) if sys.platform == "win32" else "+ " + " ".join(cmd),
          file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(list(cmd), cwd=cwd, check=False)
    except OSError as e:
        raise BuildError(f"{step}: cannot run {cmd[0]}: {e}") from None
    if proc.returncode != 0:
        raise BuildError(f"{step} failed (exit {proc.returncode}); its output is above. Command: "
                         + " ".join(cmd))


def build(recipe: Recipe, platform: PlatformSpec, llvm: int, *, out_dir: Path, work_dir: Path,
          llvm_dir: str | None = None, source_dir: Path | None = None, jobs: int | None = None,
          generator: str | None = None, base_url: str | None = None, load_check: bool = True,
          llvm_library: Path | None = None, policy: Policy | None = None) -> BuildResult:
    """Build, check and package LLVMEnzyme-``llvm`` for ``platform``.

    ``work_dir`` keeps the downloaded source and the CMake build tree (re-running reuses
    them).  ``policy`` replaces the platform's wheel policy in the checks (a local build
    for this machine only may pass ``Policy("none", {})``).  Raises :class:`BuildError`, :class:`~build_recipes.source.SourceError` or
    :class:`~build_recipes.repack.BinaryCheckError`.
    """
    cmake = shutil.which("cmake")
    if cmake is None:
        raise BuildError("cmake is not on PATH; install it (apt-get install cmake, or pip install cmake)")
    gen = generator or recipe.cmake.generator
    if gen == "Ninja" and shutil.which("ninja") is None:
        raise BuildError("the recipe builds with Ninja, which is not on PATH; install it (apt-get install "
                         "ninja-build, or pip install ninja) or pass --generator 'Unix Makefiles'")
    lldir = str(check_llvm_dir(llvm_dir or default_llvm_dir(recipe, platform, llvm), llvm))
    tree = locate_checkout(source_dir, recipe) if source_dir is not None else fetch_source(recipe, work_dir)
    licenses = find_licenses(tree, recipe)
    build_dir = work_dir / f"build-{platform.key}-llvm{llvm}"
    _run(configure_command(recipe, platform, llvm, source_dir=tree.cmake_dir, build_dir=build_dir,
                           llvm_dir=lldir, cmake=cmake, generator=gen), "cmake configure")
    _run(build_command(recipe, platform, llvm, build_dir=build_dir, jobs=jobs, cmake=cmake), "cmake build")
    library = find_output(recipe, platform, llvm, build_dir)
    report = check_library(library, llvm=llvm, platform=platform.platform, policy=policy or platform.policy,
                           capi_profile=recipe.enzyme.capi, load=load_check,
                           llvm_library=llvm_library or libllvm_near(lldir, llvm))
    print(report.format(), file=sys.stderr)
    if not report.ok:
        raise BinaryCheckError(report)
    entry_fields = {
        "name": recipe.enzyme.name, "enzyme_version": recipe.enzyme.version, "llvm_version": llvm,
        "arch": platform.platform.arch, "os": platform.platform.os, "libc": platform.platform.libc,
        "cxxstring_abi": platform.platform.cxxstring_abi, "capi": recipe.enzyme.capi, "lazy": True,
    }
    artifact = package_library(
        library=library, licenses=dict(licenses), out_dir=out_dir, entry_fields=entry_fields,
        tarball_name=tarball_name(recipe, platform, llvm), base_url=base_url or recipe.expand(recipe.base_url),
        notes=[f"Built from {tree.origin} against LLVM {llvm} ({lldir})",
               f"wheel policy {platform.policy.name} ({platform.wheel_tag})"],
        info={"platform_key": platform.key, "policy": platform.policy.name, "wheel_tag": platform.wheel_tag,
              "origin": tree.origin, "llvm_dir": lldir, "checks": report.to_json()["checks"]},
    )
    return BuildResult(artifact, library, report, tree)
