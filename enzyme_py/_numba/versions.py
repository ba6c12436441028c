"""Matching numba/llvmlite's LLVM major with an Enzyme.

numba lowers through llvmlite, which embeds one LLVM release statically.  The IR it prints
(typed pointers, attribute spellings, intrinsic names) is read by a shared libLLVM and an
``LLVMEnzyme-N`` plugin of the *same* major; any other pairing is refused here, before any
native library is loaded, with what to do: install a numba that embeds a major there is
an Enzyme for, or build Enzyme for the installed numba's major.

:data:`NUMBA_RELEASES` lists the releases whose LLVM major was verified: numba's
``setup.py`` (``min_llvmlite_version``/``max_llvmlite_version``) at each release tag for
the numba -> llvmlite step, llvmlite's wheel build script
(``buildscripts/manylinux/build_llvmlite.sh``, ``llvmdev=N``) at each release tag for the
llvmlite -> LLVM step, and a measurement for llvmlite 0.44 (LLVM 15.0.7) and 0.50 (22.1).
The installed llvmlite's own ``llvm_version_info`` is what the check reads; the table only
words the advice.

The ``numba`` extra of enzyme-py is ``numba>=0.61`` with no upper bound, so installing it
never downgrades a numba already there; a numba whose LLVM has no Enzyme is reported by
:func:`check_artifact_for_major` at the first Python function.  The ``numba-llvm15`` extra
pins the numba that pairs with the published artifacts (LLVM 15).

>>> numba_for(15)
('numba>=0.61,<0.62', 'numba 0.61.x with llvmlite 0.44.x')
>>> KNOWN_PAIRINGS[20]
'numba 0.62.x to 0.65.x with llvmlite 0.45.x to 0.47.x'
"""

from __future__ import annotations

__all__ = [
    "KNOWN_PAIRINGS",
    "NUMBA_RELEASES",
    "NumbaRelease",
    "check_artifact_for_major",
    "installed_numba",
    "llvmlite_major",
    "numba_for",
]

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class NumbaRelease:
    """A numba release series, the llvmlite series it requires and the LLVM major that
    llvmlite embeds."""

    numba: str
    llvmlite: str
    llvm: int


#: Verified pairings (see the module docstring), oldest first.
NUMBA_RELEASES: tuple[NumbaRelease, ...] = (
    NumbaRelease("0.61", "0.44", 15),
    NumbaRelease("0.62", "0.45", 20),
    NumbaRelease("0.63", "0.46", 20),
    NumbaRelease("0.64", "0.46", 20),
    NumbaRelease("0.65", "0.47", 20),
    NumbaRelease("0.66", "0.48", 22),
    NumbaRelease("0.67", "0.49", 22),
    NumbaRelease("0.68", "0.50", 22),
)


def _series(releases: list[NumbaRelease]) -> str:
    first, last = releases[0], releases[-1]
    if first is last:
        return f"numba {first.numba}.x with llvmlite {first.llvmlite}.x"
    llvmlite = (f"llvmlite {first.llvmlite}.x" if first.llvmlite == last.llvmlite
                else f"llvmlite {first.llvmlite}.x to {last.llvmlite}.x")
    return f"numba {first.numba}.x to {last.numba}.x with {llvmlite}"


#: LLVM major -> the numba/llvmlite releases that embed it.  Only verified pairs.
KNOWN_PAIRINGS: Mapping[int, str] = MappingProxyType({
    major: _series([r for r in NUMBA_RELEASES if r.llvm == major])
    for major in sorted({r.llvm for r in NUMBA_RELEASES})
})


def _next_minor(version: str) -> str:
    major, minor = version.split(".")
    return f"{major}.{int(minor) + 1}"


def numba_for(major: int) -> tuple[str, str] | None:
    """A pip requirement for the numba releases that embed LLVM ``major`` and those
    releases in words, or None when no verified release does."""
    releases = [r for r in NUMBA_RELEASES if r.llvm == major]
    if not releases:
        return None
    return f"numba>={releases[0].numba},<{_next_minor(releases[-1].numba)}", _series(releases)


def llvmlite_major() -> int:
    """The LLVM major embedded in the installed llvmlite (imports ``llvmlite.binding``)."""
    import llvmlite.binding as llvm

    return int(llvm.llvm_version_info[0])


def installed_numba() -> str:
    """``numba X (llvmlite Y)`` as installed (read from the distributions; imports nothing)."""
    from importlib.metadata import PackageNotFoundError, version

    def get(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "?"

    return f"numba {get('numba')} (llvmlite {get('llvmlite')})"


def _pairing(major: int) -> str:
    known = KNOWN_PAIRINGS.get(major)
    return f"as {known} do" if known else "no numba release known to this version of enzyme-py does"


def check_artifact_for_major(major: int) -> None:
    """Raise when there is no Enzyme for this host and LLVM ``major``.

    An Enzyme is a manifest entry (:func:`enzyme_artifacts.manifest.load_manifest` reads
    ``ENZYME_ARTIFACTS_MANIFEST`` or the bundled ``Artifacts.toml``) or an active override
    (``enzyme-artifacts dev``) for that major.  The check is skipped when
    ``ENZYME_ARTIFACTS_LIBRARY`` names a plugin explicitly: the user chose it (and the
    loader compares its major with llvmlite's).

    Raises:
        enzyme_artifacts.errors.UnsupportedPlatformError: no Enzyme for ``major``; the
            message names the installed numba, the numba to install for a major that has
            an Enzyme (``pip install "numba>=0.61,<0.62"``), and the command that builds
            Enzyme for ``major`` (``python -m build_recipes build --llvm N``).
    """
    import os

    if os.environ.get("ENZYME_ARTIFACTS_LIBRARY"):
        return
    from enzyme_artifacts.errors import UnsupportedPlatformError
    from enzyme_artifacts.manifest import load_manifest
    from enzyme_artifacts.overrides import load_overrides
    from enzyme_artifacts.platforms import host_platform

    manifest = load_manifest()
    platform = host_platform()
    majors = sorted({e.llvm_version for e in manifest.for_platform(platform)})
    if major in majors or major in load_overrides():
        return
    installs = [(m, numba_for(m)) for m in majors]
    offered = "; ".join(f"LLVM {m}: `pip install \"{n[0]}\"` ({n[1]})" for m, n in installs if n is not None)
    if offered:
        install = f"Either install a numba that embeds an LLVM there is an Enzyme for ({offered}), or"
    elif majors:
        install = (f"The manifest has Enzyme for LLVM {', '.join(map(str, majors))} only, which no numba release "
                   "known to this version of enzyme-py embeds;")
    else:
        install = f"The manifest {manifest.path} has no Enzyme for {platform} at all;"
    raise UnsupportedPlatformError(
        f"the installed {installed_numba()} embeds LLVM {major} ({_pairing(major)}), but there is no LLVMEnzyme "
        f"for LLVM {major} on {platform}: the manifest {manifest.path} has none and no override is active. "
        f"{install} build Enzyme for LLVM {major} and use that build: install LLVM {major} with its CMake files "
        f"(Debian: `sudo apt-get install llvm-{major}-dev libzstd-dev`), run `python -m build_recipes build "
        f"--llvm {major} --policy none --out DIR`, then `enzyme-artifacts dev "
        f"DIR/.work/build-{platform.triplet}-llvm{major} --llvm {major}` (or set ENZYME_ARTIFACTS_LIBRARY to the "
        f"LLVMEnzyme-{major} library in that folder)."
    )
