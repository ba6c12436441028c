"""Building the problems' C into shared libraries and calling them through ctypes.

Two builds:

* :func:`build_hand` — the hand-written adjoint (which includes the primal) at ``-O2 -shared
  -fPIC`` with :func:`hand_compiler` (``CC``, else clang-15, else ``cc``);
* :func:`build_enzyme` — the Enzyme driver through clang-N, ``opt-N`` with the Enzyme plugin and
  a link back to a shared library (see its docstring for the pipeline and why it looks like that).

:class:`CKernel` binds a built library's primal and gradient to Python by the calling convention
described in :mod:`benchmarks.problems`.

Environment: ``CC`` (hand build compiler, default clang-15, else ``cc``); ``BENCH_CLANG`` / ``BENCH_OPT``
(clang and opt of the plugin's LLVM major, default ``clang-N`` / ``opt-N`` on ``PATH``, else
``/usr/lib/llvm-N/bin``).
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.problems import Array, Inputs, Problem

__all__ = [
    "BuildError",
    "CKernel",
    "build_enzyme",
    "build_hand",
    "find_llvm_tool",
    "hand_compiler",
]


class BuildError(RuntimeError):
    """A compiler or ``opt`` step failed; the message holds the command and its output."""


def _run(cmd: Sequence[str]) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        how = f"exit status {proc.returncode}" if proc.returncode > 0 else (
            f"signal {-proc.returncode}")
        raise BuildError(
            f"{' '.join(cmd)} failed ({how}):\n{(proc.stderr or proc.stdout).strip()[-4000:]}"
        )


def find_llvm_tool(name: str, major: int) -> Path:
    """``name-major`` on PATH, else ``/usr/lib/llvm-major/bin/name``; BuildError when absent.

    ``BENCH_CLANG`` / ``BENCH_OPT`` name the clang / opt to use instead.
    """
    env = {"clang": "BENCH_CLANG", "opt": "BENCH_OPT"}.get(name)
    if env and os.environ.get(env):
        return Path(os.environ[env])
    found = shutil.which(f"{name}-{major}")
    if found:
        return Path(found)
    candidate = Path(f"/usr/lib/llvm-{major}/bin/{name}")
    if candidate.is_file():
        return candidate
    raise BuildError(
        f"{name}-{major} was not found on PATH nor in /usr/lib/llvm-{major}/bin; install "
        f"LLVM {major} (Debian: apt-get install clang-{major} llvm-{major}) or set {env}"
    )


def hand_compiler() -> str:
    """The C compiler for the hand-written adjoints: ``CC`` when set, else clang-15 when found
    (the compiler of the ``enzyme_opt`` path, so that ``grad/hand`` measures differentiation and
    not a difference between compilers: GCC 12 at -O2 leaves P4's loops scalar and is about 4x
    slower there), else ``cc``."""
    if os.environ.get("CC"):
        return os.environ["CC"]
    try:
        return str(find_llvm_tool("clang", 15))
    except BuildError:
        return "cc"


#: The CBLAS functions the problems' C forms call.
CBLAS_NAMES = ("cblas_dgemm", "cblas_dgemv")


def blas_flags() -> list[str]:
    """Compiler and linker flags that link C calling CBLAS against the BLAS enzyme_py uses
    (:mod:`enzyme_py._native.blas`: SciPy's OpenBLAS unless ``ENZYME_PY_BLAS`` says
    otherwise), with its symbol prefix (``scipy_``) mapped by ``-D``: the hand adjoint and
    enzyme_py then run the same BLAS code."""
    from enzyme_py._native import blas

    found = blas.candidates()
    if not found:
        raise BuildError("no BLAS library was found for the CBLAS problems (pip install scipy)")
    source, path = found[0]
    lib = blas._load(source, path)
    defines = [f"-D{n}={lib.prefix}{n}" for n in CBLAS_NAMES if lib.prefix]
    return [*defines, str(path), f"-Wl,-rpath,{path.parent}"]


def build_hand(problem: Problem, out_dir: Path) -> Path:
    """Compile ``problem``'s hand-written adjoint with ``<hand_compiler()> -O2 -shared -fPIC``
    (and :func:`blas_flags` for a problem calling CBLAS); the library path."""
    out = out_dir / f"{problem.stem}_hand.so"
    extra = blas_flags() if problem.blas else []
    _run([hand_compiler(), "-O2", "-shared", "-fPIC", "-o", str(out),
          str(problem.adjoint_source), *extra, "-lm"])
    return out


def build_enzyme(problem: Problem, out_dir: Path, plugin: Path, major: int = 15) -> Path:
    """Differentiate ``problem``'s Enzyme driver with clang + opt + the plugin; the library path.

    Pipeline (each a separate process, as a C user of Enzyme would run it):

    1. ``clang -O2 -fno-math-errno -Xclang -disable-llvm-optzns -emit-llvm``: front end only.
       ``-fno-math-errno`` because errno-setting ``tanh`` declarations clash with the attributes
       Enzyme adds and the verifier rejects the module.
    2. ``opt --disable-loop-unrolling -vectorize-loops=false -vectorize-slp=false
       -passes=default<O2>``: optimise before AD (it matters on long chains such as P5) without
       unrolling, which can trip an Enzyme assertion, and without vectorising; nothing is left
       on the loops, so step 4 unrolls and vectorises freely.
    3. ``opt -load-pass-plugin=<plugin> -passes=enzyme``: the differentiation.
    4. ``opt -passes=default<O2>``: optimise the derivative (mandatory for speed).
    5. ``clang -O2 -shared -fPIC``: code generation for generic x86-64 (no host-specific
       alignment trap) and link.
    """
    clang = str(find_llvm_tool("clang", major))
    opt = str(find_llvm_tool("opt", major))
    stem = out_dir / f"{problem.stem}_enzyme"
    front, pre, ad, post = (stem.with_suffix(s) for s in (".bc", ".pre.bc", ".ad.bc", ".post.bc"))
    lib = stem.with_suffix(".so")
    _run([clang, "-O2", "-fno-math-errno", "-fPIC", "-Xclang", "-disable-llvm-optzns",
          "-emit-llvm", "-c", "-o", str(front), str(problem.enzyme_source)])
    _run([opt, "--disable-loop-unrolling", "-vectorize-loops=false", "-vectorize-slp=false",
          "-passes=default<O2>", str(front), "-o", str(pre)])
    _run([opt, f"-load-pass-plugin={plugin}", "-passes=enzyme", str(pre), "-o", str(ad)])
    _run([opt, "-passes=default<O2>", str(ad), "-o", str(post)])
    _run([clang, "-O2", "-shared", "-fPIC", str(post), "-o", str(lib), "-lm"])
    return lib


def _ctype(arg: object) -> type[ctypes._SimpleCData[Any]]:
    if isinstance(arg, np.ndarray):
        return ctypes.c_void_p
    if isinstance(arg, float):
        return ctypes.c_double
    if isinstance(arg, int):
        return ctypes.c_long
    raise TypeError(f"no C type for a {type(arg).__name__} argument")


def _cvalue(arg: object) -> object:
    if isinstance(arg, np.ndarray):
        if arg.dtype != np.float64 or not arg.flags.c_contiguous:
            raise TypeError("C kernels take C-contiguous float64 arrays")
        return arg.ctypes.data
    return arg


@dataclass
class CKernel:
    """A problem's primal and gradient in one shared library, called through ctypes.

    The library stays loaded for the life of the object. Pointers to the inputs are taken once;
    the inputs (and the gradient buffers this object owns) must outlive it.
    """

    problem: Problem
    inputs: Inputs
    library: Path

    def __post_init__(self) -> None:
        self._lib = ctypes.CDLL(str(self.library))
        args = self.inputs.args
        self._primal = getattr(self._lib, self.problem.primal_symbol)
        self._primal.restype = ctypes.c_double
        self._primal.argtypes = [_ctype(a) for a in args]
        self._cargs = tuple(_cvalue(a) for a in args)
        active = self.inputs.active_args()
        self._scalar = all(not isinstance(a, np.ndarray) for a in active)
        self._grad = getattr(self._lib, self.problem.gradient_symbol)
        if self._scalar:
            if len(active) != 1:
                raise TypeError("a scalar gradient has exactly one active argument")
            self._grad.restype = ctypes.c_double
            self._grad.argtypes = self._primal.argtypes
            self.shadows: tuple[Array, ...] = ()
            self._gargs = self._cargs
        else:
            if not all(isinstance(a, np.ndarray) for a in active):
                raise TypeError("array gradients need every active argument to be an array")
            self.shadows = tuple(np.zeros_like(a) for a in active)
            self._grad.restype = None
            self._grad.argtypes = self._primal.argtypes + [ctypes.c_void_p] * len(self.shadows)
            self._gargs = self._cargs + tuple(s.ctypes.data for s in self.shadows)

    def primal(self) -> float:
        """The primal at the fixed inputs."""
        return float(self._primal(*self._cargs))

    def gradient(self) -> object:
        """The gradient at the fixed inputs: a float (scalar problem) or ``None`` (written to
        :attr:`shadows`)."""
        return self._grad(*self._gargs)

    def bound_primal(self) -> Callable[[], object]:
        """:meth:`primal` with no Python frame in between (the ctypes call with its arguments
        bound), for timing sub-microsecond calls."""
        return functools.partial(self._primal, *self._cargs)

    def bound_gradient(self) -> Callable[[], object]:
        """:meth:`gradient` with no Python frame in between, for timing."""
        return functools.partial(self._grad, *self._gargs)

    def gradient_at(self, x: float) -> float:
        """The scalar gradient at ``x``."""
        return float(self._grad(x))

    def gradient_function(self) -> Callable[[float], float]:
        """The scalar gradient as the bare ctypes function (float in, float out): P1's
        per-call latency path, as a user would call it."""
        if not self._scalar:
            raise TypeError(f"{self.problem.id} has no scalar gradient")
        return self._grad  # type: ignore[no-any-return]

    def gradient_value(self) -> tuple[Array, ...]:
        """A fresh copy of the gradient, one float64 array per active argument."""
        out = self.gradient()
        if self._scalar:
            return (np.asarray(out, dtype=np.float64),)
        return tuple(s.copy() for s in self.shadows)

    def primal_at(self, args: tuple[object, ...]) -> float:
        """The primal at other arguments of the same shapes (used by finite differences)."""
        return float(self._primal(*(_cvalue(a) for a in args)))
