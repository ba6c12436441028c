"""Tool ``jax``: ``jax.jit(jax.grad(f))`` on the CPU in float64.

Thread pinning happens before JAX is imported (the parent sets ``XLA_FLAGS`` and pins the child
to one CPU), so ``setup`` only imports. Floats and arrays are traced arguments; integer sizes are
static. Timed calls pass arrays already on the device and wait with ``block_until_ready``; the
P1 latency path passes a Python float and converts the result back to one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.problems import Array, Inputs, Problem
from benchmarks.tools import Prepared

__all__ = ["prepare", "setup"]


def setup(threads: int | None) -> None:
    """Import JAX and switch it to float64 (threads are fixed by the environment)."""
    del threads
    from benchmarks.problems import jax_forms

    jax_forms.enable_float64()


def prepare(problem: Problem, inputs: Inputs, workdir: Path) -> Prepared:
    """Jit the primal and the gradient (compilation happens at the first call)."""
    del workdir
    import jax
    import jax.numpy as jnp

    from benchmarks.problems.jax_forms import FORMS

    # Typed here: some JAX releases leave block_until_ready unannotated (an untyped call
    # to strict mypy), others annotate it; without JAX installed it is Any.
    wait: Callable[[Any], Any] = jax.block_until_ready
    form = FORMS[problem.id]
    args = inputs.args
    traced = [i for i, a in enumerate(args) if isinstance(a, np.ndarray | float)]

    def f(*values: Any) -> Any:
        full = list(args)
        for i, v in zip(traced, values, strict=True):
            full[i] = v
        return form(*full)

    argnums = tuple(traced.index(i) for i in inputs.active)
    primal = jax.jit(f)
    grad = jax.jit(jax.grad(f, argnums=argnums))
    device = [jnp.asarray(args[i]) for i in traced]

    def gradient_value() -> tuple[Array, ...]:
        return tuple(np.asarray(g, dtype=np.float64) for g in grad(*device))

    latency = None
    if len(traced) == 1 and isinstance(args[traced[0]], float):
        def latency(x: float) -> float:
            return float(grad(x)[0])

    return Prepared(
        primal=lambda: primal(*device).block_until_ready(),
        gradient=lambda: wait(grad(*device)),
        gradient_value=gradient_value,
        latency=latency,
    )
