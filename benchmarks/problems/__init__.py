"""The five benchmark problems P1-P5 and their deterministic inputs.

Every problem exists in several forms with the same arithmetic:

* C, one primal per problem (``<stem>.c``), the hand-written adjoint (``<stem>_adjoint.c``, which
  includes the primal) and the Enzyme driver (``<stem>_enzyme.c``, which calls
  ``__enzyme_autodiff`` on the primal), all in this folder;
* a Numba-compatible Python function (:mod:`benchmarks.problems.numba_forms`);
* JAX and PyTorch functions (:mod:`benchmarks.problems.jax_forms`,
  :mod:`benchmarks.problems.torch_forms`), imported only by the tools that use them.

The C calling convention shared by every C form (and so by every tool reaching C through ctypes):

* the primal ``double <stem>(args...)`` takes the problem's arguments in :attr:`Inputs.args` order:
  a ``float`` is a ``double``, an ``int`` a ``long`` (64-bit), a NumPy array a ``double*``;
* the gradient ``<stem>_grad`` returns ``double`` when the one active argument is a scalar (P1);
  otherwise it returns ``void`` and takes, after the primal's arguments, one output array per active
  argument, which it overwrites (it never accumulates).

Invariants: all data is float64; inputs depend only on ``(problem, size, seed)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "PROBLEMS",
    "PROBLEM_DIR",
    "Array",
    "Inputs",
    "Problem",
    "get_problem",
]

PROBLEM_DIR: Path = Path(__file__).resolve().parent
"""The folder holding the problems' C sources."""

Array = npt.NDArray[np.float64]
"""A float64 NumPy array (every array in the benchmarks)."""

Arg = float | int | Array


@dataclass(frozen=True)
class Inputs:
    """The arguments of one problem instance.

    ``args`` are in C parameter order; ``active`` indexes the arguments the gradient is taken
    with respect to (floats or float64 arrays); every other argument is constant.
    """

    args: tuple[Arg, ...]
    active: tuple[int, ...]

    def active_args(self) -> tuple[Arg, ...]:
        """The differentiated arguments, in ``active`` order."""
        return tuple(self.args[i] for i in self.active)


@dataclass(frozen=True)
class Problem:
    """One benchmark problem.

    ``size`` is the problem's own size parameter (vector length for P2/P3, batch for P4, RK4
    steps for P5, unused for P1); ``quick_size`` is the one ``--quick`` uses.
    ``tolerance`` bounds the relative error ``max|g - g_ref| / max|g_ref|`` that a tool's
    gradient may show against the hand-written adjoint (summation order differs between tools).
    """

    id: str
    stem: str
    title: str
    size: int
    quick_size: int
    tolerance: float
    make: Callable[[int, int], Inputs]
    blas: bool = False
    """The C forms call CBLAS (``cblas_dgemm``, ...): the hand build links a BLAS."""

    @property
    def primal_symbol(self) -> str:
        """The C primal's name."""
        return self.stem

    @property
    def gradient_symbol(self) -> str:
        """The C gradient's name (in both the adjoint and the Enzyme driver)."""
        return f"{self.stem}_grad"

    @property
    def source(self) -> Path:
        """The C primal."""
        return PROBLEM_DIR / f"{self.stem}.c"

    @property
    def adjoint_source(self) -> Path:
        """The hand-written C adjoint (it includes the primal)."""
        return PROBLEM_DIR / f"{self.stem}_adjoint.c"

    @property
    def enzyme_source(self) -> Path:
        """The C driver calling ``__enzyme_autodiff`` (it includes the primal)."""
        return PROBLEM_DIR / f"{self.stem}_enzyme.c"

    def inputs(self, size: int | None = None, seed: int = 0) -> Inputs:
        """Deterministic inputs at ``size`` (default: :attr:`size`)."""
        n = self.size if size is None else size
        if n < 1:
            raise ValueError(f"{self.id}: size must be at least 1, got {n}")
        return self.make(n, seed)


P4_IN = 64
P4_HIDDEN = 128
P4_MAX_HIDDEN = 128  # must match P4_MAX_HIDDEN in p4_mlp.c


def _p1(size: int, seed: int) -> Inputs:
    del size, seed
    return Inputs(args=(0.5,), active=(0,))


def _p2(size: int, seed: int) -> Inputs:
    if size < 2:
        raise ValueError(f"P2: the Rosenbrock sum needs n >= 2, got {size}")
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.5, 1.5, size)
    return Inputs(args=(x, size), active=(0,))


def _p3(size: int, seed: int) -> Inputs:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 3.0, size)
    return Inputs(args=(x, size), active=(0,))


def _p4(size: int, seed: int, nin: int = P4_IN, nh: int = P4_HIDDEN) -> Inputs:
    if not 1 <= nh <= P4_MAX_HIDDEN:
        raise ValueError(f"P4: hidden width must be in 1..{P4_MAX_HIDDEN}, got {nh}")
    rng = np.random.default_rng(seed)
    batch = size
    w1 = rng.normal(0.0, 1.0 / np.sqrt(nin), (nin, nh))
    w2 = rng.normal(0.0, 1.0 / np.sqrt(nh), nh)
    x = rng.normal(0.0, 1.0, (batch, nin))
    y = rng.normal(0.0, 1.0, batch)
    return Inputs(args=(w1, w2, x, y, batch, nin, nh), active=(0, 1))


def _p5(size: int, seed: int) -> Inputs:
    del seed
    return Inputs(args=(np.array([1.0, 1.0, 1.0]), size), active=(0,))


PROBLEMS: dict[str, Problem] = {
    p.id: p
    for p in (
        Problem("P1", "p1_scalar", "sin(x)*x + exp(x) at 0.5", 1, 1, 1e-13, _p1),
        Problem("P2", "p2_rosenbrock", "Rosenbrock, n = 1e6", 1_000_000, 1_000_000, 1e-12, _p2),
        Problem("P3", "p3_logsumexp", "stable logsumexp, n = 1e6", 1_000_000, 1_000_000, 1e-9,
                _p3),
        Problem("P4", "p4_mlp", "MLP 64-128-1, tanh, batch 256, MSE", 256, 256, 1e-10, _p4),
        Problem("P4N", "p4n_mlp_blas", "P4 in matrix products: tanh(X @ W1) @ w2 (NumPy form)",
                256, 256, 1e-10, _p4, blas=True),
        Problem("P5", "p5_lorenz", "Lorenz, 1000 RK4 steps", 1000, 1000, 1e-7, _p5),
    )
}
"""The problems by id, in order."""


def get_problem(problem_id: str) -> Problem:
    """The problem called ``problem_id`` (case-insensitive); ValueError listing the known ones."""
    try:
        return PROBLEMS[problem_id.upper()]
    except KeyError:
        raise ValueError(
            f"unknown problem {problem_id!r}; choose from {', '.join(PROBLEMS)}"
        ) from None
