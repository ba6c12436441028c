"""The on-disk cache of compiled derivatives, as users see it.

A new process that asks for a derivative another process already compiled loads the object
code from disk instead of running Enzyme and the optimiser again; ``python -m enzyme_py
cache info|clear`` inspects and empties it.  The implementation (key, file format,
eviction) is :mod:`enzyme_py._compile.diskcache`.

Environment: ``ENZYME_PY_DISK_CACHE`` (``0`` disables it), ``ENZYME_PY_CACHE_DIR`` (its
folder), ``ENZYME_PY_CACHE_MAX_BYTES`` (its size bound); see :mod:`enzyme_py.config`.
"""

from __future__ import annotations

from ._compile.diskcache import (
    CacheInfo,
    DiskCache,
    cache_dir,
    default_cache,
    enabled,
    max_bytes,
    reset_stats,
    stats,
)

__all__ = ["CacheInfo", "DiskCache", "cache_dir", "default_cache", "enabled", "max_bytes", "reset_stats", "stats"]
