"""An inter-process lock for the cache, built on :mod:`filelock`.

The lock is an OS-level file lock (``fcntl``/``LockFileEx``): it is released when its
holder exits, even after ``SIGKILL``, so a stale lock file on disk never blocks anyone.

Environment: ``ENZYME_ARTIFACTS_LOCK_TIMEOUT`` (seconds, default 1800) bounds the wait.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import CacheError

__all__ = ["DEFAULT_LOCK_TIMEOUT", "LOCK_TIMEOUT_ENV", "lock_timeout", "locked"]

LOCK_TIMEOUT_ENV = "ENZYME_ARTIFACTS_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 1800.0


def lock_timeout() -> float:
    """The wait bound in seconds: ``$ENZYME_ARTIFACTS_LOCK_TIMEOUT`` or 1800."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise CacheError(f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if value < 0:
        raise CacheError(f"{LOCK_TIMEOUT_ENV}={raw!r} must not be negative")
    return value


@contextmanager
def locked(path: Path, *, timeout: float | None = None, purpose: str = "use the cache") -> Iterator[None]:
    """Hold the file lock ``path`` (created with its folder if needed) for the block.

    Raises :class:`CacheError` when the lock is not obtained within ``timeout`` seconds
    (default :func:`lock_timeout`) or the lock file cannot be created.
    """
    from filelock import FileLock, Timeout

    wait = lock_timeout() if timeout is None else timeout
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path), timeout=wait)
        lock.acquire()
    except Timeout:
        raise CacheError(
            f"waited {wait:g} s for the lock {path} to {purpose}: another process holds it "
            f"(probably downloading). Wait for it to finish, or raise {LOCK_TIMEOUT_ENV}"
        ) from None
    except OSError as e:
        raise CacheError(
            f"cannot create the lock {path}: {e.strerror or e}; "
            "make the folder writable or choose another with ENZYME_ARTIFACTS_CACHE"
        ) from None
    try:
        yield
    finally:
        lock.release()
