"""Enzyme's source tree for a build, what version it is, and its license files.

:func:`fetch_source` downloads the recipe's release tarball (requests with retries), checks
its sha256 against the recipe *before* unpacking, and unpacks it with the project's own
member checks (:mod:`build_recipes._archive`; Python 3.11.0 has no ``tarfile`` filter).
:func:`locate_checkout` accepts the root of an Enzyme checkout or its ``enzyme/`` folder.
Both return a :class:`SourceTree` whose :class:`SourceVersion` says which Enzyme it is, read
from the source itself:

* the recipe's verified release tarball is the tag ``v<version>``: the label is that
  version (the commit id GitHub writes into the archive's pax header is recorded too);
* a git checkout: ``git describe --tags`` (``v0.0.289`` → ``0.0.289``; three commits later →
  ``0.0.289.post3+g1234abcd``), else the CMake project version (``ENZYME_*_VERSION`` in
  ``enzyme/CMakeLists.txt``) with the commit (``0.0.79+ge54814e9``); ``.dirty`` marks
  uncommitted changes;
* anything else: the CMake version marked ``+unknown`` (pass ``--enzyme-version`` to name it).

Labels are PEP 440 versions, so they also serve as wheel versions.

:func:`find_licenses` takes the recipe's license files from the tree, or, where the tree
lacks one (GitHub's archives leave ``LICENSE`` out: ``export-ignore``), downloads it from the
recipe's ``[[source.license]]`` URL and checks it against the sha256 pinned there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from enzyme_artifacts.hashes import sha256_file

from ._archive import extract_tar
from .errors import SourceError
from .recipe import LicenseSpec, Recipe

__all__ = [
    "SourceError",
    "SourceTree",
    "SourceVersion",
    "archive_commit",
    "fetch_license",
    "fetch_source",
    "find_licenses",
    "locate_checkout",
    "read_cmake_version",
    "version_label",
]

_DESCRIBE = re.compile(r"v?(?P<version>\d+(?:\.\d+)+)-(?P<distance>\d+)-g(?P<hash>[0-9a-f]+)")
_CMAKE_PART = re.compile(r"set\(\s*ENZYME_(MAJOR|MINOR|PATCH)_VERSION\s+(\d+)\s*\)")
_CMAKE_PROJECT = re.compile(r"project\(\s*Enzyme\b[^)]*\bVERSION\s+(\d+(?:\.\d+)+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SourceVersion:
    """Which Enzyme a source tree is.

    ``label`` names the artifacts built from it (tarball, manifest entry, wheel version);
    ``cmake`` is the CMake project version (Enzyme stopped updating it at 0.0.79 in 2023, so
    it is only a hint), ``commit`` the full commit id when known, ``describe`` the output of
    ``git describe`` when there was one, ``how`` one sentence saying where the label came from.
    """

    label: str
    cmake: str | None
    commit: str | None
    describe: str | None
    dirty: bool
    how: str

    def to_json(self) -> dict[str, object]:
        """A JSON-serialisable dict (build-info files, ``plan --json``)."""
        return {"label": self.label, "cmake": self.cmake, "commit": self.commit, "describe": self.describe,
                "dirty": self.dirty, "how": self.how}


@dataclass(frozen=True, slots=True)
class SourceTree:
    """``root`` is the top of the Enzyme tree, ``cmake_dir`` the CMake project
    (``root/enzyme``); ``origin`` says where it came from, ``version`` which Enzyme it is;
    ``url``/``sha256`` are the release tarball's when it came from one."""

    root: Path
    cmake_dir: Path
    origin: str
    version: SourceVersion
    url: str | None = None
    sha256: str | None = None


def version_label(*, tag_version: str | None = None, cmake: str | None = None, commit: str | None = None,
                  describe: str | None = None, dirty: bool = False) -> str:
    """The artifact label of a source tree from what is known about it (see the module).

    >>> version_label(tag_version="0.0.289")
    '0.0.289'
    >>> version_label(describe="v0.0.289-0-g1234abcd", commit="1234abcd99")
    '0.0.289'
    >>> version_label(describe="v0.0.289-3-g1234abcd", commit="1234abcd99", dirty=True)
    '0.0.289.post3+g1234abcd.dirty'
    >>> version_label(cmake="0.0.79", commit="e54814e917c31a81")
    '0.0.79+ge54814e9'
    >>> version_label(cmake="0.0.79")
    '0.0.79+unknown'
    """
    if tag_version:
        return tag_version
    local: list[str] = []
    base = cmake or "0"
    m = _DESCRIBE.fullmatch(describe or "")
    if m:
        base = m["version"]
        if int(m["distance"]):
            base += f".post{int(m['distance'])}"
            local.append(f"g{(commit or m['hash'])[:8]}")
    elif commit:
        local.append(f"g{commit[:8]}")
    else:
        local.append("unknown")
    if dirty:
        local.append("dirty")
    return base + ("+" + ".".join(local) if local else "")


def read_cmake_version(cmake_dir: Path) -> str | None:
    """The version Enzyme's ``CMakeLists.txt`` declares (``set(ENZYME_MAJOR_VERSION 0)`` ...
    or ``project(Enzyme VERSION x.y.z)``), or None."""
    try:
        text = (cmake_dir / "CMakeLists.txt").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    parts = dict(_CMAKE_PART.findall(text))
    if {"MAJOR", "MINOR", "PATCH"} <= set(parts):
        return f"{int(parts['MAJOR'])}.{int(parts['MINOR'])}.{int(parts['PATCH'])}"
    m = _CMAKE_PROJECT.search(text)
    return m[1] if m else None


def _git(root: Path, *args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        proc = subprocess.run([git, "-C", str(root), *args], capture_output=True, text=True, timeout=60,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _git_version(root: Path, cmake: str | None) -> SourceVersion | None:
    """The version of a git checkout whose top folder is ``root``, or None (no git, not a
    checkout, or a checkout of another project that merely contains ``root``)."""
    if not (root / ".git").exists():
        return None
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root.resolve():
        return None
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return None
    describe = _git(root, "describe", "--tags", "--long", "--match", "v[0-9]*")
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    label = version_label(cmake=cmake, commit=commit, describe=describe, dirty=dirty)
    how = (f"git describe {describe}" if describe and _DESCRIBE.fullmatch(describe)
           else f"CMake version {cmake or '(none)'} and commit {commit[:12]} (no v* tag reachable)")
    return SourceVersion(label, cmake, commit, describe, dirty, how + (", uncommitted changes" if dirty else ""))


def _is_enzyme_project(d: Path) -> bool:
    cml = d / "CMakeLists.txt"
    if not cml.is_file():
        return False
    head = cml.read_text(encoding="utf-8", errors="replace")[:4000]
    return "project(Enzyme" in head.replace(" ", "")


def locate_checkout(path: str | os.PathLike[str], recipe: Recipe, *, version: SourceVersion | None = None) -> SourceTree:
    """The :class:`SourceTree` of an existing checkout (its root or its ``enzyme/`` folder).

    ``version`` replaces what the tree says about itself (the tarball route passes the tag's)."""
    p = Path(path).resolve()
    if not p.is_dir():
        raise SourceError(f"--source-dir {p} is not a folder; give the root of an Enzyme checkout")
    sub = p / recipe.source.cmake_subdir
    if _is_enzyme_project(sub):
        root, cmake_dir = p, sub
    elif _is_enzyme_project(p):
        root, cmake_dir = p.parent, p
    else:
        raise SourceError(
            f"{p} is not an Enzyme checkout: neither {sub}/CMakeLists.txt nor {p}/CMakeLists.txt declares "
            "project(Enzyme); give the folder you cloned Enzyme into"
        )
    if version is None:
        cmake = read_cmake_version(cmake_dir)
        version = _git_version(root, cmake) or SourceVersion(
            version_label(cmake=cmake), cmake, None, None, False,
            f"CMake version {cmake or '(none)'}; {root} has no git metadata, so the commit is unknown "
            "(pass --enzyme-version to name it)")
    return SourceTree(root, cmake_dir, f"checkout {root}", version)


def _download(url: str, target: Path, what: str) -> None:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    retry = Retry(total=5, backoff_factor=1.0, status_forcelist=(429, 500, 502, 503, 504))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.mount("http://", HTTPAdapter(max_retries=retry))
    tmp = target.with_name(target.name + ".partial")
    print(f"+ download {url}", file=sys.stderr, flush=True)
    try:
        with session.get(url, stream=True, timeout=(30, 300)) as resp:
            resp.raise_for_status()
            with open(tmp, "wb") as f:
                f.writelines(resp.iter_content(1 << 20))
    except requests.RequestException as e:
        tmp.unlink(missing_ok=True)
        raise SourceError(f"cannot download {what} from {url}: {e}; check the network, or pass --source-dir "
                          "with a checkout of the same tag") from None
    os.replace(tmp, target)


def _verified(url: str, target: Path, expected: str, what: str) -> Path:
    """``target`` holding ``url``'s bytes with sha256 ``expected``: reused when it already
    matches, else downloaded; a mismatch deletes the file and raises."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.is_file() or sha256_file(target) != expected:
        _download(url, target, what)
    got = sha256_file(target)
    if got != expected:
        target.unlink()
        raise SourceError(f"sha256 mismatch for {url}: the recipe says {expected}, the download is {got}; "
                          "the file was deleted. Do not build from it")
    return target


def archive_commit(archive: Path) -> str | None:
    """The commit id ``git archive`` (and so GitHub) writes into a tarball's pax global
    header (``git get-tar-commit-id``), or None."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            comment = tar.pax_headers.get("comment", "")
    except (OSError, tarfile.TarError):
        return None
    return comment if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", comment) else None


def fetch_source(recipe: Recipe, work_dir: Path) -> SourceTree:
    """Download (or reuse from ``work_dir``), verify and unpack the recipe's tarball.

    Raises :class:`SourceError` when the recipe has no sha256 (it says to fill it in),
    on download failure and on a digest mismatch (the file is deleted), and
    :class:`~build_recipes.errors.UnsafeArchiveError` for an archive member that would
    escape the folder.
    """
    url = recipe.source_url()
    expected = recipe.source.sha256
    if expected is None:
        raise SourceError(
            f"{recipe.path} has no [source] sha256 for {url}; download the tarball on a trusted "
            "machine, put `sha256 = \"<its sha256sum>\"` under [source], or pass --source-dir with a "
            "checkout"
        )
    archive = _verified(url, work_dir / url.rsplit("/", 1)[-1], expected, "the Enzyme source")
    unpack = work_dir / "src"
    if unpack.exists():
        shutil.rmtree(unpack)
    unpack.mkdir()
    extract_tar(archive, unpack)
    root = unpack / recipe.expand(recipe.source.strip_prefix)
    if not root.is_dir():
        found = ", ".join(sorted(p.name for p in unpack.iterdir())) or "nothing"
        raise SourceError(f"{archive.name} does not hold {root.name}/ (it holds {found}); fix "
                          "[source] strip_prefix")
    commit = archive_commit(archive)
    cmake = read_cmake_version(root / recipe.source.cmake_subdir)
    version = SourceVersion(
        version_label(tag_version=recipe.enzyme.version), cmake, commit, None, False,
        f"release tarball of the tag v{recipe.enzyme.version} (sha256 pinned by the recipe)"
        + (f", commit {commit[:12]}" if commit else ""))
    tree = locate_checkout(root, recipe, version=version)
    return SourceTree(tree.root, tree.cmake_dir, f"{url} (sha256 {expected})", version, url, expected)


def fetch_license(recipe: Recipe, spec: LicenseSpec, work_dir: Path) -> Path:
    """The recipe's separately fetched license file, downloaded into ``work_dir/licenses``
    (or reused) and verified against its pinned sha256."""
    url = recipe.license_url(spec)
    return _verified(url, work_dir / "licenses" / Path(spec.file).name, spec.sha256, f"the license {spec.file}")


def find_licenses(tree: SourceTree, recipe: Recipe, work_dir: Path | None = None) -> dict[str, tuple[Path, str]]:
    """``file name -> (path, where it came from)`` of the recipe's license files.

    A file in ``tree`` is used as it is; one missing there is fetched from its
    ``[[source.license]]`` (into ``work_dir``).  Raises :class:`SourceError` listing what is
    missing and cannot be fetched.
    """
    found: dict[str, tuple[Path, str]] = {}
    missing = []
    fetchable = {spec.file: spec for spec in recipe.source.licenses}
    for rel in recipe.enzyme.license_files:
        for base in (tree.root, tree.cmake_dir):
            if (base / rel).is_file():
                found[Path(rel).name] = (base / rel, f"{rel} of the source tree")
                break
        else:
            spec = fetchable.get(rel)
            if spec is not None and work_dir is not None:
                path = fetch_license(recipe, spec, work_dir)
                found[Path(rel).name] = (path, f"{recipe.license_url(spec)} (sha256 {spec.sha256})")
            else:
                missing.append(rel)
    if missing:
        raise SourceError(f"license file(s) {', '.join(missing)} not found in {tree.root} and not fetchable "
                          "(no [[source.license]] for them); a binary is never packaged without its license: "
                          "add the file to the tree or a [[source.license]] with its URL and sha256")
    return found
