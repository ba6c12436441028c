"""The numba lowering: a Python function and an argument layout -> one self-contained LLVM
module with a plain C-ABI entry point that Enzyme can differentiate.

Private to :mod:`enzyme_py`; :mod:`enzyme_py.python_functions` turns a :class:`Lowered` into
an :class:`enzyme_py.Function`, which every transform then takes as it takes a C function.
numba is imported on first use, never when :mod:`enzyme_py` is imported.

Flow::

    lower(f, primal values)
      -> numba (nopython) compiles f into a private, never-finalised library
      -> optimised at level 3 with vectorisers and unrolling off (small constant loops unrolled)
      -> entry function with a plain C ABI + allocation shim linked in, the rest pruned
      -> Lowered(ir, entry, symbols, llvm_major, arg_layout, result, qualname, exceptions)

Entry ABI (``lowered.entry``): each scalar argument as its LLVM type; each N-D C-contiguous
array as ``(T* data, i64 n0, ..., i64 nN-1)``; for an array result ``(T* out, i64 out_n0,
...)``, for a tuple result ``(T* out)``; then ``i64* status`` (:data:`STATUS_WORDS` words,
always ``Const``).  It returns a scalar result, else void.  See
:func:`~.assemble.entry_source` for the status words.

Environment: ``NUMBA_BOUNDSCHECK`` (bounds checks raise IndexError through the status
array), and ``ENZYME_ARTIFACTS_LIBRARY`` / ``ENZYME_ARTIFACTS_MANIFEST`` for the
LLVM-major check.
"""

from __future__ import annotations

__all__ = ["STATUS_WORDS", "ArgSpec", "Lowered", "classify", "config_key", "llvm_major", "lower", "raise_from_status"]

import functools
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .assemble import STATUS_WORDS, assemble
from .compile import compile_module
from .runtime import runtime_symbols
from .status import raise_from_status
from .types import ArgSpec, classify, numba_type
from .versions import check_artifact_for_major, llvmlite_major


@dataclass(frozen=True)
class Lowered:
    """A function lowered for one argument layout.

    Attributes:
        ir: the self-contained module, LLVM IR text with typed pointers (llvmlite's dialect).
        entry: name of the plain-ABI entry function in *ir*.
        symbols: symbol name -> absolute address the JIT must resolve (numba runtime helpers
            still called by the code; empty for most functions).
        llvm_major: the LLVM major of llvmlite, which the libLLVM and LLVMEnzyme used must match.
        arg_layout: one :class:`ArgSpec` per Python argument.
        result: ``(kind, dtype, ndim or length)``: kind ``scalar``, ``void``, ``array``, ``tuple``.
        qualname: the Python function's qualified name, for messages.
        exceptions: numba's pickled ``(class, args, location)`` payloads of the exceptions the
            code can raise; ``status[1] == k`` after a call means payload ``k - 1`` was raised.
    """

    ir: str = field(repr=False)
    entry: str
    symbols: Mapping[str, int]
    llvm_major: int
    arg_layout: tuple[ArgSpec, ...]
    result: tuple[str, str, int]
    qualname: str = ""
    exceptions: tuple[bytes, ...] = field(default=(), repr=False)


@functools.cache
def llvm_major() -> int:
    """llvmlite's LLVM major, checked against the artifact manifest (once)."""
    major = llvmlite_major()
    check_artifact_for_major(major)
    return major


def config_key() -> tuple[Any, ...]:
    """numba's settings that change the code lowered (part of every lowering's key).

    Read from numba when it is imported; otherwise from the environment exactly as numba
    will read it (``NUMBA_BOUNDSCHECK`` parsed as an int, None when unset or unparsable),
    so that a lowering found on disk needs no numba import.  A ``.numba_config.yaml`` in
    the working folder (numba reads it too) makes this import numba.
    """
    if "numba.core.config" in sys.modules or os.path.exists(".numba_config.yaml"):
        from numba.core import config

        return (config.BOUNDSCHECK,)
    raw = os.environ.get("NUMBA_BOUNDSCHECK")
    if raw is None:
        return (None,)
    try:
        return (int(raw),)
    except ValueError:
        return (None,)


def lower(func: Callable[..., Any], specs: Sequence[ArgSpec]) -> Lowered:
    """Lower *func* (a plain function or a numba dispatcher) for the argument layout *specs*.

    Raises:
        TypeError: numba cannot type the function in nopython mode.
        enzyme_py.errors.UnsupportedError: a construct the lowering does not handle (named).
        enzyme_artifacts.errors.UnsupportedPlatformError: no Enzyme artifact for llvmlite's
            LLVM major (the message lists the numba/llvmlite releases that would pair).
    """
    major = llvm_major()
    compiled = compile_module(func, [numba_type(spec) for spec in specs])
    ir, entry, needed, exceptions = assemble(compiled, specs)
    symbols = MappingProxyType(dict(runtime_symbols(needed)))
    return Lowered(ir, entry, symbols, major, tuple(specs), compiled.result, compiled.qualname, exceptions)
