"""Tool ``hand``: the hand-written C adjoint at -O2 (see ``native.hand_compiler``), through ctypes."""

from __future__ import annotations

from pathlib import Path

from benchmarks.native import CKernel, build_hand
from benchmarks.problems import Inputs, Problem
from benchmarks.tools import Prepared

__all__ = ["prepare", "setup"]


def setup(threads: int | None) -> None:
    """Nothing to import; the C code is single-threaded."""
    del threads


def prepare(problem: Problem, inputs: Inputs, workdir: Path) -> Prepared:
    """Compile the adjoint into ``workdir`` and bind it."""
    kernel = CKernel(problem, inputs, build_hand(problem, workdir))
    return kernel_prepared(kernel)


def kernel_prepared(kernel: CKernel) -> Prepared:
    """A :class:`Prepared` over a bound C kernel (shared with ``enzyme_opt``)."""
    scalar = not kernel.shadows
    return Prepared(
        primal=kernel.bound_primal(),
        gradient=kernel.bound_gradient(),
        gradient_value=kernel.gradient_value,
        latency=kernel.gradient_function() if scalar else None,
    )
