"""The problems as Numba-compatible Python functions (plain loops, ``math`` functions).

Each function takes the arguments of :attr:`benchmarks.problems.Inputs.args` in order and repeats
the arithmetic of the C primal statement for statement, so that compiled with ``numba.njit`` it
gives the C result up to the compilers' freedom in ordering reductions. The functions are plain
Python too (slow, but usable at small sizes without Numba). P4N is the NumPy form of P4
(matrix products, ``np.tanh`` of a whole array) beside P4's loops. Nothing here imports Numba.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from benchmarks.problems import Array

__all__ = [
    "FORMS",
    "p1_scalar",
    "p2_rosenbrock",
    "p3_logsumexp",
    "p4_mlp",
    "p4_mlp_numpy",
    "p5_lorenz",
]


def p1_scalar(x: float) -> float:
    """P1: sin(x) x + exp(x)."""
    return math.sin(x) * x + math.exp(x)


def p2_rosenbrock(x: Array, n: int) -> float:
    """P2: the Rosenbrock sum over the first ``n`` entries of ``x``."""
    f = 0.0
    for i in range(n - 1):
        t = x[i + 1] - x[i] * x[i]
        u = 1.0 - x[i]
        f += 100.0 * t * t + u * u
    return f


def p3_logsumexp(x: Array, n: int) -> float:
    """P3: max first, then max + log(sum(exp(x - max)))."""
    m = x[0]
    for i in range(1, n):
        m = x[i] if x[i] > m else m  # noqa: FURB136 - the C form's select, kept as is
    s = 0.0
    for i in range(n):
        s += math.exp(x[i] - m)
    return float(m + math.log(s))


def p4_mlp(
    w1: Array,
    w2: Array,
    xs: Array,
    y: Array,
    batch: int,
    nin: int,
    nh: int,
) -> float:
    """P4: mean squared error of tanh(X W1) W2 against y; ``w1`` is (nin, nh), ``xs`` (batch, nin)."""
    loss = 0.0
    h = np.empty(nh)
    for b in range(batch):
        for j in range(nh):
            h[j] = 0.0
        for i in range(nin):
            xi = xs[b, i]
            for j in range(nh):
                h[j] += xi * w1[i, j]
        out = 0.0
        for j in range(nh):
            out += math.tanh(h[j]) * w2[j]
        r = out - y[b]
        loss += r * r
    return loss / batch


def p4_mlp_numpy(
    w1: Array,
    w2: Array,
    xs: Array,
    y: Array,
    batch: int,
    nin: int,
    nh: int,
) -> float:
    """P4N: P4 as NumPy code, the way it is usually written: ``tanh(X @ W1) @ w2``, MSE.
    numba lowers the products to BLAS calls (enzyme_py differentiates them with Enzyme's
    BLAS rules). ``nin`` and ``nh`` are unused (the shapes carry them)."""
    h = np.tanh(xs @ w1)
    r = h @ w2 - y
    return float(np.sum(r * r) / batch)


def p5_lorenz(x0: Array, steps: int) -> float:
    """P5: ``steps`` RK4 steps of the Lorenz system from ``x0``; the final x."""
    sigma = 10.0
    rho = 28.0
    beta = 8.0 / 3.0
    dt = 0.01
    x = x0[0]
    y = x0[1]
    z = x0[2]
    for _ in range(steps):
        k1x = sigma * (y - x)
        k1y = x * (rho - z) - y
        k1z = x * y - beta * z
        x2 = x + 0.5 * dt * k1x
        y2 = y + 0.5 * dt * k1y
        z2 = z + 0.5 * dt * k1z
        k2x = sigma * (y2 - x2)
        k2y = x2 * (rho - z2) - y2
        k2z = x2 * y2 - beta * z2
        x3 = x + 0.5 * dt * k2x
        y3 = y + 0.5 * dt * k2y
        z3 = z + 0.5 * dt * k2z
        k3x = sigma * (y3 - x3)
        k3y = x3 * (rho - z3) - y3
        k3z = x3 * y3 - beta * z3
        x4 = x + dt * k3x
        y4 = y + dt * k3y
        z4 = z + dt * k3z
        k4x = sigma * (y4 - x4)
        k4y = x4 * (rho - z4) - y4
        k4z = x4 * y4 - beta * z4
        x = x + (dt / 6.0) * (k1x + 2.0 * k2x + 2.0 * k3x + k4x)
        y = y + (dt / 6.0) * (k1y + 2.0 * k2y + 2.0 * k3y + k4y)
        z = z + (dt / 6.0) * (k1z + 2.0 * k2z + 2.0 * k3z + k4z)
    return float(x)


FORMS: dict[str, Callable[..., float]] = {
    "P1": p1_scalar,
    "P2": p2_rosenbrock,
    "P3": p3_logsumexp,
    "P4": p4_mlp,
    "P4N": p4_mlp_numpy,
    "P5": p5_lorenz,
}
"""The Numba-compatible form of each problem, by problem id."""
