"""Packaging: reproducible artifact tarballs and their manifest fragments.

A tarball holds exactly::

    lib/LLVMEnzyme-<llvm><suffix>           the library (mode 0755)
    share/licenses/<file>                   Enzyme's license file(s) (mode 0644)

plus the folders leading to them.  It is *deterministic*: members sorted by name, every
mtime ``SOURCE_DATE_EPOCH`` (default 0), owner and group 0 with empty names, fixed modes,
and a gzip header without file name or time.  Packing the same files twice gives the
same bytes, hence the same sha256 in the manifest.

A *fragment* is a one-entry ``Artifacts.toml`` (``<key>.toml`` next to the tarball) in
:mod:`enzyme_artifacts.manifest`'s format, written by :mod:`enzyme_artifacts.manifest_writer`;
``publish`` merges fragments into a manifest.  Facts the manifest format has no field for
(wheel policy, origin, source version) are written as comments above the entry, and kept
when the entry is merged.
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
from enzyme_artifacts.manifest import ArtifactEntry, TarballSource
from enzyme_artifacts.manifest_writer import write_manifest

from .environment import source_date_epoch

__all__ = [
    "FRAGMENT_HEADER",
    "PackagedArtifact",
    "package_library",
    "source_date_epoch",
    "write_fragment",
    "write_tarball",
]

FRAGMENT_HEADER = ("Manifest fragment written by `python -m build_recipes`;",
                   "`python -m build_recipes publish` merges fragments into Artifacts.toml.")


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


def write_fragment(path: str | os.PathLike[str], entry: ArtifactEntry, *, notes: Sequence[str] = ()) -> Path:
    """Write ``entry`` as a fragment, ``notes`` as the comment above it, and parse it back
    with enzyme_artifacts' parser (raising its
    :class:`~enzyme_artifacts.errors.ManifestError` if it does not read back)."""
    return write_manifest(path, [entry], comments={entry.key: notes}, header=FRAGMENT_HEADER)


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
