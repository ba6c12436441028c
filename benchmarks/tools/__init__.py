"""The tools being compared, and the interface each implements inside a benchmark child.

A tool module defines two functions:

* ``setup(threads: int | None) -> None`` — import the tool's framework and, when ``threads`` is
  an int, restrict it to that many threads (``None``: the framework's default). The child times
  this call as the import time.
* ``prepare(problem, inputs, workdir) -> Prepared`` — build whatever the tool needs for one
  problem instance (compile, trace, load). The child times ``prepare`` plus the first gradient as
  the time to the first gradient.

Tool modules are imported only in the child that runs them; this module imports none of them.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.problems import Array

__all__ = ["TOOLS", "Prepared", "Tool", "get_tool"]


@dataclass(frozen=True)
class Prepared:
    """One problem instance ready to run under one tool.

    ``primal`` and ``gradient`` evaluate at the fixed inputs and block until done (asynchronous
    frameworks wait for the result). ``gradient_value`` returns the gradient as float64 NumPy
    arrays, one per active argument. ``latency`` (scalar problems only) takes a Python float and
    returns the derivative as a Python float: the cost of calling the gradient from Python.
    ``latencies``: other ways of calling it, timed the same way (e.g. ``"autodiff"``,
    ``"prepared"``), each checked to return the same derivative as ``latency``.
    """

    primal: Callable[[], object]
    gradient: Callable[[], object]
    gradient_value: Callable[[], tuple[Array, ...]]
    latency: Callable[[float], float] | None = None
    latencies: dict[str, Callable[[float], float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Tool:
    """A tool: its name in tables, what it is, what must be importable, whether its runtime
    uses several threads (then a run with the default thread count is reported too), whether
    ``--quick`` includes it by default, the problems it is not run on, with the reason, and
    whether it has an on-disk cache (``warm_start``: each case runs with an empty private
    ``ENZYME_PY_CACHE_DIR``, then a second child with the filled one times the first gradient
    again)."""

    name: str
    description: str
    module: str
    requires: tuple[str, ...] = ()
    threaded: bool = False
    quick: bool = True
    skip: tuple[tuple[str, str], ...] = ()
    warm_start: bool = False

    def skip_reason(self, problem_id: str) -> str | None:
        """Why this tool is not run on ``problem_id`` (a measured limitation), or ``None``."""
        return dict(self.skip).get(problem_id)

    def missing(self) -> list[str]:
        """The required top-level modules that cannot be found (without importing them)."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def load(self) -> ModuleType:
        """Import the tool's module (in the child)."""
        return importlib.import_module(self.module)


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool("hand", "hand-written C adjoint, clang-15 (or CC) -O2, ctypes", "benchmarks.tools.hand"),
        Tool("enzyme_opt", "Enzyme via clang-15 + opt-15 plugin, shared library, ctypes",
             "benchmarks.tools.enzyme_opt", ("enzyme_artifacts",),
             skip=(("P4N", ("its shared library would need a BLAS exporting the plain CBLAS "
                            "names, which the BLAS of this environment (SciPy's) does not")),)),
        Tool("enzyme_py_c", "enzyme_py on the C source (Module.from_c + gradient)",
             "benchmarks.tools.enzyme_py_c", ("enzyme_py",), warm_start=True),
        Tool("enzyme_py_numba", "enzyme_py on the Numba form (@enzyme_py.jit + .grad)",
             "benchmarks.tools.enzyme_py_numba", ("enzyme_py", "numba"), warm_start=True),
        Tool("jax", "JAX jit(grad), CPU", "benchmarks.tools.jax_tool", ("jax",), threaded=True),
        Tool("torch", "PyTorch eager autograd, CPU", "benchmarks.tools.torch_tool", ("torch",),
             threaded=True),
        Tool("torch_compile", "PyTorch torch.compile (inductor) + autograd, CPU",
             "benchmarks.tools.torch_compile", ("torch",), threaded=True, quick=False,
             skip=(("P5", ("compiling the 1000 unrolled RK4 steps did not finish within 400 s "
                          "on the 2-core benchmark machine")),)),
    )
}
"""Every tool, by name, in table order."""


def get_tool(name: str) -> Tool:
    """The tool called ``name``; ValueError listing the known ones."""
    try:
        return TOOLS[name]
    except KeyError:
        raise ValueError(f"unknown tool {name!r}; choose from {', '.join(TOOLS)}") from None
