"""Enzyme's C API: the parts every profile shares, and the choice of a profile.

A *profile* (see :mod:`enzyme_artifacts.capi`) names one shape of Enzyme's C API.  Each
profile is one module ``capi_<version>.py`` in this package that provides:

* ``PROFILE`` (its name), ``FUNCTIONS`` (name -> (restype, argtypes));
* ``create_reverse(lib, request)`` and ``create_forward(lib, request)`` taking a
  :class:`DiffRequest` and returning the new function's ``LLVMValueRef``.

Adding a profile therefore means one new module here (and its symbol list in
``enzyme_artifacts.capi``); nothing else changes.
"""

from __future__ import annotations

import ctypes
import importlib
from ctypes import CFUNCTYPE, POINTER, Structure, c_int, c_int64, c_size_t, c_void_p
from dataclasses import dataclass
from types import ModuleType

__all__ = [
    "ERROR_HANDLER",
    "CFnTypeInfo",
    "ConcreteType",
    "DerivativeMode",
    "DiffRequest",
    "DiffeType",
    "ErrorType",
    "IntList",
    "load_profile",
    "profile_module_name",
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
