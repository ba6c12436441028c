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
sources as fallbacks.  It refuses to publish into an entry whose C-API profile differs, and
to add a *version* next to an entry of another one for the same LLVM major and platform
unless told to (``--new-version``: a release of a new Enzyme version), so a from-source build
never lands in the official manifest by accident.  Comments are kept: the file's header and
the comment above each existing entry; new entries get their fragment's notes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from enzyme_artifacts.hashes import sha256_file
from enzyme_artifacts.manifest import ArtifactEntry, Source, TarballSource, load_manifest
from enzyme_artifacts.manifest_writer import read_comments, write_manifest

from .errors import PublishError

__all__ = ["Fragment", "PublishError", "Published", "collect_fragments", "merge_into_manifest", "publish"]

MANIFEST_NAME = "Artifacts.toml"


@dataclass(frozen=True, slots=True)
class Fragment:
    """One artifact to publish: its manifest ``entry``, its verified ``tarball`` and the
    ``notes`` (comment lines) its fragment carries above the entry."""

    entry: ArtifactEntry
    tarball: Path
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Published:
    """What :func:`publish` did; ``comments`` maps entry keys to their comment lines."""

    mirror: Path
    manifest: Path
    entries: tuple[ArtifactEntry, ...]
    copied: tuple[str, ...]
    unchanged: tuple[str, ...]
    comments: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))


def _identity(e: ArtifactEntry) -> tuple[str, str, int, str]:
    return (e.name, e.enzyme_version, e.llvm_version, str(e.platform))


def _slot(e: ArtifactEntry) -> tuple[str, int, str]:
    return (e.name, e.llvm_version, str(e.platform))


def _describe(e: ArtifactEntry) -> str:
    return f"{e.name} {e.enzyme_version} (capi {e.capi}) for {e.platform} and LLVM {e.llvm_version}"


def collect_fragments(folders: Iterable[Path]) -> list[Fragment]:
    """Every fragment in ``folders`` with its tarball verified, sorted by key.

    When two folders hold the same artifact (same key), the first folder given wins
    (e.g. ``--from built --from repacked``: repacked binaries fill the gaps); the same
    key twice with different tarballs inside one folder is an error.
    """
    out: dict[str, Fragment] = {}
    for folder in folders:
        earlier = set(out)
        if not folder.is_dir():
            raise PublishError(f"--from {folder} is not a folder")
        fragments = sorted(p for p in folder.glob("*.toml") if p.name != MANIFEST_NAME)
        for frag in fragments:
            parsed = load_manifest(frag)
            notes = read_comments(frag.read_text(encoding="utf-8"), parsed.entries).entries
            for entry in parsed.entries:
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
                if prev is not None and prev.entry.sources != entry.sources:
                    raise PublishError(f"{entry.key} appears twice in {folder} with different tarballs "
                                       f"({prev.tarball.name} and {path.name}); keep one of them")
                out[entry.key] = Fragment(entry, path, tuple(notes.get(entry.key, ())))
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
    for item in items:
        entry, path = item.entry, item.tarball
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
    entries = {i.entry.key: _rebase(i.entry, base_url) for i in items}
    comments: dict[str, tuple[str, ...]] = {i.entry.key: i.notes for i in items}
    manifest = mirror / MANIFEST_NAME
    if manifest.exists():
        old_manifest = load_manifest(manifest)
        old_comments = read_comments(manifest.read_text(encoding="utf-8"), old_manifest.entries).entries
        for old in old_manifest.entries:
            if old.key in entries:
                was = {s.sha256 for s in old.sources if isinstance(s, TarballSource)}
                now = {s.sha256 for s in entries[old.key].sources if isinstance(s, TarballSource)}
                if was and was != now:
                    raise PublishError(f"{manifest} already lists {old.key} with another sha256; "
                                       "published artifacts are immutable: publish to a new folder")
                if old.capi != entries[old.key].capi:
                    raise PublishError(f"{manifest} lists {old.key} with capi {old.capi}, the new fragment "
                                       f"says {entries[old.key].capi}; publish to a new folder")
                continue
            entries[old.key] = old
            comments[old.key] = tuple(old_comments.get(old.key, ()))
    ordered = tuple(entries[k] for k in sorted(entries))
    _write_manifest(manifest, ordered, comments=comments, header=[
        "Artifacts published by `python -m build_recipes publish`.",
        "Serve this folder over HTTP and set ENZYME_ARTIFACTS_MIRROR to its URL, or point",
        "ENZYME_ARTIFACTS_MANIFEST at this file.",
    ])
    sums = "".join(f"{sha256_file(p)}  {p.name}\n" for p in sorted(mirror.glob("*.tar.gz")))
    (mirror / "SHA256SUMS").write_text(sums, encoding="utf-8")
    return Published(mirror, manifest, ordered, tuple(copied), tuple(unchanged),
                     MappingProxyType({k: comments.get(k, ()) for k in entries}))


def _write_manifest(path: Path, entries: Sequence[ArtifactEntry], *,
                    comments: Mapping[str, Sequence[str]] | None = None, header: Sequence[str]) -> None:
    try:
        write_manifest(path, entries, comments=comments, header=header)
    except ValueError as e:  # ManifestError is a ValueError too
        raise PublishError(f"the manifest for {path} was not written: {e}") from None


def merge_into_manifest(manifest: Path, new_entries: Sequence[ArtifactEntry], *,
                        comments: Mapping[str, Sequence[str]] | None = None,
                        new_versions: bool = False) -> Path:
    """Fold ``new_entries`` into ``manifest`` (in place) and return its path.

    * Same (name, Enzyme version, LLVM major, platform) as an existing entry: the new
      tarball becomes its first download, the old sources not already listed follow; the
      entry's comment stays.  A different ``capi`` is refused.
    * A version the manifest does not list for that LLVM major and platform, while it lists
      another: refused unless ``new_versions`` (a release of a new Enzyme version), then
      added as an entry of its own.
    * Otherwise the entry is appended, with ``comments[key]`` above it.

    The file's header comment and every existing entry's comment are kept.  Raises
    :class:`PublishError` (the file is unchanged then).
    """
    old = load_manifest(manifest)
    text = manifest.read_text(encoding="utf-8")
    kept = read_comments(text, old.entries)
    notes: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in kept.entries.items()}
    by_identity = {_identity(e): e for e in old.entries}
    by_slot: dict[tuple[str, int, str], list[ArtifactEntry]] = {}
    for e in old.entries:
        by_slot.setdefault(_slot(e), []).append(e)
    for new in new_entries:
        same = by_identity.get(_identity(new))
        if same is not None:
            if new.capi != same.capi:
                raise PublishError(
                    f"{manifest}: refusing to publish {_describe(new)} into the entry {same.key}, whose capi "
                    f"is {same.capi}: one entry is one C API. Check which profile the binary has "
                    "(python -m build_recipes check), or publish it to another manifest")
            continue
        others = [e for e in by_slot.get(_slot(new), []) if e.enzyme_version != new.enzyme_version]
        if others and not new_versions:
            listed = "; ".join(_describe(e) for e in others)
            raise PublishError(
                f"{manifest}: refusing to publish {_describe(new)}: the manifest has {listed}, another "
                "version. A from-source build belongs in a manifest of its own (--update-manifest "
                "other.toml, or ENZYME_ARTIFACTS_LIBRARY); for a release of a new Enzyme version pass "
                "--new-version to add it as an entry of its own")
    merged: list[ArtifactEntry] = []
    pending = {_identity(e): e for e in new_entries}
    for e in old.entries:
        fresh = pending.pop(_identity(e), None)
        if fresh is None:
            merged.append(e)
            continue
        keep = [s for s in e.sources if s not in fresh.sources and not (
            isinstance(s, TarballSource) and any(isinstance(n, TarballSource) and n.url == s.url
                                                 for n in fresh.sources))]
        merged.append(replace(e, sources=tuple(fresh.sources) + tuple(keep)))
    for ident in sorted(pending):
        entry = pending[ident]
        merged.append(entry)
        if comments and comments.get(entry.key):
            notes[entry.key] = tuple(comments[entry.key])
    _write_manifest(manifest, merged, comments=notes, header=kept.header)
    return manifest
