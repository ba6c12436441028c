"""Which LLVM major and which Enzyme C-API profile: the selection policy, in one place.

LLVM major, when a caller passes none (:func:`default_llvm_major`):
``ENZYME_ARTIFACTS_LLVM_VERSION``; else the major of ``ENZYME_ARTIFACTS_LIBRARY`` when
set (its ``LLVMEnzyme-N`` name, else the libLLVM its ``DT_NEEDED`` names); else the
highest major that has both a manifest entry (or an override) for this platform and a
findable shared libLLVM.

C-API profile: every library is *identified* by probing
(:func:`enzyme_artifacts.plugin.identify_plugin`); :func:`asked_capi` says which profile
it must then have, and who asks: ``ENZYME_ARTIFACTS_CAPI`` when set (it must name a
profile of :mod:`enzyme_artifacts.capi`); else the profile an override names (``dev
--capi``); else, for the manifest entry's own binary, the entry's ``capi``; else none: a
local build (``ENZYME_ARTIFACTS_LIBRARY``, ``dev [PATH]``) is bound with the profile it
probes as.

The host platform carries the C++ string ABI of the libLLVM found
(:func:`host_platform_for`), so a cxx03 LLVM never gets a cxx11 plugin.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from . import _env
from .errors import InvalidOverrideError, LLVMNotFoundError, UnsupportedPlatformError

if TYPE_CHECKING:
    from .llvm import LLVMLibrary, LLVMSearch
    from .manifest import ArtifactEntry, Manifest
    from .platforms import Platform

__all__ = [
    "CAPI_ENV",
    "LIBRARY_ENV",
    "LLVM_VERSION_ENV",
    "asked_capi",
    "candidate_majors",
    "check_major",
    "choose_capi",
    "default_llvm_major",
    "entry_or_none",
    "env_capi",
    "env_library",
    "env_major",
    "host_platform_for",
    "manifest",
    "newest_profile",
]

LIBRARY_ENV = "ENZYME_ARTIFACTS_LIBRARY"
LLVM_VERSION_ENV = "ENZYME_ARTIFACTS_LLVM_VERSION"
CAPI_ENV = "ENZYME_ARTIFACTS_CAPI"


def env_major() -> int | None:
    """``ENZYME_ARTIFACTS_LLVM_VERSION`` as a major, or None when unset.

    Raises :class:`ValueError` (naming the variable) for a value that is not a major.
    """
    value = _env.text(LLVM_VERSION_ENV)
    if value is None:
        return None
    if not re.fullmatch(r"[1-9][0-9]*", value):
        raise _env.EnvironmentValueError(LLVM_VERSION_ENV, value, "an LLVM major version such as 15")
    return int(value)


def env_library() -> str | None:
    """``ENZYME_ARTIFACTS_LIBRARY`` as written, or None when unset."""
    return _env.text(LIBRARY_ENV)


def check_major(llvm: object) -> int:
    """``llvm`` when it is a positive int (not a bool); :class:`ValueError` otherwise."""
    if isinstance(llvm, bool) or not isinstance(llvm, int) or llvm <= 0:
        raise ValueError(f"llvm must be a positive LLVM major version such as 15, not {llvm!r}")
    return llvm


def newest_profile() -> str:
    """The newest C-API profile known to :mod:`enzyme_artifacts.capi` (by version order)."""
    from . import capi

    return capi.newest_first(capi.known_profiles())[0]


def env_capi() -> str | None:
    """``ENZYME_ARTIFACTS_CAPI`` when set (:class:`InvalidOverrideError` unless it names a
    known profile), else None."""
    from . import capi

    value = _env.text(CAPI_ENV)
    if value is None:
        return None
    if value not in capi.PROFILES:
        raise InvalidOverrideError(
            f"{CAPI_ENV}={value!r} names no known Enzyme C-API profile "
            f"(known: {', '.join(capi.known_profiles())}); unset it (a library's profile is identified by "
            "probing) or pick one of those"
        )
    return value


def asked_capi(entry: ArtifactEntry | None = None, recorded: str | None = None) -> tuple[str | None, str]:
    """The C-API profile a library must probe as, and who asks for it (for messages):
    ``ENZYME_ARTIFACTS_CAPI``, else ``recorded`` (an override's own ``capi``), else the
    manifest ``entry``'s (pass it only for the entry's own binary), else ``(None, "")``:
    any known profile, the one the library probes as."""
    value = env_capi()
    if value is not None:
        return value, CAPI_ENV
    if recorded:
        return recorded, "the override's capi"
    if entry is not None:
        return entry.capi, f"the manifest entry {entry.key}"
    return None, ""


def choose_capi(entry: ArtifactEntry | None, recorded: str | None = None) -> str:
    """The profile :func:`asked_capi` asks for, or the newest known profile when nothing
    asks (what a library with no entry would most likely be; the probe decides)."""
    return asked_capi(entry, recorded)[0] or newest_profile()


def host_platform_for(llvm: LLVMLibrary | None) -> Platform:
    """The host platform with the C++ string ABI of ``llvm`` (unknown when ``None``)."""
    from .platforms import host_platform

    return host_platform(llvm.cxxstring_abi if llvm is not None else None)


def manifest() -> Manifest:
    """The manifest in effect (``ENZYME_ARTIFACTS_MANIFEST`` or the bundled one)."""
    from .manifest import load_manifest

    return load_manifest()


def entry_or_none(platform: Platform, llvm: int) -> ArtifactEntry | None:
    """The manifest entry for ``platform`` and ``llvm``, or None when it has none."""
    try:
        return manifest().select(platform, llvm)
    except UnsupportedPlatformError:
        return None


def candidate_majors() -> list[int]:
    """The majors that have a manifest entry for this platform or an override, highest first."""
    from .overrides import load_overrides
    from .platforms import host_platform

    majors = {e.llvm_version for e in manifest().for_platform(host_platform())}
    majors |= set(load_overrides())
    return sorted(majors, reverse=True)


def _searches(majors: list[int]) -> list[LLVMSearch]:
    from .llvm import search_libllvm

    return [search_libllvm(m) for m in majors]


def default_llvm_major() -> int:
    """The LLVM major used when a caller passes none (see the module docstring).

    Raises :class:`UnsupportedPlatformError` when nothing offers an Enzyme for this
    platform, :class:`LLVMNotFoundError` when no libLLVM of any candidate major is found
    (one message: every place tried, per major, and the install commands).
    """
    env = env_major()
    if env is not None:
        return env
    lib = env_library()
    if lib:
        from pathlib import Path

        from .plugin import plugin_llvm_major

        major, _ = plugin_llvm_major(Path(lib).expanduser())
        if major is not None:
            return major
    majors = candidate_majors()
    if not majors:
        from .platforms import host_platform

        raise UnsupportedPlatformError(
            f"the manifest {manifest().path} has no entry for {host_platform()} and no override "
            f"is set; build Enzyme locally and set {LIBRARY_ENV} or run `enzyme-artifacts dev PATH --llvm N`"
        )
    searches = _searches(majors)
    for s in searches:
        if s.found is not None:
            return s.major
    if len(searches) == 1:
        raise searches[0].error()
    attempts = [a for s in searches for a in s.attempts]
    raise LLVMNotFoundError(
        "no shared libLLVM of any LLVM major with an Enzyme for this platform "
        f"({', '.join(str(s.major) for s in searches)}) was found.\n\n"
        + "\n\n".join(str(s.error()) for s in searches),
        major=searches[0].major,
        attempts=attempts,
    )
