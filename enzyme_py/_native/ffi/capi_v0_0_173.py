"""Enzyme C-API profile ``v0.0.173`` (Enzyme v0.0.173 to v0.0.180, March to May 2025).

The C API of Enzyme's master of May 2025, read from its ``enzyme/Enzyme/CApi.cpp`` and
confirmed numerically on a from-source build for LLVM 16 and 19.  Against ``v0.0.289``:

* no ``strongZero`` parameter anywhere: ``EnzymeCreatePrimalAndGradient`` has 22
  parameters (23), ``EnzymeCreateForwardDiff`` 19 (20), ``EnzymeCreateAugmentedPrimal``
  18 (21);
* the augmented primal has no ``nowrite_shadows`` (the augmented forward pass may
  write into shadows, as v0.0.289 does with all flags zero, which is what enzyme_py
  passes there);
* everything else enzyme_py calls (logic, type analysis, type trees, the augmentation
  accessors, ``EnzymeSetCLBool``/``EnzymeSetCLInteger``, ``CustomErrorHandler``, the
  enums) is the same.

A request for strong zero (:func:`enzyme_py.set_strong_zero`) cannot be expressed: it is
refused with :class:`~enzyme_py.errors.UnsupportedError` before Enzyme is called
(:data:`LACKS`).  ``enzyme_artifacts.capi.signatures("v0.0.173")`` holds the same
parameter lists, which the loader's probe uses to identify this profile.
"""

from __future__ import annotations

from ctypes import POINTER, c_int, c_size_t, c_uint, c_uint8, c_void_p
from typing import Any

from ...errors import UnsupportedError
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

PROFILE = "v0.0.173"

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
            u8, c_uint, u8,  # runtimeActivity, width, freeMemory
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
            u8, u8, c_uint, u8,  # forceAnonymousTape, runtimeActivity, width, atomicAdd
        ),
    ),
    "EnzymeCreateForwardDiff": (
        P,
        (
            P, P, P, P,  # logic, request_req, request_ip, todiff
            c_int, POINTER(c_int), c_size_t, P,  # retType, argActivities, nargs, TA
            u8, c_int, u8,  # returnValue, mode, freeMemory
            u8, c_uint,  # runtimeActivity, width
            P, CFnTypeInfo,  # additionalArg, typeInfo
            u8, POINTER(u8), c_size_t,  # subsequent_calls_may_write, overwritten, n
            P,  # augmented
        ),
    ),
}  # fmt: skip


#: Calls this Enzyme ends the process on (an assertion) where later ones report an error:
#: an OpenMP ``reduction`` clause ("unhandled openmp function").  Name -> why.
FATAL_CALLS: dict[str, str] = {
    name: (
        f"the Enzyme of C API {PROFILE} ends the process on an OpenMP reduction clause "
        "(later Enzymes report it as an error); reduce into a shared array instead"
    )
    for name in ("__kmpc_reduce", "__kmpc_reduce_nowait")
}

#: Request flags this C API has no parameter for -> why, and what to do instead.
LACKS: dict[str, str] = {
    "strong_zero": (
        "strong zero (set_strong_zero) needs Enzyme's strongZero parameter, which the C API "
        f"{PROFILE} (Enzyme v0.0.173 to v0.0.180) does not have; use an Enzyme of v0.0.181 or "
        "later (the published artifacts are v0.0.289), or drop set_strong_zero"
    ),
}


def check(request: DiffRequest) -> None:
    """Refuse a request this C API cannot express (:data:`LACKS`), before any Enzyme call."""
    for flag, why in LACKS.items():
        if getattr(request, flag, False):
            raise UnsupportedError(why)


def create_reverse(call: Call, request: DiffRequest) -> Any:
    """Combined reverse mode (``ReverseModeCombined``) through ``call(name, *args)``."""
    check(request)
    acts, over = request_arrays(request)
    n = len(request.arg_activities)
    return call(
        "EnzymeCreatePrimalAndGradient",
        request.logic, None, None, request.function,
        request.ret_activity, acts, n, request.type_analysis,
        1 if request.return_primal else 0, 0, DerivativeMode.REVERSE_COMBINED,
        1 if request.runtime_activity else 0, request.width,
        1 if request.free_memory else 0,
        None, 0, request.type_info,
        0, over, n,
        None, 0,
    )  # fmt: skip


def create_forward(call: Call, request: DiffRequest) -> Any:
    """Forward mode (``ForwardMode``) through ``call(name, *args)``."""
    check(request)
    acts, over = request_arrays(request)
    n = len(request.arg_activities)
    return call(
        "EnzymeCreateForwardDiff",
        request.logic, None, None, request.function,
        request.ret_activity, acts, n, request.type_analysis,
        1 if request.return_primal else 0, DerivativeMode.FORWARD,
        1 if request.free_memory else 0,
        1 if request.runtime_activity else 0, request.width,
        None, request.type_info,
        0, over, n,
        None,
    )  # fmt: skip


def create_augmented(
    call: Call, request: DiffRequest, *, shadow_return_used: bool, anonymous_tape: bool
) -> Any:
    """The augmented forward pass of split reverse mode (``EnzymeCreateAugmentedPrimal``)
    through ``call(name, *args)``; returns the ``AugmentedReturn*`` (owned by the logic)."""
    check(request)
    acts, over = request_arrays(request)
    n = len(request.arg_activities)
    return call(
        "EnzymeCreateAugmentedPrimal",
        request.logic, None, None, request.function,
        request.ret_activity, acts, n, request.type_analysis,
        1 if request.return_primal else 0, 1 if shadow_return_used else 0,
        request.type_info,
        1, over, n,
        1 if anonymous_tape else 0,
        1 if request.runtime_activity else 0,
        request.width, 0,
    )  # fmt: skip


def create_gradient(call: Call, request: DiffRequest, *, tape_type: Any, augmented: Any) -> Any:
    """The reverse pass of split reverse mode (``ReverseModeGradient``) consuming the tape
    of ``augmented``; ``tape_type`` is the tape's LLVM type (the underlying struct for an
    anonymous tape)."""
    check(request)
    acts, over = request_arrays(request)
    n = len(request.arg_activities)
    return call(
        "EnzymeCreatePrimalAndGradient",
        request.logic, None, None, request.function,
        request.ret_activity, acts, n, request.type_analysis,
        0, 0, DerivativeMode.REVERSE_GRADIENT,
        1 if request.runtime_activity else 0, request.width,
        1 if request.free_memory else 0,
        tape_type, 0, request.type_info,
        1, over, n,
        augmented, 0,
    )  # fmt: skip
