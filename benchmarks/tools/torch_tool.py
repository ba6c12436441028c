"""Tool ``torch``: PyTorch eager autograd on the CPU in float64."""

from __future__ import annotations

from pathlib import Path

from benchmarks.problems import Inputs, Problem
from benchmarks.tools import Prepared
from benchmarks.tools._torch_common import prepared, setup_threads

__all__ = ["prepare", "setup"]


def setup(threads: int | None) -> None:
    """Import torch and set its thread counts (``None``: torch's default)."""
    setup_threads(threads)


def prepare(problem: Problem, inputs: Inputs, workdir: Path) -> Prepared:
    """Wrap the eager torch form."""
    del workdir
    from benchmarks.problems.torch_forms import FORMS

    return prepared(FORMS[problem.id], inputs)
