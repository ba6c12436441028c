"""SHA-256 of files and of whole artifact trees.

A *tree digest* names an installed artifact's folder (the cache is content-addressed).
It covers every regular file (relative POSIX path, executable bit, sha256 of the bytes)
and every symbolic link (relative path, target), sorted by path, so it is independent
of file system order and of timestamps.  Paths listed in ``exclude`` (the cache's own
record file) are left out.

>>> import hashlib
>>> sha256_bytes(b"") == hashlib.sha256(b"").hexdigest()
True
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["CHUNK", "SYMLINK_PREFIX", "sha256_bytes", "sha256_file", "tree_digest", "tree_files"]

CHUNK = 1 << 20
SYMLINK_PREFIX = "symlink:"
"""In a files mapping, a symbolic link is recorded as ``symlink:<target>`` instead of a digest."""


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks (follows symlinks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def tree_files(root: str | os.PathLike[str], *, exclude: Iterable[str] = ()) -> dict[str, str]:
    """``relpath -> sha256`` of every regular file under ``root`` (symlinks as
    ``symlink:<target>``), sorted by path.  Other file types raise :class:`ValueError`."""
    base = Path(root)
    skip = set(exclude)
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        here = Path(dirpath)
        for name in sorted(filenames) + [d for d in dirnames if (here / d).is_symlink()]:
            p = here / name
            rel = p.relative_to(base).as_posix()
            if rel in skip:
                continue
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = SYMLINK_PREFIX + os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = sha256_file(p)
            else:
                raise ValueError(f"{p} is neither a regular file nor a symbolic link")
    return dict(sorted(out.items()))


def tree_digest(root: str | os.PathLike[str], files: Mapping[str, str] | None = None, *,
                exclude: Iterable[str] = ()) -> str:
    """The content address of a tree: sha256 over sorted ``path, kind, digest`` lines.

    ``files`` (as returned by :func:`tree_files`) may be passed to avoid hashing twice.
    """
    base = Path(root)
    if files is None:
        files = tree_files(base, exclude=exclude)
    h = hashlib.sha256()
    for rel in sorted(files):
        digest = files[rel]
        if digest.startswith(SYMLINK_PREFIX):
            kind = "l"
        else:
            kind = "x" if os.access(base / rel, os.X_OK) else "f"
        h.update(f"{rel}\0{kind}\0{digest}\n".encode())
    return h.hexdigest()
