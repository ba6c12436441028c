"""Tool ``enzyme_py_c``: enzyme_py on the problem's C source, in-process.

``Module.from_c`` compiles the primal; ``enzyme_py.gradient`` differentiates it (active arrays
become ``Duplicated`` with a fresh zero shadow, every other argument is ``Const``) and the first
call compiles the derivative. Timed calls go through ``gradient`` exactly as a user writes it;
on P1 also ``autodiff`` and a prepared derivative (``gradient_function``), see
:func:`scalar_latencies`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.problems import Array, Inputs, Problem
from benchmarks.tools import Prepared

__all__ = ["prepare", "scalar_latencies", "setup"]


def setup(threads: int | None) -> None:
    """Import enzyme_py and the names used (it loads no native library until the first
    compile; the names are imported lazily, so they are touched here to count as imports)."""
    del threads
    from enzyme_py import Module, autodiff, gradient, gradient_function  # noqa: F401


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
    latencies: dict[str, Any] = {}
    if len(args) == 1 and isinstance(args[0], float):
        latency, latencies = scalar_latencies(f, args[0])

    return Prepared(primal=lambda: f(*args), gradient=gradient, gradient_value=gradient_value,
                    latency=latency, latencies=latencies)


def scalar_latencies(f: Any, x0: float) -> tuple[Any, dict[str, Any]]:
    """The scalar gradient called as a user calls it: ``gradient(f, x)``, and (the
    ``latencies``) ``autodiff(Reverse, f, Active, Active(x))`` (also with the annotation
    built once, outside the timed call: building ``Active(x)`` is a Python object's
    construction) and a prepared derivative ``g = gradient_function(f, x0)``; each a lambda
    returning the float."""
    import enzyme_py as ez

    gradient, autodiff, reverse, active = ez.gradient, ez.autodiff, ez.Reverse, ez.Active
    a0 = active(x0)
    made: list[Any] = []

    def prepared(x: float) -> float:  # made at the first call, after the first gradient
        if not made:
            made.append(ez.gradient_function(f, x0))
            timed = made[0]
            latencies["prepared"] = lambda x: timed(x)[0]
        return made[0](x)[0]  # type: ignore[no-any-return]

    latencies: dict[str, Any] = {
        "autodiff": lambda x: autodiff(reverse, f, active, active(x))[0][0],
        "autodiff, Active(x) built once": lambda x: autodiff(reverse, f, active, a0)[0][0],
        "prepared": prepared,
    }
    return (lambda x: gradient(f, x)[0]), latencies
