"""Safe extraction of artifact tarballs.

Every member is checked *before* anything is written, so a refused archive leaves the
destination untouched.  Refused (:class:`UnsafeArchiveError`):

* absolute names (``/x``, ``C:\\x``) and names with a ``..`` component;
* symbolic links whose target is absolute or resolves outside the archive root;
* hard links whose target is outside the archive or not an earlier regular member;
* members below a symbolic link of the same archive (the link could redirect them);
* devices, FIFOs and any other special file;
* two members with the same name (the second would silently replace the first), or a
  file that is also the folder of other members.

Extraction then uses :mod:`tarfile`'s ``data`` filter as a second line of defence.
The caller extracts into a fresh temporary folder and renames it into place.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from pathlib import Path

from .errors import UnsafeArchiveError

__all__ = ["check_members", "safe_extract"]


def _norm(name: str) -> str:
    return name.removeprefix("./")


def _refuse(archive: Path, member: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"refusing to extract {archive}: member {member!r} {why}; nothing was extracted. "
        "The archive is damaged or malicious: delete it and report its source"
    )


def check_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    """Validate every member of ``tar``; return them in archive order."""
    members = tar.getmembers()
    seen: dict[str, tarfile.TarInfo] = {}
    links: set[str] = set()
    for m in members:
        raw = m.name
        name = _norm(raw).rstrip("/")
        if not name or name == ".":
            if m.isdir():
                continue
            raise _refuse(archive, raw, "has an empty name")
        if raw.startswith(("/", "\\")) or (len(raw) > 1 and raw[1] == ":") or "\\" in raw:
            raise _refuse(archive, raw, "has an absolute or Windows-style path")
        parts = name.split("/")
        if ".." in parts:
            raise _refuse(archive, raw, "contains '..'")
        if any(part in ("", ".") for part in parts):
            raise _refuse(archive, raw, "has an empty or '.' path component")
        if "\0" in name:
            raise _refuse(archive, raw, "contains a NUL byte")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in links:
                raise _refuse(archive, raw, f"lies below the symbolic link {'/'.join(parts[:i])!r}")
        if name in seen and not (m.isdir() and seen[name].isdir()):
            raise _refuse(archive, raw, "appears twice")
        if m.issym():
            target = m.linkname
            if not target or target.startswith("/") or "\\" in target:
                raise _refuse(archive, raw, f"is a symbolic link to {target!r} (absolute or empty)")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if resolved == ".." or resolved.startswith(("../", "/")):
                raise _refuse(archive, raw, f"is a symbolic link to {target!r}, outside the archive")
            links.add(name)
        elif m.islnk():
            target = _norm(m.linkname).rstrip("/")
            if not target or target.startswith("/") or ".." in target.split("/"):
                raise _refuse(archive, raw, f"is a hard link to {m.linkname!r}, outside the archive")
            if target not in seen or not seen[target].isfile():
                raise _refuse(archive, raw, f"is a hard link to {m.linkname!r}, not an earlier regular member")
        elif not (m.isfile() or m.isdir()):
            raise _refuse(archive, raw, "is a device, FIFO or other special file")
        seen[name] = m
    parents = {"/".join(n.split("/")[:i]) for n in seen for i in range(1, n.count("/") + 1)}
    for name, m in seen.items():
        if not m.isdir() and name in parents:
            raise _refuse(archive, m.name, "is both a file and the folder of other members")
    return members


def safe_extract(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> list[str]:
    """Extract ``archive`` (any compression :mod:`tarfile` reads) into the existing
    folder ``dest`` after checking every member; return the extracted member names.

    Raises :class:`UnsafeArchiveError` (nothing extracted) for an unsafe member and
    :class:`UnsafeArchiveError` too for an archive that cannot be read at all.
    """
    archive = Path(archive)
    dest = Path(dest)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = check_members(tar, archive)
            try:
                tar.extractall(dest, members=members, filter="data")
            except tarfile.FilterError as e:
                raise UnsafeArchiveError(f"refusing to extract {archive}: {e}") from None
    except tarfile.TarError as e:
        raise UnsafeArchiveError(f"{archive} is not a readable tar archive: {e}") from None
    return [m.name for m in members]
