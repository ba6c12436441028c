"""Fixtures for the artifact store: a scriptable HTTP server on 127.0.0.1, compiled ELF
files, and an environment isolated from the user's cache and settings."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from enzyme_artifacts import manifest as manifest_mod

from ._support import ArtifactServer, _make_handler


@pytest.fixture
def server() -> Iterator[ArtifactServer]:
    srv = ArtifactServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(srv))
    httpd.daemon_threads = True
    httpd.block_on_close = False
    srv.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ENZYME_ARTIFACTS_* setting leaks in; the cache lives under tmp_path."""
    for name in list(os.environ):
        if name.startswith("ENZYME_ARTIFACTS_"):
            monkeypatch.delenv(name)
    cache = tmp_path / "cache"
    monkeypatch.setenv("ENZYME_ARTIFACTS_CACHE", str(cache))
    monkeypatch.setenv("ENZYME_ARTIFACTS_PROGRESS", "0")
    monkeypatch.setenv("ENZYME_ARTIFACTS_RETRIES", "2")
    manifest_mod.clear_cache()
    return cache


@pytest.fixture
def shared_lib_pair(tmp_path: Path) -> Callable[[str, str], Path]:
    """Compile ``lib<dep>`` and a plugin-like ``LLVMEnzyme-15.so`` whose DT_NEEDED is the
    given SONAME; return the plugin."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang-15")
    assert cc, "a C compiler is needed to build test ELF files"

    def build(soname: str, name: str = "LLVMEnzyme-15.so") -> Path:
        d = tmp_path / f"elf-{soname}"
        d.mkdir(exist_ok=True)
        (d / "dep.c").write_text("int dep_value(void) { return 41; }\n")
        (d / "plugin.c").write_text(
            "int dep_value(void);\nint CreateEnzymeLogic(int x) { return dep_value() + x; }\n"
        )
        subprocess.run([cc, "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", str(d / soname),
                        str(d / "dep.c")], check=True)
        subprocess.run([cc, "-shared", "-fPIC", "-Wl,-soname,LLVMEnzyme-15.so", "-o", str(d / name),
                        str(d / "plugin.c"), str(d / soname)], check=True)
        return d / name

    return build
