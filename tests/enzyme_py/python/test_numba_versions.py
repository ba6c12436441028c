"""numba by LLVM major (issue 15): the verified pairings, the advice when the installed
numba's LLVM has no Enzyme, and the extras (installing ``numba`` never downgrades)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from enzyme_artifacts import manifest as manifest_mod
from enzyme_artifacts.errors import UnsupportedPlatformError
from enzyme_py._numba import versions

REPO = Path(__file__).resolve().parents[3]


def test_the_verified_pairings() -> None:
    assert versions.KNOWN_PAIRINGS == {
        15: "numba 0.61.x with llvmlite 0.44.x",
        20: "numba 0.62.x to 0.65.x with llvmlite 0.45.x to 0.47.x",
        22: "numba 0.66.x to 0.68.x with llvmlite 0.48.x to 0.50.x",
    }
    assert versions.numba_for(15) == ("numba>=0.61,<0.62", "numba 0.61.x with llvmlite 0.44.x")
    assert versions.numba_for(22)[0] == "numba>=0.66,<0.69"
    assert versions.numba_for(16) is None
    assert versions.llvmlite_major() == 15  # what the suite runs with


@pytest.fixture
def isolated_artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("ENZYME_ARTIFACTS_LIBRARY", raising=False)
    monkeypatch.delenv("ENZYME_ARTIFACTS_MANIFEST", raising=False)
    monkeypatch.setenv("ENZYME_ARTIFACTS_CONFIG", str(tmp_path / "config"))
    manifest_mod.clear_cache()
    yield tmp_path
    manifest_mod.clear_cache()


def test_no_enzyme_for_the_numbas_llvm_says_which_numba_or_which_build(isolated_artifacts: Path) -> None:
    with pytest.raises(UnsupportedPlatformError) as info:
        versions.check_artifact_for_major(20)
    text = str(info.value)
    assert "embeds LLVM 20 (as numba 0.62.x to 0.65.x with llvmlite 0.45.x to 0.47.x do)" in text
    assert 'LLVM 15: `pip install "numba>=0.61,<0.62"`' in text
    assert "`python -m build_recipes build --llvm 20 --policy none --out DIR`" in text
    assert "sudo apt-get install llvm-20-dev libzstd-dev" in text and "enzyme-artifacts dev DIR/.work/build-" in text
    versions.check_artifact_for_major(15)  # the published artifact pairs with numba 0.61


def test_an_override_for_the_major_is_an_enzyme_for_it(isolated_artifacts: Path) -> None:
    config = isolated_artifacts / "config"
    config.mkdir()
    (config / "Overrides.toml").write_text('[LLVMEnzyme.22]\nlibrary = "/opt/enzyme/LLVMEnzyme-22.so"\n')
    versions.check_artifact_for_major(22)  # the loader validates the override itself
    with pytest.raises(UnsupportedPlatformError, match="no LLVMEnzyme for LLVM 20"):
        versions.check_artifact_for_major(20)


def test_the_extras_never_downgrade_numba() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["numba"] == ["numba>=0.61"]  # no upper bound: a newer numba stays
    assert extras["numba-llvm15"] == ["numba>=0.61,<0.62"]
    assert "numba>=0.61,<0.62" in extras["test"]


def test_another_major_is_refused_before_numbas_compiler_runs(tmp_path: Path) -> None:
    """llvmlite's LLVM in a process holding a libLLVM of another major crashes numba's own
    passes, so a Python function is refused before numba compiles anything."""
    from tests.support.child import run_python

    code = """
import enzyme_py as ez
from enzyme_py._numba import compile as numba_compile

def refuse(*args, **kwargs):
    raise AssertionError("numba's compiler ran")

numba_compile.compile_module = refuse
import enzyme_py._numba as low
low.compile_module = refuse

def f(x):
    return x * x

try:
    ez.gradient(f, 1.5)
except ez.LibraryError as e:
    print("refused:", e)
"""
    proc = run_python(code, extra_env={"ENZYME_PY_LLVM_VERSION": "16", "ENZYME_PY_CACHE_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "refused:" in proc.stdout, proc.stdout + proc.stderr
    assert "to be compiled by numba" in proc.stdout and "ENZYME_PY_LLVM_VERSION asks for LLVM 16" in proc.stdout
