"""Finding a shared libLLVM of a given major on this machine.

The Enzyme plugin is a shared library that binds, through its ``DT_NEEDED`` entry, to
a shared libLLVM-N; the frontend loads that libLLVM first (``RTLD_GLOBAL``) and the
plugin after it.  :func:`find_libllvm` answers "which libLLVM-N?" and :func:`search_libllvm`
also says what it tried.

One finder class per operating system (:mod:`.unix`, :mod:`.macos`, :mod:`.windows`),
sharing the interface and the validation loop of :mod:`.api`; :func:`finder` picks one.
The order of the search is documented in each OS module; on Linux:
``ENZYME_ARTIFACTS_LLVM_LIBRARY`` → a libLLVM already loaded in the process →
``llvm-config-N``/``llvm-config`` → ``$CONDA_PREFIX/lib`` → Homebrew ``opt/llvm@N/lib`` →
``/usr/lib/llvm-N/lib`` (and other distribution folders) → the dynamic loader's search.

Results are cached per process, keyed by the major and by the environment variables
the search reads (``ENZYME_ARTIFACTS_LLVM_LIBRARY``, ``PATH``, ``CONDA_PREFIX``,
``HOMEBREW_PREFIX``); :func:`clear_cache` forgets them (tests use it).
"""

from __future__ import annotations

import functools
import sys

from .. import _env
from .api import (
    ENV_LLVM_LIBRARY,
    Attempt,
    Candidate,
    LLVMFinder,
    LLVMLibrary,
    LLVMSearch,
    install_commands,
    install_hint,
)

__all__ = [
    "ENV_LLVM_LIBRARY",
    "Attempt",
    "Candidate",
    "LLVMFinder",
    "LLVMLibrary",
    "LLVMSearch",
    "clear_cache",
    "find_libllvm",
    "finder",
    "install_commands",
    "install_hint",
    "search_libllvm",
]

_ENV_KEYS = (ENV_LLVM_LIBRARY, "PATH", "CONDA_PREFIX", "HOMEBREW_PREFIX")


@functools.lru_cache(maxsize=1)
def finder() -> LLVMFinder:
    """The finder for this operating system."""
    if sys.platform == "darwin":
        from .macos import MacOSLLVMFinder

        return MacOSLLVMFinder()
    if sys.platform == "win32":
        from .windows import WindowsLLVMFinder

        return WindowsLLVMFinder()
    from .unix import UnixLLVMFinder

    return UnixLLVMFinder()


@functools.lru_cache(maxsize=64)
def _search(major: int, env: tuple[str | None, ...]) -> LLVMSearch:
    del env  # part of the cache key only
    return finder().search(major)


def search_libllvm(major: int) -> LLVMSearch:
    """Search for a shared libLLVM of ``major``; never raises for a missing library.

    Raises :class:`ValueError` when ``major`` is not a positive integer.
    """
    if isinstance(major, bool) or not isinstance(major, int) or major <= 0:
        raise ValueError(f"an LLVM major version is a positive integer, not {major!r}")
    return _search(major, tuple(_env.text(k) for k in _ENV_KEYS))


def find_libllvm(major: int) -> LLVMLibrary:
    """The shared libLLVM of ``major`` this process should use.

    Raises :class:`~enzyme_artifacts.errors.LLVMNotFoundError` naming the major, every
    candidate tried with the reason it was rejected, and the install commands for
    Debian/Ubuntu, Homebrew and conda.
    """
    result = search_libllvm(major)
    if result.found is None:
        raise result.error()
    return result.found


def clear_cache() -> None:
    """Forget every cached search result (the loaded libraries stay loaded)."""
    _search.cache_clear()
