"""The build matrix and the exact commands of each cell, computed from the recipe.

A :class:`Cell` is one (platform, LLVM major).  :func:`expand` lists the cells, filtered
by LLVM majors and platforms; :func:`configure_command` and :func:`build_command` are the
CMake command lines the builder runs, so that ``plan`` prints exactly what ``build`` does.
:func:`source_json` says what a build starts from (the release tarball's URL and sha256, the
separately fetched licenses, the version label), so a plan can be compared with the
build-info a build writes.  Nothing here touches the network; the artifact names use the
recipe's version unless a source's label is given (``plan --source-dir`` reads a checkout's).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from .recipe import PlatformSpec, Recipe, RecipeError

if TYPE_CHECKING:
    from .source import SourceTree

__all__ = [
    "Cell",
    "artifact_key",
    "build_command",
    "cell_commands",
    "cell_json",
    "cmake_options",
    "configure_command",
    "expand",
    "source_json",
    "tarball_name",
]


@dataclass(frozen=True, slots=True)
class Cell:
    """One cell of the matrix: a platform of the recipe and an LLVM major."""

    platform: PlatformSpec
    llvm: int
    experimental: bool

    @property
    def triplet(self) -> str:
        """``x86_64-linux-gnu-cxx11`` and so on (the platform with its C++ string ABI)."""
        return self.platform.triplet


def artifact_key(recipe: Recipe, platform: PlatformSpec, llvm: int, *, version: str | None = None) -> str:
    """``LLVMEnzyme.v0.0.289.x86_64-linux-gnu-cxx11-llvm_version+15``: the name used by
    :attr:`enzyme_artifacts.manifest.ArtifactEntry.key`.  ``version`` is the source's label
    (default: the recipe's Enzyme version)."""
    return f"{recipe.enzyme.name}.v{version or recipe.enzyme.version}.{platform.triplet}-llvm_version+{llvm}"


def tarball_name(recipe: Recipe, platform: PlatformSpec, llvm: int, *, version: str | None = None) -> str:
    """The artifact's tarball file name (its key plus ``.tar.gz``)."""
    return artifact_key(recipe, platform, llvm, version=version) + ".tar.gz"


def expand(recipe: Recipe, *, llvm: Iterable[int] = (), platforms: Iterable[str] = (),
           include_experimental: bool = True) -> list[Cell]:
    """The cells of the matrix, ordered by platform (recipe order) then LLVM major.

    ``llvm`` and ``platforms`` filter (empty: everything); a value the recipe does not
    know raises :class:`RecipeError` naming what it has.  Platforms match by key
    (``x86_64-linux-gnu``), triplet with ABI, OS (``linux``, ``macos``, ``windows``) or
    libc (``glibc``, ``musl``).
    """
    want_llvm = set(llvm)
    unknown_llvm = want_llvm - set(recipe.all_llvm)
    if unknown_llvm:
        raise RecipeError(f"{recipe.path}: LLVM {sorted(unknown_llvm)} not in the recipe; it has "
                          f"{', '.join(map(str, recipe.all_llvm))}")
    selected: list[PlatformSpec] = []
    wanted = list(platforms)
    for name in wanted:
        hits = [p for p in recipe.platforms.values()
                if name in (p.key, p.triplet, p.platform.os, p.platform.libc, p.platform.arch)]
        if not hits:
            raise RecipeError(f"{recipe.path}: no platform matches {name!r}; the recipe has "
                              f"{', '.join(recipe.platforms)} (or filter by os/libc/arch)")
        selected.extend(h for h in hits if h not in selected)
    if not wanted:
        selected = list(recipe.platforms.values())
    order = list(recipe.platforms.values())
    selected.sort(key=order.index)
    cells = []
    for spec in selected:
        majors = spec.llvm if spec.llvm is not None else recipe.all_llvm
        for major in sorted(majors):
            if want_llvm and major not in want_llvm:
                continue
            experimental = major in recipe.llvm_experimental or spec.experimental
            if experimental and not include_experimental:
                continue
            cells.append(Cell(spec, major, experimental))
    return cells


def cmake_options(recipe: Recipe, platform: PlatformSpec, llvm: int, *,
                  llvm_dir: str | None = None) -> dict[str, str]:
    """The ``-D`` options of a cell: recipe-wide ones, then the platform's (which win),
    placeholders filled.  ``llvm_dir`` replaces the platform's LLVM CMake folder."""
    merged: dict[str, str] = {"CMAKE_BUILD_TYPE": recipe.cmake.build_type}
    for source in (recipe.cmake.options, platform.cmake_options):
        for k, v in source.items():
            merged[k] = recipe.expand(v, llvm=llvm, platform=platform, llvm_dir=llvm_dir)
    return merged


def configure_command(recipe: Recipe, platform: PlatformSpec, llvm: int, *, source_dir: str | PurePath,
                      build_dir: str | PurePath, llvm_dir: str | None = None,
                      cmake: str = "cmake", generator: str | None = None,
                      extra_args: Sequence[str] = ()) -> list[str]:
    """``cmake -S <source>/enzyme -B <build> -G <gen> -D... [extra args]``: the configure step.

    ``source_dir`` is the CMake project folder (``<checkout>/enzyme``).  Options are
    sorted by name so that the line is stable; ``extra_args`` (``build --cmake-arg``) come
    last, so a ``-DNAME=value`` there overrides the recipe's.
    """
    opts = cmake_options(recipe, platform, llvm, llvm_dir=llvm_dir)
    cmd = [cmake, "-S", str(source_dir), "-B", str(build_dir), "-G", generator or recipe.cmake.generator]
    cmd += [f"-D{k}={v}" for k, v in sorted(opts.items())]
    cmd += list(extra_args)
    return cmd


def build_command(recipe: Recipe, platform: PlatformSpec, llvm: int, *, build_dir: str | PurePath,
                  jobs: int | None = None, cmake: str = "cmake") -> list[str]:
    """``cmake --build <build> --target LLVMEnzyme-N --config Release [--parallel N]``."""
    cmd = [cmake, "--build", str(build_dir), "--target", recipe.expand(recipe.cmake.target, llvm=llvm),
           "--config", recipe.cmake.build_type]
    cmd += ["--parallel", str(jobs)] if jobs else ["--parallel"]
    return cmd


def _join(cmd: Sequence[str]) -> str:
    return shlex.join(cmd)


def cell_commands(recipe: Recipe, cell: Cell, *, out: str = "out", cmake_args: Sequence[str] = (),
                  source_dir: str | None = None) -> dict[str, Any]:
    """What CI runs for ``cell``: the LLVM install, the builder, and the CMake lines the
    builder runs inside it (with ``<source>`` and ``<build>`` standing for its folders).
    ``source_dir`` is a checkout the builder is given instead of the release tarball."""
    spec, llvm = cell.platform, cell.llvm
    llvm_dir = recipe.expand(spec.llvm_dir, llvm=llvm, platform=spec)
    builder = ["python", "-m", "build_recipes", "build", "--llvm", str(llvm), "--platform", spec.key,
               "--llvm-dir", llvm_dir, "--out", out]
    builder += ["--source-dir", source_dir] if source_dir else []
    builder += [f"--cmake-arg={a}" for a in cmake_args]
    return {
        "install_llvm": recipe.expand(spec.llvm_install, llvm=llvm, platform=spec),
        "build": _join(builder),
        "configure": _join(configure_command(recipe, spec, llvm, source_dir="<source>/" +
                                             recipe.source.cmake_subdir, build_dir="<build>",
                                             extra_args=cmake_args)),
        "compile": _join(build_command(recipe, spec, llvm, build_dir="<build>")),
        "check": _join(["python", "-m", "build_recipes", "check",
                        f"<build>/{recipe.expand(recipe.cmake.output, llvm=llvm, platform=spec)}",
                        "--llvm", str(llvm), "--platform", spec.key]),
    }


def source_json(recipe: Recipe, tree: SourceTree | None = None) -> dict[str, Any]:
    """What a build starts from: without ``tree``, the recipe's release tarball (URL,
    sha256, top folder) and its separately fetched licenses; with ``tree`` (a checkout), that
    tree.  ``version`` is the label the artifacts get (see :mod:`build_recipes.source`)."""
    licenses = [{"file": spec.file, "url": recipe.license_url(spec), "sha256": spec.sha256}
                for spec in recipe.source.licenses]
    if tree is None:
        return {"kind": "tarball", "url": recipe.source_url(), "sha256": recipe.source.sha256,
                "strip_prefix": recipe.expand(recipe.source.strip_prefix), "licenses": licenses,
                "version": {"label": recipe.enzyme.version, "how": f"release tarball of the tag "
                                                                   f"v{recipe.enzyme.version}"}}
    return {"kind": "checkout" if tree.url is None else "tarball", "path": str(tree.root), "url": tree.url,
            "sha256": tree.sha256, "licenses": licenses, "version": tree.version.to_json()}


def cell_json(recipe: Recipe, cell: Cell, *, out: str = "out", source: SourceTree | None = None,
              cmake_args: Sequence[str] = ()) -> Mapping[str, Any]:
    """A cell as the JSON object of ``plan --json`` (GitHub Actions' matrix ``include``)."""
    spec = cell.platform
    label = source.version.label if source is not None else None
    return {
        "triplet": cell.triplet,
        "platform": spec.key,
        "llvm": cell.llvm,
        "experimental": cell.experimental,
        "os": spec.platform.os,
        "arch": spec.platform.arch,
        "libc": spec.platform.libc,
        "policy": spec.policy.name,
        "wheel_tag": spec.wheel_tag,
        "runner": spec.runner,
        "cibw_build": spec.cibw_build,
        "cibw_archs": spec.cibw_archs,
        "llvm_dir": recipe.expand(spec.llvm_dir, llvm=cell.llvm, platform=spec),
        "enzyme_version": label or recipe.enzyme.version,
        "capi": recipe.enzyme.capi,
        "key": artifact_key(recipe, spec, cell.llvm, version=label),
        "tarball": tarball_name(recipe, spec, cell.llvm, version=label),
        "source": source_json(recipe, source),
        "commands": cell_commands(recipe, cell, out=out, cmake_args=cmake_args,
                                  source_dir=str(source.root) if source is not None and source.url is None
                                  else None),
    }
