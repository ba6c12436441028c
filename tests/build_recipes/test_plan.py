"""The recipe, the matrix and the exact command lines."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from build_recipes.plan import build_command, cmake_options, configure_command, expand, tarball_name
from build_recipes.recipe import Recipe, RecipeError, load_recipe

from .conftest import git_checkout, run_cli

PLATFORMS = {
    "x86_64-linux-gnu", "aarch64-linux-gnu", "x86_64-linux-musl", "aarch64-linux-musl",
    "x86_64-apple-darwin", "aarch64-apple-darwin", "x86_64-w64-mingw32",
}


def test_recipe_covers_the_required_matrix(recipe: Recipe) -> None:
    assert recipe.enzyme.version == "0.0.289"
    assert recipe.enzyme.capi == "v0.0.289"
    assert set(range(15, 21)) <= set(recipe.llvm_versions)
    assert {21, 22} <= set(recipe.all_llvm)
    assert set(recipe.platforms) == PLATFORMS
    assert recipe.source_url().endswith("/v0.0.289.tar.gz")
    assert recipe.source.sha256 is not None and len(recipe.source.sha256) == 64
    (lic,) = recipe.source.licenses
    assert lic.file == "LICENSE" and recipe.license_url(lic).endswith("/v0.0.289/LICENSE")
    for spec in recipe.platforms.values():
        assert spec.policy.name in recipe.policies
        assert spec.triplet.endswith("-cxx11")
    glibc = recipe.platforms["x86_64-linux-gnu"].policy
    assert glibc.name == "manylinux_2_28" and glibc.ceiling_text("GLIBC") == "2.28"
    rp = recipe.repack_for(15)
    assert rp.policy.name == "manylinux_2_34" and rp.wheel_tag == "manylinux_2_34_x86_64"


def test_full_matrix_is_platforms_times_llvm(recipe: Recipe) -> None:
    cells = expand(recipe)
    assert len(cells) == len(PLATFORMS) * len(recipe.all_llvm)
    assert len({(c.triplet, c.llvm) for c in cells}) == len(cells)
    assert [c.experimental for c in cells if c.llvm in (21, 22)] == [True] * 2 * len(PLATFORMS)
    assert not any(c.experimental for c in cells if c.llvm <= 20 and c.platform.platform.os != "windows")
    assert all(c.experimental for c in cells if c.platform.platform.os == "windows")


@pytest.mark.parametrize(("llvm", "platforms", "expected"), [
    ([15], [], {(p, 15) for p in PLATFORMS}),
    ([15, 18], ["x86_64-linux-gnu"], {("x86_64-linux-gnu", 15), ("x86_64-linux-gnu", 18)}),
    ([16], ["musl"], {("x86_64-linux-musl", 16), ("aarch64-linux-musl", 16)}),
    ([17], ["macos"], {("x86_64-apple-darwin", 17), ("aarch64-apple-darwin", 17)}),
    ([20], ["windows", "aarch64-linux-gnu-cxx11"], {("x86_64-w64-mingw32", 20), ("aarch64-linux-gnu", 20)}),
])
def test_filters(recipe: Recipe, llvm: list[int], platforms: list[str], expected: set) -> None:
    assert {(c.platform.key, c.llvm) for c in expand(recipe, llvm=llvm, platforms=platforms)} == expected


def test_filters_reject_unknown_values(recipe: Recipe) -> None:
    with pytest.raises(RecipeError, match="LLVM \\[14\\] not in the recipe"):
        expand(recipe, llvm=[14])
    with pytest.raises(RecipeError, match="no platform matches 'sparc'"):
        expand(recipe, platforms=["sparc"])
    stable = expand(recipe, include_experimental=False)
    assert stable and all(not c.experimental for c in stable)
    assert {c.llvm for c in stable} == set(range(15, 21))
    assert "windows" not in {c.platform.platform.os for c in stable}


def test_configure_command_line_is_exact(recipe: Recipe) -> None:
    spec = recipe.platforms["x86_64-linux-gnu"]
    cmd = configure_command(recipe, spec, 15, source_dir="/src/Enzyme/enzyme", build_dir="/b",
                            llvm_dir="/usr/lib/llvm-15/lib/cmake/llvm")
    assert cmd == [
        "cmake", "-S", "/src/Enzyme/enzyme", "-B", "/b", "-G", "Ninja",
        "-DCMAKE_BUILD_TYPE=Release",
        "-DCMAKE_SKIP_RPATH=ON",
        "-DENZYME_CLANG=OFF",
        "-DENZYME_ENABLE_PLUGINS=ON",
        "-DENZYME_EXTERNAL_SHARED_LIB=ON",
        "-DENZYME_MLIR=OFF",
        "-DENZYME_STATIC_LIB=OFF",
        "-DLLVM_DIR=/usr/lib/llvm-15/lib/cmake/llvm",
    ]
    assert build_command(recipe, spec, 15, build_dir="/b", jobs=2) == [
        "cmake", "--build", "/b", "--target", "LLVMEnzyme-15", "--config", "Release", "--parallel", "2"]
    extra = configure_command(recipe, spec, 15, source_dir="/s", build_dir="/b",
                              extra_args=["-DCMAKE_BUILD_TYPE=RelWithDebInfo"])
    assert extra[-1] == "-DCMAKE_BUILD_TYPE=RelWithDebInfo"  # last, so it wins over the recipe's
    mac = configure_command(recipe, recipe.platforms["aarch64-apple-darwin"], 15, source_dir="/s", build_dir="/b")
    assert "-DCMAKE_SKIP_RPATH=ON" not in mac


def test_platform_options_extend_and_default_llvm_dir(recipe: Recipe) -> None:
    mac = cmake_options(recipe, recipe.platforms["aarch64-apple-darwin"], 18)
    assert mac["CMAKE_OSX_ARCHITECTURES"] == "arm64"
    assert mac["CMAKE_OSX_DEPLOYMENT_TARGET"] == "11.0"
    assert mac["LLVM_DIR"] == "/opt/homebrew/opt/llvm@18/lib/cmake/llvm"
    win = cmake_options(recipe, recipe.platforms["x86_64-w64-mingw32"], 19)
    assert win["CMAKE_MSVC_RUNTIME_LIBRARY"] == "MultiThreadedDLL"
    assert win["LLVM_DIR"] == "C:/llvm-19/Library/lib/cmake/llvm"
    assert tarball_name(recipe, recipe.platforms["x86_64-w64-mingw32"], 19) == \
        "LLVMEnzyme.v0.0.289.x86_64-w64-mingw32-cxx11-llvm_version+19.tar.gz"


def test_plan_json_cli(recipe: Recipe) -> None:
    proc = run_cli("plan", "--json", "--llvm", "15", "--llvm", "16", "--platform", "linux")
    assert proc.returncode == 0, proc.stderr
    cells = json.loads(proc.stdout)
    assert len(cells) == 2 * 4
    first = cells[0]
    assert first["triplet"] == "x86_64-linux-gnu-cxx11" and first["llvm"] == 15
    assert first["key"] == "LLVMEnzyme.v0.0.289.x86_64-linux-gnu-cxx11-llvm_version+15"
    assert first["cibw_build"] == "cp311-manylinux_x86_64"
    build = shlex.split(first["commands"]["build"])
    assert build[:4] == ["python", "-m", "build_recipes", "build"]
    assert build[build.index("--llvm") + 1] == "15"
    configure = shlex.split(first["commands"]["configure"])
    assert "-DLLVM_DIR=/opt/llvm-15/lib/cmake/llvm" in configure
    assert configure[configure.index("-S") + 1] == "<source>/enzyme"
    # What the build starts from, to compare with a build's build-info.
    source = first["source"]
    assert source["kind"] == "tarball" and source["url"] == recipe.source_url()
    assert source["sha256"] == recipe.source.sha256 and source["strip_prefix"] == "Enzyme-0.0.289"
    assert source["licenses"] == [{"file": "LICENSE", "url": recipe.license_url(recipe.source.licenses[0]),
                                   "sha256": recipe.source.licenses[0].sha256}]
    assert source["version"]["label"] == first["enzyme_version"] == "0.0.289"
    assert first["capi"] == "v0.0.289"


def test_plan_text_and_bad_filter_exit_codes() -> None:
    proc = run_cli("plan", "--llvm", "19", "--platform", "x86_64-apple-darwin")
    assert proc.returncode == 0
    assert "LLVMEnzyme.v0.0.289.x86_64-apple-darwin-cxx11-llvm_version+19" in proc.stdout
    assert "cmake --build '<build>' --target LLVMEnzyme-19" in proc.stdout
    assert f"source  {load_recipe().source_url()}" in proc.stdout
    assert f"sha256 {load_recipe().source.sha256}" in proc.stdout and "license LICENSE: https://" in proc.stdout
    bad = run_cli("plan", "--llvm", "9")
    assert bad.returncode == 2 and "LLVM [9] not in the recipe" in bad.stderr


def _rewrite(recipe: Recipe, tmp_path: Path, old: str, new: str) -> Path:
    text = recipe.path.read_text(encoding="utf-8")
    assert old in text
    p = tmp_path / "enzyme.toml"
    p.write_text(text.replace(old, new, 1), encoding="utf-8")
    return p


@pytest.mark.parametrize(("old", "new", "message"), [
    ('capi = "v0.0.289"', 'capi = "v0.0.289"\nflavour = "x"', "unknown key"),
    ('sha256 = "f7cd', 'sha256 = "F7CD', "64 lowercase hex"),
    ('versions = [15, 16, 17, 18, 19, 20]', 'versions = [15, 21]', "both supported and experimental"),
    ('policy = "manylinux_2_28"', 'policy = "manylinux_1"', "is not defined under"),
    ('arch = "aarch64"\nos = "linux"\nlibc = "glibc"', 'arch = "x86_64"\nos = "linux"\nlibc = "glibc"',
     "describe x86_64-linux-gnu, not aarch64-linux-gnu"),
    ('target = "LLVMEnzyme-{llvm}"', 'target = "LLVMEnzyme-{major}"', "unknown placeholder"),
    ('file = "LICENSE"', 'file = "COPYING"', "is not one of \\[enzyme\\] license_files"),
    ('sha256 = "f2db94d3', 'sha256 = "F2DB94D3', "64 lowercase hex"),
    ('[[source.license]]\nfile = "LICENSE"', '[[source.license]]\nfile = "LICENSE"\nmirror = "x"',
     "unknown key"),
])
def test_recipe_parser_is_strict(recipe: Recipe, tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        load_recipe(_rewrite(recipe, tmp_path, old, new))


def test_recipe_env_and_cli_error(recipe: Recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _rewrite(recipe, tmp_path, 'version = "0.0.289"', 'version = "0.0.290"')
    monkeypatch.setenv("ENZYME_RECIPES_RECIPE", str(p))
    assert load_recipe().enzyme.version == "0.0.290"
    broken = tmp_path / "broken.toml"
    broken.write_text("[enzyme\n", encoding="utf-8")
    proc = run_cli("--recipe", str(broken), "plan")
    assert proc.returncode == 2 and "not valid TOML" in proc.stderr


def test_plan_of_a_checkout_uses_its_label(tmp_path: Path) -> None:
    commit = git_checkout(tmp_path / "Enzyme")
    proc = run_cli("plan", "--json", "--llvm", "16", "--platform", "x86_64-linux-gnu", "--source-dir",
                   str(tmp_path / "Enzyme"), "--cmake-arg=-DLLVM_ENABLE_ASSERTIONS=ON")
    assert proc.returncode == 0, proc.stderr
    (cell,) = json.loads(proc.stdout)
    label = f"0.0.79+g{commit[:8]}"
    assert cell["enzyme_version"] == label
    assert cell["key"] == f"LLVMEnzyme.v{label}.x86_64-linux-gnu-cxx11-llvm_version+16"
    assert cell["source"]["kind"] == "checkout" and cell["source"]["version"]["commit"] == commit
    build = shlex.split(cell["commands"]["build"])
    assert build[build.index("--source-dir") + 1] == str((tmp_path / "Enzyme").resolve())
    assert "--cmake-arg=-DLLVM_ENABLE_ASSERTIONS=ON" in build
    assert shlex.split(cell["commands"]["configure"])[-1] == "-DLLVM_ENABLE_ASSERTIONS=ON"
    text = run_cli("plan", "--llvm", "16", "--platform", "x86_64-linux-gnu", "--source-dir", str(tmp_path / "Enzyme"))
    assert text.stdout.startswith(f"1 cell(s) of Enzyme {label} (CMake version 0.0.79 and commit {commit[:12]}")


def test_wheel_tags_follow_the_policy(recipe: Recipe) -> None:
    from build_recipes.recipe import Policy

    gnu, musl, mac = (recipe.platforms[k] for k in ("aarch64-linux-gnu", "x86_64-linux-musl", "x86_64-apple-darwin"))
    assert gnu.wheel_tag_for(gnu.policy) == "manylinux_2_28_aarch64"
    assert gnu.wheel_tag_for(recipe.policies["manylinux_2_34"]) == "manylinux_2_34_aarch64"
    assert gnu.wheel_tag_for(Policy("none", {})) == "linux_aarch64"
    assert musl.wheel_tag_for(Policy("none", {})) == "linux_x86_64"
    assert mac.wheel_tag_for(Policy("none", {})) == "macosx_10_15_x86_64"


@pytest.mark.parametrize("name", ["build_recipes.recipe", "build_recipes.checks", "build_recipes.source",
                                  "build_recipes.build", "enzyme_artifacts.manifest_writer"])
def test_doctests(name: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_importing_the_package_imports_nothing_else() -> None:
    from tests.support.child import check_python

    code = ("import sys; import build_recipes; "
            "print(sorted(m for m in sys.modules if m.startswith(('build_recipes.', 'enzyme_', 'requests'))))")
    assert check_python(code).strip() == "[]"
