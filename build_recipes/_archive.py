"""Extracting tar archives (Enzyme's source tarball, our artifact tarballs) safely on every
Python the project supports, 3.11.0 included.

:mod:`tarfile`'s ``filter="data"`` arrived in 3.11.4 (Debian 12 ships 3.11.2), so the guard is
our own: every member is checked *before* anything is written, and a refused archive leaves
the destination untouched.  Refused (:class:`~build_recipes.errors.UnsafeArchiveError`):

* absolute names (``/x``, ``C:x``, ``\\x``), names with a ``..`` component or a NUL byte;
* symbolic links whose target is absolute, or resolves outside the archive once every link
  of the archive on the way is followed (so no chain of links composes an escape), loops of
  links, and members below a symbolic link of the archive (the link could redirect them);
* hard links to anything but an earlier regular member;
* devices, FIFOs and every other special file;
* the same name twice (except folders), or a file that is also the folder of other members.

Members are then written by this module: folders ``0755``, files ``0644`` or ``0755`` (when
any execute bit is set; no setuid, no group or world write), owner never changed, each file
opened with ``O_EXCL | O_NOFOLLOW``.  Where :func:`tarfile.data_filter` exists it also
vets every member first, as a second line of defence.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

from enzyme_artifacts._extract import name_problem

from .errors import UnsafeArchiveError

__all__ = ["check_members", "extract_tar"]

_DATA_FILTER = getattr(tarfile, "data_filter", None)  # Python >= 3.11.4


def _refuse(archive: Path, member: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"refusing to extract {archive}: member {member!r} {why}; nothing was extracted. The archive "
        "is damaged or malicious: delete it and fetch it again from a trusted source"
    )


def _name(raw: str) -> str:
    return raw.removeprefix("./").rstrip("/")


#: Links followed while resolving one link's target before it counts as a loop.
_MAX_HOPS = 40


def _resolve(name: str, links: dict[str, str]) -> str | None:
    """Where the symbolic link ``name`` points once every link of the archive on the way
    is followed, as a path relative to the archive's root; None when any step leaves the
    root or the links loop.

    This is what the filesystem will do once the tree is written, so a chain of links,
    each lexically inside, cannot compose an escape (``a/up -> ../..`` then
    ``x -> a/up/../../..``: lexically ``x`` stays inside, physically it does not).
    """
    hops = 0
    pending = [*links[name].split("/")]
    stack = name.split("/")[:-1]
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return None
            stack.pop()
            continue
        stack.append(part)
        here = "/".join(stack)
        if here in links:
            hops += 1
            if hops > _MAX_HOPS:
                return None
            stack.pop()
            pending = [*links[here].split("/"), *pending]
    return "/".join(stack)


def check_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    """Every member of ``tar`` after the checks above, in archive order (the bare ``.``
    folder left out)."""
    out: list[tarfile.TarInfo] = []
    seen: dict[str, tarfile.TarInfo] = {}
    links: dict[str, str] = {}
    for m in tar.getmembers():
        raw = m.name
        name = _name(raw)
        if name in ("", "."):
            if m.isdir():
                continue
            raise _refuse(archive, raw, "has an empty name")
        problem = name_problem(raw)
        if problem is not None:
            raise _refuse(archive, raw, problem)
        if name in seen and not (m.isdir() and seen[name].isdir()):
            raise _refuse(archive, raw, "appears twice")
        if m.issym():
            target = m.linkname
            if not target or target.startswith("/") or "\\" in target or "\0" in target:
                raise _refuse(archive, raw, f"is a symbolic link to {target!r} (absolute or empty)")
            links[name] = target
        elif m.islnk():
            target = _name(m.linkname)
            if target not in seen or not seen[target].isfile():
                raise _refuse(archive, raw, f"is a hard link to {m.linkname!r}, not an earlier regular member")
        elif not (m.isfile() or m.isdir()):
            raise _refuse(archive, raw, "is a device, FIFO or other special file")
        if _DATA_FILTER is not None:
            try:
                _DATA_FILTER(m, "/nonexistent-destination")
            except tarfile.TarError as e:  # FilterError and its subclasses
                raise _refuse(archive, raw, f"is refused by tarfile's data filter ({e})") from None
        seen[name] = m
        out.append(m)
    # With every link known (wherever it sits in the archive): nothing below a link, and
    # every link resolves physically inside the archive.
    for name, member in seen.items():
        parts = name.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in links:
                raise _refuse(archive, member.name, f"lies below the symbolic link {'/'.join(parts[:i])!r}")
    for name, target in links.items():
        if _resolve(name, links) is None:
            raise _refuse(archive, seen[name].name, f"is a symbolic link to {target!r}, outside the archive "
                          "(followed through the archive's links) or in a loop of links")
    parents = {"/".join(n.split("/")[:i]) for n in seen for i in range(1, n.count("/") + 1)}
    for name, m in seen.items():
        if not m.isdir() and name in parents:
            raise _refuse(archive, m.name, "is both a file and the folder of other members")
    return out


def _write_file(tar: tarfile.TarFile, m: tarfile.TarInfo, target: Path) -> None:
    src = tar.extractfile(m)
    if src is None:  # pragma: no cover - regular members always have data
        raise UnsafeArchiveError(f"cannot read member {m.name!r}")
    mode = 0o755 if m.mode & 0o111 else 0o644
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_BINARY", 0), mode)
    with src, os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    os.chmod(target, mode)  # the umask must not make it stricter than the archive says
    os.utime(target, (m.mtime, m.mtime))


def extract_tar(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> list[str]:
    """Extract ``archive`` (any compression :mod:`tarfile` reads) into the existing folder
    ``dest`` after checking every member; return the extracted member names.

    Raises :class:`~build_recipes.errors.UnsafeArchiveError` for an unsafe member or an
    archive that cannot be read (nothing is extracted then).
    """
    archive = Path(archive)
    dest = Path(dest)
    if not dest.is_dir():
        raise FileNotFoundError(f"extraction folder {dest} does not exist")
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = check_members(tar, archive)
            for m in members:
                target = dest.joinpath(*_name(m.name).split("/"))
                if m.isdir():
                    target.mkdir(mode=0o755, parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                if m.issym():
                    os.symlink(m.linkname, target)
                elif m.islnk():
                    source = dest.joinpath(*_name(m.linkname).split("/"))
                    shutil.copyfile(source, target, follow_symlinks=False)
                    os.chmod(target, source.stat().st_mode & 0o777)
                else:
                    _write_file(tar, m, target)
    except tarfile.TarError as e:
        raise UnsafeArchiveError(f"{archive} is not a readable tar archive: {e}; delete it and fetch it "
                                 "again") from None
    return [m.name for m in members]
