"""Publishing: a mirror folder any static HTTP server can serve, and merged manifests.

:func:`publish` reads every fragment (``*.toml``) in the given folders, checks that each
fragment's tarball is present with exactly the size and sha256 the fragment states, and
copies the tarballs into the mirror folder (flat: ``ENZYME_ARTIFACTS_MIRROR`` keeps file
names and replaces the base URL).  It writes there

* ``Artifacts.toml``: every published entry, URLs rebased on ``base_url``; and
* ``SHA256SUMS``: ``sha256sum -c`` compatible digests of the tarballs.

A file already in the mirror is never overwritten with different bytes (published files
are immutable); publishing the same bytes again is a no-op, and entries already listed in
the mirror's ``Artifacts.toml`` are kept.

:func:`merge_into_manifest` folds the published entries into another manifest (the
bundled ``enzyme_artifacts/Artifacts.toml``): an entry for the same Enzyme version, LLVM
major and platform gets the new tarball as its *first* download and keeps its other
sources as fallbacks.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from enzyme_artifacts.hashes import sha256_file
from enzyme_artifacts.manifest import ArtifactEntry, Source, TarballSource, load_manifest

from .package import render_entries

__all__ = ["PublishError", "Published", "collect_fragments", "merge_into_manifest", "publish"]

MANIFEST_NAME = "Artifacts.toml"


class PublishError(RuntimeError):
    """A fragment, a tarball or the mirror is inconsistent; nothing was overwritten."""


@dataclass(frozen=True, slots=True)
class Published:
    """What :func:`publish` did."""

    mirror: Path
    manifest: Path
    entries: tuple[ArtifactEntry, ...]
    copied: tuple[str, ...]
    unchanged: tuple[str, ...]


def _identity(e: ArtifactEntry) -> tuple[str, str, int, str]:
    return (e.name, e.enzyme_version, e.llvm_version, str(e.platform))


def collect_fragments(folders: Iterable[Path]) -> list[tuple[ArtifactEntry, Path]]:
    """``(entry, tarball path)`` for every fragment in ``folders``, tarballs verified.

    When two folders hold the same artifact (same key), the first folder given wins
    (e.g. ``--from built --from repacked``: repacked binaries fill the gaps); the same
    key twice with different tarballs inside one folder is an error.
    """
    out: dict[str, tuple[ArtifactEntry, Path]] = {}
    for folder in folders:
        earlier = set(out)
        if not folder.is_dir():
            raise PublishError(f"--from {folder} is not a folder")
        fragments = sorted(p for p in folder.glob("*.toml") if p.name != MANIFEST_NAME)
        for frag in fragments:
            for entry in load_manifest(frag).entries:
                if entry.key in earlier:
                    continue
                tarballs = [s for s in entry.sources if isinstance(s, TarballSource)]
                if len(tarballs) != 1:
                    raise PublishError(f"{frag}: {entry.key} must have exactly one tarball download")
                src = tarballs[0]
                name = src.url.rsplit("/", 1)[-1]
                path = folder / name
                if not path.is_file():
                    raise PublishError(f"{frag} names {name}, which is not in {folder}")
                size = path.stat().st_size
                digest = sha256_file(path)
                if (size, digest) != (src.size, src.sha256):
                    raise PublishError(f"{path} is {size} bytes with sha256 {digest}, but {frag} says "
                                       f"{src.size} bytes, {src.sha256}; rebuild or repack it")
                prev = out.get(entry.key)
                if prev is not None and prev[0].sources != entry.sources:
                    raise PublishError(f"{entry.key} appears twice in {folder} with different tarballs "
                                       f"({prev[1].name} and {path.name}); keep one of them")
                out[entry.key] = (entry, path)
    if not out:
        raise PublishError("no manifest fragments (*.toml) found in " + ", ".join(map(str, folders)))
    return [out[k] for k in sorted(out)]


def _rebase(entry: ArtifactEntry, base_url: str | None) -> ArtifactEntry:
    if base_url is None:
        return entry
    sources: list[Source] = []
    for s in entry.sources:
        if isinstance(s, TarballSource):
            s = TarballSource(f"{base_url.rstrip('/')}/{s.url.rsplit('/', 1)[-1]}", s.sha256, s.size)
        sources.append(s)
    return replace(entry, sources=tuple(sources))


def publish(from_dirs: Sequence[Path], mirror: Path, *, base_url: str | None = None) -> Published:
    """Copy verified tarballs into ``mirror`` and write its ``Artifacts.toml`` and ``SHA256SUMS``."""
    items = collect_fragments(from_dirs)
    mirror.mkdir(parents=True, exist_ok=True)
    copied: list[str] = []
    unchanged: list[str] = []
    for entry, path in items:
        target = mirror / path.name
        src = next(s for s in entry.sources if isinstance(s, TarballSource))
        if target.exists():
            if target.stat().st_size == src.size and sha256_file(target) == src.sha256:
                unchanged.append(path.name)
                continue
            raise PublishError(f"{target} exists with other bytes than {path}; published files are "
                               "immutable: bump the version or publish to a new folder")
        tmp = target.with_name(target.name + ".partial")
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
        copied.append(path.name)
    entries = {e.key: _rebase(e, base_url) for e, _ in items}
    manifest = mirror / MANIFEST_NAME
    if manifest.exists():
        for old in load_manifest(manifest).entries:
            if old.key in entries:
                was = {s.sha256 for s in old.sources if isinstance(s, TarballSource)}
                now = {s.sha256 for s in entries[old.key].sources if isinstance(s, TarballSource)}
                if was and was != now:
                    raise PublishError(f"{manifest} already lists {old.key} with another sha256; "
                                       "published artifacts are immutable: publish to a new folder")
                continue
            entries[old.key] = old
    ordered = tuple(entries[k] for k in sorted(entries))
    _write_manifest(manifest, ordered, header=[
        "Artifacts published by `python -m build_recipes publish`.",
        "Serve this folder over HTTP and set ENZYME_ARTIFACTS_MIRROR to its URL, or point",
        "ENZYME_ARTIFACTS_MANIFEST at this file.",
    ])
    sums = "".join(f"{sha256_file(p)}  {p.name}\n" for p in sorted(mirror.glob("*.tar.gz")))
    (mirror / "SHA256SUMS").write_text(sums, encoding="utf-8")
    return Published(mirror, manifest, ordered, tuple(copied), tuple(unchanged))


def _write_manifest(path: Path, entries: Sequence[ArtifactEntry], *, header: Sequence[str]) -> None:
    text = render_entries(entries, header=header)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    try:
        parsed = load_manifest(tmp).entries
    except BaseException:
        tmp.unlink()
        raise
    if tuple(parsed) != tuple(entries):
        tmp.unlink()
        raise PublishError(f"the manifest written for {path} does not read back to the same entries")
    os.replace(tmp, path)


def merge_into_manifest(manifest: Path, new_entries: Sequence[ArtifactEntry]) -> Path:
    """Fold ``new_entries`` into ``manifest`` (in place): same identity → the new tarball
    first, then the old sources not already listed; otherwise appended.  The file's
    leading comment block is kept."""
    old = load_manifest(manifest)
    merged: list[ArtifactEntry] = []
    pending = {_identity(e): e for e in new_entries}
    for e in old.entries:
        new = pending.pop(_identity(e), None)
        if new is None:
            merged.append(e)
            continue
        if new.capi != e.capi:
            raise PublishError(f"{manifest}: {e.key} has capi {e.capi}, the new artifact {new.capi}")
        keep = [s for s in e.sources if s not in new.sources and not (
            isinstance(s, TarballSource) and any(isinstance(n, TarballSource) and n.url == s.url
                                                 for n in new.sources))]
        merged.append(replace(e, sources=tuple(new.sources) + tuple(keep)))
    merged.extend(pending[k] for k in sorted(pending))
    lines = manifest.read_text(encoding="utf-8").splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line[1:].strip())
    _write_manifest(manifest, merged, header=header)
    return manifest
