"""Packaging: reproducible artifact tarballs and their manifest fragments.

A tarball holds exactly::

    lib/LLVMEnzyme-<llvm><suffix>           the library (mode 0755)
    share/licenses/<file>                   Enzyme's license file(s) (mode 0644)

plus the folders leading to them.  It is *deterministic*: members sorted by name, every
mtime ``SOURCE_DATE_EPOCH`` (default 0), owner and group 0 with empty names, fixed modes,
and a gzip header without file name or time.  Packing the same files twice gives the
same bytes, hence the same sha256 in the manifest.

A *fragment* is a one-entry ``Artifacts.toml`` (``<key>.toml`` next to the tarball) in
:mod:`enzyme_artifacts.manifest`'s format; ``publish`` merges fragments into a manifest.
Facts the manifest format has no field for (wheel policy, origin) are written as
comments.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from enzyme_artifacts.hashes import sha256_file
from enzyme_artifacts.manifest import ArtifactEntry, TarballSource, WheelSource, load_manifest

__all__ = [
    "PackagedArtifact",
    "package_library",
    "render_entries",
    "source_date_epoch",
    "write_fragment",
    "write_tarball",
]


def source_date_epoch() -> int:
    """Member mtime: ``$SOURCE_DATE_EPOCH`` when set (an integer), else 0."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "0")
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"SOURCE_DATE_EPOCH={raw!r} is not an integer number of seconds") from None
    if value < 0:
        raise ValueError(f"SOURCE_DATE_EPOCH={value} is negative")
    return value


def write_tarball(out: str | os.PathLike[str], files: Mapping[str, Path | bytes], *,
                  executables: Sequence[str] = ()) -> Path:
    """Write a reproducible ``.tar.gz`` of ``files`` (archive path -> file or bytes).

    Parent folders are added as members.  ``executables`` get mode 0755, other files
    0644.  Archive paths must be relative POSIX paths without ``..``.  The file is
    written beside ``out`` and renamed into place.
    """
    mtime = source_date_epoch()
    members: dict[str, Path | bytes | None] = {}
    for name, given in files.items():
        pp = PurePosixPath(name)
        if pp.is_absolute() or ".." in pp.parts or not pp.parts or "\\" in name:
            raise ValueError(f"archive path {name!r} must be relative, without '..'")
        for i in range(1, len(pp.parts)):
            members.setdefault("/".join(pp.parts[:i]), None)
        members[str(pp)] = given
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            content = members[name]
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if content is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
                continue
            data = content if isinstance(content, bytes) else Path(content).read_bytes()
            info.size = len(data)
            info.mode = 0o755 if name in executables else 0o644
            tar.addfile(info, io.BytesIO(data))
    with open(tmp, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0,
                                             compresslevel=6) as gz:
        gz.write(raw.getvalue())
    os.replace(tmp, target)
    return target


def _q(value: str) -> str:
    """A TOML basic string (JSON's escaping is valid TOML for these values)."""
    return json.dumps(value, ensure_ascii=False)


def render_entries(entries: Sequence[ArtifactEntry], *, comments: Mapping[str, Sequence[str]] = {},
                   header: Sequence[str] = ()) -> str:
    """Entries as Artifacts.toml text that :func:`enzyme_artifacts.manifest.parse_manifest`
    reads back to equal entries.  ``comments`` maps an entry key to comment lines written
    above it."""
    out = [f"# {line}".rstrip() for line in header]
    for e in entries:
        if out:
            out.append("")
        out += [f"# {line}".rstrip() for line in comments.get(e.key, ())]
        out.append(f"[[{e.name}]]")
        out.append(f"enzyme_version = {_q(e.enzyme_version)}")
        out.append(f"llvm_version = {e.llvm_version}")
        out.append(f"arch = {_q(e.arch)}")
        out.append(f"os = {_q(e.os)}")
        if e.libc is not None:
            out.append(f"libc = {_q(e.libc)}")
        if e.cxxstring_abi is not None:
            out.append(f"cxxstring_abi = {_q(e.cxxstring_abi)}")
        out.append(f"capi = {_q(e.capi)}")
        out.append(f"lazy = {'true' if e.lazy else 'false'}")
        for s in e.sources:
            out.append("")
            out.append(f"    [[{e.name}.download]]")
            if isinstance(s, TarballSource):
                out.append(f"    url = {_q(s.url)}")
                out.append(f"    sha256 = {_q(s.sha256)}")
                out.append(f"    size = {s.size}")
            elif isinstance(s, WheelSource):
                out.append('    kind = "wheel"')
                out.append(f"    requirement = {_q(s.requirement)}")
                out.append(f"    platform = {_q(s.platform)}")
                out.append(f"    python_version = {_q(s.python_version)}")
                if s.wheel_sha256:
                    out.append(f"    wheel_sha256 = {_q(s.wheel_sha256)}")
                out.append(f"    member = {_q(s.member)}")
                out.append(f"    sha256 = {_q(s.sha256)}")
                if s.size is not None:
                    out.append(f"    size = {s.size}")
                if s.replace_needed:
                    pairs = ", ".join(f"{_q(k)} = {_q(v)}" for k, v in s.replace_needed.items())
                    out.append(f"    replace_needed = {{ {pairs} }}")
                if s.license_members:
                    out.append(f"    license_members = [{', '.join(map(_q, s.license_members))}]")
            else:  # pragma: no cover - the manifest has two source kinds
                raise TypeError(f"unknown source {s!r}")
    return "\n".join(out) + "\n"


def write_fragment(path: str | os.PathLike[str], entry: ArtifactEntry, *, notes: Sequence[str] = ()) -> Path:
    """Write ``entry`` as a fragment and parse it back with enzyme_artifacts' parser
    (raising its :class:`~enzyme_artifacts.errors.ManifestError` if it does not)."""
    p = Path(path)
    text = render_entries([entry], comments={entry.key: notes},
                          header=["Manifest fragment written by `python -m build_recipes`;",
                                  "`python -m build_recipes publish` merges fragments into Artifacts.toml."])
    tmp = p.with_name(p.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    try:
        parsed = load_manifest(tmp).entries
    except BaseException:
        tmp.unlink()
        raise
    if parsed != (entry,):
        tmp.unlink()
        raise AssertionError(f"fragment {p} does not read back to the entry written: {parsed} != {entry}")
    os.replace(tmp, p)
    return p


@dataclass(frozen=True, slots=True)
class PackagedArtifact:
    """A packaged library: its tarball, fragment, build-info file and manifest entry."""

    tarball: Path
    fragment: Path
    info: Path
    entry: ArtifactEntry
    sha256: str
    size: int


def package_library(*, library: Path, licenses: Mapping[str, Path | bytes], out_dir: Path,
                    entry_fields: Mapping[str, object], tarball_name: str, base_url: str,
                    notes: Sequence[str] = (), info: Mapping[str, Any] | None = None) -> PackagedArtifact:
    """Pack ``library`` and ``licenses`` (file name -> content) into ``out_dir/tarball_name``
    and write its fragment ``<key>.toml`` and build-info ``<key>.json`` beside it.

    ``entry_fields`` are the :class:`ArtifactEntry` fields other than ``sources``; the
    download URL is ``base_url/tarball_name``.  ``info`` (JSON-serialisable: wheel tag,
    policy, origin, check results) is stored in the build-info file with the tarball's
    name, sha256 and size; the wheel project reads it.
    """
    probe = ArtifactEntry(**{**entry_fields, "sources": ()})  # type: ignore[arg-type]
    libname = PurePosixPath(probe.library_relpath)
    files: dict[str, Path | bytes] = {str(libname): library}
    for fname, content in sorted(licenses.items()):
        files[f"share/licenses/{fname}"] = content
    tarball = write_tarball(out_dir / tarball_name, files, executables=[str(libname)])
    sha, size = sha256_file(tarball), tarball.stat().st_size
    entry = ArtifactEntry(**{**entry_fields,  # type: ignore[arg-type]
                             "sources": (TarballSource(f"{base_url.rstrip('/')}/{tarball_name}", sha, size),)})
    fragment = write_fragment(out_dir / f"{entry.key}.toml", entry, notes=notes)
    info_path = out_dir / f"{entry.key}.json"
    record = {"key": entry.key, "tarball": tarball.name, "sha256": sha, "size": size,
              "llvm": entry.llvm_version, "platform": str(entry.platform), **dict(info or {})}
    info_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return PackagedArtifact(tarball, fragment, info_path, entry, sha, size)
