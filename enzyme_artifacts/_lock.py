"""An inter-process lock for the cache and the config folder, built on :mod:`filelock`,
that says who holds it.

The lock is an OS-level file lock (``fcntl``/``LockFileEx``): it is released when its
holder exits, even after ``SIGKILL``, so a stale lock file on disk never blocks anyone.
The holder writes who it is into a sidecar file beside the lock (``<lock>.owner``:
``pid``, ``host``, ``since`` (UTC), ``purpose``) and removes it when it lets go.

A process that has waited ``NOTICE_AFTER`` seconds logs one warning (logger
``enzyme_artifacts.lock``, which Python prints on stderr when the application has not
configured logging) naming the holder, and a wait that ends in a timeout raises
:class:`~enzyme_artifacts.errors.LockTimeoutError` naming it too -- never a silent wait.

Environment: ``ENZYME_ARTIFACTS_LOCK_TIMEOUT`` (seconds, default 1800) bounds the wait.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import _env
from .errors import CacheError, LockTimeoutError

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "LOCK_TIMEOUT_ENV",
    "NOTICE_AFTER",
    "describe_holder",
    "lock_timeout",
    "locked",
    "read_holder",
]

LOCK_TIMEOUT_ENV = "ENZYME_ARTIFACTS_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 1800.0
NOTICE_AFTER = 2.0
"""Seconds of waiting after which the holder is reported."""

_log = logging.getLogger("enzyme_artifacts.lock")


def lock_timeout() -> float:
    """The wait bound in seconds: ``$ENZYME_ARTIFACTS_LOCK_TIMEOUT`` or 1800."""
    value = _env.number(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT)
    if value < 0:
        raise _env.EnvironmentValueError(LOCK_TIMEOUT_ENV, _env.text(LOCK_TIMEOUT_ENV) or "", "a number of seconds >= 0")
    return value


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".owner")


def read_holder(path: Path) -> dict[str, Any]:
    """What the holder of the lock ``path`` wrote about itself ({} when nothing readable)."""
    try:
        data = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def describe_holder(holder: dict[str, Any]) -> str:
    """``pid 123 on host h since 2026-01-01T00:00:00Z, to install X`` (or an unknown process)."""
    if not holder:
        return "another process (it wrote nothing beside the lock)"
    text = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')}"
    if holder.get("purpose"):
        text += f", to {holder['purpose']}"
    pid = holder.get("pid")
    if holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
        text += " (that process is gone: the lock will be free at once)"
    return text


def _write_holder(path: Path, purpose: str) -> None:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "purpose": purpose,
    }
    side = _sidecar(path)
    tmp = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    with contextlib.suppress(OSError):  # informative only: never fail the caller for it
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, side)


def _clear_holder(path: Path) -> None:
    side = _sidecar(path)
    with contextlib.suppress(OSError):
        if read_holder(path).get("pid") == os.getpid():
            side.unlink()


@contextmanager
def locked(
    path: Path,
    *,
    timeout: float | None = None,
    purpose: str = "use the cache",
    notice_after: float = NOTICE_AFTER,
    notify: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the file lock ``path`` (created with its folder if needed) for the block.

    After ``notice_after`` seconds of waiting, ``notify`` (default: a warning on the
    ``enzyme_artifacts.lock`` logger) is told who holds it.  Raises
    :class:`LockTimeoutError` naming the holder when the lock is not obtained within
    ``timeout`` seconds (default :func:`lock_timeout`), :class:`CacheError` when the lock
    file cannot be created.
    """
    from filelock import FileLock, Timeout

    wait = lock_timeout() if timeout is None else timeout
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path))
        started = time.monotonic()
        try:
            lock.acquire(timeout=min(wait, notice_after))
        except Timeout:
            if wait <= notice_after:
                raise
            message = (
                f"waiting for the lock {path} held by {describe_holder(read_holder(path))}; "
                f"it is released when that process finishes. Waiting up to {wait:g} s "
                f"({LOCK_TIMEOUT_ENV}) to {purpose}"
            )
            (notify or _log.warning)(message)
            lock.acquire(timeout=max(0.0, wait - (time.monotonic() - started)))
    except Timeout:
        holder = read_holder(path)
        raise LockTimeoutError(
            f"waited {wait:g} s for the lock {path} to {purpose}: it is held by {describe_holder(holder)}. "
            f"Wait for it to finish (or stop it), or raise {LOCK_TIMEOUT_ENV}",
            holder=holder,
        ) from None
    except OSError as e:
        raise CacheError(
            f"cannot create the lock {path}: {e.strerror or e}; "
            "make the folder writable or choose another with ENZYME_ARTIFACTS_CACHE"
        ) from None
    try:
        _write_holder(path, purpose)
        yield
    finally:
        _clear_holder(path)
        lock.release()
