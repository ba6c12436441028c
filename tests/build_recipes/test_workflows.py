"""The GitHub workflows and the cibuildwheel configuration agree with the recipe and
validate against GitHub's workflow schema."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from ruamel.yaml import YAML  # check-jsonschema's own YAML reader

from build_recipes.plan import expand
from build_recipes.recipe import Recipe

from .conftest import REPO

WORKFLOWS = REPO / ".github" / "workflows"
CIBW = REPO / "build_recipes" / "cibuildwheel.toml"


def _load(name: str) -> dict:
    return YAML(typ="safe").load((WORKFLOWS / name).read_text(encoding="utf-8"))


def _runs(workflow: dict) -> list[str]:
    return [step.get("run", "") for job in workflow["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("name", ["tests.yml", "build.yml", "release.yml"])
def test_workflow_matches_the_github_schema(name: str) -> None:
    exe = shutil.which("check-jsonschema")
    assert exe, "check-jsonschema is a test dependency"
    proc = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(WORKFLOWS / name)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    proc = subprocess.run([shutil.which("check-jsonschema") or "check-jsonschema", "--builtin-schema",
                           "vendor.github-workflows", str(bad)], capture_output=True, text=True, check=False)
    assert proc.returncode != 0


def test_tests_workflow_runs_the_ci_script() -> None:
    wf = _load("tests.yml")
    assert any(r.strip() == "bash .ci/run" for r in _runs(wf))
    assert set(wf["on"]) == {"push", "pull_request", "workflow_dispatch"}


def test_build_workflow_uses_the_plan_and_cibuildwheel() -> None:
    wf = _load("build.yml")
    plan = "\n".join(s.get("run", "") for s in wf["jobs"]["plan"]["steps"])
    assert "python -m build_recipes plan --json" in plan
    build = wf["jobs"]["build"]
    assert build["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert build["runs-on"] == "${{ matrix.runner }}"
    assert build["continue-on-error"] == "${{ matrix.experimental }}"
    runs = "\n".join(s.get("run", "") for s in build["steps"])
    assert "cibuildwheel build_recipes/wheel_project" in runs
    assert "--config-file build_recipes/cibuildwheel.toml" in runs
    assert "build_recipes from-wheel" in runs
    env = next(s["env"] for s in build["steps"] if "cibuildwheel build_recipes" in s.get("run", ""))
    assert env == {"CIBW_BUILD": "${{ matrix.cibw_build }}", "CIBW_ARCHS": "${{ matrix.cibw_archs }}"}
    assert "build_recipes repack --llvm 15" in "\n".join(_runs({"jobs": {"r": wf["jobs"]["repack"]}}))
    assert (REPO / "build_recipes" / "wheel_project" / "setup.py").is_file()


def test_release_workflow_publishes_and_proposes_the_manifest() -> None:
    wf = _load("release.yml")
    assert wf["jobs"]["build"]["uses"] == "./.github/workflows/build.yml"
    steps = wf["jobs"]["release"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "build_recipes publish --from built --from repacked --to mirror" in runs
    assert "--update-manifest enzyme_artifacts/Artifacts.toml" in runs
    pr = next(s for s in steps if str(s.get("uses", "")).startswith("peter-evans/create-pull-request"))
    assert pr["with"]["add-paths"] == "enzyme_artifacts/Artifacts.toml"
    assert wf["jobs"]["release"]["permissions"] == {"contents": "write", "pull-requests": "write"}


def test_cibuildwheel_config_covers_every_cell(recipe: Recipe) -> None:
    cfg = tomllib.loads(CIBW.read_text(encoding="utf-8"))["tool"]["cibuildwheel"]
    policies = {c.platform.policy.name for c in expand(recipe) if c.platform.platform.os == "linux"}
    images = {v for k, v in cfg.items() if k.endswith("-image")}
    assert images == policies == {"manylinux_2_28", "musllinux_1_2"}
    skips = cfg["skip"].split()
    for spec in recipe.platforms.values():
        assert fnmatch.fnmatch(spec.cibw_build, cfg["build"]), spec.key
        assert not any(fnmatch.fnmatch(spec.cibw_build, pat) for pat in skips), spec.key
        assert spec.wheel_tag.startswith(spec.policy.name) or spec.platform.os != "linux"
    assert cfg["repair-wheel-command"] == ""
    assert {"ENZYME_LLVM", "ENZYME_PLATFORM"} <= set(cfg["environment-pass"])
    for table in (cfg, cfg["windows"]):
        assert any("build_recipes build --llvm" in cmd for cmd in table["before-build"])
        assert "build_recipes/ci/install-llvm.sh" in table["before-all"]


def test_install_script_knows_every_platform(recipe: Recipe) -> None:
    script = (REPO / "build_recipes" / "ci" / "install-llvm.sh").read_text(encoding="utf-8")
    assert subprocess.run(["bash", "-n", str(REPO / "build_recipes" / "ci" / "install-llvm.sh")],
                          check=False).returncode == 0
    for needle in ("/etc/alpine-release", "Darwin)", "MINGW*", "/opt/llvm-${major}", "C:/llvm-${major}",
                   'llvm@${major}', 'llvm${major}-dev'):
        assert needle in script
    for spec in recipe.platforms.values():
        assert "install-llvm.sh {llvm}" in spec.llvm_install
