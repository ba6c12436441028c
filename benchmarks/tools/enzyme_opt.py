"""Tool ``enzyme_opt``: Enzyme run as a C user runs it (clang-15, opt-15 with the plugin from
``enzyme_artifacts.locate(15)``, a shared library), called through ctypes.

Environment: ``ENZYME_ARTIFACTS_LIBRARY`` and the other ``enzyme_artifacts`` variables choose the
plugin; see :func:`benchmarks.native.build_enzyme` for the compiler pipeline.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.native import CKernel, build_enzyme
from benchmarks.problems import Inputs, Problem
from benchmarks.tools import Prepared
from benchmarks.tools.hand import kernel_prepared

__all__ = ["LLVM_MAJOR", "prepare", "setup"]

LLVM_MAJOR = 15
"""The LLVM major of the plugin and of clang/opt (they must match)."""


def setup(threads: int | None) -> None:
    """Nothing to import; the C code is single-threaded."""
    del threads


def prepare(problem: Problem, inputs: Inputs, workdir: Path) -> Prepared:
    """Locate the plugin, differentiate and build the driver in ``workdir``, bind it."""
    import enzyme_artifacts

    plugin = Path(enzyme_artifacts.locate(LLVM_MAJOR))
    lib = build_enzyme(problem, workdir, plugin, LLVM_MAJOR)
    return kernel_prepared(CKernel(problem, inputs, lib))
