"""The problems as JAX functions (imports JAX: only the ``jax`` tool imports this module).

Each function takes the arguments of :attr:`benchmarks.problems.Inputs.args` in order; integer
size arguments are static (the array shapes carry them). Arrays are used whole (vectorised) where
the C form loops, with the same per-element arithmetic; P5 is a ``lax.fori_loop`` over scalar
RK4 steps. Call :func:`enable_float64` before tracing: JAX defaults to float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["FORMS", "enable_float64"]


def enable_float64() -> None:
    """Make JAX compute in float64 (the benchmarks' precision)."""
    # Typed here: some JAX releases leave Config.update unannotated (an untyped call to
    # strict mypy), others annotate it; without JAX installed it is Any.
    update: Callable[[str, object], None] = jax.config.update
    update("jax_enable_x64", True)


def p1_scalar(x: Any) -> Any:
    return jnp.sin(x) * x + jnp.exp(x)


def p2_rosenbrock(x: Any, n: int) -> Any:
    del n
    t = x[1:] - x[:-1] * x[:-1]
    u = 1.0 - x[:-1]
    return jnp.sum(100.0 * t * t + u * u)


def p3_logsumexp(x: Any, n: int) -> Any:
    del n
    m = jnp.max(x)
    return m + jnp.log(jnp.sum(jnp.exp(x - m)))


def p4_mlp(w1: Any, w2: Any, xs: Any, y: Any, batch: int, nin: int, nh: int) -> Any:
    del nin, nh
    out = jnp.tanh(xs @ w1) @ w2
    r = out - y
    return jnp.sum(r * r) / batch


def p5_lorenz(x0: Any, steps: int) -> Any:
    sigma, rho, beta, dt = 10.0, 28.0, 8.0 / 3.0, 0.01

    def step(_: Any, s: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
        x, y, z = s
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
        return (
            x + (dt / 6.0) * (k1x + 2.0 * k2x + 2.0 * k3x + k4x),
            y + (dt / 6.0) * (k1y + 2.0 * k2y + 2.0 * k3y + k4y),
            z + (dt / 6.0) * (k1z + 2.0 * k2z + 2.0 * k3z + k4z),
        )

    x, _, _ = jax.lax.fori_loop(0, steps, step, (x0[0], x0[1], x0[2]))
    return x


FORMS: dict[str, Callable[..., Any]] = {
    "P1": p1_scalar,
    "P2": p2_rosenbrock,
    "P3": p3_logsumexp,
    "P4": p4_mlp,
    "P4N": p4_mlp,  # the array frameworks' P4 already is the NumPy form
    "P5": p5_lorenz,
}
"""The JAX form of each problem, by problem id."""
