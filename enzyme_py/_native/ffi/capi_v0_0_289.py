"""Enzyme C-API profile ``v0.0.289`` (Enzyme v0.0.287 and later; the published artifacts
are v0.0.289, LLVM 15).

Parameter lists were read from the assertion strings the binary carries and confirmed
numerically; ``enzyme_artifacts.capi.signatures("v0.0.289")`` holds the same lists, which
the loader's probe uses to identify this profile.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, c_int, c_size_t, c_uint, c_uint8, c_void_p
from typing import Any

from .enzyme import (
    GUARDED,
    SHARED_FUNCTIONS,
    SOURCE_PASSES,
    Call,
    CFnTypeInfo,
    DerivativeMode,
    DiffRequest,
    request_arrays,
)

__all__ = [
    "FATAL_CALLS",
    "FUNCTIONS",
    "GUARDED",
    "LACKS",
    "PROFILE",
    "SOURCE_PASSES",
    "check",
    "create_augmented",
    "create_forward",
    "create_gradient",
    "create_reverse",
]

PROFILE = "v0.0.289"

P = c_void_p
u8 = c_uint8

FUNCTIONS: dict[str, tuple[object, tuple[object, ...]]] = {
    **SHARED_FUNCTIONS,
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


#: Calls this Enzyme ends the process on beyond the ones every profile has
#: (``transforms.FATAL_CALLS``): none.
FATAL_CALLS: dict[str, str] = {}

#: Request flags this C API has no parameter for: none.
LACKS: dict[str, str] = {}


def check(request: DiffRequest) -> None:
    """Refuse a request this C API cannot express: every request fits this one."""


def create_reverse(call: Call, request: DiffRequest) -> Any:
    """Combined reverse mode (``ReverseModeCombined``) through ``call(name, *args)``."""
    acts, over = request_arrays(request)
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
    acts, over = request_arrays(request)
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
    acts, over = request_arrays(request)
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
    acts, over = request_arrays(request)
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
