"""The problems as PyTorch functions (imports torch: only the ``torch`` tools import this module).

Each function takes the arguments of :attr:`benchmarks.problems.Inputs.args` in order, arrays as
float64 tensors and sizes as Python ints. Arrays are used whole (vectorised) where the C form
loops, with the same per-element arithmetic; P5 runs its RK4 steps on 0-d tensors in a Python loop,
which is what eager autograd does with such code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["FORMS"]


def p1_scalar(x: Any) -> Any:
    return torch.sin(x) * x + torch.exp(x)


def p2_rosenbrock(x: Any, n: int) -> Any:
    del n
    t = x[1:] - x[:-1] * x[:-1]
    u = 1.0 - x[:-1]
    return torch.sum(100.0 * t * t + u * u)


def p3_logsumexp(x: Any, n: int) -> Any:
    del n
    m = torch.max(x)
    return m + torch.log(torch.sum(torch.exp(x - m)))


def p4_mlp(w1: Any, w2: Any, xs: Any, y: Any, batch: int, nin: int, nh: int) -> Any:
    del nin, nh
    out = torch.tanh(xs @ w1) @ w2
    r = out - y
    return torch.sum(r * r) / batch


def p5_lorenz(x0: Any, steps: int) -> Any:
    sigma, rho, beta, dt = 10.0, 28.0, 8.0 / 3.0, 0.01
    x, y, z = x0[0], x0[1], x0[2]
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
        x, y, z = (
            x + (dt / 6.0) * (k1x + 2.0 * k2x + 2.0 * k3x + k4x),
            y + (dt / 6.0) * (k1y + 2.0 * k2y + 2.0 * k3y + k4y),
            z + (dt / 6.0) * (k1z + 2.0 * k2z + 2.0 * k3z + k4z),
        )
    return x


FORMS: dict[str, Callable[..., Any]] = {
    "P1": p1_scalar,
    "P2": p2_rosenbrock,
    "P3": p3_logsumexp,
    "P4": p4_mlp,
    "P4N": p4_mlp,  # the array frameworks' P4 already is the NumPy form
    "P5": p5_lorenz,
}
"""The PyTorch form of each problem, by problem id."""
