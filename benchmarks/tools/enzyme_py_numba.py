"""Tool ``enzyme_py_numba``: enzyme_py on the problem's Numba form, in-process.

The Python function of :mod:`benchmarks.problems.numba_forms` is wrapped with
``enzyme_py.jit``; the primal is numba's own compiled function, the gradient is ``.grad`` (the
lowering of the function through numba, Enzyme and the JIT happen in the first call, which is
part of the time to the first gradient). Active arrays become ``Duplicated`` with a fresh zero
shadow, every other argument is ``Const``, exactly as a user writes ``f.grad(x, Const(y))``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.problems import Array, Inputs, Problem
from benchmarks.tools import Prepared

__all__ = ["prepare", "setup"]


def setup(threads: int | None) -> None:
    """Import enzyme_py and numba (no native Enzyme library is loaded before the first gradient).

    The functions are nopython, non-parallel numba code, so they run on one thread whatever
    *threads* says."""
    del threads
    import numba  # noqa: F401

    from enzyme_py import autodiff, gradient, gradient_function, jit  # noqa: F401


def prepare(problem: Problem, inputs: Inputs, workdir: Path) -> Prepared:
    """Wrap the Numba form with ``enzyme_py.jit`` and bind its primal and ``.grad`` calls."""
    del workdir
    import enzyme_py as ez
    from benchmarks.problems.numba_forms import FORMS

    f = ez.jit(FORMS[problem.id])
    args = inputs.args
    gargs: list[Any] = [a if i in inputs.active else ez.Const(a) for i, a in enumerate(args)]

    def gradient() -> tuple[Any, ...]:
        return f.grad(*gargs)

    def gradient_value() -> tuple[Array, ...]:
        g = gradient()
        return tuple(np.array(g[i], dtype=np.float64) for i in inputs.active)

    latency = None
    latencies: dict[str, Any] = {}
    if len(args) == 1 and isinstance(args[0], float):
        from benchmarks.tools.enzyme_py_c import scalar_latencies

        grad = f.grad
        _, latencies = scalar_latencies(f, args[0])

        def latency(x: float) -> float:
            return grad(x)[0]  # type: ignore[no-any-return]

    return Prepared(primal=lambda: f(*args), gradient=gradient, gradient_value=gradient_value,
                    latency=latency, latencies=latencies)
