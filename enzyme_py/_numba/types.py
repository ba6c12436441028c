"""Which Python argument values the numba lowering accepts, and how each maps onto IR.

Every argument is classified from its *value* (the primal, activities already unwrapped):

=======================================  ==========  ==============================  ==========
value                                    kind        entry parameters                numba type
=======================================  ==========  ==============================  ==========
``float`` / ``np.float64``               scalar      ``double``                      float64
``np.float32``                           scalar      ``float``                       float32
``int`` / ``np.int64``                   scalar      ``i64``                         int64
``np.int8`` .. ``np.int32``              scalar      ``i8`` .. ``i32``               int8..int32
``np.uint8`` .. ``np.uint64``            scalar      ``i8`` .. ``i64``               uint8..uint64
``bool`` / ``np.bool_``                  scalar      ``i8``                          boolean
N-D C-contiguous ndarray (N = 1..3)      array       ``T* data, i64 n0, .., nN-1``   T[:, ::1]
=======================================  ==========  ==============================  ==========

with array elements ``T`` float64, float32 (differentiable) or int64, int32 (``Const``
only).  Anything else raises :class:`TypeError` (a wrong layout) or
:class:`~enzyme_py.errors.UnsupportedError` (a construct the lowering does not handle),
naming the argument.
"""

from __future__ import annotations

__all__ = ["MAX_NDIM", "SCALAR_KINDS", "ArgSpec", "classify", "numba_type", "result_kind"]

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UnsupportedError

#: Most dimensions of an array argument.
MAX_NDIM = 3

#: numpy dtype name -> (LLVM kind of the entry parameter, lowest, highest value).
SCALAR_KINDS: dict[str, tuple[str, int, int]] = {
    "float64": ("f64", 0, 0),
    "float32": ("f32", 0, 0),
    "int64": ("i64", -(2**63), 2**63 - 1),
    "int32": ("i32", -(2**31), 2**31 - 1),
    "int16": ("i16", -(2**15), 2**15 - 1),
    "int8": ("i8", -(2**7), 2**7 - 1),
    "uint64": ("i64", 0, 2**64 - 1),
    "uint32": ("i32", 0, 2**32 - 1),
    "uint16": ("i16", 0, 2**16 - 1),
    "uint8": ("i8", 0, 2**8 - 1),
    "bool": ("i8", 0, 1),
}
_ARRAY_DTYPES = ("float64", "float32", "int64", "int32")


@dataclass(frozen=True)
class ArgSpec:
    """How one Python argument appears in the entry function.

    Attributes:
        kind: ``"scalar"`` or ``"array"``.
        dtype: numpy dtype name of the scalar or of the array elements.
        ndim: 0 for scalars, else the array's number of dimensions.
    """

    kind: str
    dtype: str
    ndim: int = 0

    @property
    def ir_params(self) -> int:
        """Number of entry parameters it expands to."""
        return 1 + self.ndim

    @property
    def differentiable(self) -> bool:
        """Whether the argument may be Active/Duplicated (floating point only)."""
        return self.dtype in ("float64", "float32")


_SCALARS = {name: ArgSpec("scalar", name) for name in SCALAR_KINDS}
_ARRAY_SPECS = {
    (np.dtype(name), ndim): ArgSpec("array", name, ndim) for name in _ARRAY_DTYPES for ndim in range(1, MAX_NDIM + 1)
}


def classify(value: object, position: int, qualname: str = "") -> ArgSpec:
    """Classify the Python argument *value* at *position* (0-based) of *qualname* (both
    for messages)."""
    where = f"argument {position} of {qualname}" if qualname else f"argument {position}"
    t = type(value)
    if t is float:
        return _SCALARS["float64"]
    if t is int:  # always int64 (its range is checked on every call); np.uint64 for more
        return _SCALARS["int64"]
    if t is bool or t is np.bool_:
        return _SCALARS["bool"]
    if isinstance(value, np.generic):
        name = value.dtype.name
        spec = _SCALARS.get(name)
        if spec is not None:
            return spec
        if value.dtype.kind == "c":
            raise UnsupportedError(f"{where} is complex; complex numbers are not supported by the numba lowering")
        raise TypeError(f"{where} is a {name} scalar, which the numba lowering does not take")
    if isinstance(value, np.ndarray):
        return _classify_array(value, where)
    if isinstance(value, (complex,)):
        raise UnsupportedError(f"{where} is complex; complex numbers are not supported by the numba lowering")
    if isinstance(value, tuple):
        raise UnsupportedError(f"{where} is a tuple; tuples are not supported as arguments, pass them separately")
    raise TypeError(
        f"{where} has type {type(value).__name__}; the numba lowering takes numbers (float, int, "
        "bool, NumPy scalars) and 1-D to 3-D C-contiguous NumPy arrays"
    )


def _classify_array(value: np.ndarray[Any, Any], where: str) -> ArgSpec:
    # Contiguity is not part of the layout: the call layer checks it on every call.
    fast = _ARRAY_SPECS.get((value.dtype, value.ndim))
    if fast is not None:  # the common case, without the checks below
        return fast
    if value.dtype.names is not None:
        raise UnsupportedError(f"{where} is a structured (record) array; record arrays are not supported")
    if value.dtype.kind == "c":
        raise UnsupportedError(f"{where} is a complex array; complex numbers are not supported")
    if value.dtype.name not in _ARRAY_DTYPES:
        raise TypeError(
            f"{where} is an array of {value.dtype}; supported element types are "
            "float64, float32 (differentiable) and int64, int32 (Const)"
        )
    if value.ndim == 0:
        raise TypeError(f"{where} is a 0-d array; pass the number itself (x[()])")
    if value.ndim > MAX_NDIM:
        raise UnsupportedError(
            f"{where} is a {value.ndim}-D array; arrays of 1 to {MAX_NDIM} dimensions are supported"
        )
    if value.dtype.byteorder not in ("=", "|"):
        raise TypeError(f"{where} is not in native byte order; pass x.astype(x.dtype.newbyteorder('='))")
    return ArgSpec("array", value.dtype.name, value.ndim)  # pragma: no cover - covered by fast


def numba_type(spec: ArgSpec) -> Any:
    """The numba type the function is compiled for (imports numba)."""
    from numba.core import types

    dtype = types.boolean if spec.dtype == "bool" else getattr(types, spec.dtype)
    if spec.kind == "scalar":
        return dtype
    return types.Array(dtype, spec.ndim, "C")


def result_kind(restype: Any, qualname: str) -> tuple[str, str, int]:
    """``(kind, dtype name, ndim or length)`` of numba's return type: kind ``scalar``,
    ``void``, ``array`` or ``tuple``; :class:`UnsupportedError` for other returns."""
    from numba.core import types

    if restype == types.none:
        return "void", "", 0
    if isinstance(restype, (types.Float, types.Integer, types.Boolean)):
        name = "bool" if isinstance(restype, types.Boolean) else str(restype)
        if name in SCALAR_KINDS:
            return "scalar", name, 0
    if isinstance(restype, types.Array):
        name = str(restype.dtype)
        if name not in _ARRAY_DTYPES:
            raise UnsupportedError(f"{qualname} returns an array of {restype.dtype}; array results must be float64, float32, int64 or int32")
        if not 1 <= restype.ndim <= MAX_NDIM:
            raise UnsupportedError(f"{qualname} returns a {restype.ndim}-D array; results of 1 to {MAX_NDIM} dimensions are supported")
        return "array", name, restype.ndim
    if isinstance(restype, types.UniTuple) and str(restype.dtype) in ("float64", "float32"):
        return "tuple", str(restype.dtype), restype.count
    if isinstance(restype, types.BaseTuple):
        raise UnsupportedError(f"{qualname} returns {restype}; tuple results must hold floats of one type")
    if isinstance(restype, types.Complex):
        raise UnsupportedError(f"{qualname} returns complex; complex numbers are not supported")
    if isinstance(restype, types.Optional):
        raise UnsupportedError(f"{qualname} returns {restype} (sometimes None); return one type")
    raise UnsupportedError(
        f"{qualname} returns {restype}; supported results: numbers, None, arrays and tuples of floats"
    )
