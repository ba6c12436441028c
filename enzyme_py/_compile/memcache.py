"""The process-wide cache of loaded derivatives.

Key: (module content hash, :class:`~.plan.Plan`, options, JIT symbols) — the plan holds
the function, mode, activities with element dtypes, the return activity and, for a module
with mutable globals, the token of its instance.  Two :class:`~enzyme_py.Module` objects
with the same content (and no mutable globals) share compiled code.

Each entry counts the modules using it.  When a module is closed it releases its
entries; an entry nobody uses stays loaded in a small LRU (``ENZYME_PY_CACHE_SIZE``,
default 64) so that re-creating the same module is instant, and is unloaded when it
falls out of it.  :func:`clear` unloads every unused entry.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .. import config
from .loader import LoadedCode

__all__ = ["acquire", "clear", "release", "stats"]

_lock = threading.Lock()
_entries: dict[Any, list[Any]] = {}  # key -> [LoadedCode, users]
_idle: OrderedDict[Any, None] = OrderedDict()  # unused entries, oldest first


def _limit() -> int:
    return config.loaded_cache_size()


def acquire(key: Any, build: Callable[[], LoadedCode]) -> LoadedCode:
    """The loaded code for ``key`` (built with ``build()`` when absent); the caller must
    :func:`release` it once."""
    with _lock:
        entry = _entries.get(key)
        if entry is not None:
            entry[1] += 1
            _idle.pop(key, None)
            return entry[0]  # type: ignore[no-any-return]
    code = build()  # compiles outside the cache lock (LLVM has its own)
    with _lock:
        entry = _entries.get(key)
        if entry is None:
            _entries[key] = [code, 1]
            return code
        entry[1] += 1
        _idle.pop(key, None)
        winner = entry[0]
    code.close()  # another thread built the same code first
    return winner  # type: ignore[no-any-return]


def release(key: Any, *, evict: bool = False) -> None:
    """Give back one use of ``key``; unused entries beyond the LRU size are unloaded, and
    with ``evict`` an entry nobody uses any more is unloaded at once."""
    evict_now: list[LoadedCode] = []
    with _lock:
        entry = _entries.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0 and evict:
            evict_now.append(_entries.pop(key)[0])
        elif entry[1] <= 0:
            entry[1] = 0
            _idle[key] = None
            limit = _limit()
            while len(_idle) > limit:
                old, _ = _idle.popitem(last=False)
                evict_now.append(_entries.pop(old)[0])
    for code in evict_now:
        code.close()


def clear() -> int:
    """Unload every entry no module uses; returns how many were unloaded."""
    with _lock:
        keys = list(_idle)
        _idle.clear()
        codes = [_entries.pop(k)[0] for k in keys]
    for code in codes:
        code.close()
    return len(codes)


def stats() -> dict[str, int]:
    """``{"entries": ..., "in_use": ..., "idle": ...}``."""
    with _lock:
        return {
            "entries": len(_entries),
            "in_use": sum(1 for e in _entries.values() if e[1] > 0),
            "idle": len(_idle),
        }
