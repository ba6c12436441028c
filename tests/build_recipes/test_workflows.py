"""The GitHub workflows and the cibuildwheel configuration agree with the recipe, validate
against GitHub's workflow schema, and pass actionlint (with shellcheck on their scripts): no
action on a removed runtime.  The LLVM install script's routes are checked by a dry run."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import tomllib
from pathlib import Path

import pytest
from ruamel.yaml import YAML  # check-jsonschema's own YAML reader

from build_recipes.plan import expand
from build_recipes.recipe import Recipe

from .conftest import REPO, tool

WORKFLOWS = REPO / ".github" / "workflows"
CIBW = REPO / "build_recipes" / "cibuildwheel.toml"
INSTALL_LLVM = REPO / "build_recipes" / "ci" / "install-llvm.sh"


def _load(name: str) -> dict:
    return YAML(typ="safe").load((WORKFLOWS / name).read_text(encoding="utf-8"))


def _runs(workflow: dict) -> list[str]:
    return [step.get("run", "") for job in workflow["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("name", ["tests.yml", "build.yml", "release.yml"])
def test_workflow_matches_the_github_schema(name: str) -> None:
    proc = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                           str(WORKFLOWS / name)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    proc = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(bad)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0


def _actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("actionlint"), f"-shellcheck={tool('shellcheck')}", "-pyflakes=", "-oneline",
                           *map(str, paths)], capture_output=True, text=True, timeout=300, check=False,
                          cwd=REPO)


def test_actionlint_finds_nothing() -> None:
    proc = _actionlint(*sorted(WORKFLOWS.glob("*.yml")))
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def test_actionlint_refuses_actions_on_node20(tmp_path: Path) -> None:
    old = tmp_path / ".github" / "workflows" / "old.yml"
    old.parent.mkdir(parents=True)
    old.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
                   "      - uses: actions/checkout@v4\n")
    proc = _actionlint(old)
    assert proc.returncode != 0 and 'runtime "node20" is deprecated' in proc.stdout


def test_tests_run_on_debians_own_python() -> None:
    wf = _load("tests.yml")
    job = wf["jobs"]["tests"]
    assert job["container"] == "debian:12"  # /usr/bin/python3 is 3.11.2 there, as on a fresh machine
    first = job["steps"][0]["run"]
    assert "python3 python3-venv" in first and "git" in first


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
    assert build["env"]["ENZYME_RECIPES_LLVM"] == "${{ matrix.llvm }}"
    assert build["env"]["ENZYME_RECIPES_PLATFORM"] == "${{ matrix.platform }}"
    assert "build_recipes repack --llvm 15" in "\n".join(_runs({"jobs": {"r": wf["jobs"]["repack"]}}))
    assert (REPO / "build_recipes" / "wheel_project" / "setup.py").is_file()


def test_release_workflow_publishes_and_proposes_the_manifest() -> None:
    wf = _load("release.yml")
    assert wf["jobs"]["build"]["uses"] == "./.github/workflows/build.yml"
    steps = wf["jobs"]["release"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "build_recipes publish --from built --from repacked --to mirror" in runs
    assert "--update-manifest enzyme_artifacts/Artifacts.toml --new-version" in runs
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
    assert {"ENZYME_RECIPES_LLVM", "ENZYME_RECIPES_PLATFORM"} <= set(cfg["environment-pass"])
    assert not [v for v in cfg["environment-pass"] if v.startswith("ENZYME_") and
                not v.startswith("ENZYME_RECIPES_")]
    for table in (cfg, cfg["windows"]):
        assert any("build_recipes build --llvm" in cmd for cmd in table["before-build"])
        assert "build_recipes/ci/install-llvm.sh" in table["before-all"]


def test_install_script_knows_every_platform(recipe: Recipe) -> None:
    script = INSTALL_LLVM.read_text(encoding="utf-8")
    assert subprocess.run(["bash", "-n", str(INSTALL_LLVM)], check=False).returncode == 0
    proc = subprocess.run([tool("shellcheck"), str(INSTALL_LLVM)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout
    for needle in ("/etc/alpine-release", "/etc/debian_version", "Darwin)", "MINGW*"):
        assert needle in script
    for spec in recipe.platforms.values():
        assert "install-llvm.sh {llvm}" in spec.llvm_install


def _dry_run(route: str, major: str = "16") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENZYME_RECIPES_INSTALL_ROUTE": route, "ENZYME_RECIPES_DRY_RUN": "1"}
    return subprocess.run(["bash", str(INSTALL_LLVM), major], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


@pytest.mark.parametrize(("route", "expected"), [
    ("debian", ["apt-get install", "llvm-16-dev", "libllvm16", "libzstd-dev", "zlib1g-dev", "cmake",
                "ninja-build", "g++"]),
    ("manylinux", ["--prefix /opt/llvm-16", "llvmdev=16.*", "libllvm16", "zlib zstd",
                   "--prefix /opt/build-tools", "cmake ninja", "ln -sf /opt/build-tools/bin/cmake",
                   "ln -sf /opt/build-tools/bin/ninja"]),
    ("alpine", ["apk add", "llvm16-dev", "llvm16-libs", "zstd-dev", "zlib-dev", "cmake", "samurai"]),
    ("macos", ["brew install llvm@16 zstd cmake ninja"]),
    ("windows", ["--prefix C:/llvm-16", "llvmdev=16.*", "zstd cmake ninja"]),
])
def test_every_route_installs_llvm_its_dev_files_cmake_and_ninja(route: str, expected: list[str]) -> None:
    """What the script says it installs, it installs: LLVM, zlib and zstd (Debian's LLVM 16+
    CMake package needs libzstd-dev), cmake and ninja, on every route."""
    proc = _dry_run(route)
    assert proc.returncode == 0, proc.stderr
    commands = proc.stdout
    for needle in expected:
        assert needle in commands, (needle, commands)
    assert commands.rstrip().endswith(f"LLVM 16 installed (route {route})")


def test_install_script_refuses_bad_input() -> None:
    assert _dry_run("debian", "sixteen").returncode == 2
    bad = _dry_run("solaris")
    assert bad.returncode == 2 and "unknown route 'solaris'" in bad.stderr
