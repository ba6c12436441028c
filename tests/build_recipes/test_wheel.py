"""The py3-none-<platform> wheel project template and the way back to a tarball."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from build_recipes.wheel import WheelError, artifact_from_wheel, stage_wheel_tree
from enzyme_artifacts.manifest import load_manifest
from tests.support.child import check_python, run_python

from .conftest import REPO, Repacked, pip_wheel, run_cli

TEMPLATE = REPO / "build_recipes" / "wheel_project"


@pytest.fixture(scope="module")
def wheel(repacked: Repacked, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template built with pip, as cibuildwheel does (copied: the tree stays clean)."""
    work = tmp_path_factory.mktemp("wheel")
    project = work / "project"
    shutil.copytree(TEMPLATE, project, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    env = {**os.environ, "ENZYME_RECIPES_ARTIFACTS": str(repacked.out), "ENZYME_RECIPES_ROOT": str(REPO)}
    proc = pip_wheel(project, work / "dist", env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (whl,) = (work / "dist").glob("*.whl")
    return whl


def test_wheel_name_tag_and_content(wheel: Path, repacked: Repacked) -> None:
    assert wheel.name == "enzyme_py_llvmenzyme_llvm15-0.0.289-py3-none-manylinux_2_34_x86_64.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert {"enzyme_llvmenzyme_llvm15/lib/LLVMEnzyme-15.so", "enzyme_llvmenzyme_llvm15/Artifacts.toml",
                "enzyme_llvmenzyme_llvm15/share/licenses/LICENSE",
                "enzyme_llvmenzyme_llvm15/__init__.py"} <= names
        assert zf.read("enzyme_llvmenzyme_llvm15/lib/LLVMEnzyme-15.so") == repacked.library.read_bytes()
        meta = zf.read("enzyme_py_llvmenzyme_llvm15-0.0.289.dist-info/WHEEL").decode()
        assert "Root-Is-Purelib: false" in meta and "Tag: py3-none-manylinux_2_34_x86_64" in meta
        eps = zf.read("enzyme_py_llvmenzyme_llvm15-0.0.289.dist-info/entry_points.txt").decode()
        key = "LLVMEnzyme.v0.0.289.x86_64-linux-gnu-cxx11-llvm_version+15"
        assert "[enzyme_artifacts.prefixes]" in eps and f"{key} = enzyme_llvmenzyme_llvm15:prefix" in eps


def test_installed_package_is_an_artifact_prefix(wheel: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp_path)
    code = ("import enzyme_llvmenzyme_llvm15 as m, json; p = m.prefix(); "
            "print(json.dumps([str(p / m.LIBRARY), m.KEY, m.SHA256]))")
    out = check_python(code, cwd=tmp_path, extra_env={"PYTHONPATH": str(tmp_path)})
    lib, key, _sha = json.loads(out)
    assert Path(lib).is_file() and key.endswith("llvm_version+15")


def test_from_wheel_recovers_the_identical_tarball(wheel: Path, repacked: Repacked, tmp_path: Path) -> None:
    proc = run_cli("from-wheel", str(wheel), "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    (item,) = json.loads(proc.stdout)
    assert item["identical_to_build"] is True
    assert Path(item["tarball"]).read_bytes() == repacked.tarball.read_bytes()
    (entry,) = load_manifest(item["fragment"]).entries
    assert entry == load_manifest(repacked.fragment).entries[0]
    assert json.loads(Path(item["info"]).read_text())["wheel_tag"] == "manylinux_2_34_x86_64"


def test_wheel_errors(tmp_path: Path, repacked: Repacked) -> None:
    with pytest.raises(WheelError, match="expected exactly one"):
        stage_wheel_tree(tmp_path, tmp_path / "staging")
    with pytest.raises(WheelError, match="for LLVM 16"):
        stage_wheel_tree(repacked.out, tmp_path / "staging", llvm=16)
    junk = tmp_path / "x-1-py3-none-any.whl"
    with zipfile.ZipFile(junk, "w") as zf:
        zf.writestr("x/__init__.py", "")
    with pytest.raises(WheelError, match="not an artifact wheel"):
        artifact_from_wheel(junk, tmp_path / "o", base_url="https://example.invalid")


def test_installed_wheel_is_found_without_any_download(wheel: Path, tmp_path: Path) -> None:
    """An installed artifact wheel serves resolve() offline, with an empty cache, and the
    frontend differentiates with it."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)  # what pip install puts in site-packages, dist-info included
    code = (
        "import json, enzyme_artifacts, enzyme_py as ez\n"
        "r = enzyme_artifacts.resolve(15)\n"
        "sq = ez.Module.from_ir('define double @sq(double %x) {\\n"
        "  %y = fmul double %x, %x\\n  ret double %y\\n}\\n').function('sq')\n"
        "d = ez.autodiff(ez.Reverse, sq, ez.Active, ez.Active(3.0))\n"
        "print(json.dumps({'origin': r.origin, 'library': str(r.library), 'd': d[0][0]}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "ENZYME_ARTIFACTS_OFFLINE": "1",
           "ENZYME_ARTIFACTS_CACHE": str(tmp_path / "empty-cache"),
           "ENZYME_ARTIFACTS_CONFIG": str(tmp_path / "config"), "ENZYME_PY_DISK_CACHE": "0"}
    env.pop("ENZYME_ARTIFACTS_LIBRARY", None)
    proc = run_python(code, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["origin"] == "package"
    assert Path(out["library"]).is_relative_to(site)
    assert out["d"] == 6.0
    # nothing was downloaded: at most the record of the profile probe was written
    cache = tmp_path / "empty-cache"
    assert not cache.exists() or sorted(p.name for p in cache.iterdir()) == ["validated"]


def test_the_old_variable_names_are_refused_with_the_new_ones(repacked: Repacked, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(TEMPLATE, project, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    env = {**os.environ, "ENZYME_WHEEL_ARTIFACTS": str(repacked.out), "ENZYME_RECIPES_ROOT": str(REPO)}
    proc = pip_wheel(project, tmp_path / "dist", env)
    assert proc.returncode != 0
    assert "ENZYME_WHEEL_ARTIFACTS was renamed ENZYME_RECIPES_ARTIFACTS" in proc.stdout + proc.stderr
