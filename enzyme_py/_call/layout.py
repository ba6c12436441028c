"""How a function's Python-level parameters map onto its C-ABI entry parameters.

A :class:`Layout` describes one :class:`~enzyme_py.Function`: for a C or IR function each
parameter is one entry parameter (a scalar, or a pointer passed as a NumPy array); for a
lowered Python function an array is its data pointer followed by its shape, an array or
tuple result is written into a hidden output array, and a hidden status array carries the
exception the function raised.  Everything above this module speaks of Python-level
parameters; everything below of entry parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._native.types import DTYPES, KIND_OF_DTYPE, Signature, ValueType

__all__ = [
    "ArrayParam",
    "ArrayResult",
    "Layout",
    "Param",
    "PointerParam",
    "Result",
    "ScalarParam",
    "ScalarResult",
    "StatusInfo",
    "TupleResult",
    "UnsupportedParam",
    "UnsupportedResult",
    "VoidResult",
    "c_layout",
]

_C_INT_RANGES = {
    "i1": (0, 1),
    "i8": (-(2**7), 2**8 - 1),
    "i16": (-(2**15), 2**16 - 1),
    "i32": (-(2**31), 2**32 - 1),
    "i64": (-(2**63), 2**64 - 1),
}


@dataclass(frozen=True)
class ScalarParam:
    """A number: ``kind`` is the entry's LLVM kind (``f64``, ``f32``, ``i1``..``i64``).

    ``lo``/``hi``: the integers accepted (for C: the signed and unsigned range of the
    width together; for Python functions: the numba type's own range).  ``dtype``: the
    NumPy scalar type of a Python function's parameter (None for C).
    """

    kind: str
    text: str
    lo: int = 0
    hi: int = 0
    dtype: str | None = None

    @property
    def is_float(self) -> bool:
        return self.kind in ("f64", "f32")

    @property
    def entry_count(self) -> int:
        return 1


@dataclass(frozen=True)
class PointerParam:
    """A C pointer: a C-contiguous NumPy array (of any shape) is passed by its data
    pointer.  ``pointee``: the element kind the function reads and writes through it
    (declared by a typed pointer or inferred from the code), None when unknown."""

    pointee: str | None
    text: str
    readonly: bool

    @property
    def entry_count(self) -> int:
        return 1


@dataclass(frozen=True)
class ArrayParam:
    """An array of a Python function: its data pointer, then one ``i64`` per dimension."""

    dtype: np.dtype[Any]
    ndim: int
    readonly: bool

    @property
    def kind(self) -> str:
        return KIND_OF_DTYPE[self.dtype]

    @property
    def text(self) -> str:
        return f"{self.dtype}[{', '.join([':'] * self.ndim)}]"

    @property
    def entry_count(self) -> int:
        return 1 + self.ndim


@dataclass(frozen=True)
class UnsupportedParam:
    """A parameter type enzyme_py cannot pass from Python (an aggregate, a vector, ...)."""

    text: str

    @property
    def entry_count(self) -> int:
        return 1


Param = ScalarParam | PointerParam | ArrayParam | UnsupportedParam


@dataclass(frozen=True)
class VoidResult:
    text: str = "void"


@dataclass(frozen=True)
class ScalarResult:
    """A number returned; ``dtype`` names a Python function's NumPy type (``bool`` results
    come back as ``bool``)."""

    kind: str
    text: str
    dtype: str | None = None

    @property
    def is_float(self) -> bool:
        return self.kind in ("f64", "f32")


@dataclass(frozen=True)
class ArrayResult:
    """A new array returned by a Python function (written into a hidden output array)."""

    dtype: np.dtype[Any]
    ndim: int

    @property
    def kind(self) -> str:
        return KIND_OF_DTYPE[self.dtype]

    @property
    def text(self) -> str:
        return f"{self.dtype} array of {self.ndim} dimension(s)"


@dataclass(frozen=True)
class TupleResult:
    """A tuple of ``length`` floats returned by a Python function (a hidden output array)."""

    dtype: np.dtype[Any]
    length: int

    @property
    def kind(self) -> str:
        return KIND_OF_DTYPE[self.dtype]

    @property
    def text(self) -> str:
        return f"tuple of {self.length} {self.dtype}"


@dataclass(frozen=True)
class UnsupportedResult:
    """A return type Python cannot receive; ``kind`` is ``ptr`` for a pointer (which a
    derivative with a Const return may still have), else ``unsupported``."""

    text: str
    kind: str = "unsupported"


Result = VoidResult | ScalarResult | ArrayResult | TupleResult | UnsupportedResult


@dataclass(frozen=True)
class StatusInfo:
    """A Python function's hidden status array: what it raised, where to find it."""

    qualname: str
    exceptions: tuple[bytes, ...] = field(repr=False, default=())
    words: int = 8


@dataclass(frozen=True)
class Layout:
    """The parameters and result of a function as Python sees them.

    ``name``: the function's name for messages (C name or Python qualified name);
    ``signature``: its text (``double (ptr, i64)`` or a Python signature).
    ``status``: set for a lowered Python function (a hidden last entry parameter).
    """

    name: str
    signature: str
    params: tuple[Param, ...]
    result: Result
    variadic: bool = False
    status: StatusInfo | None = None

    @property
    def python(self) -> bool:
        return self.status is not None

    @property
    def out_param(self) -> bool:
        """Whether the result is written into a hidden output array."""
        return isinstance(self.result, (ArrayResult, TupleResult))

    def entry_index(self) -> tuple[int, ...]:
        """The index of each parameter's first entry parameter."""
        out = []
        k = 0
        for p in self.params:
            out.append(k)
            k += p.entry_count
        return tuple(out)

    def describe(self, i: int) -> str:
        """``argument i of f (double*)`` for messages."""
        return f"argument {i} of {self.name} ({self.params[i].text})"


def _scalar_param(vt: ValueType) -> Param:
    if vt.kind in ("f64", "f32"):
        return ScalarParam(vt.kind, vt.text)
    if vt.kind in _C_INT_RANGES:
        lo, hi = _C_INT_RANGES[vt.kind]
        return ScalarParam(vt.kind, vt.text, lo, hi)
    return UnsupportedParam(vt.text)


def c_layout(name: str, sig: Signature, pointees: Sequence[str | None] = ()) -> Layout:
    """The layout of a C or IR function: one parameter per LLVM parameter.

    ``pointees``: element kinds inferred from the code for opaque pointers (see
    :func:`enzyme_py._native.transforms.infer_pointees`), used where the type gives none.
    """
    readonly = sig.readonly or (False,) * len(sig.params)
    params: list[Param] = []
    for i, (p, ro) in enumerate(zip(sig.params, readonly)):
        if p.is_pointer:
            pointee = p.pointee
            if pointee is None and i < len(pointees):
                pointee = pointees[i]
            params.append(PointerParam(pointee, p.text, ro))
        else:
            params.append(_scalar_param(p))
    r = sig.ret
    result: Result
    if r.kind == "void":
        result = VoidResult()
    elif r.kind in ("f64", "f32") or r.kind in _C_INT_RANGES:
        result = ScalarResult(r.kind, r.text)
    else:
        result = UnsupportedResult(r.text, "ptr" if r.is_pointer else "unsupported")
    return Layout(name, str(sig), tuple(params), result, sig.variadic)


def dtype_of(kind: str) -> np.dtype[Any]:
    """The NumPy dtype of an element kind (``f64`` -> float64)."""
    return DTYPES[kind]
