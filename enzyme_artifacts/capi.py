"""Enzyme C-API profiles known to this package, by the manifest's ``capi`` field.

A *profile* names one shape of Enzyme's C API.  The API changed shape several times
across Enzyme releases (argument lists of ``EnzymeCreatePrimalAndGradient`` and friends
grew), so a library is bound by an explicit profile, never by guessing.  This module
holds only what the loader needs to *check* a library: the exported symbols a profile
requires, the C signatures embedded in the binary, and which C-API calls the check in a
child process makes (see :mod:`enzyme_artifacts.plugin`).  The ctypes declarations live
in ``enzyme_py._native.ffi``; adding a profile means one entry here (and, when its create/free
calls changed shape, one call sequence in ``enzyme_artifacts/_plugin_child.py``) and one
module there.

>>> "EnzymeCreatePrimalAndGradient" in required_symbols("v0.0.289")
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "PROFILES",
    "Profile",
    "get_profile",
    "known_profiles",
    "required_symbols",
    "signature_markers",
    "smoke_calls",
]

_V0_0_289_SYMBOLS = frozenset(
    {
        "CreateEnzymeLogic",
        "FreeEnzymeLogic",
        "ClearEnzymeLogic",
        "EnzymeLogicErasePreprocessedFunctions",
        "CreateTypeAnalysis",
        "FreeTypeAnalysis",
        "ClearTypeAnalysis",
        "EnzymeNewTypeTree",
        "EnzymeNewTypeTreeCT",
        "EnzymeFreeTypeTree",
        "EnzymeMergeTypeTree",
        "EnzymeTypeTreeOnlyEq",
        "EnzymeTypeTreeToString",
        "EnzymeTypeTreeToStringFree",
        "EnzymeCreatePrimalAndGradient",
        "EnzymeCreateForwardDiff",
        "EnzymeCreateAugmentedPrimal",
        "EnzymeExtractFunctionFromAugmentation",
        "EnzymeExtractTapeTypeFromAugmentation",
        "EnzymeExtractUnderlyingTapeTypeFromAugmentation",
        "EnzymeExtractReturnInfo",
        "EnzymeSetCLBool",
        "EnzymeSetCLInteger",
        "EnzymeRegisterAllocationHandler",
        "CustomErrorHandler",
        "EnzymeFastMath",
    }
)

# Fragments of the ``__PRETTY_FUNCTION__`` strings that an assertions build of this
# profile carries in .rodata; they pin the parameter lists, not just the names.
_V0_0_289_MARKERS = (
    (
        "EnzymeCreatePrimalAndGradient(EnzymeLogicRef, LLVMValueRef, LLVMBuilderRef, LLVMValueRef, "
    "CDIFFE_TYPE, CDIFFE_TYPE*, size_t, EnzymeTypeAnalysisRef, uint8_t, uint8_t, CDerivativeMode, "
    "uint8_t, uint8_t, unsigned int, uint8_t, LLVMTypeRef, uint8_t, CFnTypeInfo, uint8_t, uint8_t*, "
    "size_t, EnzymeAugmentedReturnPtr, uint8_t)"
    ),
    (
        "EnzymeCreateForwardDiff(EnzymeLogicRef, LLVMValueRef, LLVMBuilderRef, LLVMValueRef, "
    "CDIFFE_TYPE, CDIFFE_TYPE*, size_t, EnzymeTypeAnalysisRef, uint8_t, CDerivativeMode, uint8_t, "
    "uint8_t, uint8_t, unsigned int, LLVMTypeRef, CFnTypeInfo, uint8_t, uint8_t*, size_t, "
    "EnzymeAugmentedReturnPtr)"
    ),
)



@dataclass(frozen=True, slots=True)
class Profile:
    """One shape of Enzyme's C API.

    ``symbols``: what a library must export; ``markers``: parameter lists an assertions
    build carries in ``.rodata`` (may be empty); ``calls``: the name of the call sequence
    the child-process check runs (``"logic+type-analysis"``: ``CreateEnzymeLogic(u8)``,
    ``CreateTypeAnalysis(logic, char**, void*, size_t)``, ``FreeTypeAnalysis``,
    ``FreeEnzymeLogic``, each create checked non-NULL).
    """

    name: str
    symbols: frozenset[str]
    markers: tuple[str, ...]
    calls: str


_PROFILES: Mapping[str, Profile] = MappingProxyType({
    "v0.0.289": Profile("v0.0.289", _V0_0_289_SYMBOLS, _V0_0_289_MARKERS, "logic+type-analysis"),
})
PROFILES: Mapping[str, frozenset[str]] = MappingProxyType({n: p.symbols for n, p in _PROFILES.items()})
"""Profile name -> required symbols (kept for callers that only need the names)."""


def known_profiles() -> tuple[str, ...]:
    """The profile names this version of the package can check, sorted."""
    return tuple(sorted(PROFILES))


def get_profile(profile: str) -> Profile:
    """The :class:`Profile` named ``profile``.

    Raises :class:`KeyError` naming the known profiles when ``profile`` is unknown.
    """
    try:
        return _PROFILES[profile]
    except KeyError:
        raise KeyError(
            f"unknown Enzyme C-API profile {profile!r}; known: {', '.join(known_profiles())}"
        ) from None


def required_symbols(profile: str) -> frozenset[str]:
    """Exported symbols a library must have to be bound with ``profile``.

    Raises :class:`KeyError` naming the known profiles when ``profile`` is unknown.
    """
    return get_profile(profile).symbols


def signature_markers(profile: str) -> tuple[str, ...]:
    """C signature strings found in assertion builds of ``profile`` (may be empty)."""
    return get_profile(profile).markers


def smoke_calls(profile: str) -> str:
    """The call sequence the child-process check runs for ``profile`` (see :class:`Profile`)."""
    return get_profile(profile).calls
