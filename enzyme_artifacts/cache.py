"""The content-addressed artifact cache.

Layout under the cache root (:func:`enzyme_artifacts.paths.cache_root`:
``ENZYME_ARTIFACTS_CACHE``, default ``platformdirs``' user cache folder)::

    artifacts/<tree sha256>/          one installed artifact, named by its content
        lib/LLVMEnzyme-15.so
        share/licenses/...
        enzyme-artifact.json          the record: source, file hashes, time, libLLVM binding
    index/<key>.json                  entry key -> artifact folder (no libLLVM binding)
    index/<key>@<soname>.json         same, for an artifact bound to that libLLVM SONAME
    tmp/                              downloads and extractions in progress
    install.lock                      the inter-process lock held while installing
    install.lock.owner                who holds it (pid, host, since, purpose)
    validated/                        libraries that passed the child check (see plugin)

Invariants:

* :meth:`Cache.lookup` reads only ``index/`` and ``artifacts/`` through exact names,
  takes no lock and hashes nothing; it never sees a partial artifact, because artifacts
  are built under ``tmp/`` and appear with one atomic rename, and index files are
  written to a temporary name and renamed;
* :meth:`Cache.install` holds ``install.lock``, looks again, sweeps ``tmp/`` (left-overs
  of a killed install, which only the lock holder may write), then tries the entry's
  sources in order;
* an index file is trusted only if the source digest it records is one of the entry's,
  so editing the manifest invalidates the old binding;
* the tree sha256 (see :mod:`enzyme_artifacts.hashes`) excludes the record file;
* an installed library's real path lies inside its artifact folder: a library that
  resolves (through links) anywhere else is never installed, and an artifact found so
  on disk is treated as not installed (and reported by :meth:`Cache.verify`);
* a tarball is extracted within bounds taken from its manifest size (see
  :mod:`enzyme_artifacts._extract`), and ``DT_NEEDED`` is rewritten in the real file
  inside the staging tree, never through a link.

Nothing is created until :meth:`Cache.install` (or :meth:`Cache.clean`) needs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ._lock import locked
from .download import OFFLINE_ENV, download, is_offline, mirror_url
from .errors import (
    ArtifactError,
    CacheError,
    DownloadError,
    HashMismatchError,
    OfflineError,
    UnsafeArchiveError,
)
from .hashes import SYMLINK_PREFIX, tree_digest, tree_files
from .manifest import (
    LIBLLVM_PLACEHOLDER,
    ArtifactEntry,
    Source,
    TarballSource,
    resolve_renames,
)
from .paths import CACHE_ENV, cache_root

__all__ = ["CACHE_ENV", "RECORD_NAME", "Cache", "InstalledArtifact", "cache_root", "library_inside"]

RECORD_NAME = "enzyme-artifact.json"
_FORMAT = 1
_SAFE_NAME = re.compile(r"[A-Za-z0-9._+-]+")


def library_inside(folder: Path, library: Path) -> bool:
    """True when ``library`` exists and its real path lies inside ``folder``'s real path."""
    try:
        real = Path(os.path.realpath(library))
        return real.is_file() and real.is_relative_to(os.path.realpath(folder))
    except (OSError, ValueError):
        return False


@dataclass(frozen=True, slots=True)
class InstalledArtifact:
    """An artifact present in the cache.

    ``files`` maps every installed file's relative path to its sha256 (a symbolic link
    to ``symlink:<target>``); ``library`` is ``path / entry.library_relpath``.
    """

    key: str
    path: Path
    library: Path
    source: str
    files: Mapping[str, str]
    installed_at: str
    llvm_soname: str | None

    def __hash__(self) -> int:
        return hash((self.key, self.path, self.llvm_soname))

    @property
    def record_path(self) -> Path:
        """The JSON record inside the artifact folder."""
        return self.path / RECORD_NAME


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _source_digest(source: Source) -> str:
    return source.sha256


def _binds_libllvm(source: Source) -> bool:
    return LIBLLVM_PLACEHOLDER in source.replace_needed.values()


class Cache:
    """The artifact store at ``root`` (default :func:`cache_root`).  Cheap to construct."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root()

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r})"

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def lock_path(self) -> Path:
        return self.root / "install.lock"

    # -- lookup ----------------------------------------------------------------------

    def _index_name(self, key: str, llvm_soname: str | None) -> str:
        if llvm_soname is None:
            return f"{key}.json"
        tag = llvm_soname if _SAFE_NAME.fullmatch(llvm_soname) else "h" + _short_hash(llvm_soname)
        return f"{key}@{tag}.json"

    def _from_index(self, index_file: Path, entry: ArtifactEntry | None) -> InstalledArtifact | None:
        idx = _read_json(index_file)
        if idx is None or not isinstance(idx.get("artifact"), str) or not _SAFE_NAME.fullmatch(idx["artifact"]):
            return None
        if entry is not None:
            if idx.get("key") != entry.key:
                return None
            if idx.get("source_sha256") not in {_source_digest(s) for s in entry.sources}:
                return None
        folder = self.artifacts_dir / idx["artifact"]
        rec = _read_json(folder / RECORD_NAME)
        if rec is None or not isinstance(rec.get("library"), str) or not isinstance(rec.get("files"), dict):
            return None
        library = folder / rec["library"]
        if not library_inside(folder, library):
            return None  # missing, or a link leading out of the artifact: not installed
        return InstalledArtifact(
            key=str(idx.get("key")),
            path=folder,
            library=library,
            source=str(rec.get("source", "")),
            files=MappingProxyType({str(k): str(v) for k, v in rec["files"].items()}),
            installed_at=str(rec.get("installed_at", "")),
            llvm_soname=idx.get("llvm_soname") if isinstance(idx.get("llvm_soname"), str) else None,
        )

    def lookup(self, entry: ArtifactEntry, *, llvm_soname: str | None = None) -> InstalledArtifact | None:
        """The installed artifact for ``entry`` (bound to ``llvm_soname`` when its source
        rewrites ``DT_NEEDED``), or ``None``.  No lock, no hashing, no writes.

        With ``llvm_soname=None`` an artifact bound to any libLLVM is accepted (the first
        by name), after one that needs no binding.
        """
        names = [self._index_name(entry.key, llvm_soname)] if llvm_soname else []
        names.append(self._index_name(entry.key, None))
        for name in names:
            found = self._from_index(self.index_dir / name, entry)
            if found is not None:
                return found
        if llvm_soname is None:
            try:
                bound = sorted(self.index_dir.glob(f"{glob_escape(entry.key)}@*.json"))
            except OSError:
                bound = []
            for path in bound:
                found = self._from_index(path, entry)
                if found is not None:
                    return found
        return None

    # -- install ---------------------------------------------------------------------

    def install(
        self,
        entry: ArtifactEntry,
        *,
        llvm_soname: str | None = None,
        progress: bool | None = None,
    ) -> InstalledArtifact:
        """Make ``entry`` present in the cache and return it.

        Returns at once when :meth:`lookup` finds it.  Otherwise takes the install lock
        (so N processes asking at once download once), looks again, and tries each
        source in order.  Raises :class:`OfflineError` when ``ENZYME_ARTIFACTS_OFFLINE``
        is set, :class:`HashMismatchError`/:class:`DownloadError` when every source
        failed (the message lists each failure), :class:`CacheError` when the cache
        folder is unusable.
        """
        found = self.lookup(entry, llvm_soname=llvm_soname)
        if found is not None:
            return found
        if is_offline():
            raise OfflineError(
                f"{entry.key} is not in the cache {self.root} and {OFFLINE_ENV} is set, so nothing "
                f"was downloaded; unset {OFFLINE_ENV} to fetch it, or copy a cache filled on a "
                f"connected machine and point {CACHE_ENV} at it"
            )
        self._make_dirs()
        with locked(self.lock_path, purpose=f"install {entry.key}"):
            found = self.lookup(entry, llvm_soname=llvm_soname)
            if found is not None:
                return found
            self._sweep_tmp()
            failures: list[tuple[Source, ArtifactError]] = []
            for source in entry.sources:
                try:
                    return self._install_from(entry, source, llvm_soname, progress)
                except OfflineError:
                    raise
                except CacheError:
                    raise
                except ArtifactError as e:
                    failures.append((source, e))
            if len(failures) == 1:
                raise failures[0][1]
            lines = "; ".join(f"[{i + 1}] {s.describe()}: {e}" for i, (s, e) in enumerate(failures))
            cls = HashMismatchError if all(isinstance(e, HashMismatchError) for _, e in failures) else DownloadError
            raise cls(f"every source of {entry.key} failed: {lines}")

    def _make_dirs(self) -> None:
        try:
            for d in (self.artifacts_dir, self.index_dir, self.tmp_dir):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(
                f"cannot create the cache folder {self.root}: {e.strerror or e}; make it writable or "
                f"choose another with {CACHE_ENV}"
            ) from None

    def _sweep_tmp(self) -> list[Path]:
        """Remove left-overs of killed installs.  Only call with the install lock held."""
        removed: list[Path] = []
        for d in (self.tmp_dir,):
            with contextlib.suppress(FileNotFoundError):
                for child in d.iterdir():
                    _remove_path(child)
                    removed.append(child)
        for d in (self.index_dir, self.artifacts_dir):
            with contextlib.suppress(FileNotFoundError):
                for child in d.iterdir():
                    if child.name.startswith(".") and child.name.endswith(".tmp"):
                        _remove_path(child)
                        removed.append(child)
        return removed

    def _install_from(
        self, entry: ArtifactEntry, source: Source, llvm_soname: str | None, progress: bool | None
    ) -> InstalledArtifact:
        from .errors import ElfRewriteError, NotElfError

        staging = Path(tempfile.mkdtemp(prefix="install-", dir=self.tmp_dir))
        try:
            tree = staging / "tree"
            tree.mkdir()
            bound: str | None = None
            renames: Mapping[str, str] = {}
            if isinstance(source, TarballSource):
                from ._extract import expansion_limit, safe_extract
                from .elf import replace_needed

                renames = resolve_renames(source, llvm_soname)  # fail before any download
                url = mirror_url(source.url)
                archive = staging / (url.rsplit("/", 1)[-1] or "artifact.tar")
                download(url, archive, sha256=source.sha256, size=source.size, progress=progress,
                         apply_mirror=False)
                safe_extract(archive, tree, max_bytes=expansion_limit(source.size))
                archive.unlink()
                described = url
                library = tree / entry.library_relpath
                if not os.path.lexists(library):
                    raise DownloadError(
                        f"{url} does not contain {entry.library_relpath} (an artifact tarball holds "
                        "lib/<name>-<llvm>.<ext> and license files); fix the tarball or the manifest"
                    )
                if not library_inside(tree, library):
                    raise UnsafeArchiveError(
                        f"refusing {url}: its {entry.library_relpath} resolves to "
                        f"{os.path.realpath(library)}, outside the artifact; nothing was installed. "
                        "The archive is damaged or malicious: report its source"
                    )
                if renames:
                    try:
                        # the real file inside the tree, never through a link
                        replace_needed(Path(os.path.realpath(library)), renames)
                    except (ElfRewriteError, NotElfError) as e:
                        raise DownloadError(f"{url}: {e}") from None
            else:
                from ._wheel import install_from_wheel

                try:
                    renames = install_from_wheel(source, tree, entry.library_relpath, workdir=staging,
                                                 llvm_soname=llvm_soname, progress=progress)
                except (ElfRewriteError, NotElfError) as e:
                    raise DownloadError(f"{source.describe()}: {e}") from None
                described = source.describe()
            bound = llvm_soname if _binds_libllvm(source) else None
            if not library_inside(tree, tree / entry.library_relpath):
                raise DownloadError(f"{described} did not give a regular {entry.library_relpath}")
            try:
                files = tree_files(tree)
            except ValueError as e:
                raise DownloadError(f"{described}: {e}") from None
            digest = tree_digest(tree, files)
            record = {
                "format": _FORMAT,
                "key": entry.key,
                "library": entry.library_relpath,
                "source": described,
                "source_kind": "tarball" if isinstance(source, TarballSource) else "wheel",
                "source_sha256": _source_digest(source),
                "files": files,
                "tree_sha256": digest,
                "installed_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "llvm_soname": bound,
                "replace_needed": dict(renames),
                "enzyme_version": entry.enzyme_version,
                "llvm_version": entry.llvm_version,
                "capi": entry.capi,
            }
            for rel, d in files.items():
                if not d.startswith(SYMLINK_PREFIX):
                    _fsync_file(tree / rel)
            _write_json_atomic(tree / RECORD_NAME, record)
            dest = self.artifacts_dir / digest
            if dest.exists():
                existing = self._from_folder(dest, entry.key, bound)
                if existing is None or self.verify(existing):
                    _remove_path(dest, via=staging / "old")
            if not dest.exists():
                os.rename(tree, dest)
                _fsync_dir(self.artifacts_dir)
            index = {
                "format": _FORMAT,
                "key": entry.key,
                "llvm_soname": bound,
                "artifact": digest,
                "source_sha256": _source_digest(source),
            }
            _write_json_atomic(self.index_dir / self._index_name(entry.key, bound), index)
            _fsync_dir(self.index_dir)
            found = self._from_index(self.index_dir / self._index_name(entry.key, bound), entry)
            if found is None:
                raise CacheError(f"the artifact just installed in {dest} cannot be read back; check the disk")
            return found
        except OSError as e:
            if isinstance(e, ArtifactError):
                raise
            raise CacheError(
                f"installing {entry.key} into {self.root} failed: {e}; check free space and permissions, "
                f"or choose another folder with {CACHE_ENV}"
            ) from None
        finally:
            _remove_path(staging)

    def _from_folder(self, folder: Path, key: str, soname: str | None) -> InstalledArtifact | None:
        rec = _read_json(folder / RECORD_NAME)
        if rec is None or not isinstance(rec.get("files"), dict) or not isinstance(rec.get("library"), str):
            return None
        return InstalledArtifact(
            key=key,
            path=folder,
            library=folder / rec["library"],
            source=str(rec.get("source", "")),
            files=MappingProxyType({str(k): str(v) for k, v in rec["files"].items()}),
            installed_at=str(rec.get("installed_at", "")),
            llvm_soname=soname,
        )

    # -- inspection and maintenance -------------------------------------------------

    def verify(self, installed: InstalledArtifact) -> list[str]:
        """Re-hash every file of ``installed``; return the problems found ([] when intact)."""
        problems: list[str] = []
        folder = installed.path
        if not folder.is_dir():
            return [f"{folder}: the artifact folder is missing"]
        if _read_json(folder / RECORD_NAME) is None:
            problems.append(f"{folder / RECORD_NAME}: the record is missing or unreadable")
        try:
            actual = tree_files(folder, exclude=(RECORD_NAME,))
        except (OSError, ValueError) as e:
            return [*problems, f"{folder}: cannot be read: {e}"]
        for rel, want in installed.files.items():
            got = actual.get(rel)
            if got is None:
                problems.append(f"{folder / rel}: missing")
            elif got != want:
                if want.startswith(SYMLINK_PREFIX) or got.startswith(SYMLINK_PREFIX):
                    problems.append(f"{folder / rel}: expected {want}, found {got}")
                else:
                    problems.append(f"{folder / rel}: sha256 is {got}, the record says {want}")
        for rel in actual:
            if rel not in installed.files:
                problems.append(f"{folder / rel}: not part of the artifact")
        if not problems and tree_digest(folder, actual) != folder.name:
            problems.append(f"{folder}: content (e.g. file modes) no longer matches its address")
        if not installed.library.is_file():
            problems.append(f"{installed.library}: the library is missing")
        elif not library_inside(folder, installed.library):
            problems.append(
                f"{installed.library}: resolves to {os.path.realpath(installed.library)}, outside the artifact"
            )
        return problems

    def installed(self) -> list[InstalledArtifact]:
        """Every artifact reachable through the index, sorted by key."""
        out: list[InstalledArtifact] = []
        try:
            index_files = sorted(p for p in self.index_dir.glob("*.json") if not p.name.startswith("."))
        except OSError:
            return out
        for path in index_files:
            found = self._from_index(path, None)
            if found is not None:
                out.append(found)
        return sorted(out, key=lambda a: (a.key, a.llvm_soname or ""))

    def remove(self, installed: InstalledArtifact) -> None:
        """Remove ``installed``: its index entries, and its folder unless another entry uses it."""
        if not self.root.exists():
            return
        self._make_dirs()
        with locked(self.lock_path, purpose=f"remove {installed.key}"):
            still_used = False
            for path in self.index_dir.glob("*.json"):
                idx = _read_json(path)
                if idx is None or idx.get("artifact") != installed.path.name:
                    continue
                if idx.get("key") == installed.key and idx.get("llvm_soname") == installed.llvm_soname:
                    path.unlink(missing_ok=True)
                else:
                    still_used = True
            if not still_used and installed.path.parent == self.artifacts_dir:
                _remove_path(installed.path, via=Path(tempfile.mkdtemp(prefix="remove-", dir=self.tmp_dir)))
                self._sweep_tmp()

    def clean(self, *, dry_run: bool = False, everything: bool = False) -> list[Path]:
        """Remove what no index references, broken index files and ``tmp/`` left-overs;
        with ``everything=True`` every artifact too.  Returns what was (or, with
        ``dry_run``, would be) removed.  Writes nothing when ``dry_run`` is true."""
        if not self.root.exists():
            return []
        if dry_run:
            return self._garbage(everything)
        self._make_dirs()
        with locked(self.lock_path, purpose="clean the cache"):
            garbage = self._garbage(everything)
            for path in garbage:
                _remove_path(path)
            return garbage

    def _garbage(self, everything: bool) -> list[Path]:
        out: list[Path] = []
        if self.tmp_dir.is_dir():
            out.extend(sorted(self.tmp_dir.iterdir()))
        referenced: set[str] = set()
        if self.index_dir.is_dir():
            for path in sorted(self.index_dir.iterdir()):
                idx = _read_json(path) if path.suffix == ".json" and not path.name.startswith(".") else None
                ok = idx is not None and isinstance(idx.get("artifact"), str) and (
                    self.artifacts_dir / idx["artifact"] / RECORD_NAME).is_file()
                if everything or not ok:
                    out.append(path)
                else:
                    assert idx is not None
                    referenced.add(idx["artifact"])
        if self.artifacts_dir.is_dir():
            for folder in sorted(self.artifacts_dir.iterdir()):
                if everything or folder.name not in referenced:
                    out.append(folder)
        return out


def glob_escape(text: str) -> str:
    """``text`` with glob metacharacters escaped."""
    return re.sub(r"([*?\[\]])", r"[\1]", text)


def _short_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _remove_path(path: Path, *, via: Path | None = None) -> None:
    """Delete a file or tree; a tree is first renamed to ``via`` (same file system) so it
    disappears from its old place atomically."""
    try:
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
            return
        if not path.exists():
            return
        if via is not None:
            via.parent.mkdir(parents=True, exist_ok=True)
            target = via / path.name if via.is_dir() else via
            os.rename(path, target)
            path = target
        shutil.rmtree(path, ignore_errors=True)
    except OSError as e:
        raise CacheError(f"cannot remove {path}: {e.strerror or e}; remove it by hand") from None
