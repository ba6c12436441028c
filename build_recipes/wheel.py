"""``py3-none-<platform>`` wheels that carry one LLVMEnzyme artifact, and the way back.

For users who cannot download at run time, every artifact is also published as a wheel
(built by cibuildwheel from the project template in ``build_recipes/wheel_project/``)::

    enzyme_llvmenzyme_llvm15/__init__.py       KEY, SHA256 and prefix() -> Path
    enzyme_llvmenzyme_llvm15/lib/LLVMEnzyme-15.so
    enzyme_llvmenzyme_llvm15/share/licenses/...
    enzyme_llvmenzyme_llvm15/Artifacts.toml    the artifact's manifest fragment
    entry point  [enzyme_artifacts.prefixes] <key> = enzyme_llvmenzyme_llvm15:prefix

Distribution ``enzyme-py-llvmenzyme-llvm<N>``, version = the artifact's Enzyme version label
(``0.0.289``, ``0.0.79+ge54814e9``), tag ``py3-none-<wheel tag>`` (the build-info's: the
platform's policy, or ``linux_<arch>`` for a ``--policy none`` build).  The package folder has the same tree as an
installed artifact, so a loader can use ``prefix()`` like an Overrides.toml prefix.

:func:`stage_wheel_tree` prepares that package from an artifact folder (tarball +
fragment + build-info as written by ``build``/``repack``); :func:`artifact_from_wheel`
turns a wheel back into a tarball and fragment (``python -m build_recipes from-wheel``),
which is how CI gets the tarballs out of cibuildwheel's containers.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from enzyme_artifacts.hashes import sha256_file
from enzyme_artifacts.manifest import ArtifactEntry, TarballSource, load_manifest
from enzyme_artifacts.prefixes import ENTRY_POINT_GROUP

from ._archive import extract_tar
from .errors import WheelError
from .package import PackagedArtifact, package_library

__all__ = [
    "ENTRY_POINT_GROUP",
    "StagedWheel",
    "WheelError",
    "artifact_from_wheel",
    "distribution_name",
    "find_artifact",
    "package_name",
    "stage_wheel_tree",
]


@dataclass(frozen=True, slots=True)
class StagedWheel:
    """A package folder ready for ``setup()``: names, version, tag and entry point."""

    distribution: str
    version: str
    package: str
    package_dir: Path
    wheel_tag: str
    key: str
    entry_point: str


def distribution_name(entry: ArtifactEntry) -> str:
    """``enzyme-py-llvmenzyme-llvm15``."""
    return f"enzyme-py-{entry.name.lower()}-llvm{entry.llvm_version}"


def package_name(entry: ArtifactEntry) -> str:
    """``enzyme_llvmenzyme_llvm15``."""
    return f"enzyme_{entry.name.lower()}_llvm{entry.llvm_version}"


def find_artifact(folder: Path, *, llvm: int | None = None) -> tuple[ArtifactEntry, Path, dict[str, Any]]:
    """The one artifact in ``folder`` (of LLVM ``llvm`` when given): entry, tarball, build-info."""
    infos = sorted(folder.glob("*.json"))
    found = []
    for info_path in infos:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        if not isinstance(info, dict) or "key" not in info:
            continue
        if llvm is not None and info.get("llvm") != llvm:
            continue
        found.append((info_path, info))
    if len(found) != 1:
        raise WheelError(f"{folder} holds {len(found)} artifacts"
                         + (f" for LLVM {llvm}" if llvm else "") + "; expected exactly one (give --llvm)")
    info_path, info = found[0]
    fragment = folder / f"{info['key']}.toml"
    (entry,) = load_manifest(fragment).entries
    tarball = folder / info["tarball"]
    if not tarball.is_file() or sha256_file(tarball) != info["sha256"]:
        raise WheelError(f"{tarball} is missing or differs from {info_path}")
    return entry, tarball, info


_INIT = '''"""LLVMEnzyme {key}, packaged as a wheel by enzyme-py's build recipes.

The folder of this package is an artifact prefix: ``prefix() / "{relpath}"`` is the
library, ``share/licenses/`` its licenses, ``Artifacts.toml`` its manifest entry.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["KEY", "LIBRARY", "SHA256", "prefix"]

KEY = "{key}"
SHA256 = "{sha256}"
LIBRARY = "{relpath}"


def prefix() -> Path:
    """The artifact prefix (this package's folder)."""
    return Path(__file__).resolve().parent
'''


def stage_wheel_tree(artifact_dir: Path, staging: Path, *, llvm: int | None = None) -> StagedWheel:
    """Unpack the artifact of ``artifact_dir`` into ``staging/<package>/`` with its
    ``__init__.py`` and fragment; return what ``setup()`` needs."""
    entry, tarball, info = find_artifact(artifact_dir, llvm=llvm)
    pkg = package_name(entry)
    pkg_dir = staging / pkg
    if pkg_dir.exists():
        import shutil

        shutil.rmtree(pkg_dir)
    pkg_dir.mkdir(parents=True)
    extract_tar(tarball, pkg_dir)
    library = pkg_dir / entry.library_relpath
    if not library.is_file():
        raise WheelError(f"{tarball.name} has no {entry.library_relpath}")
    (pkg_dir / "Artifacts.toml").write_bytes((artifact_dir / f"{entry.key}.toml").read_bytes())
    (pkg_dir / "__init__.py").write_text(
        _INIT.format(key=entry.key, sha256=info["sha256"], relpath=entry.library_relpath), encoding="utf-8")
    return StagedWheel(distribution_name(entry), entry.enzyme_version, pkg, pkg_dir,
                       str(info["wheel_tag"]), entry.key, f"{entry.key} = {pkg}:prefix")


def artifact_from_wheel(wheel: Path, out_dir: Path, *, base_url: str) -> tuple[PackagedArtifact, bool]:
    """Rebuild the tarball, fragment and build-info of the artifact inside ``wheel``.

    Returns the artifact and whether the new tarball is byte-identical to the one the
    wheel was made from (gzip output can differ between zlib builds; the fragment always
    states the bytes written here).
    """
    try:
        zf = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as e:
        raise WheelError(f"{wheel} is not a readable wheel: {e}") from None
    with zf:
        fragments = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith("/Artifacts.toml")]
        if len(fragments) != 1:
            raise WheelError(f"{wheel.name} is not an artifact wheel (no <package>/Artifacts.toml)")
        pkg = fragments[0].split("/", 1)[0]
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            frag = Path(tmp) / "fragment.toml"
            frag.write_bytes(zf.read(fragments[0]))
            (entry,) = load_manifest(frag).entries
        original = next(s for s in entry.sources if isinstance(s, TarballSource))
        lib_member = f"{pkg}/{entry.library_relpath}"
        try:
            library = zf.read(lib_member)
        except KeyError:
            raise WheelError(f"{wheel.name} has no {lib_member}") from None
        licenses = {PurePosixPath(n).name: zf.read(n) for n in sorted(zf.namelist())
                    if n.startswith(f"{pkg}/share/licenses/") and not n.endswith("/")}
    out_dir.mkdir(parents=True, exist_ok=True)
    staged_lib = out_dir / f".{entry.key}.library"
    staged_lib.write_bytes(library)
    try:
        fields = {f: getattr(entry, f) for f in ("name", "enzyme_version", "llvm_version", "arch", "os", "libc",
                                                  "cxxstring_abi", "capi", "lazy")}
        tag = wheel.name[:-4].split("-")[-1]
        artifact = package_library(
            library=staged_lib, licenses=licenses, out_dir=out_dir, entry_fields=fields,
            tarball_name=original.url.rsplit("/", 1)[-1], base_url=base_url,
            notes=[f"Recovered from the wheel {wheel.name}"],
            info={"wheel_tag": tag, "origin": f"wheel {wheel.name}"},
        )
    finally:
        staged_lib.unlink(missing_ok=True)
    return artifact, artifact.sha256 == original.sha256
