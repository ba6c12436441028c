"""Building LLVMEnzyme-N from source with CMake, checking it and packaging it.

:func:`build` runs, for one platform of the recipe and one LLVM major:

1. the source: a checkout (``source_dir``) or the recipe's verified release tarball, its
   version label (:mod:`build_recipes.source`) and its license files (fetched and verified
   when the tree lacks them);
2. ``cmake -S <tree>/enzyme -B <build> -G Ninja -D... [--cmake-arg ...]``
   (:func:`plan.configure_command`);
3. ``cmake --build <build> --target LLVMEnzyme-N`` (:func:`plan.build_command`);
4. the binary checks (:mod:`build_recipes.checks`): a failure stops here;
5. the tarball and its manifest fragment in ``out_dir`` (:mod:`build_recipes.package`),
   named by the source's version label, with the wheel tag of the policy the checks used.

Commands are echoed to stderr before they run and their output is passed to stderr, so
stdout stays free for ``--json``.  A failed configure step is searched for the usual
missing development files (zstd for Debian's LLVM 16 and newer, zlib, libxml2) and the
error says which package to install.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .checks import CheckReport, check_library, require_profile
from .errors import BinaryCheckError, BuildError, RecipeError
from .package import PackagedArtifact, package_library
from .plan import build_command, configure_command, source_json, tarball_name
from .recipe import PlatformSpec, Policy, Recipe
from .source import SourceTree, fetch_source, find_licenses, locate_checkout

__all__ = ["BuildError", "BuildResult", "build", "check_llvm_dir", "check_version_label",
           "default_llvm_dir", "diagnose_configure", "find_output", "libllvm_near"]


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


_HINTS = (
    (re.compile(r"zstd::libzstd|Could NOT find zstd"),
     ("LLVM's CMake package was built with zstd (LLVM_ENABLE_ZSTD in LLVMConfig.cmake) and needs its "
      "development files: apt-get install libzstd-dev (Alpine: apk add zstd-dev; macOS: brew install zstd)")),
    (re.compile(r"ZLIB::ZLIB|Could NOT find ZLIB"),
     "LLVM's CMake package needs zlib's development files: apt-get install zlib1g-dev (Alpine: zlib-dev)"),
    (re.compile(r"LibXml2::LibXml2|Could NOT find LibXml2"),
     "LLVM's CMake package needs libxml2's development files: apt-get install libxml2-dev"),
)


def _error_lines(output: str) -> str:
    """The ``CMake Error`` blocks of ``output`` (each with its indented continuation lines)
    and the ``Could NOT find`` lines: where a missing package shows, and nothing else (a
    status line merely listing ``ZLIB::ZLIB`` is not a problem)."""
    keep: list[str] = []
    in_error = False
    for line in output.splitlines():
        if line.startswith("CMake Error"):
            in_error = True
        elif line.strip() and not line.startswith((" ", "\t")):
            in_error = False
        if in_error or "Could NOT find" in line:
            keep.append(line)
    return "\n".join(keep)


def diagnose_configure(output: str) -> list[str]:
    """What to install, judging by a failed ``cmake`` configure step's ``output``: one
    sentence per missing piece recognised in its errors (empty when nothing is).

    >>> out = ("-- TBL_LINKED_LIBS: ZLIB::ZLIB;zstd::libzstd_shared\\n"
    ...        "CMake Error at Enzyme/CMakeLists.txt:19 (add_executable):\\n"
    ...        "  Target \\"enzyme-tblgen\\" links to:\\n\\n    zstd::libzstd_shared\\n\\n"
    ...        "  but the target was not found.\\n-- Configuring incomplete, errors occurred!\\n")
    >>> hint = diagnose_configure(out)[0]
    >>> hint.startswith("LLVM's CMake package was built with zstd")
    True
    >>> diagnose_configure("-- Configuring incomplete, errors occurred!")
    []
    """
    errors = _error_lines(output)
    return [hint for pattern, hint in _HINTS if pattern.search(errors)]


def _run(cmd: Sequence[str], step: str, cwd: Path | None = None) -> None:
    """Run ``cmd``, passing its output to our stderr (stdout is for ``--json``)."""
    shown = subprocess.list2cmdline(cmd) if sys.platform == "win32" else " ".join(cmd)
    print("+ " + shown, file=sys.stderr, flush=True)
    lines: list[str] = []
    try:
        proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", bufsize=1)
    except OSError as e:
        raise BuildError(f"{step}: cannot run {cmd[0]}: {e}") from None
    assert proc.stdout is not None
    with proc.stdout:
        for line in proc.stdout:
            sys.stderr.write(line)
            lines.append(line)
            if len(lines) > 20000:
                del lines[:10000]
    sys.stderr.flush()
    if proc.wait() != 0:
        hints = diagnose_configure("".join(lines)) if step == "cmake configure" else []
        raise BuildError(f"{step} failed (exit {proc.returncode}); its output is above. Command: {shown}"
                         + "".join(f"\n  hint: {h}" for h in hints))


def check_version_label(label: str) -> str:
    """``label`` when it can name an artifact: a PEP 440 version (it becomes the wheel
    version) that the manifest accepts, e.g. ``0.0.289`` or ``0.0.79+ge54814e9``; else
    :class:`~build_recipes.errors.RecipeError`."""
    from packaging.version import InvalidVersion, Version

    try:
        Version(label)
    except InvalidVersion:
        raise RecipeError(f"--enzyme-version {label!r} is not a version such as 0.0.289 or "
                          "0.0.79+ge54814e9 (PEP 440; a +local part may follow)") from None
    if not re.fullmatch(r"[0-9]+(?:\.[0-9]+)*(?:[-+._a-zA-Z0-9]*)?", label):
        raise RecipeError(f"--enzyme-version {label!r} has characters a manifest version cannot hold")
    return label


def build(recipe: Recipe, platform: PlatformSpec, llvm: int, *, out_dir: Path, work_dir: Path,
          llvm_dir: str | None = None, source_dir: Path | None = None, jobs: int | None = None,
          generator: str | None = None, base_url: str | None = None, load_check: bool = True,
          llvm_library: Path | None = None, policy: Policy | None = None,
          cmake_args: Sequence[str] = (), enzyme_version: str | None = None,
          capi: str | None = None) -> BuildResult:
    """Build, check and package LLVMEnzyme-``llvm`` for ``platform``.

    ``work_dir`` keeps the downloaded source and the CMake build tree (re-running reuses
    them).  ``policy`` replaces the platform's wheel policy in the checks and in the wheel
    tag recorded (a local build for this machine only may pass ``Policy("none", {})``).
    ``cmake_args`` are appended to the configure command.  ``enzyme_version`` replaces the
    label read from the source, ``capi`` the recipe's C-API profile the binary must have.
    Raises :class:`BuildError`, :class:`~build_recipes.errors.SourceError` or
    :class:`~build_recipes.errors.BinaryCheckError`.
    """
    profile = require_profile(capi or recipe.enzyme.capi)
    if enzyme_version is not None:
        check_version_label(enzyme_version)
    cmake = shutil.which("cmake")
    if cmake is None:
        raise BuildError("cmake is not on PATH; install it (apt-get install cmake, or pip install cmake)")
    gen = generator or recipe.cmake.generator
    if gen == "Ninja" and shutil.which("ninja") is None:
        raise BuildError("the recipe builds with Ninja, which is not on PATH; install it (apt-get install "
                         "ninja-build, or pip install ninja) or pass --generator 'Unix Makefiles'")
    lldir = str(check_llvm_dir(llvm_dir or default_llvm_dir(recipe, platform, llvm), llvm))
    tree = locate_checkout(source_dir, recipe) if source_dir is not None else fetch_source(recipe, work_dir)
    label = enzyme_version or tree.version.label
    print(f"note: Enzyme {label} ({tree.version.how})", file=sys.stderr, flush=True)
    licenses = find_licenses(tree, recipe, work_dir)
    build_dir = work_dir / f"build-{platform.key}-llvm{llvm}"
    _run(configure_command(recipe, platform, llvm, source_dir=tree.cmake_dir, build_dir=build_dir,
                           llvm_dir=lldir, cmake=cmake, generator=gen, extra_args=cmake_args), "cmake configure")
    _run(build_command(recipe, platform, llvm, build_dir=build_dir, jobs=jobs, cmake=cmake), "cmake build")
    library = find_output(recipe, platform, llvm, build_dir)
    used = policy or platform.policy
    report = check_library(library, llvm=llvm, platform=platform.platform, policy=used,
                           capi_profile=profile, load=load_check,
                           llvm_library=llvm_library or libllvm_near(lldir, llvm))
    print(report.format(), file=sys.stderr)
    if not report.ok:
        raise BinaryCheckError(report)
    wheel_tag = platform.wheel_tag_for(used)
    entry_fields = {
        "name": recipe.enzyme.name, "enzyme_version": label, "llvm_version": llvm,
        "arch": platform.platform.arch, "os": platform.platform.os, "libc": platform.platform.libc,
        "cxxstring_abi": platform.platform.cxxstring_abi, "capi": profile, "lazy": True,
    }
    source = source_json(recipe, tree)
    if enzyme_version is not None:
        source["version"] = {**source["version"], "label": label, "how": "--enzyme-version"}
    artifact = package_library(
        library=library, licenses={name: path for name, (path, _) in licenses.items()}, out_dir=out_dir,
        entry_fields=entry_fields, tarball_name=tarball_name(recipe, platform, llvm, version=label),
        base_url=base_url or recipe.expand(recipe.base_url, version=label),
        notes=[f"Enzyme {label}: {tree.version.how}" if enzyme_version is None else
               f"Enzyme {label} (given with --enzyme-version; the source says: {tree.version.how})",
               f"Built from {tree.origin} against LLVM {llvm} ({lldir})",
               *[f"{name}: {where}" for name, (_, where) in sorted(licenses.items())],
               f"wheel policy {used.name} ({wheel_tag})"],
        info={"platform_key": platform.key, "policy": used.name, "wheel_tag": wheel_tag,
              "origin": tree.origin, "llvm_dir": lldir, "enzyme_version": label, "capi": profile,
              "source": source, "cmake_args": list(cmake_args), "checks": report.to_json()["checks"]},
    )
    return BuildResult(artifact, library, report, tree)
