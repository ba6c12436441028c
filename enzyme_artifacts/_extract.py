"""Safe extraction of artifact tarballs, on every Python this project supports.

Python 3.11.0-3.11.3 (Debian 12 ships 3.11.2) has no ``tarfile`` extraction filters, so
the checks below are the guard everywhere; where :func:`tarfile.data_filter` exists it is
applied to every member as well, as a second opinion.  Extraction is done here, member by
member, never by ``TarFile.extractall``.

**Pass 1** reads the member headers -- stopping as soon as a bound is passed -- and
refuses (:class:`UnsafeArchiveError`, nothing written) an archive with:

* more than ``max_members`` members, or member data adding up to more than
  ``max_bytes`` (see :func:`expansion_limit`: a bound taken from the archive's size);
* an absolute or Windows-style name, a ``..``, ``.`` or empty component, a NUL byte;
* a symbolic link whose target is anything but the plain name of a sibling (``libX.so ->
  libX.so.1`` in the same folder), or whose chain of sibling links does not end at a
  regular member of the archive: no composition of links can leave its folder;
* a hard link to anything but an earlier regular member;
* a member below a symbolic link, a device, FIFO or other special file;
* two members with one name, or a file that is also the folder of other members.

It refuses (:class:`CorruptArchiveError`) an archive that does not read to its end: a
compressed stream cut short, a damaged header, a last member whose data is cut short, or
no end-of-archive marker (tarfile itself silently stops at such a point).

**Pass 2** writes into the existing folder ``dest``: folders with ``mkdir`` (never through
a link), then files opened ``O_CREAT | O_EXCL | O_NOFOLLOW`` after checking that the real
path of their folder is inside the real path of ``dest``, each read to exactly its size;
hard links become copies; sibling links are made last, so no member is ever written
through a link.  Modes follow tarfile's ``data`` filter: no setuid/setgid/sticky bits, no
group/other write, owner read/write.

If anything fails in pass 2, every file and folder written is removed again: a refused or
corrupt archive leaves ``dest`` as it found it.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import _env
from .errors import CorruptArchiveError, UnsafeArchiveError

__all__ = [
    "DEFAULT_MAX_EXPANSION",
    "DEFAULT_MAX_MEMBERS",
    "EXPANSION_FLOOR",
    "MAX_EXPANSION_ENV",
    "MAX_MEMBERS_ENV",
    "check_members",
    "expansion_limit",
    "max_members",
    "name_problem",
    "safe_extract",
]

MAX_MEMBERS_ENV = "ENZYME_ARTIFACTS_MAX_MEMBERS"
MAX_EXPANSION_ENV = "ENZYME_ARTIFACTS_MAX_EXPANSION"
DEFAULT_MAX_MEMBERS = 1000
DEFAULT_MAX_EXPANSION = 32
EXPANSION_FLOOR = 16 * 1024 * 1024
"""Archives smaller than ``EXPANSION_FLOOR / ratio`` may still expand to this many bytes."""

_CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE


def _decompression_errors() -> tuple[type[Exception], ...]:
    import zlib

    errors: list[type[Exception]] = [zlib.error]
    try:
        import lzma
    except ImportError:  # an interpreter built without lzma reads no .tar.xz anyway
        pass
    else:
        errors.append(lzma.LZMAError)
    return tuple(errors)


_DECOMPRESSION_ERRORS = _decompression_errors()
_READ_ERRORS: tuple[type[Exception], ...] = (tarfile.TarError, EOFError, *_DECOMPRESSION_ERRORS)


def max_members() -> int:
    """``$ENZYME_ARTIFACTS_MAX_MEMBERS`` (default 1000): the most members an archive may have."""
    return _env.integer(MAX_MEMBERS_ENV, DEFAULT_MAX_MEMBERS, minimum=1)


def expansion_limit(archive_size: int) -> int:
    """The most bytes of member data an archive of ``archive_size`` bytes may expand to:
    ``archive_size * $ENZYME_ARTIFACTS_MAX_EXPANSION`` (default 32), at least 16 MiB.

    >>> expansion_limit(1_000_000) == 32_000_000
    True
    >>> expansion_limit(1) == EXPANSION_FLOOR
    True
    """
    ratio = _env.number(MAX_EXPANSION_ENV, float(DEFAULT_MAX_EXPANSION), positive=True)
    return max(int(archive_size * ratio), EXPANSION_FLOOR)


def _norm(name: str) -> str:
    return name.removeprefix("./")


def name_problem(raw: str) -> str | None:
    """Why the member name ``raw`` may not be extracted anywhere (an absolute or
    Windows-style path, a ``..``, ``.`` or empty component, a NUL byte), or None.  A
    leading ``./`` and a trailing ``/`` are allowed.

    >>> name_problem("lib/libX.so"), name_problem("lib/../x")
    (None, "contains '..'")
    """
    if raw.startswith(("/", "\\")) or (len(raw) > 1 and raw[1] == ":") or "\\" in raw:
        return "has an absolute or Windows-style path"
    if "\0" in raw:
        return "contains a NUL byte"
    parts = _norm(raw).rstrip("/").split("/")
    if ".." in parts:
        return "contains '..'"
    if any(part in ("", ".") for part in parts):
        return "has an empty or '.' path component"
    return None


def _refuse(archive: Path, member: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"refusing to extract {archive}: member {member!r} {why}; nothing was extracted. "
        "The archive is damaged or malicious: delete it and report its source"
    )


def _corrupt(archive: Path, why: str, *, written: bool = False) -> CorruptArchiveError:
    kept = "the files extracted so far were removed" if written else "nothing was extracted"
    return CorruptArchiveError(
        f"{archive} is corrupt: {why}; {kept}. Download it again; if it stays so, the published "
        "archive is damaged: report its source"
    )


@dataclass(frozen=True, slots=True)
class _Bounds:
    members: int
    data_bytes: int


def _read_headers(tar: tarfile.TarFile, archive: Path, bounds: _Bounds) -> list[tarfile.TarInfo]:
    """Every member header, stopping at the first bound passed; then the end marker."""
    members: list[tarfile.TarInfo] = []
    total = 0
    try:
        while True:
            m = tar.next()
            if m is None:
                break
            members.append(m)
            if len(members) > bounds.members:
                raise UnsafeArchiveError(
                    f"refusing to extract {archive}: it has more than {bounds.members} members "
                    f"(an artifact holds a library and its licenses); nothing was extracted. "
                    f"Raise {MAX_MEMBERS_ENV} if this archive is genuine"
                )
            if m.isfile():
                total += m.size
                if total > bounds.data_bytes:
                    raise UnsafeArchiveError(
                        f"refusing to extract {archive}: its members add up to more than "
                        f"{bounds.data_bytes} bytes, over {archive.stat().st_size} bytes of archive "
                        f"(an archive bomb, or a badly compressed artifact); nothing was extracted. "
                        f"Raise {MAX_EXPANSION_ENV} if this archive is genuine"
                    )
        # tarfile stops without a word at a cut-short or garbled header: insist on the
        # end-of-archive marker (two zero blocks) where the members end.
        fileobj = tar.fileobj
        assert fileobj is not None
        fileobj.seek(tar.offset)
        end = fileobj.read(2 * _BLOCK)
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        if isinstance(e, UnsafeArchiveError):
            raise
        raise _corrupt(archive, f"reading it failed after {len(members)} members ({e})") from None
    except _DECOMPRESSION_ERRORS as e:
        raise _corrupt(archive, f"its compressed stream is damaged ({type(e).__name__}: {e})") from None
    if len(end) < 2 * _BLOCK or end.count(0) != len(end):
        last = repr(members[-1].name) if members else "its first header"
        raise _corrupt(archive, f"it ends without tar's end-of-archive marker after {last} (truncated)")
    return members


def _link_target(name: str, target: str) -> str | None:
    """The member a sibling link points to, or None when ``target`` is not a plain name."""
    if not target or "/" in target or "\\" in target or "\0" in target or target in (".", ".."):
        return None
    parent = name.rsplit("/", 1)[0] if "/" in name else ""
    return f"{parent}/{target}" if parent else target


def check_members(tar: tarfile.TarFile, archive: Path, *, bounds_members: int | None = None,
                  bounds_bytes: int | None = None, dest: Path | None = None) -> list[tarfile.TarInfo]:
    """Validate every member of ``tar`` (pass 1, see the module docstring); return them in
    archive order.  Writes nothing."""
    bounds = _Bounds(
        bounds_members if bounds_members is not None else max_members(),
        bounds_bytes if bounds_bytes is not None else expansion_limit(archive.stat().st_size),
    )
    members = _read_headers(tar, archive, bounds)
    # Links are made last, so a member below a link would be written through it whatever
    # the order of the two in the archive: refuse that first.
    symlinks = {_norm(m.name).rstrip("/") for m in members if m.issym()}
    for m in members:
        parts = _norm(m.name).rstrip("/").split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in symlinks:
                raise _refuse(archive, m.name, f"lies below the symbolic link {'/'.join(parts[:i])!r}")
    seen: dict[str, tarfile.TarInfo] = {}
    links: dict[str, str] = {}  # link member -> the member it names
    data_filter = getattr(tarfile, "data_filter", None)  # Python >= 3.11.4 / 3.12
    for m in members:
        raw = m.name
        name = _norm(raw).rstrip("/")
        if not name or name == ".":
            if m.isdir():
                continue
            raise _refuse(archive, raw, "has an empty name")
        problem = name_problem(raw)
        if problem is not None:
            raise _refuse(archive, raw, problem)
        if name in seen and not (m.isdir() and seen[name].isdir()):
            raise _refuse(archive, raw, "appears twice")
        if m.issym():
            target = _link_target(name, m.linkname)
            if target is None:
                why = "absolute or empty" if not m.linkname or m.linkname.startswith("/") else (
                    "outside the archive" if ".." in m.linkname.split("/") else "not a sibling")
                raise _refuse(
                    archive, raw,
                    f"is a symbolic link to {m.linkname!r} ({why}); only links to a file of the same "
                    "folder, such as libX.so -> libX.so.1, are accepted",
                )
            links[name] = target
        elif m.islnk():
            target = _norm(m.linkname).rstrip("/")
            if not target or target.startswith("/") or ".." in target.split("/"):
                raise _refuse(archive, raw, f"is a hard link to {m.linkname!r}, outside the archive")
            if target not in seen or not seen[target].isfile():
                raise _refuse(archive, raw, f"is a hard link to {m.linkname!r}, not an earlier regular member")
        elif not (m.isfile() or m.isdir()):
            raise _refuse(archive, raw, "is a device, FIFO or other special file")
        if data_filter is not None and dest is not None:
            try:
                data_filter(m, str(dest))
            except tarfile.FilterError as e:
                raise _refuse(archive, raw, f"is refused by tarfile's data filter ({e})") from None
        seen[name] = m
    for name in links:
        chain = [name]
        current = name
        while current in links:
            current = links[current]
            if current in chain:
                raise _refuse(archive, name, f"is part of a cycle of links ({' -> '.join([*chain, current])})")
            chain.append(current)
        end = seen.get(current)
        if end is None or not (end.isfile() or end.islnk()):
            raise _refuse(
                archive, name,
                f"is a symbolic link to {current!r}, which is not a regular file of the archive",
            )
    parents = {"/".join(n.split("/")[:i]) for n in seen for i in range(1, n.count("/") + 1)}
    for name, m in seen.items():
        if not m.isdir() and name in parents:
            raise _refuse(archive, m.name, "is both a file and the folder of other members")
    return members


def _file_mode(mode: int) -> int:
    mode &= 0o755  # no setuid/setgid/sticky, no group/other write
    mode |= 0o600  # the owner can read and write
    if not mode & stat.S_IXUSR:
        mode &= ~(stat.S_IXGRP | stat.S_IXOTH)
    return mode


class _Writer:
    """Writes members below ``dest`` and remembers what it made, to undo it."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.real = os.path.realpath(dest)
        self.made: list[tuple[str, bool]] = []  # (path, is_dir)
        self._checked: set[str] = set()  # folders whose real path was checked (no link is made before the end)

    def _inside(self, path: str) -> bool:
        return path == self.real or path.startswith(self.real.rstrip(os.sep) + os.sep)

    def path_of(self, name: str, archive: Path) -> str:
        path = os.path.join(self.real, *name.split("/"))
        parent = os.path.dirname(path)
        if parent not in self._checked:
            folder = os.path.realpath(parent)
            if not self._inside(folder):
                raise _refuse(archive, name, f"would be written below {folder}, outside {self.dest}")
            self._checked.add(parent)
        return path

    def folder(self, name: str, archive: Path) -> None:
        path = self.real
        for part in name.split("/"):
            path = os.path.join(path, part)
            if path in self._checked:
                continue
            try:
                os.mkdir(path, 0o755)
                self.made.append((path, True))
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    raise _refuse(archive, name, f"needs the folder {path}, which is not a folder") from None

    def file(self, name: str, archive: Path, source: Iterator[bytes], mode: int) -> str:
        parent = name.rsplit("/", 1)[0] if "/" in name else ""
        if parent:
            self.folder(parent, archive)
        path = self.path_of(name, archive)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ELOOP):
                raise _refuse(archive, name, f"would overwrite {path}") from None
            raise
        self.made.append((path, False))
        with os.fdopen(fd, "wb") as out:
            for chunk in source:
                out.write(chunk)
            os.fchmod(out.fileno(), _file_mode(mode))
        return path

    def symlink(self, name: str, archive: Path, target: str) -> None:
        parent = name.rsplit("/", 1)[0] if "/" in name else ""
        if parent:
            self.folder(parent, archive)
        path = self.path_of(name, archive)
        os.symlink(target, path)
        self.made.append((path, False))

    def undo(self) -> None:
        for path, is_dir in reversed(self.made):
            try:
                os.rmdir(path) if is_dir else os.unlink(path)
            except OSError:
                pass
        self.made.clear()


def _member_bytes(tar: tarfile.TarFile, m: tarfile.TarInfo, archive: Path) -> Iterator[bytes]:
    f = tar.extractfile(m)
    if f is None:
        raise _corrupt(archive, f"member {m.name!r} has no data", written=True)
    left = m.size
    with f:
        while left > 0:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                raise _corrupt(archive, f"member {m.name!r} is cut short ({m.size - left} of {m.size} bytes)",
                               written=True)
            left -= len(chunk)
            yield chunk


def _copy_of(path: str) -> Iterator[bytes]:
    with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def safe_extract(archive: str | os.PathLike[str], dest: str | os.PathLike[str], *,
                 max_members: int | None = None, max_bytes: int | None = None) -> list[str]:
    """Extract ``archive`` (any compression :mod:`tarfile` reads) into the existing
    folder ``dest`` after checking every member; return the extracted member names.

    ``max_members`` defaults to :func:`max_members`, ``max_bytes`` (member data in all)
    to :func:`expansion_limit` of the archive's size.  Raises
    :class:`UnsafeArchiveError` for an unsafe member or a bound passed and
    :class:`CorruptArchiveError` for an archive that does not read to its end; either
    way ``dest`` is left as it was.
    """
    archive = Path(archive)
    dest = Path(dest)
    writer = _Writer(dest)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = check_members(tar, archive, bounds_members=max_members, bounds_bytes=max_bytes,
                                    dest=dest)
            written: dict[str, str] = {}
            for m in members:
                name = _norm(m.name).rstrip("/")
                if not name or name == ".":
                    continue
                if m.isdir():
                    writer.folder(name, archive)
                elif m.isfile():
                    written[name] = writer.file(name, archive, _member_bytes(tar, m, archive), m.mode)
                elif m.islnk():
                    target = _norm(m.linkname).rstrip("/")
                    written[name] = writer.file(name, archive, _copy_of(written[target]),
                                                _members_mode(members, target))
            for m in members:
                if m.issym():
                    writer.symlink(_norm(m.name).rstrip("/"), archive, m.linkname)
    except UnsafeArchiveError as e:
        had = bool(writer.made)
        writer.undo()
        if had and not isinstance(e, CorruptArchiveError):
            raise UnsafeArchiveError(
                str(e).replace("nothing was extracted", "the files extracted so far were removed")
            ) from None
        raise
    except _READ_ERRORS as e:
        had = bool(writer.made)
        writer.undo()
        if not had and isinstance(e, tarfile.ReadError) and not isinstance(e, tarfile.HeaderError):
            raise _corrupt(archive, f"it is not a readable tar archive ({e})") from None
        raise _corrupt(archive, f"reading it failed ({e})", written=had) from None
    except BaseException:
        writer.undo()
        raise
    return [m.name for m in members]


def _members_mode(members: list[tarfile.TarInfo], name: str) -> int:
    """The mode of the regular member ``name`` (for a hard link's copy)."""
    for m in members:
        if _norm(m.name).rstrip("/") == name and m.isfile():
            return m.mode
    return 0o644
