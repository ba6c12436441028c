"""Enzyme C-API profiles known to this package, by the manifest's ``capi`` field.

A *profile* names one shape of Enzyme's C API.  The API changed shape several times
across Enzyme releases (the parameter lists of ``EnzymeCreatePrimalAndGradient`` and
friends grew), so a library is bound by an explicit profile, never by guessing.  This
module holds what the loader needs to *identify* a library's profile:

* the exported symbols a profile requires (:func:`required_symbols`);
* the parameter lists of its three entry points (:func:`signatures`), from which come
  both the ``__PRETTY_FUNCTION__`` strings an assertions build embeds
  (:func:`signature_markers`, read by :func:`embedded_signatures`) and the call the
  child-process probe makes through each candidate profile
  (:mod:`enzyme_artifacts.plugin`: it differentiates known functions and checks the
  numbers, so a ``-DNDEBUG`` build, which embeds no strings, is identified as well);
* which Enzyme releases a profile covers (:attr:`Profile.releases`).

The ctypes declarations the frontend binds live in ``enzyme_py._native.ffi``; adding a
profile means one entry here and one module there (see "Adding an Enzyme C-API profile"
in the development guide).

>>> "EnzymeCreatePrimalAndGradient" in required_symbols("v0.0.289")
True
>>> [s.count for s in signatures("v0.0.173").values()]
[22, 19, 18]
>>> [s.count for s in signatures("v0.0.289").values()]
[23, 20, 21]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "C_TYPES",
    "ENTRY_POINTS",
    "PROFILES",
    "Parameter",
    "Profile",
    "Signature",
    "embedded_signatures",
    "get_profile",
    "known_profiles",
    "newest_first",
    "parameter_count",
    "profiles_matching",
    "releases",
    "required_symbols",
    "signature_markers",
    "signatures",
    "smoke_calls",
]

ENTRY_POINTS = ("EnzymeCreatePrimalAndGradient", "EnzymeCreateForwardDiff", "EnzymeCreateAugmentedPrimal")
"""The C-API functions whose parameter lists tell the profiles apart."""

C_TYPES = frozenset({
    "EnzymeLogicRef", "LLVMValueRef", "LLVMBuilderRef", "LLVMTypeRef", "EnzymeTypeAnalysisRef",
    "EnzymeAugmentedReturnPtr", "CDIFFE_TYPE", "CDIFFE_TYPE*", "CDerivativeMode", "CFnTypeInfo",
    "size_t", "uint8_t", "uint8_t*", "unsigned int",
})
"""The C types a parameter may have (as ``__PRETTY_FUNCTION__`` spells them); the probe
maps each to a ctypes type."""

_SYMBOLS = frozenset(
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


@dataclass(frozen=True, slots=True)
class Parameter:
    """One parameter of a C-API function: the name the probe and the bindings use for it
    (the same name in every profile for the same meaning) and its C type."""

    name: str
    ctype: str


@dataclass(frozen=True, slots=True)
class Signature:
    """The parameter list of one C-API function in one profile."""

    function: str
    params: tuple[Parameter, ...]

    @property
    def count(self) -> int:
        """The number of parameters."""
        return len(self.params)

    @property
    def marker(self) -> str:
        """The ``name(types)`` string an assertions build embeds for this function.

        >>> signatures("v0.0.289")["EnzymeCreateForwardDiff"].marker[:47]
        'EnzymeCreateForwardDiff(EnzymeLogicRef, LLVMVal'
        """
        return f"{self.function}({', '.join(p.ctype for p in self.params)})"

    def names(self) -> tuple[str, ...]:
        """The parameter names, in order."""
        return tuple(p.name for p in self.params)


def _sig(function: str, spec: str) -> Signature:
    params = []
    for item in spec.split(","):
        name, ctype = item.strip().split(":")
        ctype = ctype.strip()
        if ctype not in C_TYPES:
            raise ValueError(f"{function}: unknown C type {ctype!r}")
        params.append(Parameter(name.strip(), ctype))
    return Signature(function, tuple(params))


_HEAD = ("logic: EnzymeLogicRef, request_req: LLVMValueRef, request_ip: LLVMBuilderRef, todiff: LLVMValueRef, "
         "ret_type: CDIFFE_TYPE, arg_activities: CDIFFE_TYPE*, n_args: size_t, type_analysis: EnzymeTypeAnalysisRef, ")

# Enzyme v0.0.287 and later (checked on v0.0.289, the published artifacts): strongZero in
# all three, nowrite_shadows in the augmented primal.
_V0_0_289 = (
    _sig("EnzymeCreatePrimalAndGradient", _HEAD
         + "return_value: uint8_t, dret_used: uint8_t, mode: CDerivativeMode, runtime_activity: uint8_t, "
           "strong_zero: uint8_t, width: unsigned int, free_memory: uint8_t, additional_arg: LLVMTypeRef, "
           "force_anonymous_tape: uint8_t, type_info: CFnTypeInfo, subsequent_calls_may_write: uint8_t, "
           "overwritten_args: uint8_t*, n_overwritten: size_t, augmented: EnzymeAugmentedReturnPtr, "
           "atomic_add: uint8_t"),
    _sig("EnzymeCreateForwardDiff", _HEAD
         + "return_value: uint8_t, mode: CDerivativeMode, free_memory: uint8_t, runtime_activity: uint8_t, "
           "strong_zero: uint8_t, width: unsigned int, additional_arg: LLVMTypeRef, type_info: CFnTypeInfo, "
           "subsequent_calls_may_write: uint8_t, overwritten_args: uint8_t*, n_overwritten: size_t, "
           "augmented: EnzymeAugmentedReturnPtr"),
    _sig("EnzymeCreateAugmentedPrimal", _HEAD
         + "return_used: uint8_t, shadow_return_used: uint8_t, type_info: CFnTypeInfo, "
           "subsequent_calls_may_write: uint8_t, overwritten_args: uint8_t*, n_overwritten: size_t, "
           "nowrite_shadows: uint8_t*, n_nowrite: size_t, force_anonymous_tape: uint8_t, "
           "runtime_activity: uint8_t, strong_zero: uint8_t, width: unsigned int, atomic_add: uint8_t"),
)

# Enzyme v0.0.173 to v0.0.180 (March to May 2025, e.g. the master of May 2025): no
# strongZero anywhere, no nowrite_shadows; subsequent_calls_may_write is there.
_V0_0_173 = (
    _sig("EnzymeCreatePrimalAndGradient", _HEAD
         + "return_value: uint8_t, dret_used: uint8_t, mode: CDerivativeMode, runtime_activity: uint8_t, "
           "width: unsigned int, free_memory: uint8_t, additional_arg: LLVMTypeRef, "
           "force_anonymous_tape: uint8_t, type_info: CFnTypeInfo, subsequent_calls_may_write: uint8_t, "
           "overwritten_args: uint8_t*, n_overwritten: size_t, augmented: EnzymeAugmentedReturnPtr, "
           "atomic_add: uint8_t"),
    _sig("EnzymeCreateForwardDiff", _HEAD
         + "return_value: uint8_t, mode: CDerivativeMode, free_memory: uint8_t, runtime_activity: uint8_t, "
           "width: unsigned int, additional_arg: LLVMTypeRef, type_info: CFnTypeInfo, "
           "subsequent_calls_may_write: uint8_t, overwritten_args: uint8_t*, n_overwritten: size_t, "
           "augmented: EnzymeAugmentedReturnPtr"),
    _sig("EnzymeCreateAugmentedPrimal", _HEAD
         + "return_used: uint8_t, shadow_return_used: uint8_t, type_info: CFnTypeInfo, "
           "subsequent_calls_may_write: uint8_t, overwritten_args: uint8_t*, n_overwritten: size_t, "
           "force_anonymous_tape: uint8_t, runtime_activity: uint8_t, width: unsigned int, "
           "atomic_add: uint8_t"),
)


@dataclass(frozen=True, slots=True)
class Profile:
    """One shape of Enzyme's C API.

    ``symbols``: what a library must export; ``entry_points``: the parameter lists of
    :data:`ENTRY_POINTS` (the probe calls them, assertions builds embed them);
    ``releases``: the Enzyme releases that have this shape; ``lacks``: request flags this
    shape has no parameter for (``"strong_zero"``); ``calls``: the name of the call
    sequence the child-process check runs (``"probe"``: create and free a logic and a
    type analysis, then differentiate known functions in reverse, forward and split
    mode through this profile's parameter lists and check the derivatives).
    """

    name: str
    symbols: frozenset[str]
    entry_points: tuple[Signature, ...]
    releases: str
    lacks: frozenset[str] = frozenset()
    calls: str = "probe"

    @property
    def markers(self) -> tuple[str, ...]:
        """The embedded ``name(types)`` strings of the entry points."""
        return tuple(s.marker for s in self.entry_points)


_PROFILES: Mapping[str, Profile] = MappingProxyType({
    "v0.0.289": Profile(
        "v0.0.289", _SYMBOLS, _V0_0_289,
        "Enzyme v0.0.287 and later; the published artifacts are v0.0.289",
    ),
    "v0.0.173": Profile(
        "v0.0.173", _SYMBOLS, _V0_0_173,
        "Enzyme v0.0.173 to v0.0.180, March to May 2025, Enzyme's master of May 2025 included",
        lacks=frozenset({"strong_zero"}),
    ),
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


def signatures(profile: str) -> dict[str, Signature]:
    """Entry point name -> its :class:`Signature` in ``profile`` (in :data:`ENTRY_POINTS` order)."""
    return {s.function: s for s in get_profile(profile).entry_points}


def signature_markers(profile: str) -> tuple[str, ...]:
    """C signature strings found in assertion builds of ``profile``."""
    return get_profile(profile).markers


def releases(profile: str) -> str:
    """The Enzyme releases that have the C API ``profile``, in words."""
    return get_profile(profile).releases


def smoke_calls(profile: str) -> str:
    """The call sequence the child-process check runs for ``profile`` (see :class:`Profile`)."""
    return get_profile(profile).calls


def embedded_signatures(data: bytes, names: Iterable[str] = ENTRY_POINTS) -> dict[str, tuple[str, ...]]:
    """``name -> distinct "name(types)" strings`` found in a library's bytes ``data``: the
    ``__PRETTY_FUNCTION__`` strings that assertions leave in ``.rodata`` (none in a
    ``-DNDEBUG`` build).

    >>> embedded_signatures(b"..\\0LLVMOpaqueValue* EnzymeCreateForwardDiff(size_t, uint8_t)\\0..")
    {'EnzymeCreateForwardDiff': ('EnzymeCreateForwardDiff(size_t, uint8_t)',)}
    """
    found: dict[str, tuple[str, ...]] = {}
    tail = re.compile(rb"\([^()\0]{0,2000}\)")
    for name in names:
        key = name.encode() + b"("
        hits = set()
        at = data.find(key)
        while at >= 0:  # bytes.find, then the pattern: a regex search over megabytes is slow
            before = data[at - 1: at]
            m = tail.match(data, at + len(key) - 1)
            if m and not (before.isalnum() or before == b"_"):
                hits.add((key[:-1] + m.group()).decode("ascii", "replace"))
            at = data.find(key, at + 1)
        if hits:
            found[name] = tuple(sorted(hits))
    return found


def parameter_count(marker: str) -> int:
    """The number of parameters in a ``name(types)`` string.

    >>> parameter_count("f(int, double*)"), parameter_count("g()")
    (2, 0)
    """
    inner = marker[marker.index("(") + 1: marker.rindex(")")].strip()
    return 0 if not inner or inner == "void" else inner.count(",") + 1


def profiles_matching(embedded: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    """The known profiles the embedded strings agree with: every entry point the library
    embeds has that profile's parameter list, and at least one is embedded.  Empty for a
    build without the strings (or of an unknown C API)."""
    out = []
    for name in known_profiles():
        sigs = signatures(name)
        seen = [f for f in sigs if embedded.get(f)]
        if seen and all(sigs[f].marker in tuple(embedded[f]) for f in seen):
            out.append(name)
    return tuple(out)


def _order(name: str) -> tuple[int, ...]:
    parts = re.findall(r"\d+", name)
    return tuple(int(p) for p in parts)


def newest_first(names: Iterable[str]) -> list[str]:
    """``names`` sorted newest profile first (by the release numbers in the name).

    >>> newest_first(["v0.0.173", "v0.0.289"])
    ['v0.0.289', 'v0.0.173']
    """
    return sorted(names, key=lambda n: (_order(n), n), reverse=True)
