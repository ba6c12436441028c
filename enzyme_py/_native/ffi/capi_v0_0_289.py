"""Enzyme C-API profile ``v0.0.289`` (Enzyme v0.0.289, LLVM 15).

Parameter lists were read from the assertion strings the binary carries and confirmed
numerically; ``enzyme_artifacts.capi.signature_markers("v0.0.289")`` holds them.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from ctypes import POINTER, c_char_p, c_int, c_int64, c_size_t, c_uint, c_uint8, c_void_p
from typing import Any

from .enzyme import CFnTypeInfo, DerivativeMode, DiffRequest

__all__ = [
    "FUNCTIONS",
    "GUARDED",
    "PROFILE",
    "SOURCE_PASSES",
    "create_augmented",
    "create_forward",
    "create_gradient",
    "create_reverse",
]

PROFILE = "v0.0.289"

P = c_void_p
u8 = c_uint8

FUNCTIONS: dict[str, tuple[object, tuple[object, ...]]] = {
    "CreateEnzymeLogic": (P, (u8,)),
    "FreeEnzymeLogic": (None, (P,)),
    "EnzymeLogicErasePreprocessedFunctions": (None, (P,)),
    "CreateTypeAnalysis": (P, (P, POINTER(c_char_p), P, c_size_t)),
    "FreeTypeAnalysis": (None, (P,)),
    "EnzymeNewTypeTree": (P, ()),
    "EnzymeNewTypeTreeCT": (P, (c_int, P)),
    "EnzymeFreeTypeTree": (None, (P,)),
    "EnzymeMergeTypeTree": (u8, (P, P)),
    "EnzymeTypeTreeOnlyEq": (None, (P, c_int64)),
    "EnzymeTypeTreeToString": (P, (P,)),
    "EnzymeTypeTreeToStringFree": (None, (P,)),
    "EnzymeSetCLBool": (None, (P, u8)),
    "EnzymeSetCLInteger": (None, (P, c_int64)),
    "EnzymeCreatePrimalAndGradient": (
        P,
        (
            P, P, P, P,  # logic, request_req, request_ip, todiff
            c_int, POINTER(c_int), c_size_t, P,  # retType, argActivities, nargs, TA
            u8, u8, c_int,  # returnValue, dretUsed, mode
            u8, u8, c_uint, u8,  # runtimeActivity, strongZero, width, freeMemory
            P, u8, CFnTypeInfo,  # additionalArg, forceAnonymousTape, typeInfo
            u8, POINTER(u8), c_size_t,  # subsequent_calls_may_write, overwritten, n
            P, u8,  # augmented, atomicAdd
        ),
    ),
    "EnzymeCreateAugmentedPrimal": (
        P,
        (
            P, P, P, P,  # logic, request_req, request_ip, todiff
            c_int, POINTER(c_int), c_size_t, P,  # retType, argActivities, nargs, TA
            u8, u8, CFnTypeInfo,  # returnUsed, shadowReturnUsed, typeInfo
            u8, POINTER(u8), c_size_t,  # subsequent_calls_may_write, overwritten, n
            POINTER(u8), c_size_t,  # nowrite_shadows, n (one flag per argument)
            u8, u8, u8, c_uint, u8,  # forceAnonymousTape, runtimeActivity, strongZero,
            # width, atomicAdd
        ),
    ),
    "EnzymeExtractFunctionFromAugmentation": (P, (P,)),
    "EnzymeExtractTapeTypeFromAugmentation": (P, (P,)),
    "EnzymeExtractUnderlyingTapeTypeFromAugmentation": (P, (P,)),
    "EnzymeExtractReturnInfo": (None, (P, POINTER(c_int64), POINTER(u8), c_size_t)),
    "EnzymeCreateForwardDiff": (
        P,
        (
            P, P, P, P,  # logic, request_req, request_ip, todiff
            c_int, POINTER(c_int), c_size_t, P,  # retType, argActivities, nargs, TA
            u8, c_int, u8,  # returnValue, mode, freeMemory
            u8, u8, c_uint,  # runtimeActivity, strongZero, width
            P, CFnTypeInfo,  # additionalArg, typeInfo
            u8, POINTER(u8), c_size_t,  # subsequent_calls_may_write, overwritten, n
            P,  # augmented
        ),
    ),
}  # fmt: skip


#: Enzyme's own passes for the legacy pass manager (``LLVMPassManagerRef``), exported by
#: the plugin beside the C API: ``AddPreserveNVVMPass(pm, begin)`` reads the
#: registration globals and ``llvm.global.annotations`` (``begin=1``) and restores the
#: linkage it changed (``begin=0``); ``AddEnzymePass(pm)`` replaces every
#: ``__enzyme_autodiff``-style call with a call to the derivative it generates.
#: Optional: a build that lacks them still serves the C-API route.
SOURCE_PASSES: dict[str, tuple[object, tuple[object, ...]]] = {
    "AddPreserveNVVMPass": (None, (P, u8)),
    "AddEnzymePass": (None, (P,)),
}

#: Entry points called through setjmp trampolines (see ``enzyme_py._native.trampolines``): an error
#: handler may jump out of them.
GUARDED = ("EnzymeCreatePrimalAndGradient", "EnzymeCreateForwardDiff", "EnzymeCreateAugmentedPrimal")

Call = Callable[..., Any]


def _arrays(request: DiffRequest) -> tuple[ctypes.Array[c_int], ctypes.Array[c_uint8]]:
    n = len(request.arg_activities)
    acts = (c_int * max(n, 1))(*request.arg_activities)
    over = (c_uint8 * max(n, 1))(*(1 if o else 0 for o in request.overwritten))
    return (
        ctypes.cast(acts, POINTER(c_int)),  # type: ignore[return-value]
        ctypes.cast(over, POINTER(c_uint8)),
    )


def create_reverse(call: Call, request: DiffRequest) -> Any:
    """Combined reverse mode (``ReverseModeCombined``) through ``call(name, *args)``."""
    acts, over = _arrays(request)
    n = len(request.arg_activities)
    return call(
        "EnzymeCreatePrimalAndGradient",
        request.logic, None, None, request.function,
        request.ret_activity, acts, n, request.type_analysis,
        1 if request.return_primal else 0, 0, DerivativeMode.REVERSE_COMBINED,
        1 if request.runtime_activity else 0, 1 if request.strong_zero else 0, request.width,
        1 if request.free_memory else 0,
        None, 0, request.type_info,
        0, over, n,
        None, 0,
    )  # fmt: skip


def create_forward(call: Call, request: DiffRequest) -> Any:
    """Forward mode (``ForwardMode``) through ``call(name, *args)``."""
    acts, over = _arrays(request)
    n = len(request.arg_activities)
    return call(
        "EnzymeCreateForwardDiff",
        request.logic, None, None, request.function,
        request.ret_activity, acts, n, request.type_analysis,
        1 if request.return_primal else 0, DerivativeMode.FORWARD,
        1 if request.free_memory else 0,
        1 if request.runtime_activity else 0, 1 if request.strong_zero else 0, request.width,
        None, request.type_info,
        0, over, n,
        None,
    )  # fmt: skip


def create_augmented(
    call: Call, request: DiffRequest, *, shadow_return_used: bool, anonymous_tape: bool
) -> Any:
    """The augmented forward pass of split reverse mode (``EnzymeCreateAugmentedPrimal``)
    through ``call(name, *args)``; returns the ``AugmentedReturn*`` (owned by the logic).

    ``nowrite_shadows`` (the 15th and 16th arguments, one flag per parameter, its length
    asserted against the parameter count): a set flag tells Enzyme that the augmented
    forward pass must not write into that argument's shadow.  Always all zeros here: the
    forward pass may initialise shadows as combined mode does.
    """
    acts, over = _arrays(request)
    n = len(request.arg_activities)
    nowrite = (c_uint8 * max(n, 1))()
    return call(
        "EnzymeCreateAugmentedPrimal",
        request.logic, None, None, request.function,
        request.ret_activity, acts, n, request.type_analysis,
        1 if request.return_primal else 0, 1 if shadow_return_used else 0,
        request.type_info,
        1, over, n,
        ctypes.cast(nowrite, POINTER(c_uint8)), n,
        1 if anonymous_tape else 0,
        1 if request.runtime_activity else 0, 1 if request.strong_zero else 0,
        request.width, 0,
    )  # fmt: skip


def create_gradient(call: Call, request: DiffRequest, *, tape_type: Any, augmented: Any) -> Any:
    """The reverse pass of split reverse mode (``ReverseModeGradient``) consuming the tape
    of ``augmented``; ``tape_type`` is the tape's LLVM type (the underlying struct for an
    anonymous tape; the anonymous ``ptr`` itself is refused by Enzyme)."""
    acts, over = _arrays(request)
    n = len(request.arg_activities)
    return call(
        "EnzymeCreatePrimalAndGradient",
        request.logic, None, None, request.function,
        request.ret_activity, acts, n, request.type_analysis,
        0, 0, DerivativeMode.REVERSE_GRADIENT,
        1 if request.runtime_activity else 0, 1 if request.strong_zero else 0, request.width,
        1 if request.free_memory else 0,
        tape_type, 0, request.type_info,
        1, over, n,
        augmented, 0,
    )  # fmt: skip
