"""The C++ and OpenMP runtimes for JIT-compiled code, and C++ names.

:func:`cxx_runtime` loads the C++ standard library (libstdc++, and libgcc_s for
unwinding) ``RTLD_GLOBAL`` once, so that the JIT's process symbol generator resolves
``std::`` functions, ``operator new`` and the exception runtime.  :func:`demangle` turns
an Itanium-mangled name (``_ZN2ns1fEd``) into its C++ spelling (``ns::f(double)``) with
the runtime's own ``__cxa_demangle`` — the demangler the compiler's runtime ships with,
the same one ``c++filt`` and the ``cxxfilt`` package call; no extra dependency, and
libLLVM's demangler is not reachable from C (``llvm::itaniumDemangle`` is C++ only and
changed its signature between LLVM majors).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
from typing import Any

from ..errors import LibraryError

__all__ = ["cxx_runtime", "demangle", "openmp_runtime"]

_lock = threading.Lock()
_CANDIDATES = ("libstdc++.so.6", "libc++.so.1")


@functools.lru_cache(maxsize=1)
def cxx_runtime() -> ctypes.CDLL:
    """The C++ runtime, loaded ``RTLD_GLOBAL`` (once); :class:`LibraryError` when none
    can be loaded."""
    with _lock:
        errors = []
        for name in (*_CANDIDATES, ctypes.util.find_library("stdc++")):
            if not name:
                continue
            try:
                lib = ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
            except OSError as e:
                errors.append(str(e))
                continue
            for extra in ("libgcc_s.so.1", "libm.so.6"):
                try:
                    ctypes.CDLL(extra, mode=ctypes.RTLD_GLOBAL)
                except OSError:
                    pass
            return lib
        raise LibraryError(
            "no C++ runtime could be loaded for C++ code ("
            + "; ".join(errors)
            + "); install libstdc++6 (Debian: `apt-get install libstdc++6`)"
        )


@functools.lru_cache(maxsize=4)
def openmp_runtime(llvm_major: int) -> ctypes.CDLL | None:
    """LLVM's OpenMP runtime (``libomp``, Debian's ``libomp-N-dev``/``libomp5-N``)
    loaded ``RTLD_GLOBAL`` for code compiled with ``-fopenmp``, or None when it is not
    installed (the JIT then names the ``__kmpc_*`` functions it cannot find)."""
    for name in (f"/usr/lib/llvm-{llvm_major}/lib/libomp.so.5", "libomp.so.5", "libomp.so"):
        try:
            return ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue
    return None


def _demangler() -> Any:
    fn = cxx_runtime().__cxa_demangle
    fn.restype = ctypes.c_void_p
    fn.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
    return fn


_free = ctypes.CDLL(None).free
_free.argtypes = [ctypes.c_void_p]
_free.restype = None


@functools.lru_cache(maxsize=4096)
def demangle(name: str) -> str | None:
    """The C++ spelling of the Itanium-mangled ``name``, or None when ``name`` is not a
    mangled C++ name.

    >>> demangle("_ZN2ns1fEd")
    'ns::f(double)'
    >>> demangle("square") is None
    True
    """
    if not name.startswith("_Z"):
        return None
    status = ctypes.c_int(0)
    out = _demangler()(name.encode(), None, None, ctypes.byref(status))
    if status.value != 0 or not out:
        return None
    try:
        return ctypes.string_at(out).decode("utf-8", "replace")
    finally:
        _free(out)
