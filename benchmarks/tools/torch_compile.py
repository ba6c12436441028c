"""Tool ``torch_compile``: ``torch.compile`` (inductor, static shapes) + autograd on the CPU.

The parent gives every child a fresh, empty ``TORCHINDUCTOR_CACHE_DIR`` so the first gradient
includes a cold compile. Compilation takes tens of seconds per problem here, so ``--quick``
leaves this tool out unless it is asked for by name.
"""

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
    """Wrap the compiled torch form (compilation happens at the first call)."""
    del workdir
    import torch

    from benchmarks.problems.torch_forms import FORMS

    return prepared(torch.compile(FORMS[problem.id], dynamic=False), inputs)
