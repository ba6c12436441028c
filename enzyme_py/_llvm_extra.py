"""LLVM-C functions and Enzyme options used by vector mode, Hessian-vector products,
split mode and custom rules (declared on first use, beyond :mod:`enzyme_py._ffi.llvm`).

Invariant: every function here is called with the LLVM lock
(:data:`enzyme_py._library.LOCK`) held.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, c_char_p, c_int, c_uint, c_uint8, c_void_p
from typing import Any

__all__ = ["EXTRA_FUNCTIONS", "bind_extra", "set_fast_math"]

P = c_void_p
PP = POINTER(c_void_p)

EXTRA_FUNCTIONS: dict[str, tuple[Any, tuple[Any, ...]]] = {
    "LLVMBuildLoad2": (P, (P, P, P, c_char_p)),
    "LLVMGetArrayLength": (c_uint, (P,)),
    "LLVMArrayType": (P, (P, c_uint)),
    "LLVMConstArray": (P, (P, PP, c_uint)),
    "LLVMBuildInsertValue": (P, (P, P, P, c_uint, c_char_p)),
    "LLVMGetUndef": (P, (P,)),
    "LLVMDoubleTypeInContext": (P, (P,)),
    "LLVMCreateStringAttribute": (P, (P, c_char_p, c_uint, c_char_p, c_uint)),
    "LLVMAddAttributeAtIndex": (None, (P, c_uint, P)),
    "LLVMGetNamedGlobal": (P, (P, c_char_p)),
    "LLVMLinkModules2": (c_int, (P, P)),
    "LLVMGetGlobalParent": (P, (P,)),
    "LLVMDeleteFunction": (None, (P,)),
    "LLVMStructTypeInContext": (P, (P, PP, c_uint, c_int)),
}

_bound: set[int] = set()


def bind_extra(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declare :data:`EXTRA_FUNCTIONS` on ``lib`` (once per library object)."""
    if id(lib) in _bound:
        return lib
    for name, (restype, argtypes) in EXTRA_FUNCTIONS.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = list(argtypes)
    _bound.add(id(lib))
    return lib


def set_fast_math(nat: Any, on: bool) -> None:
    """Set Enzyme's process-global ``EnzymeFastMath`` option (``fast`` flags on the
    derivative arithmetic Enzyme generates).  The option is global to the process: call
    it under the LLVM lock right before each differentiation (the compile stage does),
    so every compilation runs with the value its plan asks for."""
    try:
        opt = ctypes.c_uint8.in_dll(nat.enzyme, "EnzymeFastMath")
    except ValueError:  # a build without the option: only the default is available
        if not on:
            from .errors import LibraryError

            raise LibraryError(
                "this Enzyme build does not export the EnzymeFastMath option; "
                "set_fast_math(mode, False) is not available with it"
            ) from None
        return
    set_cl = nat.enzyme.EnzymeSetCLBool
    set_cl.restype = None
    set_cl.argtypes = [c_void_p, c_uint8]
    set_cl(ctypes.addressof(opt), 1 if on else 0)
