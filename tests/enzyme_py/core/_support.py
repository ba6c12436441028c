"""Numerical helpers shared by the enzyme_py public-API tests.

Central finite differences are the independent check next to each analytic derivative: a
derivative must match both. Step sizes are chosen per dtype so that truncation and rounding
errors stay well under the tolerances used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings

__all__ = [
    "FAST",
    "assert_close",
    "fd_directional",
    "fd_gradient",
    "fd_partial",
]

#: Hypothesis settings for every property test here: bounded, no deadline (the first example may
#: compile), no example database written into the working tree.
FAST = settings(
    deadline=None,
    max_examples=12,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def fd_partial(fun: Callable[..., float], args: Sequence[float], i: int, h: float = 1e-5) -> float:
    """Central difference of ``fun(*args)`` with respect to ``args[i]`` (relative step *h*)."""
    step = h * max(1.0, abs(float(args[i])))
    up = list(args)
    down = list(args)
    up[i] = args[i] + step
    down[i] = args[i] - step
    return (float(fun(*up)) - float(fun(*down))) / (2.0 * step)


def fd_gradient(fun: Callable[[np.ndarray], Any], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central-difference gradient of a scalar function of an array (computed in x's dtype)."""
    g = np.zeros(x.shape, dtype=np.float64)
    for i in range(x.size):
        step = h * max(1.0, abs(float(x[i])))
        up = x.copy()
        down = x.copy()
        up[i] += step
        down[i] -= step
        g[i] = (float(fun(up)) - float(fun(down))) / (float(up[i]) - float(down[i]))
    return g


def fd_directional(
    fun: Callable[[np.ndarray], Any], x: np.ndarray, v: np.ndarray, h: float = 1e-6
) -> np.ndarray:
    """Central difference of ``fun`` (scalar or array valued) at x along the direction v."""
    up = np.asarray(fun(x + h * v), dtype=np.float64)
    down = np.asarray(fun(x - h * v), dtype=np.float64)
    return (up - down) / (2.0 * h)


def assert_close(actual: Any, expected: Any, *, rtol: float = 1e-9, atol: float = 1e-12) -> None:
    """``np.testing.assert_allclose`` that also accepts Python floats."""
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
        rtol=rtol, atol=atol,
    )
