"""The CMake side of ``build`` against Debian's llvm-15-dev, run as a user would, on small
Enzyme-shaped projects: a checkout labelled by its commit, the default route (a GitHub-shaped
archive and its license over real HTTP), the 2025 C API refused, zstd diagnosed, ``--json``
parseable, ``--policy none`` labelled as such."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from build_recipes.build import (
    BuildError,
    check_llvm_dir,
    default_llvm_dir,
    find_output,
    libllvm_near,
)
from build_recipes.plan import configure_command
from build_recipes.recipe import Recipe, load_recipe
from enzyme_artifacts.hashes import sha256_bytes, sha256_file
from enzyme_artifacts.manifest import load_manifest

from .conftest import (
    LICENSE_TEXT,
    REPO,
    git_checkout,
    github_archive,
    pip_wheel,
    recipe_copy,
    run_cli,
    serve_files,
)

LLVM15_CMAKE = Path("/usr/lib/llvm-15/lib/cmake/llvm")


def test_llvm_dir_validation(tmp_path: Path) -> None:
    assert check_llvm_dir(LLVM15_CMAKE, 15) == LLVM15_CMAKE
    assert check_llvm_dir("/usr/lib/llvm-15", 15) == LLVM15_CMAKE
    with pytest.raises(BuildError, match="not LLVM 16"):
        check_llvm_dir(LLVM15_CMAKE, 16)
    with pytest.raises(BuildError, match="apt-get install llvm-17-dev"):
        check_llvm_dir(tmp_path, 17)


def test_libllvm_beside_the_cmake_folder(tmp_path: Path) -> None:
    assert libllvm_near(LLVM15_CMAKE, 15) == Path("/usr/lib/llvm-15/lib/libLLVM-15.so.1")
    conda = tmp_path / "lib" / "cmake" / "llvm"
    conda.mkdir(parents=True)
    assert libllvm_near(conda, 17) is None
    (tmp_path / "lib" / "libLLVM.so.17.0").write_bytes(b"")
    assert libllvm_near(conda, 17) == tmp_path / "lib" / "libLLVM.so.17.0"


def test_default_llvm_dir_finds_debian_llvm(recipe: Recipe) -> None:
    # The recipe's CI location (/opt/llvm-15) is absent here: Debian's folder is found instead.
    assert default_llvm_dir(recipe, recipe.platforms["x86_64-linux-gnu"], 15) == str(LLVM15_CMAKE)


_PROBE = """cmake_minimum_required(VERSION 3.13)
project(probe LANGUAGES C CXX)
find_package(LLVM 15 REQUIRED CONFIG)
message(STATUS "probe: LLVM_VERSION_MAJOR=${LLVM_VERSION_MAJOR}")
message(STATUS "probe: LLVM_LINK_LLVM_DYLIB=${LLVM_LINK_LLVM_DYLIB}")
message(STATUS "probe: LLVM_ENABLE_PLUGINS=${LLVM_ENABLE_PLUGINS}")
message(STATUS "probe: LLVM_CMAKE_DIR=${LLVM_CMAKE_DIR}")
list(APPEND CMAKE_MODULE_PATH "${LLVM_CMAKE_DIR}")
include(AddLLVM)
message(STATUS "probe: ENZYME_EXTERNAL_SHARED_LIB=${ENZYME_EXTERNAL_SHARED_LIB}")
message(STATUS "probe: CMAKE_SKIP_RPATH=${CMAKE_SKIP_RPATH}")
"""


def test_cmake_finds_debian_llvm_15_with_the_recipe_options(recipe: Recipe, tmp_path: Path) -> None:
    src = tmp_path / "probe"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(_PROBE)
    spec = recipe.platforms["x86_64-linux-gnu"]
    cmd = configure_command(recipe, spec, 15, source_dir=src, build_dir=tmp_path / "b",
                            llvm_dir=str(LLVM15_CMAKE), cmake=shutil.which("cmake") or "cmake")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    probe = dict(line.split("probe: ", 1)[1].split("=", 1) for line in proc.stdout.splitlines()
                 if "probe: " in line)
    assert probe["LLVM_VERSION_MAJOR"] == "15"
    assert probe["LLVM_LINK_LLVM_DYLIB"] == "ON"   # the plugin will bind libLLVM-15.so.1
    assert probe["LLVM_ENABLE_PLUGINS"] == "ON"    # Enzyme keeps ENZYME_ENABLE_PLUGINS on
    assert probe["ENZYME_EXTERNAL_SHARED_LIB"] == "ON"
    assert probe["CMAKE_SKIP_RPATH"] == "ON"       # no build-machine folder in RUNPATH
    assert Path(probe["LLVM_CMAKE_DIR"]).resolve() == LLVM15_CMAKE.resolve()


def _checks(payload: dict) -> dict[str, dict]:
    return {c["name"]: c for c in payload["checks"]["checks"]}


def test_a_checkout_is_labelled_by_its_commit(tmp_path: Path) -> None:
    """A git checkout without a release tag: the CMake version and the commit name the
    artifact; the recipe's Linux options keep the build machine's LLVM folder out of RUNPATH;
    --cmake-arg reaches the configure step; --json stays parseable with CMake talking."""
    repo = tmp_path / "Enzyme"
    commit = git_checkout(repo)
    out = tmp_path / "out"
    proc = run_cli("build", "--llvm", "15", "--source-dir", str(repo), "--out", str(out), "--llvm-dir",
                   "/usr/lib/llvm-15", "--jobs", "2", "--cmake-arg=-DFAKE_EXTRA=hello", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    payload = json.loads(proc.stdout)  # nothing but the JSON document on stdout
    label = f"0.0.79+g{commit[:8]}"
    assert payload["enzyme_version"] == label and payload["capi"] == "v0.0.289"
    assert Path(payload["tarball"]).name == f"LLVMEnzyme.v{label}.x86_64-linux-gnu-cxx11-llvm_version+15.tar.gz"
    assert payload["source"]["commit"] == commit
    assert "fake-enzyme: LLVM 15, FAKE_EXTRA=hello" in proc.stderr
    assert "-DFAKE_EXTRA=hello" in proc.stderr and "Linking C shared module" in proc.stderr
    checks = _checks(payload)
    assert checks["runpath"]["detail"].startswith("no RUNPATH")
    assert checks["needed"]["needed"][0] == "libLLVM-15.so.1"
    assert {c["status"] for c in checks.values()} == {"PASS"}
    (entry,) = load_manifest(payload["fragment"]).entries
    assert entry.enzyme_version == label and entry.key == Path(payload["tarball"]).name[:-7]
    fragment = Path(payload["fragment"]).read_text()
    assert f"# Enzyme {label}: CMake version 0.0.79 and commit {commit[:12]}" in fragment
    assert "# LICENSE: LICENSE of the source tree" in fragment
    info = json.loads(Path(payload["info"]).read_text())
    assert info["wheel_tag"] == "manylinux_2_28_x86_64" and info["policy"] == "manylinux_2_28"
    assert info["cmake_args"] == ["-DFAKE_EXTRA=hello"] and info["source"]["kind"] == "checkout"
    plan = run_cli("plan", "--json", "--llvm", "15", "--platform", "x86_64-linux-gnu", "--source-dir", str(repo))
    assert json.loads(plan.stdout)[0]["key"] == entry.key


def test_the_default_route_builds_githubs_archive(recipe: Recipe, tmp_path: Path, httpserver: HTTPServer) -> None:
    """No --source-dir: the release tarball (GitHub-shaped, no LICENSE) is downloaded and
    verified, the LICENSE comes from its own pinned URL, and ``--policy none`` says so in
    the fragment, the build-info and the wheel tag."""
    repo = tmp_path / "repo"
    commit = git_checkout(repo, tag="v0.0.289")
    archive = github_archive(repo, "v0.0.289", tmp_path / "v0.0.289.tar.gz")
    base = serve_files(httpserver, {"/archive/refs/tags/v0.0.289.tar.gz": archive,
                                    "/raw/v0.0.289/LICENSE": LICENSE_TEXT})
    r = recipe_copy(recipe, tmp_path, url=base + "/archive/refs/tags/v{version}.tar.gz",
                    sha256=sha256_file(archive), license_url=base + "/raw/v{version}/LICENSE",
                    license_sha256=sha256_bytes(LICENSE_TEXT))
    out = tmp_path / "out"
    proc = run_cli("--recipe", str(r.path), "build", "--llvm", "15", "--out", str(out), "--llvm-dir",
                   "/usr/lib/llvm-15", "--policy", "none", "--jobs", "2", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["enzyme_version"] == "0.0.289" and payload["source"]["commit"] == commit
    with tarfile.open(payload["tarball"]) as tar:
        assert tar.extractfile("share/licenses/LICENSE").read() == LICENSE_TEXT
        assert tar.getnames() == ["lib", "lib/LLVMEnzyme-15.so", "share", "share/licenses",
                                  "share/licenses/LICENSE"]
    fragment = Path(payload["fragment"]).read_text()
    assert "manylinux" not in fragment and "# wheel policy none (linux_x86_64)" in fragment
    assert f"# LICENSE: {base}/raw/v0.0.289/LICENSE (sha256 {sha256_bytes(LICENSE_TEXT)})" in fragment
    info = json.loads(Path(payload["info"]).read_text())
    assert (info["policy"], info["wheel_tag"]) == ("none", "linux_x86_64")
    # The plan names the same source as the build-info records.
    plan = run_cli("--recipe", str(r.path), "plan", "--json", "--llvm", "15", "--platform", "x86_64-linux-gnu")
    (cell,) = json.loads(plan.stdout)
    assert cell["key"] == Path(payload["fragment"]).stem
    for field in ("url", "sha256", "licenses"):
        assert cell["source"][field] == info["source"][field], field
    assert info["source"]["url"] == f"{base}/archive/refs/tags/v0.0.289.tar.gz"
    # The wheel of a policy-none build is tagged for the machine that built it.
    project = tmp_path / "project"
    shutil.copytree(REPO / "build_recipes" / "wheel_project", project,
                    ignore=shutil.ignore_patterns("build", "*.egg-info"))
    env = {**os.environ, "ENZYME_RECIPES_ARTIFACTS": str(out), "ENZYME_RECIPES_ROOT": str(REPO)}
    wheel = pip_wheel(project, tmp_path / "dist", env)
    assert wheel.returncode == 0, wheel.stdout + wheel.stderr
    (whl,) = (tmp_path / "dist").glob("*.whl")
    assert whl.name == "enzyme_py_llvmenzyme_llvm15-0.0.289-py3-none-linux_x86_64.whl"
    with zipfile.ZipFile(whl) as zf:
        assert zf.read("enzyme_llvmenzyme_llvm15/share/licenses/LICENSE") == LICENSE_TEXT


@pytest.mark.parametrize("strings", ["assertions", "ndebug"])
def test_the_2025_c_api_is_refused_then_built_as_its_profile(tmp_path: Path, strings: str) -> None:
    """Same 26 exported names, other parameter lists: the checks identify the C API as the
    loader does (by probing; with or without the signature strings an assertions build
    embeds) and stop it before packaging as v0.0.289; ``--capi v0.0.173`` packages it as
    what it is.  ``--json`` prints the report alone on stdout."""
    repo = tmp_path / "Enzyme"
    git_checkout(repo, profile="v0.0.173", signatures=None if strings == "assertions" else ())
    out = tmp_path / "out"
    args = ["build", "--llvm", "15", "--source-dir", str(repo), "--out", str(out), "--llvm-dir",
            "/usr/lib/llvm-15", "--policy", "none", "--jobs", "2", "--json"]
    proc = run_cli(*args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["capi"]["status"] == "FAIL" and checks["exports"]["status"] == "PASS"
    assert checks["load"]["status"] == "PASS" and checks["capi"]["probed"] is True
    assert "it is C API v0.0.173 (Enzyme v0.0.173 to v0.0.180" in checks["capi"]["detail"]
    assert "pass --capi v0.0.173" in checks["capi"]["detail"]
    assert "through v0.0.289: the test process was killed by signal 6 (SIGABRT)" in checks["capi"]["detail"]
    if strings == "assertions":
        assert "EnzymeCreatePrimalAndGradient has 22 parameters in the library, 23 in v0.0.289" in \
            checks["capi"]["detail"]
    else:
        assert "it embeds no signature strings" in checks["capi"]["detail"]
    assert "failed the binary checks (capi)" in proc.stderr
    assert not list(out.glob("*.tar.gz")) and not list(out.glob("*.toml"))
    proc = run_cli(*args, "--capi", "v0.0.173")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    payload = json.loads(proc.stdout)
    assert 'capi = "v0.0.173"' in Path(payload["fragment"]).read_text()


_NOT_ENZYME = """cmake_minimum_required(VERSION 3.13)
project(Enzyme LANGUAGES C CXX)
find_package(LLVM REQUIRED CONFIG)
add_library(LLVMEnzyme-${LLVM_VERSION_MAJOR} MODULE Enzyme/plugin.c)
set_target_properties(LLVMEnzyme-${LLVM_VERSION_MAJOR} PROPERTIES PREFIX ""
                      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/Enzyme)
"""


def test_build_refuses_a_library_that_is_not_enzyme(tmp_path: Path) -> None:
    """The whole `build` path (configure, compile, locate, check) runs; the checks stop a
    library without Enzyme's C API from being packaged."""
    root = tmp_path / "checkout"
    (root / "enzyme" / "Enzyme").mkdir(parents=True)
    (root / "enzyme" / "CMakeLists.txt").write_text(_NOT_ENZYME)
    (root / "enzyme" / "Enzyme" / "plugin.c").write_text("int not_enzyme(void) { return 1; }\n")
    (root / "LICENSE").write_text("license\n")
    out = tmp_path / "out"
    proc = run_cli("build", "--llvm", "15", "--source-dir", str(root), "--out", str(out),
                   "--llvm-dir", "/usr/lib/llvm-15", "--policy", "none", "--jobs", "2")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "failed the binary checks (exports, capi, load)" in proc.stderr
    assert "+ " + shutil.which("cmake") + " --build" in proc.stderr
    assert "note: Enzyme 0+unknown" in proc.stderr  # no CMake version, no git: the label says so
    built = find_output(load_recipe(), load_recipe().platforms["x86_64-linux-gnu"], 15,
                        out / ".work" / "build-x86_64-linux-gnu-llvm15")
    assert built.name == "LLVMEnzyme-15.so"
    assert not list(out.glob("*.tar.gz")) and not list(out.glob("*.toml"))


_FAKE_LLVM16 = """set(LLVM_VERSION_MAJOR 16)
set(LLVM_PACKAGE_VERSION 16.0.6)
message(STATUS "TBL_LINKED_LIBS (as Enzyme prints them): ZLIB::ZLIB;zstd::libzstd_shared")
list(APPEND CMAKE_MODULE_PATH "${CMAKE_CURRENT_LIST_DIR}")
set(LLVM_ENABLE_ZSTD TRUE)
if(LLVM_ENABLE_ZSTD)
  find_package(zstd)
endif()
if(NOT TARGET LLVMSupport)
  add_library(LLVMSupport STATIC IMPORTED)
  set_target_properties(LLVMSupport PROPERTIES IMPORTED_LOCATION "${CMAKE_CURRENT_LIST_DIR}/libLLVMSupport.a"
                        INTERFACE_LINK_LIBRARIES "zstd::libzstd_shared")
endif()
"""

_TBLGEN_LIKE = """cmake_minimum_required(VERSION 3.13)
project(Enzyme C)
find_package(LLVM REQUIRED CONFIG)
add_executable(enzyme-tblgen tblgen.c)
target_link_libraries(enzyme-tblgen PRIVATE LLVMSupport)
"""


def test_missing_zstd_is_diagnosed(tmp_path: Path) -> None:
    """Debian's LLVM 16+ CMake package links LLVMSupport to zstd::libzstd_shared: without
    libzstd-dev the configure step fails, and the error says what to install.  (A small
    LLVM-shaped CMake package; --cmake-arg hides zstd as a machine without it would.)"""
    pkg = tmp_path / "llvm-16" / "lib" / "cmake" / "llvm"
    pkg.mkdir(parents=True)
    (pkg / "LLVMConfig.cmake").write_text(_FAKE_LLVM16)
    (pkg / "LLVMConfigVersion.cmake").write_text('set(PACKAGE_VERSION "16.0.6")\nset(PACKAGE_VERSION_COMPATIBLE TRUE)\n')
    root = tmp_path / "checkout"
    (root / "enzyme").mkdir(parents=True)
    (root / "enzyme" / "CMakeLists.txt").write_text(_TBLGEN_LIKE)
    (root / "enzyme" / "tblgen.c").write_text("int main(void) { return 0; }\n")
    (root / "LICENSE").write_text("license\n")
    proc = run_cli("build", "--llvm", "16", "--source-dir", str(root), "--out", str(tmp_path / "out"),
                   "--llvm-dir", str(pkg), "--no-load", "--json",
                   "--cmake-arg=-DCMAKE_DISABLE_FIND_PACKAGE_zstd=ON")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "zstd::libzstd_shared" in proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error.startswith("cmake configure failed")
    assert "hint: LLVM's CMake package was built with zstd" in error and "apt-get install libzstd-dev" in error
    assert "zlib" not in error  # named in a status line, not in the error


def test_bad_labels_and_profiles_are_usage_errors(tmp_path: Path) -> None:
    for args, message in ((["--enzyme-version", "not a version"], "is not a version such as 0.0.289"),
                          (["--capi", "v0.0.79"], "unknown Enzyme C-API profile 'v0.0.79'")):
        proc = run_cli("build", "--llvm", "15", "--source-dir", str(tmp_path), "--out", str(tmp_path / "o"),
                       *args)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_build_reports_a_missing_llvm(tmp_path: Path) -> None:
    proc = run_cli("build", "--llvm", "15", "--source-dir", str(tmp_path), "--out", str(tmp_path / "o"),
                   "--llvm-dir", str(tmp_path))
    assert proc.returncode == 1 and "no LLVMConfig.cmake in" in proc.stderr
