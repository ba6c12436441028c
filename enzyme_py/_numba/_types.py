"""Which Python argument values the numba bridge accepts, and how each maps onto IR.

Every argument is classified from its *value* (the primal, activities already unwrapped):

==============================  ==========  ===================================  ==========
value                           kind        entry parameters                     numba type
==============================  ==========  ===================================  ==========
``float`` / ``np.float64``      scalar      ``double``                           float64
``np.float32``                  scalar      ``float``                            float32
``int`` / ``np.int64``          scalar      ``i64``                              int64
1-D C-contiguous ndarray        array1d     ``T* data, i64 n``                   T[::1]
2-D C-contiguous ndarray        array2d     ``T* data, i64 n0, i64 n1``          T[:, ::1]
==============================  ==========  ===================================  ==========

with ``T`` one of float64, float32 (differentiable) or int64, int32 (``Const`` only).
Anything else raises :class:`TypeError` (wrong layout, read-only where a write is needed is
the caller's check) or :class:`NotImplementedError` (a construct the bridge does not lower),
naming the argument and the construct.
"""

from __future__ import annotations

__all__ = ["RETURN_KINDS", "ArgSpec", "classify", "numba_type"]

from dataclasses import dataclass
from typing import Any

import numpy as np

#: numpy dtype name -> LLVM element type, for array elements and scalars.
_IR_TYPE = {"float64": "double", "float32": "float", "int64": "i64", "int32": "i32"}

#: numba return type name -> ``Lowered.returns``.
RETURN_KINDS = {"float64": "f64", "float32": "f32", "int64": "i64", "none": "void"}


@dataclass(frozen=True)
class ArgSpec:
    """How one Python argument appears in the entry function.

    Attributes:
        kind: ``"scalar"``, ``"array1d"`` or ``"array2d"``.
        dtype: numpy dtype name of the scalar or of the array elements.
        ir_params: number of entry parameters it expands to (1, 2 or 3).
    """

    kind: str
    dtype: str
    ir_params: int

    @property
    def ir_type(self) -> str:
        """LLVM type of the scalar, or of the array's element."""
        return _IR_TYPE[self.dtype]

    @property
    def ndim(self) -> int:
        """0 for scalars, else the array's number of dimensions."""
        return {"scalar": 0, "array1d": 1, "array2d": 2}[self.kind]

    @property
    def differentiable(self) -> bool:
        """Whether the argument may be Active/Duplicated (floating point only)."""
        return self.dtype in ("float64", "float32")


_F64 = ArgSpec("scalar", "float64", 1)
_F32 = ArgSpec("scalar", "float32", 1)
_I64 = ArgSpec("scalar", "int64", 1)
#: (native-order dtype, ndim) -> spec, for the supported arrays (a dict lookup on the dtype
#: is much cheaper than ``dtype.name``; non-native byte orders do not compare equal).
_ARRAY_SPECS = {
    (np.dtype(name), ndim): ArgSpec(f"array{ndim}d", name, ndim + 1) for name in _IR_TYPE for ndim in (1, 2)
}


def classify(value: object, position: int) -> ArgSpec:
    """Classify the Python argument *value* at *position* (0-based, for messages)."""
    where = f"argument {position}"
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where} is a bool; the numba bridge takes float or int scalars, pass int(value)")
    if isinstance(value, (float, np.float64)):
        return _F64
    if isinstance(value, np.float32):
        return _F32
    if isinstance(value, (int, np.integer)):
        if isinstance(value, np.integer) and value.dtype != np.int64:
            raise TypeError(f"{where} is a {value.dtype} scalar; pass a Python int or np.int64")
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            raise OverflowError(f"{where} = {value} does not fit in int64")
        return _I64
    if isinstance(value, (complex, np.complexfloating)):
        raise NotImplementedError(f"{where} is complex; complex numbers are not supported by the numba bridge")
    if isinstance(value, np.ndarray):
        return _classify_array(value, where)
    if isinstance(value, tuple):
        raise NotImplementedError(f"{where} is a tuple; tuples are not supported as arguments, pass them separately")
    if isinstance(value, np.void) or (hasattr(value, "dtype") and getattr(value.dtype, "names", None)):
        raise NotImplementedError(f"{where} is a record; structured/record arguments are not supported")
    raise TypeError(
        f"{where} has type {type(value).__name__}; the numba bridge takes float/int scalars and "
        "1-D/2-D C-contiguous float64/float32 arrays"
    )


def _classify_array(value: np.ndarray[Any, Any], where: str) -> ArgSpec:
    fast = _ARRAY_SPECS.get((value.dtype, value.ndim))
    if fast is not None and value.flags.c_contiguous:  # the common case, without the checks below
        return fast
    if value.dtype.names is not None:
        raise NotImplementedError(f"{where} is a structured (record) array; record arrays are not supported")
    if value.dtype.kind == "c":
        raise NotImplementedError(f"{where} is a complex array; complex numbers are not supported")
    if value.dtype.name not in _IR_TYPE:
        raise TypeError(
            f"{where} is an array of {value.dtype}; supported element types are "
            "float64, float32 (differentiable) and int64, int32 (Const)"
        )
    if value.ndim not in (1, 2):
        raise NotImplementedError(f"{where} is a {value.ndim}-D array; only 1-D and 2-D arrays are supported")
    if not value.flags.c_contiguous:
        raise TypeError(f"{where} is not C-contiguous; pass np.ascontiguousarray(x)")
    if value.dtype.byteorder not in ("=", "|"):
        raise TypeError(f"{where} is not in native byte order; pass x.astype(x.dtype.newbyteorder('='))")
    if value.ndim == 1:
        return ArgSpec("array1d", value.dtype.name, 2)
    return ArgSpec("array2d", value.dtype.name, 3)


def numba_type(spec: ArgSpec) -> Any:
    """The numba type the function is compiled for (imports numba)."""
    from numba.core import types

    dtype = getattr(types, spec.dtype)
    if spec.kind == "scalar":
        return dtype
    return types.Array(dtype, spec.ndim, "C")
