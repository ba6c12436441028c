"""Enzyme's C API: the parts every profile shares, and the choice of a profile.

A *profile* (see :mod:`enzyme_artifacts.capi`) names one shape of Enzyme's C API.  Each
profile is one module ``capi_<version>.py`` in this package that provides:

* ``PROFILE`` (its name), ``FUNCTIONS`` (name -> (restype, argtypes): the
  :data:`SHARED_FUNCTIONS` and its own three entry points), ``GUARDED`` (the entry points
  called through the setjmp trampolines, :data:`GUARDED`), ``SOURCE_PASSES``
  (:data:`SOURCE_PASSES`, optional in a library);
* ``create_reverse(call, request)``, ``create_forward(call, request)``,
  ``create_augmented(call, request, *, shadow_return_used, anonymous_tape)`` and
  ``create_gradient(call, request, *, tape_type, augmented)`` taking a
  :class:`DiffRequest` and returning the new function's ``LLVMValueRef`` (the
  ``AugmentedReturn*`` for the augmented primal);
* ``FATAL_CALLS`` (callee name -> why): calls this Enzyme ends the process on when it
  differentiates them, refused before it runs (beside the ones every profile has,
  ``enzyme_py._native.transforms.FATAL_CALLS``);
* ``LACKS`` (request flag -> why this C API cannot express it, e.g. ``strong_zero``) and
  ``check(request)``, which raises :class:`~enzyme_py.errors.UnsupportedError` for such a
  request; :mod:`enzyme_py._native.enzyme` checks ``LACKS`` before it creates anything.

Adding a profile therefore means one new module here (and its entry, with the same
parameter lists, in ``enzyme_artifacts.capi``, whose probe identifies libraries of it);
nothing else changes.
"""

from __future__ import annotations

import ctypes
import importlib
from collections.abc import Callable
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_int,
    c_int64,
    c_size_t,
    c_uint8,
    c_void_p,
)
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = [
    "ERROR_HANDLER",
    "GUARDED",
    "SHARED_FUNCTIONS",
    "SOURCE_PASSES",
    "CFnTypeInfo",
    "Call",
    "ConcreteType",
    "DerivativeMode",
    "DiffRequest",
    "DiffeType",
    "ErrorType",
    "IntList",
    "load_profile",
    "profile_module_name",
    "request_arrays",
]


class IntList(Structure):
    """``IntList {int64_t *data; size_t size}``."""

    _fields_ = [("data", POINTER(c_int64)), ("size", c_size_t)]


class CFnTypeInfo(Structure):
    """``CFnTypeInfo {CTypeTreeRef *Arguments; CTypeTreeRef Return; IntList *KnownValues}``;
    passed to Enzyme **by value**."""

    _fields_ = [
        ("Arguments", POINTER(c_void_p)),
        ("Return", c_void_p),
        ("KnownValues", POINTER(IntList)),
    ]


#: ``LLVMValueRef (*)(const char *msg, LLVMValueRef val, ErrorType, const void *data,
#: LLVMValueRef val2, LLVMBuilderRef builder)`` stored into Enzyme's ``CustomErrorHandler``.
ERROR_HANDLER = CFUNCTYPE(c_void_p, ctypes.c_char_p, c_void_p, c_int, c_void_p, c_void_p, c_void_p)


class DiffeType:
    """``CDIFFE_TYPE``: the activity of one argument or of the return value."""

    OUT_DIFF = 0  # Active
    DUP_ARG = 1  # Duplicated
    CONSTANT = 2  # Const
    DUP_NONEED = 3  # DuplicatedNoNeed


class ErrorType:
    """``ErrorType``: what Enzyme's ``CustomErrorHandler`` is told."""

    NO_DERIVATIVE = 0
    NO_SHADOW = 1
    ILLEGAL_TYPE_ANALYSIS = 2
    NO_TYPE = 3
    ILLEGAL_FIRST_POINTER = 4
    INTERNAL_ERROR = 5
    TYPE_DEPTH_EXCEEDED = 6
    MIXED_ACTIVITY = 7


class DerivativeMode:
    """``CDerivativeMode``."""

    FORWARD = 0
    REVERSE_PRIMAL = 1
    REVERSE_GRADIENT = 2
    REVERSE_COMBINED = 3
    FORWARD_SPLIT = 4


class ConcreteType:
    """``CConcreteType``: leaves of Enzyme's type trees."""

    ANYTHING = 0
    INTEGER = 1
    POINTER = 2
    HALF = 3
    FLOAT = 4
    DOUBLE = 5
    UNKNOWN = 6


@dataclass(frozen=True)
class DiffRequest:
    """Everything a profile needs to ask Enzyme for one derivative (raw handles).

    ``type_info`` is a filled :class:`CFnTypeInfo`; ``arg_activities`` one
    :class:`DiffeType` per parameter; ``overwritten`` one flag per parameter (its
    length is the parameter count, which Enzyme asserts).
    """

    logic: int
    function: int
    ret_activity: int
    arg_activities: tuple[int, ...]
    type_analysis: int
    return_primal: bool
    type_info: CFnTypeInfo
    overwritten: tuple[bool, ...]
    free_memory: bool = True
    runtime_activity: bool = False
    strong_zero: bool = False
    width: int = 1


_P = c_void_p
_u8 = c_uint8

#: The functions every profile declares with the same C signature: logic, type analysis,
#: type trees, Enzyme's command-line settings and the accessors of an augmentation.
SHARED_FUNCTIONS: dict[str, tuple[object, tuple[object, ...]]] = {
    "CreateEnzymeLogic": (_P, (_u8,)),
    "FreeEnzymeLogic": (None, (_P,)),
    "EnzymeLogicErasePreprocessedFunctions": (None, (_P,)),
    "CreateTypeAnalysis": (_P, (_P, POINTER(c_char_p), _P, c_size_t)),
    "FreeTypeAnalysis": (None, (_P,)),
    "EnzymeNewTypeTree": (_P, ()),
    "EnzymeNewTypeTreeCT": (_P, (c_int, _P)),
    "EnzymeFreeTypeTree": (None, (_P,)),
    "EnzymeMergeTypeTree": (_u8, (_P, _P)),
    "EnzymeTypeTreeOnlyEq": (None, (_P, c_int64)),
    "EnzymeTypeTreeToString": (_P, (_P,)),
    "EnzymeTypeTreeToStringFree": (None, (_P,)),
    "EnzymeSetCLBool": (None, (_P, _u8)),
    "EnzymeSetCLInteger": (None, (_P, c_int64)),
    "EnzymeExtractFunctionFromAugmentation": (_P, (_P,)),
    "EnzymeExtractTapeTypeFromAugmentation": (_P, (_P,)),
    "EnzymeExtractUnderlyingTapeTypeFromAugmentation": (_P, (_P,)),
    "EnzymeExtractReturnInfo": (None, (_P, POINTER(c_int64), POINTER(_u8), c_size_t)),
}

#: Enzyme's own passes for the legacy pass manager (``LLVMPassManagerRef``), exported by
#: the plugin beside the C API: ``AddPreserveNVVMPass(pm, begin)`` reads the
#: registration globals and ``llvm.global.annotations`` (``begin=1``) and restores the
#: linkage it changed (``begin=0``); ``AddEnzymePass(pm)`` replaces every
#: ``__enzyme_autodiff``-style call with a call to the derivative it generates.
#: Optional: a build that lacks them still serves the C-API route.
SOURCE_PASSES: dict[str, tuple[object, tuple[object, ...]]] = {
    "AddPreserveNVVMPass": (None, (_P, _u8)),
    "AddEnzymePass": (None, (_P,)),
}

#: Entry points called through setjmp trampolines (see ``enzyme_py._native.trampolines``):
#: an error handler may jump out of them.
GUARDED = (
    "EnzymeCreatePrimalAndGradient",
    "EnzymeCreateForwardDiff",
    "EnzymeCreateAugmentedPrimal",
)

#: How a profile's ``create_*`` calls an entry point: ``call(name, *args)``.
Call = Callable[..., Any]


def request_arrays(request: DiffRequest) -> tuple[ctypes.Array[c_int], ctypes.Array[c_uint8]]:
    """The activity and overwritten arrays of ``request`` (one entry per parameter, at
    least one element so that a function without parameters passes a valid pointer)."""
    n = len(request.arg_activities)
    acts = (c_int * max(n, 1))(*request.arg_activities)
    over = (c_uint8 * max(n, 1))(*(1 if o else 0 for o in request.overwritten))
    return (
        ctypes.cast(acts, POINTER(c_int)),  # type: ignore[return-value]
        ctypes.cast(over, POINTER(c_uint8)),
    )


def profile_module_name(profile: str) -> str:
    """The module implementing ``profile``.

    >>> profile_module_name("v0.0.289")
    'enzyme_py._native.ffi.capi_v0_0_289'
    """
    return "enzyme_py._native.ffi.capi_" + profile.replace(".", "_")


def load_profile(profile: str) -> ModuleType:
    """Import the module implementing ``profile``; :class:`KeyError` when none exists."""
    try:
        return importlib.import_module(profile_module_name(profile))
    except ModuleNotFoundError:
        raise KeyError(
            f"enzyme_py has no bindings for Enzyme C-API profile {profile!r}; "
            "upgrade enzyme_py or use an Enzyme build with a supported profile"
        ) from None
