"""Tool ``enzyme_py_c``: enzyme_py on the problem's C source, in-process.

``Module.from_c`` compiles the primal; ``enzyme_py.gradient`` differentiates it (active arrays
become ``Duplicated`` with a fresh zero shadow, every other argument is ``Const``) and the first
call compiles the derivative. Timed calls go through ``gradient`` exactly as a user writes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.problems import Array, Inputs, Problem
from benchmarks.tools import Prepared

__all__ = ["prepare", "setup"]


def setup(threads: int | None) -> None:
    """Import enzyme_py (it loads no native library until the first compile)."""
    del threads
    import enzyme_py  # noqa: F401


def prepare(problem: Problem, inputs: Inputs, workdir: Path) -> Prepared:
    """Compile the C primal with ``Module.from_c`` and bind the gradient call."""
    del workdir
    import enzyme_py as ez

    module = ez.Module.from_c(problem.source.read_text(), name=problem.stem)
    f = module.function(problem.primal_symbol)
    args = inputs.args
    gargs: list[Any] = [a if i in inputs.active else ez.Const(a) for i, a in enumerate(args)]

    def gradient() -> tuple[Any, ...]:
        return ez.gradient(ez.Reverse, f, *gargs)

    def gradient_value() -> tuple[Array, ...]:
        g = gradient()
        return tuple(np.array(g[i], dtype=np.float64) for i in inputs.active)

    latency = None
    if len(args) == 1 and isinstance(args[0], float):
        def latency(x: float) -> float:
            return float(ez.gradient(f, x)[0])

    return Prepared(primal=lambda: f(*args), gradient=gradient, gradient_value=gradient_value,
                    latency=latency)
