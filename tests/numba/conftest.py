"""Fixtures for the numba bridge tests (``enzyme_py._numba``).

Everything goes through the real pipeline a user gets: numba lowers the Python function,
:func:`enzyme_py._numba.lower` builds the plain-ABI module, :meth:`enzyme_py.Module.from_ir`
parses it with the libLLVM/LLVMEnzyme that ``enzyme_artifacts`` resolves, and
:func:`enzyme_py.autodiff` differentiates the entry function.  Modules are kept for the
whole session (one per lowered signature) by :func:`enzyme_py._numba.entry_function`.

Oracles are independent of the bridge: analytic derivatives written in each test, and
central finite differences of the *plain Python* function run by CPython.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest


def _is_float_scalar(v: object) -> bool:
    return isinstance(v, (float, np.floating)) and not isinstance(v, np.ndarray)


class Bridge:
    """Differentiate Python functions the way ``enzyme_py.autodiff`` does for them:
    :func:`~enzyme_py._numba.lower`, :func:`~enzyme_py._numba.entry_function`,
    :func:`~enzyme_py._numba.map_call`, ``autodiff`` on the entry, then
    :func:`~enzyme_py._numba.raise_from_status`."""

    def entry(self, f: Callable[..., Any], args: Sequence[object]) -> tuple[Any, Any]:
        """(Lowered, enzyme_py.Function of its entry) for *f* at the primal *args*."""
        from enzyme_py._numba import entry_function, lower

        low = lower(f, args)
        return low, entry_function(low)

    def call(self, f: Callable[..., Any], *args: object) -> Any:
        """The primal through the entry function (exceptions re-raised)."""
        from enzyme_py._numba import map_call, raise_from_status

        low, fn = self.entry(f, args)
        mapped = map_call(low, args)
        result = fn(*(a.val if hasattr(a, "val") else a for a in mapped.args))
        raise_from_status(low, mapped.status)
        return result

    def reverse(self, f: Callable[..., Any], *args: object, active: Sequence[bool] | None = None,
                seeds: dict[int, np.ndarray[Any, Any]] | None = None, primal: bool = False) -> Any:
        """Reverse mode: one entry per argument (float, gradient array, or None).

        Float scalars are Active and float arrays Duplicated with a zero shadow unless
        *active* says otherwise.  For a function returning None, *seeds* maps an output
        array's position to its seed (the cotangent); the return activity is then Const.
        """
        import enzyme_py as ez
        from enzyme_py._numba import map_call, raise_from_status

        low, fn = self.entry(f, args)
        if active is None:
            active = [_is_float_scalar(a) or (isinstance(a, np.ndarray) and a.dtype.kind == "f") for a in args]
        annotated: list[Any] = []
        shadows: list[Any] = []
        for i, (a, act) in enumerate(zip(args, active)):
            shadow = None
            if isinstance(a, np.ndarray) and act:
                shadow = np.array(seeds[i], copy=True) if seeds and i in seeds else np.zeros_like(a)
                annotated.append(ez.Duplicated(a, shadow))
            elif act:
                annotated.append(ez.Active(a))
            else:
                annotated.append(ez.Const(a))
            shadows.append(shadow)
        mapped = map_call(low, annotated)
        ret = ez.Const if low.returns == "void" else ez.Active
        mode = ez.ReverseWithPrimal if primal and low.returns != "void" else ez.Reverse
        res = ez.autodiff(mode, fn, ret, *mapped.args)
        raise_from_status(low, mapped.status)
        folded = mapped.fold(res[0])
        out = [shadows[i] if spec.kind != "scalar" else folded[i] for i, spec in enumerate(low.arg_layout)]
        return (out, res[1]) if mode is ez.ReverseWithPrimal else out

    def forward(self, f: Callable[..., Any], args: Sequence[object], tangents: Sequence[object]) -> Any:
        """Forward mode: the directional derivative of the return along *tangents*
        (None entries: constant), or, for a function returning None, the list of tangent
        arrays (outputs carry their tangent)."""
        import enzyme_py as ez
        from enzyme_py._numba import map_call, raise_from_status

        low, fn = self.entry(f, args)
        shadows = [np.array(t, copy=True) if isinstance(t, np.ndarray) else t for t in tangents]
        annotated = [a if t is None else ez.Duplicated(a, t) for a, t in zip(args, shadows)]
        mapped = map_call(low, annotated)
        if low.returns == "void":
            ez.autodiff(ez.Forward, fn, ez.Const, *mapped.args)
            raise_from_status(low, mapped.status)
            return shadows
        res = ez.autodiff(ez.Forward, fn, ez.Duplicated, *mapped.args)
        raise_from_status(low, mapped.status)
        return res[0]


@pytest.fixture(scope="session")
def bridge() -> Bridge:
    """One Bridge (and its module cache) for the session."""
    return Bridge()


def central_difference(f: Callable[..., float], args: Sequence[object], h: float = 1e-6) -> list[Any]:
    """Gradient of the plain Python *f* by central differences (float args and float arrays)."""
    out: list[Any] = []
    for i, a in enumerate(args):
        if _is_float_scalar(a):
            up = list(args)
            dn = list(args)
            up[i] = a + h
            dn[i] = a - h
            out.append((f(*up) - f(*dn)) / (2 * h))
        elif isinstance(a, np.ndarray) and a.dtype.kind == "f":
            g = np.zeros(a.shape)
            for idx in np.ndindex(a.shape):
                up = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
                dn = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
                up[i][idx] += h
                dn[i][idx] -= h
                g[idx] = (f(*up) - f(*dn)) / (2 * h)
            out.append(g)
        else:
            out.append(None)
    return out


@pytest.fixture(scope="session")
def fd() -> Callable[..., list[Any]]:
    """:func:`central_difference`."""
    return central_difference
