"""Lowered Python functions on disk: a fresh process gets a Python function's module
without running numba's compiler (or importing numba at all, for a plain function).

Key (SHA-256 of): what numba's compile of the function reads
(:func:`enzyme_py._numba.fingerprint.describe`: its code, the values of the globals and
closure cells it reads, recursively, the dispatcher's options), the argument layout,
numba's configuration (:func:`enzyme_py._numba.config_key`), numba's, llvmlite's, NumPy's
and Python's versions, enzyme_py's sources, and the machine.  A function reading a value
that cannot be identified is not cached.

Entry (kind ``lowered`` of :class:`~.diskcache.DiskCache`): the module's bitcode as
enzyme_py parsed it (so its content hash, and with it the keys of its compiled
derivatives, are those of the original) and the rest of the
:class:`~enzyme_py._numba.Lowered` (entry name, the names of the runtime symbols it
needs, LLVM major, layout, result, exceptions), plus the producer's versions for
messages.  The same switch, folder and bound as compiled derivatives
(``ENZYME_PY_DISK_CACHE``, ``ENZYME_PY_CACHE_DIR``, ``ENZYME_PY_CACHE_MAX_BYTES``).
"""

from __future__ import annotations

import base64
import os
import sys
from dataclasses import dataclass
from typing import Any

from .._numba import ArgSpec, Lowered, config_key
from .._numba.fingerprint import describe, library_versions
from . import diskcache

__all__ = ["CachedLowering", "key", "load", "store"]

_KIND = "lowered"


@dataclass(frozen=True)
class CachedLowering:
    """A lowering read from disk: the :class:`Lowered` (without IR text, and without the
    runtime symbols' addresses, which are per process: ``symbol_names``), the module's
    bitcode and the producer named in messages."""

    lowered: Lowered
    bitcode: bytes
    symbol_names: tuple[str, ...]
    producer: str


def _machine() -> str:
    uname = getattr(os, "uname", None)
    if uname is not None:
        return str(uname().machine)
    import platform  # pragma: no cover - Windows

    return platform.machine()  # pragma: no cover


def key(func: Any, specs: tuple[ArgSpec, ...]) -> str | None:
    """The disk key of ``func`` lowered for ``specs``; None when the cache is off or
    ``func`` reads a value that cannot be identified."""
    if not diskcache.enabled():
        return None
    what = describe(func)
    if what is None:
        return None
    return diskcache.blob_key(_KIND, {
        "function": what,
        "layout": [[s.kind, s.dtype, s.ndim] for s in specs],
        "numba_config": list(config_key()),
        "versions": library_versions(),
        "enzyme_py": diskcache.source_identity(),
        "machine": [_machine(), sys.platform],
    })


def load(k: str) -> CachedLowering | None:
    """The lowering stored under ``k``, or None."""
    cache = diskcache.default_cache()
    if cache is None:
        return None
    got = cache.get_blob(_KIND, k)
    if got is None:
        return None
    meta, bitcode = got
    try:
        low = Lowered(
            ir="",
            entry=str(meta["entry"]),
            symbols={},
            llvm_major=int(meta["llvm_major"]),
            arg_layout=tuple(ArgSpec(str(a), str(b), int(c)) for a, b, c in meta["arg_layout"]),
            result=(str(meta["result"][0]), str(meta["result"][1]), int(meta["result"][2])),
            qualname=str(meta["qualname"]),
            exceptions=tuple(base64.b64decode(e) for e in meta["exceptions"]),
        )
        return CachedLowering(low, bitcode, tuple(map(str, meta["symbols"])), str(meta["producer"]))
    except (KeyError, TypeError, ValueError):
        cache.discard(_KIND, k)
        return None


def store(k: str, low: Lowered, bitcode: bytes, producer: str) -> None:
    """Store a fresh lowering (its module's bitcode before any edit) under ``k``."""
    cache = diskcache.default_cache()
    if cache is None:
        return
    meta = {
        "entry": low.entry,
        "symbols": sorted(low.symbols),
        "llvm_major": low.llvm_major,
        "arg_layout": [[s.kind, s.dtype, s.ndim] for s in low.arg_layout],
        "result": list(low.result),
        "qualname": low.qualname,
        "exceptions": [base64.b64encode(e).decode() for e in low.exceptions],
        "producer": producer,
    }
    cache.put_blob(_KIND, k, meta, bitcode)
