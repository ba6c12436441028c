"""Matching llvmlite's LLVM major with an Enzyme artifact.

numba lowers through llvmlite, which embeds one LLVM release statically.  The IR it prints
(typed pointers, attribute spellings, intrinsic names) is read by a shared libLLVM and an
``LLVMEnzyme-N`` plugin of the *same* major; any other pairing is refused here, before any
native library is loaded.
"""

from __future__ import annotations

__all__ = ["KNOWN_PAIRINGS", "check_artifact_for_major", "llvmlite_major"]

from collections.abc import Mapping
from types import MappingProxyType

#: LLVM major -> the numba/llvmlite releases measured to embed it.  Only verified pairs.
KNOWN_PAIRINGS: Mapping[int, str] = MappingProxyType(
    {
        15: "numba 0.61.x with llvmlite 0.44.x",
        22: "numba 0.68.x with llvmlite 0.50.x",
    }
)


def llvmlite_major() -> int:
    """The LLVM major embedded in the installed llvmlite (imports ``llvmlite.binding``)."""
    import llvmlite.binding as llvm

    return int(llvm.llvm_version_info[0])


def _pairing(major: int) -> str:
    return KNOWN_PAIRINGS.get(major, f"no numba release known to this version of enzyme-py (LLVM {major})")


def check_artifact_for_major(major: int) -> None:
    """Raise when no Enzyme artifact for this host and LLVM *major* is in the manifest.

    The manifest is the one :func:`enzyme_artifacts.manifest.load_manifest` reads
    (``ENZYME_ARTIFACTS_MANIFEST`` or the bundled ``Artifacts.toml``).  The check is skipped
    when ``ENZYME_ARTIFACTS_LIBRARY`` names a plugin explicitly: the user chose it.

    Raises:
        enzyme_artifacts.errors.UnsupportedPlatformError: no entry for *major*; the message
            lists the LLVM majors that have artifacts and the numba/llvmlite releases that
            pair with them.
    """
    import os

    if os.environ.get("ENZYME_ARTIFACTS_LIBRARY"):
        return
    from enzyme_artifacts.errors import UnsupportedPlatformError
    from enzyme_artifacts.manifest import load_manifest
    from enzyme_artifacts.platforms import host_platform

    manifest = load_manifest()
    platform = host_platform()
    majors = sorted({e.llvm_version for e in manifest.for_platform(platform)})
    if major in majors:
        return
    if majors:
        offered = "; ".join(f"LLVM {m}: {_pairing(m)}" for m in majors)
        hint = f"Install a numba/llvmlite that embeds one of these LLVM majors ({offered})."
    else:
        hint = f"The manifest {manifest.path} has no Enzyme artifact for {platform} at all."
    raise UnsupportedPlatformError(
        f"the installed llvmlite embeds LLVM {major} ({_pairing(major)}), but the artifact "
        f"manifest {manifest.path} has no LLVMEnzyme for LLVM {major} on {platform}. {hint} "
        "Or point ENZYME_ARTIFACTS_LIBRARY at an LLVMEnzyme-"
        f"{major} library built for this LLVM."
    )
