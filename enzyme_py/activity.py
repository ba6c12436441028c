"""Activity annotations, as in Enzyme.jl.

* ``Const(x)``: ``x`` is not differentiated (a bare argument means the same);
* ``Active(x)``: a float scalar whose derivative reverse mode returns;
* ``Duplicated(x, dx)``: ``x`` with its shadow ``dx``.  For arrays, reverse mode
  **accumulates** into ``dx`` (``dx += ...``; start from :func:`make_zero`) and forward
  mode reads the tangent from ``dx`` (the shadow of an output array receives the output's
  tangent).  A ``Duplicated`` output array's shadow is the reverse-mode seed and is zeroed
  by the derivative.  For a scalar in forward mode, ``dx`` is its tangent.
* ``DuplicatedNoNeed(x, dx)``: like ``Duplicated`` when the primal result in ``x`` is not
  needed afterwards (Enzyme may skip computing it).

* ``BatchDuplicated(x, (dx1, ..., dxN))`` / ``BatchDuplicatedNoNeed``: ``N`` shadows at
  once (vector mode).

As a *return* activity the class itself is passed: ``Active``, ``Const``, ``Duplicated``,
``DuplicatedNoNeed``, ``BatchDuplicated``, ``BatchDuplicatedNoNeed``.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._call.pointers import zero_struct

__all__ = [
    "Active",
    "Annotation",
    "BatchDuplicated",
    "BatchDuplicatedNoNeed",
    "Const",
    "Duplicated",
    "DuplicatedNoNeed",
    "make_zero",
]


class Annotation:
    """Base class of the activity annotations."""

    __slots__ = ()
    val: Any

    if TYPE_CHECKING:

        def __init__(self, val: Any, *rest: Any) -> None: ...


@dataclass(frozen=True, eq=False)
class Const(Annotation):
    """A constant (non-differentiated) argument.

    ``bounds_of``: for an integer that is the length of arrays the function indexes (a C
    ``n`` beside ``double *x``), the array or arrays it bounds; every call then checks
    ``0 <= n <= x.size`` before any native code runs.  Without it, enzyme_py cannot know
    which arrays a length belongs to, and a length larger than its array makes the
    function read or write past the array's end.
    """

    val: Any
    bounds_of: Any = None

    def __post_init__(self) -> None:
        b = self.bounds_of
        if b is None:
            return
        arrays = tuple(b) if isinstance(b, (tuple, list)) else (b,)
        for a in arrays:
            if not isinstance(a, np.ndarray):
                raise TypeError(f"Const(n, bounds_of=...) takes NumPy arrays, got {type(a).__name__}")
        object.__setattr__(self, "bounds_of", arrays)


@dataclass(frozen=True, eq=False)
class Active(Annotation):
    """A float scalar differentiated in reverse mode; its derivative is returned."""

    val: Any


@dataclass(frozen=True, eq=False)
class Duplicated(Annotation):
    """A value with its shadow: an array with a same-shape, same-dtype shadow array, or
    (forward mode) a float scalar with its tangent."""

    val: Any
    dval: Any


@dataclass(frozen=True, eq=False)
class DuplicatedNoNeed(Duplicated):
    """Like :class:`Duplicated`, when the primal result is not needed afterwards."""


@dataclass(frozen=True, eq=False)
class BatchDuplicated(Annotation):
    """A value with ``N`` shadows (Enzyme's vector mode, width ``N = len(dvals)``): an
    array with ``N`` same-shape, same-dtype shadow arrays, or (forward mode) a float
    scalar with ``N`` tangents.  One call computes ``N`` directional derivatives (forward)
    or accumulates ``N`` adjoints (reverse).  Every batched argument of one call must have
    the same width.  ``dvals`` is stored as a tuple."""

    val: Any
    dvals: tuple[Any, ...]

    def __post_init__(self) -> None:
        if isinstance(self.dvals, (list, tuple)):
            object.__setattr__(self, "dvals", tuple(self.dvals))
        else:
            raise TypeError(
                f"{type(self).__name__}(x, dvals): dvals must be a tuple of shadows "
                f"(one per batch lane), got {type(self.dvals).__name__}"
            )
        if not self.dvals:
            raise ValueError(f"{type(self).__name__}: dvals is empty; the width must be >= 1")

    @property
    def width(self) -> int:
        """The number of shadows."""
        return len(self.dvals)


@dataclass(frozen=True, eq=False)
class BatchDuplicatedNoNeed(BatchDuplicated):
    """Like :class:`BatchDuplicated`, when the primal result is not needed afterwards."""


def make_zero(x: Any, **pointees: Any) -> Any:
    """A zero of the same kind as ``x``: a new zeroed array like ``x`` (same shape and
    dtype, C-contiguous, writable; a structured array too), a list of them for a
    sequence of arrays, or ``0.0`` / ``0`` for scalars.

    For a ``ctypes.Structure`` (or ctypes array of structs): a shadow struct of the same
    type, floats zero, integers copied, and each pointer field given as a keyword pointing
    at its shadow: a NumPy array, or an element count for a zeroed buffer enzyme_py
    allocates (``make_zero(s, data=len(x))``; dotted names reach nested structs).  A set
    pointer field without one is an error (see :mod:`enzyme_py._call.pointers`).

    >>> make_zero(np.ones(3)).tolist()
    [0.0, 0.0, 0.0]
    >>> make_zero(2.5)
    0.0
    >>> zs = make_zero([np.ones(2), np.ones(1)])
    >>> len(zs), float(zs[0].sum() + zs[1].sum())
    (2, 0.0)
    """
    if pointees and not isinstance(x, (ctypes.Structure, ctypes.Array)):
        raise TypeError("make_zero: pointer-field keywords apply to a ctypes Structure only")
    if isinstance(x, (ctypes.Structure, ctypes.Array)):
        return zero_struct(x, pointees)
    if isinstance(x, (list, tuple)):
        return [make_zero(v) for v in x]
    if isinstance(x, np.ndarray):
        return np.zeros(x.shape, dtype=x.dtype)
    if isinstance(x, (bool, np.bool_)):
        return False
    if isinstance(x, (int, np.integer)):
        return type(x)(0)
    if isinstance(x, (float, np.floating)):
        return type(x)(0.0)
    raise TypeError(f"make_zero: expected a NumPy array or a number, got {type(x).__name__}")
