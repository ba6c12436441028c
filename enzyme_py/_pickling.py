"""Unpickling :class:`~enzyme_py.Module` and :class:`~enzyme_py.Function` by content.

A module pickles as its bitcode, its name and the names of its external ``symbols``
(addresses are per process).  Unpickling parses the bitcode again and keeps those very
bytes as the module's bitcode — the content hash, and so the disk-cache key of every
derivative, is unchanged — and looks each symbol
name up among the libraries loaded ``RTLD_GLOBAL`` in the unpickling process; a name
it cannot find raises :class:`~enzyme_py.errors.CompileError` saying which library to
load first.  Compiled derivatives are not pickled: the unpickled module compiles
them on first use, which on a machine sharing the disk cache
(:mod:`enzyme_py.diskcache`) is a file read.

Invariant: unpickling the same content twice in one process gives the same live
:class:`Module` (a weak memo), so a batch of tasks rebuilds it once per worker.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
import weakref
from typing import Any

from .errors import CompileError

__all__ = ["rebuild_function", "rebuild_module"]

_memo: weakref.WeakValueDictionary[tuple[Any, ...], Any] = weakref.WeakValueDictionary()
_lock = threading.Lock()


def _resolve_symbols(names: tuple[str, ...], module_name: str) -> dict[str, int]:
    if not names:
        return {}
    process = ctypes.CDLL(None)
    out: dict[str, int] = {}
    missing = []
    for name in names:
        try:
            out[name] = ctypes.cast(getattr(process, name), ctypes.c_void_p).value or 0
        except AttributeError:
            missing.append(name)
    if missing:
        raise CompileError(
            f"unpickling module {module_name!r}: the external symbol(s) {', '.join(missing)} "
            "are not defined in this process. Load the library that defines them "
            "(ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)) before unpickling, or pickle the "
            "object that created the module (e.g. an @enzyme_py.jit function) instead"
        )
    return out


def rebuild_module(bitcode: bytes, name: str, symbol_names: tuple[str, ...]) -> Any:
    """The :class:`Module` of ``bitcode`` (shared with earlier unpicklings of it)."""
    from .module import Module

    key = (hashlib.sha256(bitcode).hexdigest(), name, tuple(symbol_names))
    with _lock:
        mod = _memo.get(key)
        if mod is not None and not mod.closed:
            return mod
        mod = Module.from_bitcode(bitcode, name=name, symbols=_resolve_symbols(symbol_names, name))
        # Writing a parsed module out again need not give the same bytes (LLVM numbers
        # values differently after parsing text and bitcode); compile from the very bytes
        # the pickling process compiled from, so that disk-cache keys match.
        mod._bitcode = bytes(bitcode)
        mod.content_hash = key[0]
        _memo[key] = mod
        return mod


def rebuild_function(module: Any, name: str) -> Any:
    """``module.function(name)``."""
    return module.function(name)
