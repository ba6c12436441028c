"""Enzyme's source tree for a build: the recipe's release tarball, verified, or a checkout.

:func:`fetch_source` downloads the tarball (requests with retries), checks its sha256
against the recipe *before* unpacking, and unpacks it with :mod:`tarfile`'s ``data``
filter (no absolute paths, no ``..``, no devices).  :func:`locate_checkout` accepts
either the root of an Enzyme checkout or its ``enzyme/`` folder.  Both return a
:class:`SourceTree`.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from enzyme_artifacts.hashes import sha256_file

from .recipe import Recipe

__all__ = ["SourceError", "SourceTree", "fetch_source", "find_licenses", "locate_checkout"]


class SourceError(RuntimeError):
    """The Enzyme source could not be obtained, verified or recognised."""


@dataclass(frozen=True, slots=True)
class SourceTree:
    """``root`` is the top of the Enzyme tree (holding ``LICENSE``), ``cmake_dir`` the CMake
    project (``root/enzyme``); ``origin`` says where it came from."""

    root: Path
    cmake_dir: Path
    origin: str


def _is_enzyme_project(d: Path) -> bool:
    cml = d / "CMakeLists.txt"
    if not cml.is_file():
        return False
    head = cml.read_text(encoding="utf-8", errors="replace")[:4000]
    return "project(Enzyme" in head.replace(" ", "")


def locate_checkout(path: str | os.PathLike[str], recipe: Recipe) -> SourceTree:
    """The :class:`SourceTree` of an existing checkout (its root or its ``enzyme/`` folder)."""
    p = Path(path).resolve()
    if not p.is_dir():
        raise SourceError(f"--source-dir {p} is not a folder; give the root of an Enzyme checkout")
    sub = p / recipe.source.cmake_subdir
    if _is_enzyme_project(sub):
        return SourceTree(p, sub, f"checkout {p}")
    if _is_enzyme_project(p):
        return SourceTree(p.parent, p, f"checkout {p.parent}")
    raise SourceError(
        f"{p} is not an Enzyme checkout: neither {sub}/CMakeLists.txt nor {p}/CMakeLists.txt declares "
        "project(Enzyme); give the folder you cloned Enzyme into"
    )


def _download(url: str, target: Path) -> None:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    retry = Retry(total=5, backoff_factor=1.0, status_forcelist=(429, 500, 502, 503, 504))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.mount("http://", HTTPAdapter(max_retries=retry))
    tmp = target.with_name(target.name + ".partial")
    try:
        with session.get(url, stream=True, timeout=(30, 300)) as resp:
            resp.raise_for_status()
            with open(tmp, "wb") as f:
                f.writelines(resp.iter_content(1 << 20))
    except requests.RequestException as e:
        tmp.unlink(missing_ok=True)
        raise SourceError(f"cannot download {url}: {e}; check the network, or pass --source-dir with a "
                          "checkout of the same tag") from None
    os.replace(tmp, target)


def fetch_source(recipe: Recipe, work_dir: Path) -> SourceTree:
    """Download (or reuse from ``work_dir``), verify and unpack the recipe's tarball.

    Raises :class:`SourceError` when the recipe has no sha256 (it says to fill it in),
    on download failure and on a digest mismatch (the file is deleted).
    """
    url = recipe.source_url()
    expected = recipe.source.sha256
    if expected is None:
        raise SourceError(
            f"{recipe.path} has no [source] sha256 for {url}; download the tarball on a trusted "
            "machine, put `sha256 = \"<its sha256sum>\"` under [source], or pass --source-dir with a "
            "checkout"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    archive = work_dir / url.rsplit("/", 1)[-1]
    if not archive.is_file() or sha256_file(archive) != expected:
        _download(url, archive)
    got = sha256_file(archive)
    if got != expected:
        archive.unlink()
        raise SourceError(f"sha256 mismatch for {url}: the recipe says {expected}, the download is {got}; "
                          "the file was deleted. Do not build from it")
    unpack = work_dir / "src"
    if unpack.exists():
        shutil.rmtree(unpack)
    unpack.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(unpack, filter="data")
    root = unpack / recipe.expand(recipe.source.strip_prefix)
    if not root.is_dir():
        found = ", ".join(sorted(p.name for p in unpack.iterdir())) or "nothing"
        raise SourceError(f"{archive.name} does not hold {root.name}/ (it holds {found}); fix "
                          "[source] strip_prefix")
    tree = locate_checkout(root, recipe)
    return SourceTree(tree.root, tree.cmake_dir, f"{url} (sha256 {expected})")


def find_licenses(tree: SourceTree, recipe: Recipe) -> dict[str, Path]:
    """``file name -> path`` of the recipe's license files in ``tree``.

    Raises :class:`SourceError` listing what is missing."""
    found: dict[str, Path] = {}
    missing = []
    for rel in recipe.enzyme.license_files:
        for base in (tree.root, tree.cmake_dir):
            if (base / rel).is_file():
                found[Path(rel).name] = base / rel
                break
        else:
            missing.append(rel)
    if missing:
        raise SourceError(f"license file(s) {', '.join(missing)} not found in {tree.root}; a binary is "
                          "never packaged without its license (fix [enzyme] license_files)")
    return found
