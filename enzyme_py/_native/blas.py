"""The optimised BLAS that JIT-compiled code calls, found and loaded on first use.

Code compiled by enzyme_py calls BLAS by its standard names: the CBLAS interface
(``cblas_dgemm``, ``cblas_ddot``, ... with 32-bit ``int`` sizes, as ``<cblas.h>``
declares them) and the Fortran interface (``dgemm_``, ``dlacpy_``, ...).  Enzyme
recognises those names and differentiates them with its built-in BLAS rules; its
derivatives call more of them.  :func:`resolve` gives the JIT the address of each such
name in one optimised library:

1. ``ENZYME_PY_BLAS``: the path of a shared library that exports the CBLAS and Fortran
   names (an OpenBLAS, BLIS or MKL build with a 32-bit integer interface), plainly or
   with the ``scipy_`` prefix of SciPy's builds;
2. otherwise SciPy's own OpenBLAS (``scipy.libs/libscipy_openblas*.so``, LP64): the very
   library numba's ``np.dot`` reaches through ``scipy.linalg.cython_blas``, so a Python
   function runs the same BLAS code, on the same threads, as it does in numba; numba
   needs SciPy for ``np.dot`` anyway;
3. otherwise the ``scipy-openblas32`` package (the same OpenBLAS build as a wheel of its
   own: ``pip install scipy-openblas32``).

Why not NumPy's own OpenBLAS (always installed with NumPy): it is the ILP64 build
(64-bit integers, symbols ending in ``64_``), which would not match the ``int``
arguments of ``cblas_*`` calls written in C.

Threads: OpenBLAS's thread pool is the library's own.  ``OPENBLAS_NUM_THREADS`` (read
when the library is loaded) or, at any time, ``threadpoolctl``::

    from threadpoolctl import threadpool_limits
    with threadpool_limits(1, user_api="blas"):
        g = enzyme_py.gradient(f, x)

set it; :func:`set_num_threads` / :func:`get_num_threads` do the same without
threadpoolctl.

Invariants: nothing is loaded before a compiled object asks for a BLAS name (through
:func:`resolve`, called by the JIT's symbol generator); the library is loaded once per
process (``RTLD_LOCAL``: its names are reached only through :func:`resolve`).
"""

from __future__ import annotations

import ctypes
import functools
import glob
import importlib.util
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from enzyme_artifacts import _env

from ..errors import LibraryError

__all__ = [
    "BlasLibrary",
    "get_num_threads",
    "is_blas_name",
    "library",
    "resolve",
    "set_num_threads",
]

#: BLAS and LAPACK routines (without the type letter) the JIT resolves.
_ROUTINES = (
    "dot", "axpy", "scal", "copy", "swap", "nrm2", "asum", "gemv", "gemm", "ger", "symv",
    "symm", "syrk", "syr2k", "trmv", "trmm", "trsv", "trsm", "spmv", "spr2", "lacpy",
    "lascl", "potrf", "potrs", "trtrs", "lapmt",
)
#: ``cblas_ddot``, ``ddot_``, ``ddot``: (prefix, type, routine, suffix).
_NAME = re.compile(r"^(cblas_)?([sd])(" + "|".join(_ROUTINES) + r")(_?)$")
_THREAD_FUNCTIONS = ("openblas_set_num_threads", "openblas_get_num_threads")


def is_blas_name(name: str) -> bool:
    """Whether ``name`` is a BLAS/LAPACK name the JIT resolves to the loaded BLAS.

    >>> is_blas_name("cblas_dgemm"), is_blas_name("dgemm_"), is_blas_name("dgemm_64_")
    (True, True, False)
    """
    m = _NAME.match(name)
    if m is None:
        return False
    # ``cblas_<t><routine>`` or Fortran's ``<t><routine>_``
    return bool(m.group(1)) != bool(m.group(4))


@dataclass(frozen=True)
class BlasLibrary:
    """The loaded BLAS: its path, the prefix of its exported names, where it was found."""

    path: Path
    prefix: str
    source: str
    handle: ctypes.CDLL

    def address(self, name: str) -> int | None:
        """The address of the routine ``name`` (a standard name), or None."""
        for candidate in (self.prefix + name, name):
            try:
                fn = getattr(self.handle, candidate)
            except AttributeError:
                continue
            return ctypes.cast(fn, ctypes.c_void_p).value
        return None


_lock = threading.Lock()
_loaded: BlasLibrary | None = None


def _scipy_bundled() -> Path | None:
    spec = importlib.util.find_spec("scipy")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))).parent
    found = sorted(glob.glob(str(root / "scipy.libs" / "libscipy_openblas*.so*")))
    # the LP64 build; an ILP64 one would end in 64_
    found = [f for f in found if "openblas64" not in Path(f).name]
    return Path(found[0]) if found else None


def _scipy_openblas32() -> Path | None:
    if importlib.util.find_spec("scipy_openblas32") is None:
        return None
    import scipy_openblas32

    lib_dir = Path(scipy_openblas32.get_lib_dir())
    found = sorted(glob.glob(str(lib_dir / "libscipy_openblas*.so*")))
    return Path(found[0]) if found else None


def candidates() -> list[tuple[str, Path]]:
    """Where the BLAS would come from, in order: ``(source, path)`` of each candidate
    that exists (without loading any)."""
    out: list[tuple[str, Path]] = []
    env = _env.path("ENZYME_PY_BLAS")
    if env is not None:
        out.append(("ENZYME_PY_BLAS", env))
    for source, find in (("SciPy's OpenBLAS", _scipy_bundled), ("scipy-openblas32", _scipy_openblas32)):
        path = find()
        if path is not None:
            out.append((source, path))
    return out


def _load(source: str, path: Path) -> BlasLibrary:
    try:
        handle = ctypes.CDLL(str(path), mode=os.RTLD_LOCAL | os.RTLD_NOW)
    except OSError as e:
        raise LibraryError(f"the BLAS library {path} ({source}) could not be loaded: {e}") from e
    for prefix in ("", "scipy_"):
        if hasattr(handle, prefix + "cblas_dgemm") and hasattr(handle, prefix + "dgemm_"):
            return BlasLibrary(path, prefix, source, handle)
    raise LibraryError(
        f"the BLAS library {path} ({source}) exports neither cblas_dgemm nor scipy_cblas_dgemm "
        "(with dgemm_): it is not a BLAS with CBLAS and Fortran interfaces of 32-bit integers"
    )


def library() -> BlasLibrary:
    """The BLAS of this process, loaded on first use; :class:`LibraryError` when there is
    none (the message says how to get one)."""
    global _loaded
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is None:
            found = candidates()
            if not found:
                raise LibraryError(
                    "the code calls BLAS, and no BLAS library was found: install SciPy "
                    "(pip install scipy) or scipy-openblas32 (pip install scipy-openblas32), "
                    "or set ENZYME_PY_BLAS to a shared library with CBLAS and Fortran BLAS of "
                    "32-bit integers"
                )
            _loaded = _load(*found[0])
    return _loaded


def loaded() -> BlasLibrary | None:
    """The BLAS if it was loaded already, else None (loads nothing)."""
    return _loaded


def resolve(name: str) -> int | None:
    """The address of the BLAS routine ``name`` (a standard CBLAS or Fortran name), or
    None when ``name`` is not a BLAS name; loads the library on first use."""
    if not is_blas_name(name):
        return None
    return library().address(name)


@functools.lru_cache(maxsize=1)
def _thread_api() -> tuple[object, object] | None:
    lib = library()
    try:
        set_fn = getattr(lib.handle, lib.prefix + _THREAD_FUNCTIONS[0])
        get_fn = getattr(lib.handle, lib.prefix + _THREAD_FUNCTIONS[1])
    except AttributeError:
        return None
    set_fn.argtypes, set_fn.restype = [ctypes.c_int], None
    get_fn.argtypes, get_fn.restype = [], ctypes.c_int
    return set_fn, get_fn


def set_num_threads(n: int) -> None:
    """Set the number of threads of the BLAS (an OpenBLAS); loads it if needed."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the number of BLAS threads must be a positive int, got {n!r}")
    api = _thread_api()
    if api is None:
        raise LibraryError(f"the BLAS {library().path} has no openblas_set_num_threads; use threadpoolctl")
    api[0](n)  # type: ignore[operator]


def get_num_threads() -> int:
    """The number of threads of the BLAS (an OpenBLAS); loads it if needed."""
    api = _thread_api()
    if api is None:
        raise LibraryError(f"the BLAS {library().path} has no openblas_get_num_threads; use threadpoolctl")
    return int(api[1]())  # type: ignore[operator]
