"""Enzyme C-API profiles known to this package, by the manifest's ``capi`` field.

A *profile* names one shape of Enzyme's C API.  The API changed shape several times
across Enzyme releases (argument lists of ``EnzymeCreatePrimalAndGradient`` and friends
grew), so a library is bound by an explicit profile, never by guessing.  This module
holds only what the loader needs to *check* a library: the exported symbols a profile
requires and the C signatures embedded in the binary.  The ctypes declarations live in
``enzyme_py._ffi``; adding a profile means one entry here and one module there.

>>> "EnzymeCreatePrimalAndGradient" in required_symbols("v0.0.289")
True
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["PROFILES", "known_profiles", "required_symbols", "signature_markers"]

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

PROFILES: Mapping[str, frozenset[str]] = MappingProxyType({"v0.0.289": _V0_0_289_SYMBOLS})
_MARKERS: Mapping[str, tuple[str, ...]] = MappingProxyType({"v0.0.289": _V0_0_289_MARKERS})


def known_profiles() -> tuple[str, ...]:
    """The profile names this version of the package can check, sorted."""
    return tuple(sorted(PROFILES))


def required_symbols(profile: str) -> frozenset[str]:
    """Exported symbols a library must have to be bound with ``profile``.

    Raises :class:`KeyError` naming the known profiles when ``profile`` is unknown.
    """
    try:
        return PROFILES[profile]
    except KeyError:
        raise KeyError(
            f"unknown Enzyme C-API profile {profile!r}; known: {', '.join(known_profiles())}"
        ) from None


def signature_markers(profile: str) -> tuple[str, ...]:
    """C signature strings found in assertion builds of ``profile`` (may be empty)."""
    required_symbols(profile)
    return _MARKERS.get(profile, ())
