"""The source step (verified tarball over real HTTP, or a checkout) and the CMake side of
the build against Debian's llvm-15-dev."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from build_recipes.build import (
    BuildError,
    check_llvm_dir,
    default_llvm_dir,
    find_output,
    libllvm_near,
)
from build_recipes.plan import configure_command
from build_recipes.recipe import Recipe, load_recipe
from build_recipes.source import SourceError, fetch_source, find_licenses, locate_checkout
from enzyme_artifacts.hashes import sha256_bytes

from .conftest import run_cli

LLVM15_CMAKE = Path("/usr/lib/llvm-15/lib/cmake/llvm")
ENZYME_CMAKELISTS = "cmake_minimum_required(VERSION 3.13)\nproject(Enzyme)\n"


def _fake_release(version: str) -> bytes:
    """A tarball shaped like Enzyme's release archive (top folder, enzyme/, LICENSE)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in {f"Enzyme-{version}/LICENSE": b"license\n",
                           f"Enzyme-{version}/enzyme/CMakeLists.txt": ENZYME_CMAKELISTS.encode()}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def _recipe_served_at(recipe: Recipe, tmp_path: Path, url: str, sha: str | None) -> Recipe:
    text = recipe.path.read_text(encoding="utf-8")
    text = text.replace('url = "https://github.com/EnzymeAD/Enzyme/archive/refs/tags/v{version}.tar.gz"',
                        f'url = "{url}/v{{version}}.tar.gz"')
    line = f'sha256 = "{recipe.source.sha256}"\n'
    assert line in text
    text = text.replace(line, f'sha256 = "{sha}"\n' if sha else "")
    p = tmp_path / "enzyme.toml"
    p.write_text(text, encoding="utf-8")
    return load_recipe(p)


def test_fetch_verifies_and_unpacks_over_http(recipe: Recipe, tmp_path: Path, served_folder) -> None:
    site = tmp_path / "site"
    site.mkdir()
    blob = _fake_release(recipe.enzyme.version)
    (site / f"v{recipe.enzyme.version}.tar.gz").write_bytes(blob)
    base, requests = served_folder(site)
    r = _recipe_served_at(recipe, tmp_path, base, sha256_bytes(blob))
    tree = fetch_source(r, tmp_path / "work")
    assert tree.cmake_dir == tree.root / "enzyme" and tree.root.name == "Enzyme-0.0.289"
    assert find_licenses(tree, r) == {"LICENSE": tree.root / "LICENSE"}
    assert requests == ["/v0.0.289.tar.gz"]
    fetch_source(r, tmp_path / "work")  # verified copy reused: no second request
    assert requests == ["/v0.0.289.tar.gz"]


def test_fetch_refuses_a_wrong_digest(recipe: Recipe, tmp_path: Path, served_folder) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "v0.0.289.tar.gz").write_bytes(_fake_release("0.0.289"))
    base, _ = served_folder(site)
    r = _recipe_served_at(recipe, tmp_path, base, "0" * 64)
    with pytest.raises(SourceError, match="sha256 mismatch .* the file was deleted"):
        fetch_source(r, tmp_path / "work")
    assert not (tmp_path / "work" / "v0.0.289.tar.gz").exists()
    assert not (tmp_path / "work" / "src").exists()


def test_unset_digest_says_what_to_do(recipe: Recipe, tmp_path: Path) -> None:
    r = _recipe_served_at(recipe, tmp_path, "http://127.0.0.1:9", None)
    assert r.source.sha256 is None
    with pytest.raises(SourceError, match=r"has no \[source\] sha256 .* --source-dir"):
        fetch_source(r, tmp_path / "work")


def test_checkout_root_or_enzyme_folder(recipe: Recipe, tmp_path: Path) -> None:
    root = tmp_path / "Enzyme"
    (root / "enzyme").mkdir(parents=True)
    (root / "enzyme" / "CMakeLists.txt").write_text(ENZYME_CMAKELISTS)
    (root / "LICENSE").write_text("license\n")
    for given in (root, root / "enzyme"):
        tree = locate_checkout(given, recipe)
        assert (tree.root, tree.cmake_dir) == (root.resolve(), (root / "enzyme").resolve())
    with pytest.raises(SourceError, match="is not an Enzyme checkout"):
        locate_checkout(tmp_path, recipe)
    (root / "LICENSE").unlink()
    with pytest.raises(SourceError, match="never packaged without its license"):
        find_licenses(locate_checkout(root, recipe), recipe)


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
    assert Path(probe["LLVM_CMAKE_DIR"]).resolve() == LLVM15_CMAKE.resolve()


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
    assert "failed the binary checks (exports, load)" in proc.stderr
    assert "+ " + shutil.which("cmake") + " --build" in proc.stderr
    built = find_output(load_recipe(), load_recipe().platforms["x86_64-linux-gnu"], 15,
                        out / ".work" / "build-x86_64-linux-gnu-llvm15")
    assert built.name == "LLVMEnzyme-15.so"
    assert not list(out.glob("*.tar.gz")) and not list(out.glob("*.toml"))


def test_build_reports_a_missing_llvm(tmp_path: Path) -> None:
    proc = run_cli("build", "--llvm", "15", "--source-dir", str(tmp_path), "--out", str(tmp_path / "o"),
                   "--llvm-dir", str(tmp_path))
    assert proc.returncode == 1 and "no LLVMConfig.cmake in" in proc.stderr
