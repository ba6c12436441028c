"""Fixtures for the numba bridge tests.

Everything goes through the public API a user calls: :func:`enzyme_py.autodiff` and
:func:`enzyme_py.gradient` on the plain Python function (or numba dispatcher), which lower it
with numba, parse the plain-ABI module with the libLLVM/LLVMEnzyme that ``enzyme_artifacts``
resolves, and differentiate its entry.  Lowerings and their modules are cached for the whole
session (one per function and argument layout).

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
    """Call the public API on Python functions with per-argument defaults the tests share."""

    def entry(self, f: Callable[..., Any], args: Sequence[object]) -> tuple[Any, Any]:
        """(Lowered, enzyme_py.Function of its entry) for *f* at the primal *args* (for the
        tests that look at the lowering itself)."""
        from enzyme_py._numba import entry_function, lower

        low = lower(f, args)
        return low, entry_function(low)

    def call(self, f: Callable[..., Any], *args: object) -> Any:
        """The primal through the compiled entry (ForwardWithPrimal, Const return)."""
        import enzyme_py as ez

        (primal,) = ez.autodiff(ez.ForwardWithPrimal, f, ez.Const, *args)
        return primal

    def reverse(self, f: Callable[..., Any], *args: object, active: Sequence[bool] | None = None,
                seeds: dict[int, np.ndarray[Any, Any]] | None = None, primal: bool = False) -> Any:
        """Reverse mode: one entry per argument (float, gradient array, or None).

        Float scalars are Active and float arrays Duplicated with a zero shadow unless
        *active* says otherwise.  For a function returning None, *seeds* maps an output
        array's position to its seed (the cotangent); the return activity ``Active`` is then
        taken as ``Const`` by enzyme_py.
        """
        import enzyme_py as ez

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
        mode = ez.ReverseWithPrimal if primal else ez.Reverse
        res = ez.autodiff(mode, f, ez.Active, *annotated)
        out = [shadows[i] if isinstance(a, np.ndarray) else res[0][i] for i, a in enumerate(args)]
        return (out, res[1]) if primal else out

    def forward(self, f: Callable[..., Any], args: Sequence[object], tangents: Sequence[object]) -> Any:
        """Forward mode: the directional derivative of the return along *tangents*
        (None entries: constant), or, for a function returning None, the list of tangent
        arrays (outputs carry their tangent)."""
        import enzyme_py as ez

        shadows = [np.array(t, copy=True) if isinstance(t, np.ndarray) else t for t in tangents]
        annotated = [a if t is None else ez.Duplicated(a, t) for a, t in zip(args, shadows)]
        res = ez.autodiff(ez.Forward, f, ez.Duplicated, *annotated)
        if res == ():  # a function returning None: its return activity is taken as Const
            return shadows
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
