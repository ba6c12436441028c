"""Fixtures of the enzyme_artifacts tests.

* every test runs with its own cache, config and dev folders and no ENZYME_ARTIFACTS_*
  setting inherited from the caller (autouse ``isolated``; ``isolated_env`` is its cache);
* ``scripted_server``: the one HTTP server of the tests (:mod:`tests.support.http`);
* ``real_artifact``: the published LLVM 15 artifact, installed once per session through
  enzyme_artifacts itself into a session cache;
* ``tarball_artifact``: the same library repacked as a tarball artifact served from
  127.0.0.1, with a manifest pointing at it (``ENZYME_ARTIFACTS_MANIFEST``);
* ``shared_lib_pair``: a compiled plugin-like library whose DT_NEEDED is a given SONAME.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from enzyme_artifacts import llvm as llvm_mod
from enzyme_artifacts import manifest as manifest_mod
from enzyme_artifacts import plugin as plugin_mod
from enzyme_artifacts.cache import Cache, InstalledArtifact
from enzyme_artifacts.platforms import host_platform

from ..support.http import ScriptedServer, make_httpserver, scripted_server  # noqa: F401 - fixtures
from ._support import LLVM, compile_shared, sha256


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
    plugin_mod.clear_memory()


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
    monkeypatch.setenv("ENZYME_ARTIFACTS_RETRIES", "2")
    clear_caches()
    yield dirs
    clear_caches()


@pytest.fixture
def isolated_env(isolated: Dirs) -> Path:
    """The cache root of the test (``ENZYME_ARTIFACTS_CACHE``), not created yet."""
    return isolated.cache


@pytest.fixture
def server(scripted_server: ScriptedServer) -> ScriptedServer:  # noqa: F811 - the imported fixture
    return scripted_server


@pytest.fixture
def use_real_cache(real_artifact: RealArtifact, isolated: Dirs) -> RealArtifact:
    """Point ENZYME_ARTIFACTS_CACHE at a private copy of the session cache."""
    shutil.copytree(real_artifact.cache_root, isolated.cache, symlinks=True)
    return real_artifact


@dataclass(frozen=True)
class TarballArtifact:
    server: ScriptedServer
    manifest: Path
    name: str
    sha256: str

    def requests(self) -> list[str]:
        return [r.path for r in self.server.requests_to("/" + self.name)]


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
    server: ScriptedServer, _tarball_bytes: bytes, isolated: Dirs, monkeypatch: pytest.MonkeyPatch
) -> TarballArtifact:
    """A manifest whose LLVM 15 entry for this host is a tarball on 127.0.0.1."""
    name = f"LLVMEnzyme.v0.0.289.test-{isolated.root.name}.tar.gz"
    url = server.route("/" + name, server.ok(_tarball_bytes))
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
        f'url = "{url}"\n'
        f'sha256 = "{sha256(_tarball_bytes)}"\n'
        f"size = {len(_tarball_bytes)}\n"
    )
    monkeypatch.setenv("ENZYME_ARTIFACTS_MANIFEST", str(manifest))
    return TarballArtifact(server, manifest, name, sha256(_tarball_bytes))


@pytest.fixture
def shared_lib_pair(tmp_path: Path) -> Callable[..., Path]:
    """Compile ``lib<dep>`` and a plugin-like ``LLVMEnzyme-15.so`` whose DT_NEEDED is the
    given SONAME; return the plugin."""

    def build(soname: str, name: str = "LLVMEnzyme-15.so") -> Path:
        d = tmp_path / f"elf-{soname}"
        dep = compile_shared(d, soname, "int dep_value(void) { return 41; }\n", soname=soname)
        return compile_shared(d, name, "int dep_value(void);\nint CreateEnzymeLogic(int x) { return dep_value() + x; }\n",
                              needed=[dep], soname="LLVMEnzyme-15.so")

    return build
