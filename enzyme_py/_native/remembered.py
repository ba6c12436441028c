"""The choice of native libraries, remembered between processes.

Deciding which libLLVM and LLVMEnzyme to load (:func:`enzyme_artifacts.resolve`: the
manifest, overrides, libLLVM discovery, for an override a check in a child process) and
reading the plugin's 9 MB to check its C-API profile take a fresh process 0.2-0.4 s.
A process that loaded and checked a pair of libraries remembers the choice in the disk
cache folder; a later process with the same request and the same environment loads that
pair directly, as long as both files are still the ones that were checked.

Key: the LLVM major asked for, every ``ENZYME_ARTIFACTS_*`` variable,
``ENZYME_PY_LLVM_VERSION`` and the variables enzyme_artifacts' search reads (``PATH``,
``LD_LIBRARY_PATH``, ``CONDA_PREFIX``, ``HOMEBREW_PREFIX``, ``HOME``, the ``XDG_*``
folders), enzyme_artifacts' own files (its sources and bundled manifest) and its
``Overrides.toml``, each by path, size and modification time.  A remembered choice is
used only when both libraries still have the size, modification time and inode they had
when they were checked; otherwise :func:`enzyme_artifacts.resolve` decides again and the
new choice is remembered.  Installing another libLLVM of the same major where the search
would prefer it is not seen until the remembered one changes or the cache is cleared
(``python -m enzyme_py cache clear``).

Stored as ``<cache>/v2/<k[:2]>/<k>.ezn`` (JSON, written atomically); the disk cache's
switch, folder and ``cache clear`` apply (``ENZYME_PY_DISK_CACHE=0``: nothing is
remembered).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .. import config

__all__ = ["SUFFIX", "Choice", "recall", "remember", "tree_identity"]

SUFFIX = ".ezn"
_FORMAT = 1
_ENV = ("PATH", "LD_LIBRARY_PATH", "CONDA_PREFIX", "HOMEBREW_PREFIX", "HOME", "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME", "XDG_DATA_HOME", "ENZYME_PY_LLVM_VERSION")


class Choice:
    """A remembered pair of libraries (paths, C-API profile, LLVM major)."""

    __slots__ = ("capi", "enzyme_path", "llvm_major", "llvm_path")

    def __init__(self, llvm_path: Path, enzyme_path: Path, capi: str, llvm_major: int) -> None:
        self.llvm_path = llvm_path
        self.enzyme_path = enzyme_path
        self.capi = capi
        self.llvm_major = llvm_major


def _stamp(path: Path) -> list[Any]:
    try:
        st = path.stat()
    except OSError:
        return [str(path)]
    return [str(path), st.st_size, st.st_mtime_ns, st.st_ino]


def tree_identity(root: Path, suffixes: tuple[str, ...]) -> str:
    """A digest of the path, size and modification time of every file under ``root``
    whose name ends with one of ``suffixes`` (``__pycache__`` folders skipped)."""
    found: list[tuple[str, int, int]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(suffixes):
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    st = os.stat(path)
                    found.append((path, st.st_size, st.st_mtime_ns))
    digest = hashlib.sha256()
    for path, size, mtime in sorted(found):
        digest.update(f"{path}|{size}|{mtime}\n".encode())
    return digest.hexdigest()


def _artifacts_identity() -> list[Any]:
    import enzyme_artifacts
    from enzyme_artifacts.paths import overrides_path

    package = Path(enzyme_artifacts.__file__).resolve().parent
    return [tree_identity(package, (".py", ".toml")), _stamp(overrides_path())]


def _path(major: int | None) -> Path | None:
    if not config.disk_cache_enabled():
        return None
    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith("ENZYME_ARTIFACTS_") or k in _ENV}
    doc = {"format": _FORMAT, "major": major, "env": env, "artifacts": _artifacts_identity()}
    key = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    return config.cache_dir() / "v2" / key[:2] / f"{key}{SUFFIX}"


def recall(major: int | None) -> Choice | None:
    """The choice remembered for this request and environment, if both of its libraries
    are unchanged since they were checked."""
    try:
        path = _path(major)
        if path is None:
            return None
        data = json.loads(path.read_bytes())
        llvm, enzyme = Path(data["llvm"][0]), Path(data["enzyme"][0])
        if _stamp(llvm) != data["llvm"] or _stamp(enzyme) != data["enzyme"]:
            return None
        return Choice(llvm, enzyme, str(data["capi"]), int(data["major"]))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def remember(major: int | None, choice: Choice) -> None:
    """Remember a choice whose libraries were just loaded and checked (never raises: an
    unwritable cache only costs the next process the lookup)."""
    try:
        path = _path(major)
        if path is None:
            return
        doc = {
            "llvm": _stamp(choice.llvm_path),
            "enzyme": _stamp(choice.enzyme_path),
            "capi": choice.capi,
            "major": choice.llvm_major,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(doc, fh)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except (OSError, ValueError):
        return
