"""Compile-time choices that keep the generated code as fast: the CPU the optimiser and
code generator *tune* for, and the code generator's level for straight-line code.

**Tuning.**
With ``options().host_cpu`` the target machine has this machine's CPU name and features,
as ``-march=native`` does, and LLVM then also takes its cost and scheduling model from that
CPU.  Some of those models make compilation much slower without making the code faster:
the Zen 3/4 models declare a 512-micro-op loop buffer, and LLVM's loop unroller then
unrolls every vectorised loop up to that size (×8 on a sum-of-squares gradient, against ×2
with LLVM's generic x86-64 tuning), which about doubles the time of ``default<O2>`` and of
code generation while the gradients ran no faster (measured on sum of squares and
Rosenbrock, n = 1e6).

:func:`apply_tuning` therefore gives every function defined in a module LLVM's
``"tune-cpu"`` attribute, ``generic`` by default (``options().tune_cpu``): instruction
selection still uses every feature of the host (AVX2, FMA, ...); only the tuning model
changes.  ``tune_cpu="host"`` keeps the host CPU's own tuning (no attribute).  A function
that already names a tuning (clang writes ``"tune-cpu"`` into the IR it emits) keeps it.
It also removes the ``"target-cpu"``/``"target-features"`` clang writes into every
function (``x86-64``, SSE2 only), which otherwise kept a C helper that was not inlined into
the entry point on baseline code (a reverse-mode helper called twice: 1.31 ms without AVX
against 1.11 ms with it, n = 1e6), unless the function asks for a feature the host lacks.

**Straight-line code.** A large part of the fixed cost of compiling a small derivative is
the code generator's own pass pipeline (1.2-1.7 ms for ``x*x`` at level 2, 0.6 ms at level
0, of 3-5 ms in all). :func:`emit_level` picks level 0 for a module whose functions are
each one basic block (no loops, no branches) without calls, of at most
:data:`STRAIGHT_LINE_LIMIT` instructions in all, after optimisation: there the optimised
IR already is the code, and level 0 at most adds a register move or a constant load
(``x*x``'s derivative: ``vmulsd`` by a constant instead of ``vaddsd``; 7.0 ns per call
from a C loop either way). Calls are excluded because level 0 spills around them and does
not merge ``sin`` and ``cos`` of one value into one ``sincos`` call (``sin(x)*x +
exp(x)``'s gradient: 26 ns against 19 ns).
Anything with a loop, a branch or a call keeps ``options().codegen_level``.

**Strict reductions.** A floating-point sum without fast-math flags (``s += exp(x[i])``
in C or Python) may not be reassociated, and LLVM's loop vectoriser leaves such a loop
scalar on x86, with its ``exp`` calls.  :func:`set_llvm_options` turns on LLVM's
``-force-ordered-reductions`` once per process: the vectoriser may then widen the loop and
add the lanes *in order* (``llvm.vector.reduce.fadd`` with a start value, strict), so the
sum is bitwise the scalar loop's while ``exp`` runs as a vector call (P3, logsumexp: the
forward sum of the gradient).  The cost model still decides per loop.

Invariant: :func:`apply_tuning` changes function attributes only, :func:`emit_level`
reads the module, :func:`set_llvm_options` sets libLLVM's options once per process.
"""

from __future__ import annotations

import ctypes
import functools
from ctypes import c_uint

from .handles import ModuleRef
from .library import native
from .transforms import straight_line_size

__all__ = ["LLVM_OPTIONS", "STRAIGHT_LINE_LIMIT", "apply_tuning", "emit_level", "set_llvm_options"]

#: libLLVM command-line options set once per process (see the module docstring).
LLVM_OPTIONS = ("-force-ordered-reductions",)

#: Most instructions (all functions together) of a straight-line module emitted at level 0.
STRAIGHT_LINE_LIMIT = 64

_KEY = b"tune-cpu"
_CPU = b"target-cpu"
_FEATURES = b"target-features"
_FUNCTION_INDEX = 0xFFFFFFFF  # LLVMAttributeFunctionIndex


def apply_tuning(module: ModuleRef, tune_cpu: str, host_features: str | None = None) -> int:
    """Prepare the functions defined in ``module`` for code generation for the host CPU;
    returns the number of functions changed.

    * ``"target-cpu"`` and ``"target-features"`` are removed unless the function asks
      for a feature (``+name``) that ``host_features`` (default: the loaded LLVM's host
      features) disables (``-name``), so the target machine's host CPU applies.  clang writes
      ``"target-cpu"="x86-64"`` (SSE2 only) into every function it emits; a function of
      :meth:`~enzyme_py.Module.from_c` that was not inlined into the entry point (a
      helper called from several places) was otherwise compiled without AVX/FMA.  A
      function asking for a feature the host lacks keeps its attributes.
    * ``"tune-cpu"="<tune_cpu>"`` is added unless the function has one or ``tune_cpu``
      is ``"host"``.
    """
    nat = native()
    lib = nat.llvm
    if host_features is None:
        host_features = nat.features
    lacking = _disabled(host_features)
    attr = None
    if tune_cpu != "host":
        value = tune_cpu.encode()
        attr = lib.LLVMCreateStringAttribute(module.context.handle, _KEY, len(_KEY), value, len(value))
    changed = 0
    fn = lib.LLVMGetFirstFunction(module.handle)
    while fn:
        if not lib.LLVMIsDeclaration(fn):
            touched = _retarget(lib, fn, lacking)
            if attr is not None and not lib.LLVMGetStringAttributeAtIndex(fn, _FUNCTION_INDEX, _KEY, len(_KEY)):
                lib.LLVMAddAttributeAtIndex(fn, _FUNCTION_INDEX, attr)
                touched = True
            changed += touched
        fn = lib.LLVMGetNextFunction(fn)
    return changed


@functools.lru_cache(maxsize=4)
def _disabled(features: str) -> frozenset[str]:
    """The names a feature list disables (``-name``)."""
    return frozenset(f[1:] for f in features.split(",") if f.startswith("-"))


def _retarget(lib: object, fn: int, lacking: frozenset[str]) -> bool:
    """Drop ``fn``'s target CPU and features unless it asks for a feature in ``lacking``
    (those the host's feature list disables)."""
    cpu = lib.LLVMGetStringAttributeAtIndex(fn, _FUNCTION_INDEX, _CPU, len(_CPU))  # type: ignore[attr-defined]
    feats = lib.LLVMGetStringAttributeAtIndex(fn, _FUNCTION_INDEX, _FEATURES, len(_FEATURES))  # type: ignore[attr-defined]
    if not cpu and not feats:
        return False
    if feats:
        size = c_uint()
        text = ctypes.string_at(lib.LLVMGetStringAttributeValue(feats, ctypes.byref(size)), size.value)  # type: ignore[attr-defined]
        wanted = {f[1:] for f in text.decode().split(",") if f.startswith("+")}
        if wanted & lacking:
            return False
    for key in (_CPU, _FEATURES):
        lib.LLVMRemoveStringAttributeAtIndex(fn, _FUNCTION_INDEX, key, len(key))  # type: ignore[attr-defined]
    return True


def emit_level(module: ModuleRef, level: int) -> int:
    """The code generator's level for the optimised ``module``: 0 when every defined
    function is a single basic block without calls and there are at most
    :data:`STRAIGHT_LINE_LIMIT` instructions in all, else ``level``."""
    if level == 0:
        return 0
    return 0 if straight_line_size(module, STRAIGHT_LINE_LIMIT) is not None else level


@functools.lru_cache(maxsize=1)
def set_llvm_options() -> tuple[str, ...]:
    """Set :data:`LLVM_OPTIONS` in the loaded libLLVM (once); the options set."""
    argv = (ctypes.c_char_p * (len(LLVM_OPTIONS) + 1))(b"enzyme_py", *(o.encode() for o in LLVM_OPTIONS))
    native().llvm.LLVMParseCommandLineOptions(len(LLVM_OPTIONS) + 1, argv, None)
    return LLVM_OPTIONS
