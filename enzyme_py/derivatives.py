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

Hessian-vector products are forward mode over the reverse-mode gradient, compiled into
one module (:mod:`enzyme_py._parity_compile`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .activity import (
    Active,
    Annotation,
    BatchDuplicated,
    Const,
    Duplicated,
)
from .modes import Mode, Reverse

__all__ = ["hvp", "hvp_and_gradient", "jacobian"]

#: Default number of columns (forward) or rows (reverse) per call.
DEFAULT_CHUNK = 8


def _function(f: Any) -> Any:
    from .api import _check_function

    return _check_function(f)


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
    from ._batch import MAX_WIDTH

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
    docstring for the in-place output convention).

    ``mode``: ``Forward`` (``chunk`` columns per call) or ``Reverse`` (``chunk`` rows per
    call), with any flags (:func:`set_runtime_activity`, ...).  ``chunk`` defaults to
    ``min(n, 8)``.  Returns a one-element tuple, as Enzyme.jl does for one argument.
    """
    if not isinstance(mode, Mode) or mode.split:
        raise TypeError(f"jacobian takes Forward or Reverse as its mode, got {mode!r}")
    if mode.with_primal:
        raise TypeError("jacobian takes Forward or Reverse (not a WithPrimal mode)")
    f = _function(f)
    sig = f.llvm_signature
    nparams = len(sig.params)
    if len(args) != nparams:
        raise TypeError(f"{f.name} takes {nparams} argument(s) ({f.signature}), {len(args)} given")
    wrt = _index(wrt, nparams, "wrt")
    x = args[wrt].val if isinstance(args[wrt], Const) else args[wrt]
    x = _float_array(x, f"argument {wrt} (the argument differentiated)")
    n = x.size
    k = _chunk(chunk, n)
    scalar_out = sig.ret.is_float
    if scalar_out:
        if out is not None:
            raise TypeError(f"{f.name} returns a float: it has no output argument (out=...)")
        skip = {wrt}
        plain = _plain(args, skip)
        if mode.reverse:
            from .api import autodiff

            dx = np.zeros_like(x)
            plain[wrt] = Duplicated(x, dx)
            autodiff(replace(mode, with_primal=False), f, Active, *plain)
            return (dx,)
        jac = np.empty(x.shape, dtype=x.dtype)
        flat = jac.reshape(-1)
        for start in range(0, n, k):
            w = min(k, n - start)
            plain[wrt] = _lanes(x, [_unit(x, start + j) for j in range(w)])
            from .api import autodiff

            ret = Duplicated if w == 1 else BatchDuplicated
            (d,) = autodiff(replace(mode, with_primal=False), f, ret, *plain)
            flat[start : start + w] = d if w > 1 else (d,)
        return (jac,)
    if sig.ret.kind != "void":
        raise TypeError(
            f"jacobian needs a function returning a float or void (writing its output in "
            f"place); {f.name} returns {sig.ret.text}"
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
    from .api import autodiff

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


def _hvp(f: Any, x: Any, v: Any, rest: Sequence[Any], wrt: int) -> tuple[Any, Any]:
    from .api import _address, _run, prepare
    from .compiler import HVP

    f = _function(f)
    sig = f.llvm_signature
    if not sig.ret.is_float:
        raise TypeError(f"hvp needs a function returning a float; {f.name} returns {sig.ret.text}")
    args = [*rest]
    nparams = len(sig.params)
    if len(args) + 1 != nparams:
        raise TypeError(
            f"{f.name} takes {nparams} argument(s) ({f.signature}), {len(args) + 1} given"
        )
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
        if isinstance(a, (float, np.floating)) or (
            isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.ndim > 0
        ):
            args[i] = Const(a)
    grad = np.zeros_like(x)
    args.insert(wrt, Duplicated(x, grad))
    prep = prepare(Reverse, f, Active, args)
    plan = replace(prep.plan, mode=HVP)
    hv = np.zeros_like(x)
    # the prepared values hold (x, dx) for the differentiated array: add (v, hv)
    values: list[Any] = []
    pos = 0
    for i, a in enumerate(plan.args):
        if i == wrt:
            xa, ga = prep.values[pos], prep.values[pos + 1]
            values += [xa, _address(v), ga, _address(hv)]
            pos += 2
        else:
            values.append(prep.values[pos])
            pos += 1
    code = f.module._compiled(plan)
    _run(code, values)  # prep.keep, v and hv (locals) keep the memory alive
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

