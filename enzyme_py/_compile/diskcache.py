"""The on-disk cache of compiled derivatives (object code plus how to call it), and of
the steps before them: numba's lowering of a Python function, clang's bitcode of C
source, the choice of native libraries.

A new process that asks for a derivative another process already compiled loads the
object code from disk instead of running Enzyme and the optimiser again; with the
lowering of a Python function and the bitcode of C source on disk too, it runs neither
numba's compiler nor clang (see :mod:`.lowercache` and :mod:`.sourcecache` for their
keys).

Key: SHA-256 of the module content (bitcode hash), the request's
:class:`~enzyme_py._compile.plan.Plan` (function, mode, activities, element types, return
activity, width), the compilation options that change code (everything in
:class:`~enzyme_py.config.Options` but ``isolate``), the Enzyme library (C-API profile,
path, size, modification time, inode), libLLVM (major, path, size, modification time),
the target triple, the CPU name and features, and this cache's format version.
Absolute addresses (``Module.symbols``) are not part of object code and not of the key.

Layout: ``<dir>/v2/<k[:2]>/<k><suffix>``; one file per entry, the suffix naming its kind
(:data:`KINDS`: ``.ezc`` compiled code, ``.ezl`` a lowered Python function, ``.ezb``
clang's bitcode, ``.ezn`` the native libraries' choice, see
:mod:`enzyme_py._native.remembered`)::

    magic b"EZPYC2\\n\\0" | sha256(rest) 32 bytes | meta length u32 | meta JSON | payload

The meta JSON holds the entry's full key, compared on every read: an entry whose bytes
belong to another key (copied or renamed over) is dropped like a corrupt one.  The
payload of compiled code is its object code; other kinds keep their bytes there
(:meth:`DiskCache.get_blob`, :meth:`DiskCache.put_blob`).

Invariants:

* writes go to a temporary file in the entry's folder, then ``os.replace``: readers
  see a whole entry or none, and concurrent writers of one key are harmless (entries
  of one key are interchangeable);
* an entry whose checksum, format or stored key does not match is deleted and counted
  as ``corrupt``; the request then compiles as on a miss;
* a hit touches the entry's modification time, which is the "last access" the size
  bound evicts by (oldest first) once the total exceeds the limit; eviction holds an
  inter-process :class:`filelock.FileLock` and is skipped when another process holds it.

Environment:

``ENZYME_PY_DISK_CACHE``      ``0`` disables the cache (default on)
``ENZYME_PY_CACHE_DIR``       its folder (default: the user cache folder ``enzyme-py``,
                              from :mod:`platformdirs`)
``ENZYME_PY_CACHE_MAX_BYTES`` size bound in bytes (default 512 MiB; suffixes K, M, G)

Nothing is created before the first store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import struct
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enzyme_artifacts.elf import NotElfError, read_soname

from .. import config
from .._native import remembered
from .._native.library import native
from .plan import CompiledCode, Plan

__all__ = [
    "KINDS",
    "CacheInfo",
    "DiskCache",
    "blob_key",
    "cache_dir",
    "default_cache",
    "enabled",
    "max_bytes",
    "reset_stats",
    "source_identity",
    "stats",
]

_MAGIC = b"EZPYC2\n\0"
_FORMAT = "v2"
_HEAD = len(_MAGIC) + 32 + 4
#: Entry kinds and their file suffixes (``code``: compiled derivatives).
KINDS = {"code": ".ezc", "lowered": ".ezl", "bitcode": ".ezb", "native": remembered.SUFFIX}
_SUFFIXES = frozenset(KINDS.values())
DEFAULT_MAX_BYTES = config.DEFAULT_CACHE_MAX_BYTES

#: Options that do not change the code produced.
_NOT_IN_KEY = frozenset({"isolate"})


def enabled() -> bool:
    """False when ``ENZYME_PY_DISK_CACHE`` is ``0``/``false``/``no``/``off``."""
    return config.disk_cache_enabled()


def cache_dir() -> Path:
    """``ENZYME_PY_CACHE_DIR``, else the platform's user cache folder ``enzyme-py``
    (never created here)."""
    return config.cache_dir()


def max_bytes() -> int:
    """``ENZYME_PY_CACHE_MAX_BYTES`` (``1000000``, ``64M``, ``2G``); :class:`ValueError`
    naming the variable when it does not parse."""
    return config.cache_max_bytes()


# --------------------------------------------------------------------------- statistics

_stats_lock = threading.Lock()
_COUNTERS = ("hits", "misses", "stores", "corrupt")
_stats = {
    "hits": 0, "misses": 0, "stores": 0, "corrupt": 0, "evicted": 0, "errors": 0,
    **{f"{kind}_{c}": 0 for kind in ("lowered", "bitcode") for c in _COUNTERS},
}


def _count(name: str, n: int = 1) -> None:
    with _stats_lock:
        _stats[name] += n


def _kind_counter(kind: str, name: str) -> str:
    return name if kind == "code" else f"{kind}_{name}"


def stats() -> dict[str, int]:
    """This process's counters: ``hits``, ``misses``, ``stores``, ``corrupt`` (of
    compiled code), ``evicted`` and ``errors`` (I/O failures, which never fail a
    request), and the same four for lowerings and C bitcode (``lowered_hits``,
    ``bitcode_misses``, ...)."""
    with _stats_lock:
        return dict(_stats)


def reset_stats() -> None:
    """Zero this process's counters."""
    with _stats_lock:
        for k in _stats:
            _stats[k] = 0


# --------------------------------------------------------------------------- keys


def _file_identity(path: Path) -> dict[str, Any]:
    try:
        st = path.stat()
    except OSError:
        return {"path": str(path)}
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}


def _library_identity(path: Path) -> dict[str, Any]:
    """A shared libLLVM by what it is (SONAME and size), not where: the same library
    reached through another path or a copy (which discovery may prefer when it is
    already loaded) must not split the cache."""
    try:
        soname = read_soname(path)
    except (NotElfError, OSError):
        soname = None
    try:
        size: int | None = path.stat().st_size
    except OSError:
        size = None
    return {"soname": soname or path.name, "size": size}


_toolchain: dict[str, Any] | None = None


def _toolchain_identity() -> dict[str, Any]:
    """What identifies the compiler of this process (loads the native libraries)."""
    global _toolchain
    if _toolchain is None:
        nat = native()
        _toolchain = {
            "enzyme": {"capi": nat.capi, **_file_identity(Path(nat.enzyme_path))},
            "llvm": {"major": nat.llvm_major, **_library_identity(Path(nat.llvm_path))},
            "triple": nat.triple,
            "cpu": nat.cpu,
            "features": nat.features,
        }
    return _toolchain


def _options_identity(opts: config.Options) -> dict[str, Any]:
    return {
        f.name: getattr(opts, f.name)
        for f in dataclasses.fields(opts)
        if f.name not in _NOT_IN_KEY
    }


_source: str | None = None


def source_identity() -> str:
    """The identity of enzyme_py's Python sources (see :func:`cache_key`)."""
    return _source_identity()


def _source_identity() -> str:
    """Identity of this package's Python sources (name, size and modification time of
    its modules and C-API profiles), so that a change to the code generator
    invalidates entries."""
    global _source
    if _source is None:
        _source = remembered.tree_identity(Path(__file__).resolve().parent.parent, (".py",))
    return _source


def cache_key(content_hash: str, plan: Plan, opts: config.Options | None = None) -> str:
    """The hex key of a request (see the module docstring for what it covers)."""
    doc = {
        "format": _FORMAT,
        "enzyme_py": _source_identity(),
        "content": content_hash,
        "plan": plan.key(),
        "options": _options_identity(opts or config.options()),
        "toolchain": _toolchain_identity(),
    }
    blob = json.dumps(doc, sort_keys=True, default=repr).encode()
    return hashlib.sha256(blob).hexdigest()


def blob_key(kind: str, doc: dict[str, Any]) -> str:
    """The hex key of an entry of ``kind`` described by ``doc`` (JSON-able values; the
    format version and the kind are added)."""
    blob = json.dumps({"format": _FORMAT, "kind": kind, **doc}, sort_keys=True, default=repr).encode()
    return hashlib.sha256(blob).hexdigest()


# --------------------------------------------------------------------------- entries


def _pack(meta: dict[str, Any], payload: bytes) -> bytes:
    meta_b = json.dumps(meta, sort_keys=True).encode()
    rest = struct.pack("<I", len(meta_b)) + meta_b + payload
    return _MAGIC + hashlib.sha256(rest).digest() + rest


def _unpack(data: bytes, key: str) -> tuple[dict[str, Any], bytes] | None:
    """``(meta, payload)`` of an entry's bytes when they are whole and hold ``key``."""
    if len(data) < _HEAD or data[: len(_MAGIC)] != _MAGIC:
        return None
    digest = data[len(_MAGIC) : len(_MAGIC) + 32]
    rest = memoryview(data)[len(_MAGIC) + 32 :]
    if hashlib.sha256(rest).digest() != digest:
        return None
    (n,) = struct.unpack_from("<I", rest, 0)
    try:
        meta = json.loads(bytes(rest[4 : 4 + n]))
    except ValueError:
        return None
    if not isinstance(meta, dict) or meta.pop("key", None) != key:
        return None  # another entry's bytes under this name
    return meta, bytes(rest[4 + n :])


def _encode(code: CompiledCode, key: str) -> bytes | None:
    """The entry bytes of ``code`` under ``key`` (the key is stored with it; the plan is
    not, the key covers it); None when a field would not come back equal from JSON (then
    the entry is not cached)."""
    meta: dict[str, Any] = {
        f.name: getattr(code, f.name)
        for f in dataclasses.fields(code)
        if f.name not in ("object_code", "plan")
    }
    meta["key"] = key
    try:
        meta_b = json.dumps(meta, sort_keys=True).encode()
    except (TypeError, ValueError):
        return None
    if {k: _tuples(v) for k, v in json.loads(meta_b).items()} != meta:
        return None
    return _pack(meta, code.object_code)


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples :class:`CompiledCode` holds (recursively)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _decode(data: bytes, key: str, plan: Plan) -> CompiledCode | None:
    got = _unpack(data, key)
    if got is None:
        return None
    meta, payload = got
    try:
        values = {k: _tuples(v) for k, v in meta.items()}
        return CompiledCode(object_code=payload, plan=plan, **values)
    except (ValueError, TypeError):
        return None


@dataclass(frozen=True)
class CacheInfo:
    """What :meth:`DiskCache.info` reports: ``entries`` and ``total_bytes`` over every
    kind, ``kinds`` the number of entries of each kind that has any."""

    path: str
    enabled: bool
    entries: int
    total_bytes: int
    max_bytes: int
    kinds: dict[str, int] = dataclasses.field(default_factory=dict)


class DiskCache:
    """One cache folder (see the module docstring); cheap to create, creates nothing."""

    def __init__(self, root: Path | None = None, limit: int | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir()
        self.limit = max_bytes() if limit is None else int(limit)

    @property
    def _data(self) -> Path:
        return self.root / _FORMAT

    def path_for(self, key: str, kind: str = "code") -> Path:
        """Where the entry of ``key`` (of ``kind``) lives."""
        return self._data / key[:2] / f"{key}{KINDS[kind]}"

    def get(self, key: str, plan: Plan) -> CompiledCode | None:
        """The entry of ``key`` (touched for the LRU), or None.  A corrupted entry is
        removed and counts as ``corrupt``."""
        path = self.path_for(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            _count("misses")
            return None
        except OSError:
            _count("errors")
            return None
        code = _decode(data, key, plan)
        if code is None:
            _count("corrupt")
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)
        _count("hits")
        return code

    def get_blob(self, kind: str, key: str) -> tuple[dict[str, Any], bytes] | None:
        """``(meta, payload)`` of the ``kind`` entry of ``key`` (touched for the LRU), or
        None; a corrupted entry is removed and counted."""
        path = self.path_for(key, kind)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            _count(_kind_counter(kind, "misses"))
            return None
        except OSError:
            _count("errors")
            return None
        got = _unpack(data, key)
        if got is None:
            _count(_kind_counter(kind, "corrupt"))
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)
        _count(_kind_counter(kind, "hits"))
        return got

    def put_blob(self, kind: str, key: str, meta: dict[str, Any], payload: bytes) -> bool:
        """Store a ``kind`` entry (``meta`` must be JSON-able) atomically; False when it
        could not be stored (never raises for I/O problems)."""
        try:
            blob = _pack({**meta, "key": key}, payload)
        except (TypeError, ValueError):
            return False
        return self._write(kind, key, blob)

    def discard(self, kind: str, key: str) -> None:
        """Remove the ``kind`` entry of ``key`` if there is one (it proved stale)."""
        with contextlib.suppress(OSError):
            self.path_for(key, kind).unlink()

    def put(self, key: str, code: CompiledCode) -> bool:
        """Store ``code`` atomically; evict when over the bound.  False when it could not
        be stored (never raises for I/O problems: the cache is an optimisation)."""
        blob = _encode(code, key)
        if blob is None:
            return False
        return self._write("code", key, blob)

    def _write(self, kind: str, key: str, blob: bytes) -> bool:
        if (self.limit and len(blob) > self.limit) or self.limit == 0:
            return False
        path = self.path_for(key, kind)
        suffix = KINDS[kind]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(blob)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:
            _count("errors")
            return False
        _count(_kind_counter(kind, "stores"))
        self._maybe_evict(len(blob))
        return True

    def _entries(self) -> Iterator[tuple[Path, os.stat_result]]:
        if not self._data.is_dir():
            return
        for sub in self._data.iterdir():
            if not sub.is_dir():
                continue
            for p in sub.iterdir():
                if p.suffix in _SUFFIXES and not p.name.startswith(".tmp-"):
                    with contextlib.suppress(FileNotFoundError):
                        yield p, p.stat()

    def _maybe_evict(self, added: int) -> None:
        if not self.limit:
            return
        if sum(st.st_size for _, st in self._entries()) <= self.limit:
            return
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.root / ".evict.lock"), timeout=0)
        try:
            with lock:
                self.evict()
        except Timeout:
            return  # another process is evicting
        except OSError:
            _count("errors")

    def evict(self) -> int:
        """Remove least recently used entries until the total fits the bound (leaving
        10% headroom); returns how many were removed.  Call with the eviction lock held
        or when no other process uses the folder."""
        entries = sorted(self._entries(), key=lambda e: e[1].st_mtime_ns)
        total = sum(st.st_size for _, st in entries)
        if total <= self.limit:
            return 0
        target = self.limit * 9 // 10
        removed = 0
        for path, st in entries:
            if total <= target:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
            total -= st.st_size
        _count("evicted", removed)
        return removed

    def info(self) -> CacheInfo:
        """Entry count and total size."""
        entries = list(self._entries())
        by_suffix = {suffix: kind for kind, suffix in KINDS.items()}
        kinds: dict[str, int] = {}
        for p, _ in entries:
            kind = by_suffix[p.suffix]
            kinds[kind] = kinds.get(kind, 0) + 1
        return CacheInfo(
            path=str(self.root),
            enabled=enabled(),
            entries=len(entries),
            total_bytes=sum(st.st_size for _, st in entries),
            max_bytes=self.limit,
            kinds=kinds,
        )

    def clear(self) -> tuple[int, int]:
        """Remove every entry (and leftover temporary files): ``(entries, bytes)``."""
        count = size = 0
        if not self._data.is_dir():
            return 0, 0
        for sub in self._data.iterdir():
            if not sub.is_dir():
                continue
            for p in sub.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    st = p.stat()
                    p.unlink()
                    if p.suffix in _SUFFIXES and not p.name.startswith(".tmp-"):
                        count += 1
                        size += st.st_size
            with contextlib.suppress(OSError):
                sub.rmdir()
        return count, size


def default_cache() -> DiskCache | None:
    """The cache the environment configures, or None when disabled."""
    if not enabled():
        return None
    return DiskCache()
