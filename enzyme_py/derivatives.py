"""Jacobians and Hessian-vector products, as in Enzyme.jl: :func:`jacobian`, :func:`hvp`,
:func:`hvp_and_gradient`.

Array outputs.  A function with an array output writes it in place: the caller passes
the output array, and *its shape gives the output size*.  For
``void f(const double *x, double *y, long n)``::

    J, = jacobian(Forward, f, x, np.empty(m), n)        # J.shape == (m, n)

The argument differentiated is ``x`` at position ``wrt`` (default 0); the output is the
array at position ``out`` (default: the argument after ``wrt``).  ``f`` must overwrite
the whole output on every call (it is called once per chunk).  A function returning a
float has a scalar output: its Jacobian is its gradient, shaped like ``x``.  Every other
argument is a constant (bare values or ``Const``).

Forward mode computes ``chunk`` columns per call (vector mode of width ``chunk``);
reverse mode computes ``chunk`` rows per call, seeding the output's shadows with unit
vectors.  The result has shape ``y.shape + x.shape``.

A Python function may instead *return* its output, a new array (or a tuple of floats):
``jacobian(Forward, f, x)`` then gives the ``(m, n)`` matrix as Enzyme.jl does, forward
mode by chunks of columns (the result's tangents), reverse mode by chunks of rows (the
result seeded with unit vectors).

Hessian-vector products are forward mode over the reverse-mode gradient, compiled into
one module (:mod:`enzyme_py._compile.modes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ._call import request
from ._call.batch import MAX_WIDTH
from ._call.layout import ScalarResult, VoidResult
from .activity import (
    Active,
    Annotation,
    BatchDuplicated,
    Const,
    Duplicated,
)
from .api import _target, autodiff, resolve
from .modes import Mode, Reverse

__all__ = ["hvp", "hvp_and_gradient", "jacobian"]

#: Default number of columns (forward) or rows (reverse) per call.
DEFAULT_CHUNK = 8


def _float_array(x: Any, what: str) -> np.ndarray[Any, Any]:
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float64, np.float32):
        raise TypeError(f"{what} must be a float64 or float32 NumPy array, got {type(x).__name__}"
                        + (f" of dtype {x.dtype}" if isinstance(x, np.ndarray) else ""))
    if not x.flags.c_contiguous:
        raise ValueError(f"{what} must be C-contiguous (use np.ascontiguousarray)")
    if x.size == 0:
        raise ValueError(f"{what} is empty; there is nothing to differentiate")
    return x


def _chunk(chunk: Any, n: int) -> int:
    if chunk is None:
        return min(n, DEFAULT_CHUNK)
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be an integer >= 1, got {chunk!r}")
    if chunk > MAX_WIDTH:
        raise ValueError(f"chunk {chunk} is above the supported maximum width {MAX_WIDTH}")
    return min(int(chunk), n)


def _index(i: Any, n: int, what: str) -> int:
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not -n <= i < n:
        raise ValueError(f"{what} must be an argument index in [0, {n}), got {i!r}")
    return int(i) % n


def _plain(args: Sequence[Any], skip: set[int]) -> list[Any]:
    out = list(args)
    for i, a in enumerate(args):
        if i in skip:
            continue
        if isinstance(a, Annotation) and not isinstance(a, Const):
            raise TypeError(
                f"argument {i}: only the differentiated argument and the output are "
                f"active; pass the others bare or as Const, not {type(a).__name__}"
            )
    return out


def _unit(x: np.ndarray[Any, Any], j: int) -> np.ndarray[Any, Any]:
    e = np.zeros(x.shape, dtype=x.dtype)
    e.reshape(-1)[j] = 1
    return e


def _lanes(arg_x: Any, shadows: list[np.ndarray[Any, Any]]) -> Any:
    if len(shadows) == 1:
        return Duplicated(arg_x, shadows[0])
    return BatchDuplicated(arg_x, tuple(shadows))


def jacobian(
    mode: Mode,
    f: Any,
    *args: Any,
    chunk: int | None = None,
    wrt: int = 0,
    out: int | None = None,
) -> tuple[np.ndarray[Any, Any]]:
    """``(J,)``: the Jacobian of ``f`` with respect to its argument ``wrt`` (see the module
    docstring for the output conventions).

    ``mode``: ``Forward`` (``chunk`` columns per call) or ``Reverse`` (``chunk`` rows per
    call), with any flags (:func:`set_runtime_activity`, ...).  ``chunk`` defaults to
    ``min(n, 8)``.  Returns a one-element tuple, as Enzyme.jl does for one argument.
    """
    if not isinstance(mode, Mode) or mode.split:
        raise TypeError(f"jacobian takes Forward or Reverse as its mode, got {mode!r}")
    if mode.with_primal:
        raise TypeError("jacobian takes Forward or Reverse (not a WithPrimal mode)")
    _, _, target = resolve(f, "jacobian")
    wrt = _index(wrt, len(args), "wrt")
    x = args[wrt].val if isinstance(args[wrt], Const) else args[wrt]
    x = _float_array(x, f"argument {wrt} (the argument differentiated)")
    fn = _target(target, args)
    layout = fn.layout
    nparams = len(layout.params)
    if len(args) != nparams:
        raise TypeError(f"{layout.name} takes {nparams} argument(s) ({layout.signature}), {len(args)} given")
    n = x.size
    k = _chunk(chunk, n)
    plain_mode = replace(mode, with_primal=False)
    result = layout.result
    if isinstance(result, ScalarResult) and result.is_float:
        if out is not None:
            raise TypeError(f"{layout.name} returns a float: it has no output argument (out=...)")
        plain = _plain(args, {wrt})
        if mode.reverse:
            dx = np.zeros_like(x)
            plain[wrt] = Duplicated(x, dx)
            autodiff(plain_mode, f, Active, *plain)
            return (dx,)
        jac = np.empty(x.shape, dtype=x.dtype)
        flat = jac.reshape(-1)
        for start in range(0, n, k):
            w = min(k, n - start)
            plain[wrt] = _lanes(x, [_unit(x, start + j) for j in range(w)])
            ret = Duplicated if w == 1 else BatchDuplicated
            (d,) = autodiff(plain_mode, f, ret, *plain)
            flat[start : start + w] = d if w > 1 else (d,)
        return (jac,)
    if layout.out_param:
        return (_jacobian_of_result(plain_mode, f, args, wrt, x, chunk, k),)
    if not isinstance(result, VoidResult):
        raise TypeError(
            f"jacobian needs a function returning a float, an array, or void (writing its output "
            f"in place); {layout.name} returns {result.text}"
        )
    out = _index(wrt + 1 if out is None else out, nparams, "out")
    if out == wrt:
        raise ValueError("out and wrt name the same argument")
    y = args[out].val if isinstance(args[out], Const) else args[out]
    y = _float_array(y, f"argument {out} (the output)")
    if not y.flags.writeable:
        raise ValueError(f"argument {out} (the output) is read-only; f writes into it")
    if y.dtype != x.dtype:
        raise TypeError(f"the output's dtype {y.dtype} differs from the input's {x.dtype}")
    if np.shares_memory(x, y):
        raise ValueError("the output array overlaps the argument differentiated")
    m = y.size
    plain = _plain(args, {wrt, out})
    jac = np.empty((m, n), dtype=x.dtype)
    if not mode.reverse:
        for start in range(0, n, k):
            w = min(k, n - start)
            plain[wrt] = _lanes(x, [_unit(x, start + j) for j in range(w)])
            dys = [np.zeros_like(y) for _ in range(w)]
            plain[out] = _lanes(y, dys)
            autodiff(mode, f, Const, *plain)
            for j, dy in enumerate(dys):
                jac[:, start + j] = dy.reshape(-1)
    else:
        k = _chunk(chunk, m)
        for start in range(0, m, k):
            w = min(k, m - start)
            dxs = [np.zeros_like(x) for _ in range(w)]
            plain[wrt] = _lanes(x, dxs)
            plain[out] = _lanes(y, [_unit(y, start + j) for j in range(w)])
            autodiff(mode, f, Const, *plain)
            for j, dx in enumerate(dxs):
                jac[start + j, :] = dx.reshape(-1)
    return (jac.reshape(y.shape + x.shape),)


def _jacobian_of_result(
    mode: Mode, f: Any, args: Sequence[Any], wrt: int, x: np.ndarray[Any, Any], chunk: Any, k: int
) -> np.ndarray[Any, Any]:
    """The Jacobian of a Python function's returned array (or tuple): ``y.shape +
    x.shape``."""
    plain = _plain(args, {wrt})
    n = x.size
    if not mode.reverse:
        cols: list[np.ndarray[Any, Any]] = []
        for start in range(0, n, k):
            w = min(k, n - start)
            plain[wrt] = BatchDuplicated(x, tuple(_unit(x, start + j) for j in range(w)))
            (dys,) = autodiff(mode, f, BatchDuplicated, *plain)
            cols += [np.asarray(dy, dtype=x.dtype).reshape(-1) for dy in dys]
        y_shape = np.shape(dys[0])
        jac = np.stack(cols, axis=-1)
        return jac.reshape(y_shape + x.shape)
    y = np.asarray(f(*[a.val if isinstance(a, Annotation) else a for a in args]))
    m = y.size
    k = _chunk(chunk, m)
    rows = np.empty((m, n), dtype=x.dtype)
    for start in range(0, m, k):
        w = min(k, m - start)
        dxs = tuple(np.zeros_like(x) for _ in range(w))
        plain[wrt] = BatchDuplicated(x, dxs)
        seeds = tuple(_unit(y.astype(x.dtype), start + j) for j in range(w))
        autodiff(mode, f, BatchDuplicated, *plain, seed=seeds[0] if w == 1 else seeds)
        for j, dx in enumerate(dxs):
            rows[start + j, :] = dx.reshape(-1)
    return rows.reshape(y.shape + x.shape)


def _hvp(f: Any, x: Any, v: Any, rest: Sequence[Any], wrt: int) -> tuple[Any, Any]:
    table, name, target = resolve(f, "hvp")
    args: list[Any] = list(rest)
    nparams = len(args) + 1
    wrt = _index(wrt, nparams, "wrt")
    x = _float_array(x, "x")
    if not isinstance(v, np.ndarray) or v.dtype != x.dtype or v.shape != x.shape:
        raise ValueError(
            "v must be a NumPy array of the same shape and dtype as x "
            f"({x.shape}, {x.dtype}); got "
            + (f"{v.shape}, {v.dtype}" if isinstance(v, np.ndarray) else type(v).__name__)
        )
    v = np.ascontiguousarray(v)
    for i, a in enumerate(args):
        if isinstance(a, Annotation) and not isinstance(a, Const):
            raise TypeError(
                f"hvp: the arguments besides x are constants; got {type(a).__name__} "
                f"at position {i + (i >= wrt)}"
            )
    grad = np.zeros_like(x)
    hv = np.zeros_like(x)
    args.insert(wrt, request.HvpArg(x, grad, v, hv))
    table.call(request.HVP_ROUTE, Reverse, Active, name, args, target)
    return hv, grad


def hvp(f: Any, x: Any, v: Any, *rest: Any, wrt: int = 0) -> np.ndarray[Any, Any]:
    """The Hessian of the float-valued ``f`` at ``x`` times ``v`` (forward over reverse).

    ``x`` is ``f``'s argument ``wrt`` (default 0), a float array; ``v`` has its shape and
    dtype; ``rest`` are ``f``'s other arguments, in order, all constant.
    """
    hv: np.ndarray[Any, Any] = _hvp(f, x, v, rest, wrt)[0]
    return hv


def hvp_and_gradient(
    f: Any, x: Any, v: Any, *rest: Any, wrt: int = 0
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``(H v, gradient)`` of the float-valued ``f`` at ``x`` in one call (see :func:`hvp`)."""
    return _hvp(f, x, v, rest, wrt)
