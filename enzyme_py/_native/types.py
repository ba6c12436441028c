"""The LLVM parameter and return types enzyme_py understands, as frozen values.

A :class:`ValueType` is read once from a function's LLVM type; everything after that
(validation, the Enzyme request, the C wrapper, ctypes) works from these values.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

from .ffi.llvm import TypeKind
from .library import native, take_message

__all__ = ["CTYPES", "DTYPES", "Signature", "ValueType", "read_signature", "read_type"]

#: ctypes type per scalar kind (``ptr`` is passed as an address).
CTYPES: dict[str, type] = {
    "f64": ctypes.c_double,
    "f32": ctypes.c_float,
    "i1": ctypes.c_bool,
    "i8": ctypes.c_int8,
    "i16": ctypes.c_int16,
    "i32": ctypes.c_int32,
    "i64": ctypes.c_int64,
    "ptr": ctypes.c_void_p,
}

#: NumPy dtype per element kind.
DTYPES: dict[str, np.dtype[Any]] = {
    "f64": np.dtype(np.float64),
    "f32": np.dtype(np.float32),
    "i8": np.dtype(np.int8),
    "i16": np.dtype(np.int16),
    "i32": np.dtype(np.int32),
    "i64": np.dtype(np.int64),
    "i1": np.dtype(np.bool_),
}

KIND_OF_DTYPE: dict[np.dtype[Any], str] = {v: k for k, v in DTYPES.items()}


@dataclass(frozen=True)
class ValueType:
    """One parameter or return type.

    ``kind``: ``f64``, ``f32``, ``i1``/``i8``/``i16``/``i32``/``i64``, ``ptr``, ``void``
    or ``unsupported``.  ``pointee``: for typed pointers the element kind (``f64``,
    ``i32``, ... or ``unsupported``); ``None`` for opaque ``ptr`` (the element type then
    comes from the NumPy array passed).  ``text``: LLVM's spelling.
    """

    kind: str
    pointee: str | None
    text: str

    @property
    def is_float(self) -> bool:
        return self.kind in ("f64", "f32")

    @property
    def is_int(self) -> bool:
        return self.kind in ("i1", "i8", "i16", "i32", "i64")

    @property
    def is_pointer(self) -> bool:
        return self.kind == "ptr"


@dataclass(frozen=True)
class Signature:
    """A function's parameter types and return type."""

    params: tuple[ValueType, ...]
    ret: ValueType
    #: per parameter: the function promises not to write through it (``readonly`` or
    #: ``readnone`` on the parameter or the function)
    readonly: tuple[bool, ...] = ()
    #: the function takes ``...`` (not callable from Python)
    variadic: bool = False

    def __str__(self) -> str:
        params = [p.text for p in self.params] + (["..."] if self.variadic else [])
        return f"{self.ret.text} ({', '.join(params)})"


def _scalar_kind(lib: Any, ty: int) -> str:
    kind = lib.LLVMGetTypeKind(ty)
    if kind == TypeKind.DOUBLE:
        return "f64"
    if kind == TypeKind.FLOAT:
        return "f32"
    if kind == TypeKind.VOID:
        return "void"
    if kind == TypeKind.INTEGER:
        width = lib.LLVMGetIntTypeWidth(ty)
        if width in (1, 8, 16, 32, 64):
            return f"i{width}"
    if kind == TypeKind.POINTER:
        return "ptr"
    return "unsupported"


def read_type(ty: int) -> ValueType:
    """Describe an ``LLVMTypeRef``."""
    lib = native().llvm
    text = take_message(lib, lib.LLVMPrintTypeToString(ty)) or "?"
    kind = _scalar_kind(lib, ty)
    pointee: str | None = None
    if kind == "ptr" and not lib.LLVMPointerTypeIsOpaque(ty):
        inner = _scalar_kind(lib, lib.LLVMGetElementType(ty))
        pointee = inner if inner in DTYPES else "unsupported"
    return ValueType(kind, pointee, text)


def read_signature(function: int) -> Signature:
    """The :class:`Signature` of an ``LLVMValueRef`` function."""
    lib = native().llvm
    fty = lib.LLVMGlobalGetValueType(function)
    n = lib.LLVMCountParamTypes(fty)
    arr = (ctypes.c_void_p * max(n, 1))()
    lib.LLVMGetParamTypes(fty, arr)
    params = tuple(read_type(arr[i]) for i in range(n))
    ro = lib.LLVMGetEnumAttributeKindForName(b"readonly", 8)
    rn = lib.LLVMGetEnumAttributeKindForName(b"readnone", 8)

    def has(index: int) -> bool:
        return bool(
            lib.LLVMGetEnumAttributeAtIndex(function, index, ro)
            or lib.LLVMGetEnumAttributeAtIndex(function, index, rn)
        )

    whole = has(0xFFFFFFFF)
    readonly = tuple(whole or has(i + 1) for i in range(n))
    return Signature(
        params,
        read_type(lib.LLVMGetReturnType(fty)),
        readonly,
        bool(lib.LLVMIsFunctionVarArg(fty)),
    )
