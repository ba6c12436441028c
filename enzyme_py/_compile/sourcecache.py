"""clang's bitcode on disk: :meth:`enzyme_py.Module.from_c` of source some process already
compiled with the same flags and the same clang runs no clang.

Key (SHA-256 of): the source text, clang's whole command line but its output (the
flags enzyme_py adds, the caller's ``flags``, the language), clang itself (its path, and
the path, size and modification time of the file it resolves to and of the shared
libraries it loads from its own installation, ``libclang-cpp`` and ``libLLVM``), the
environment variables clang reads for include paths (``CPATH``, ``C_INCLUDE_PATH``,
``CPLUS_INCLUDE_PATH``, ``OBJC_INCLUDE_PATH``, ``SDKROOT``, ``CCC_OVERRIDE_OPTIONS``)
and this cache's format.

Headers: a miss runs clang with ``-MD -MF`` and stores, with the bitcode, every file the
compilation read (path, size, SHA-256 of the content) and the working folder.  A hit is
used only when each of those files has the same content, and, when one was reached
through a relative path (``#include "x.h"`` from the source on stdin, ``-I`` with a
relative folder), when the working folder is the same.  Contents, not modification
times: an edit that keeps a file's size and time (``cp -p``, ``touch -r``, two writes
within the file system's clock tick) is still seen.  The bitcode is not stored when a
file it read was modified after clang started (it may have changed while clang read it).
(A header created where the search would now find it first is not seen; clear the cache
after adding one.)

Not cached: a command line with an argument naming a file clang reads that ``-MD`` does
not report (a response file ``@file``, ``--config``, a plugin ``-fplugin=``,
``-fpass-plugin=``, ``-load``, a profile ``-fprofile-use=`` and its kin): its content
could change under the same key.

Entry: kind ``bitcode`` of :class:`~.diskcache.DiskCache`; the disk cache's switch,
folder and bound apply.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from enzyme_artifacts.elf import NotElfError, read_needed

from . import diskcache

__all__ = ["dependency_flags", "key", "load", "read_dependencies", "store"]

_KIND = "bitcode"
_ENV = ("CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "OBJC_INCLUDE_PATH", "SDKROOT",
        "CCC_OVERRIDE_OPTIONS")


def dependency_flags(path: Path) -> list[str]:
    """The flags that make clang write the files it read to ``path``."""
    return ["-MD", "-MF", str(path)]


#: Arguments naming files clang reads without listing them in its ``-MD`` output.
_UNTRACKED = ("@", "--config", "-fplugin", "-fpass-plugin", "-load", "-fprofile-use",
              "-fprofile-instr-use", "-fprofile-sample-use")
#: A dependency modified this close to clang's start (or later) may have changed while
#: clang read it (file times come from a clock that can lag by a tick).
_RACY_NS = 100_000_000


def _stamp(path: str) -> list[Any]:
    """``[path, size, sha256]`` of a file, ``[path]`` when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return [path]
    return [path, len(data), hashlib.sha256(data).hexdigest()]


def _clang_stamp(path: str) -> list[Any]:
    try:
        st = os.stat(path)
    except OSError:
        return [path]
    return [path, st.st_size, st.st_mtime_ns]


def _clang_identity(clang: Path) -> list[Any]:
    """clang's file and the shared libraries it loads from its own installation
    (``libclang-cpp``, ``libLLVM`` in ``../lib`` or ``../lib64`` of its binary, where
    the compiler itself lives: an upgrade of those alone leaves the driver unchanged)."""
    real = os.path.realpath(clang)
    out: list[Any] = [str(clang), _clang_stamp(real)]
    try:
        needed = read_needed(real)
    except (NotElfError, OSError):
        return out  # a script or another format: its file alone
    prefix = os.path.dirname(os.path.dirname(real))
    for name in needed:
        for lib in ("lib", "lib64"):
            candidate = os.path.join(prefix, lib, name)
            if os.path.exists(candidate):
                out.append(_clang_stamp(os.path.realpath(candidate)))
                break
    return out


def key(clang: Path, command: Sequence[str], source: str) -> str | None:
    """The disk key of compiling ``source`` with ``command`` (clang's arguments without
    the output and dependency paths); None when the cache is off or the command names
    a file ``-MD`` would not report (see the module docstring)."""
    if not diskcache.enabled():
        return None
    if any(a.startswith(_UNTRACKED) for a in command):
        return None
    return diskcache.blob_key(_KIND, {
        "source": hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest(),
        "command": list(command),
        "clang": _clang_identity(clang),
        "env": {k: os.environ.get(k) for k in _ENV},
    })


def read_dependencies(path: Path) -> list[str]:
    """The files of a ``-MD`` dependency file (make syntax: ``target: a b \\\\`` lines,
    spaces in names escaped), without the stdin pseudo-file."""
    text = path.read_text(errors="surrogateescape").replace("\\\n", " ")
    _, _, rest = text.partition(":")
    out: list[str] = []
    word: list[str] = []
    i = 0
    while i < len(rest):
        ch = rest[i]
        if ch == "\\" and i + 1 < len(rest) and rest[i + 1] in " #":
            word.append(rest[i + 1])
            i += 2
            continue
        if ch.isspace():
            if word:
                out.append("".join(word))
                word = []
        else:
            word.append(ch)
        i += 1
    if word:
        out.append("".join(word))
    return [p for p in out if p not in ("-", "<stdin>")]


def load(k: str) -> bytes | None:
    """The bitcode stored under ``k`` if every file it was compiled from is unchanged."""
    cache = diskcache.default_cache()
    if cache is None:
        return None
    got = cache.get_blob(_KIND, k)
    if got is None:
        return None
    meta, bitcode = got
    try:
        deps = meta["dependencies"]
        cwd = meta["cwd"]
        for stamp in deps:
            if not os.path.isabs(stamp[0]) and os.getcwd() != cwd:
                return None
            if _stamp(stamp[0]) != list(stamp):
                return None
    except (KeyError, TypeError, IndexError, OSError):
        cache.discard(_KIND, k)
        return None
    return bitcode


def store(k: str, bitcode: bytes, dependencies: Sequence[str], started_ns: int) -> None:
    """Store fresh bitcode with the files it was compiled from, unless one of them is
    missing or was modified after ``started_ns`` (``time.time_ns()`` before clang ran)."""
    cache = diskcache.default_cache()
    if cache is None:
        return
    stamps = []
    for p in dependencies:
        try:
            if os.stat(p).st_mtime_ns >= started_ns - _RACY_NS:
                return
        except OSError:
            return
        stamp = _stamp(p)
        if len(stamp) == 1:
            return
        stamps.append(stamp)
    meta = {"dependencies": stamps, "cwd": os.getcwd()}
    cache.put_blob(_KIND, k, meta, bitcode)
