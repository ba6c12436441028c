"""LLVM discovery: the real Debian libLLVM-15, the env override, rejections, the error."""

from __future__ import annotations

import doctest
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from enzyme_artifacts import LLVMNotFoundError, find_libllvm
from enzyme_artifacts.llvm import _probe, finder, install_commands, search_libllvm
from enzyme_artifacts.platforms import Platform, host_platform
from enzyme_artifacts.selection import host_platform_for

from ._support import compile_shared


def debian_libllvm15() -> Path:
    """Debian's libLLVM-15 (the real file behind /usr/lib/llvm-15/lib/libLLVM-15.so.1)."""
    for pattern in ("/usr/lib/llvm-15/lib/libLLVM-15.so.1", "/usr/lib/*-linux-gnu/libLLVM-15.so.1"):
        hits = glob.glob(pattern)
        if hits:
            return Path(os.path.realpath(hits[0]))
    raise AssertionError("libllvm15 is not installed (apt-get install libllvm15)")


def test_finds_debian_libllvm15() -> None:
    lib = find_libllvm(15)
    assert os.path.realpath(lib.path) == str(debian_libllvm15())
    assert lib.major == 15
    assert lib.version.split(".")[0] == "15"
    assert lib.cxx11_abi is True
    assert lib.assertions is False
    assert lib.soname == "libLLVM-15.so.1"
    assert lib.origin in {"loaded", "llvm-config", "system", "loader"}
    assert lib.cxxstring_abi == "cxx11"


def _child_find(env: dict[str, str], preload: str | None = None) -> dict[str, object]:
    code = (
        "import ctypes, json, sys\n"
        + (f"ctypes.CDLL({preload!r})\n" if preload else "")
        + "from enzyme_artifacts.llvm import find_libllvm\n"
        "lib = find_libllvm(15)\n"
        "print(json.dumps({'path': str(lib.path), 'origin': lib.origin, 'version': lib.version}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


def test_origin_in_a_fresh_process() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENZYME_ARTIFACTS_")}
    found = _child_find(env)
    assert found["origin"] in {"llvm-config", "system", "loader"}
    assert os.path.realpath(str(found["path"])) == str(debian_libllvm15())


def test_already_loaded_libllvm_is_preferred() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENZYME_ARTIFACTS_")}
    found = _child_find(env, preload=str(debian_libllvm15()))
    assert found["origin"] == "loaded"
    assert os.path.realpath(str(found["path"])) == str(debian_libllvm15())


def test_conda_prefix_is_searched(tmp_path: Path) -> None:
    prefix = tmp_path / "conda-env"
    (prefix / "lib").mkdir(parents=True)
    (prefix / "lib" / "libLLVM-15.so").symlink_to(debian_libllvm15())
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENZYME_ARTIFACTS_")}
    env.update(CONDA_PREFIX=str(prefix), PATH=str(tmp_path / "empty-bin"))  # no llvm-config
    found = _child_find(env)
    assert found["origin"] == "conda"
    assert found["path"] == str(prefix / "lib" / "libLLVM-15.so")


def test_env_library_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    link = tmp_path / "libLLVM-15.so.1"
    link.symlink_to(debian_libllvm15())
    monkeypatch.setenv("ENZYME_ARTIFACTS_LLVM_LIBRARY", str(link))
    lib = find_libllvm(15)
    assert lib.origin == "env"
    assert lib.path == link
    assert lib.cxx11_abi and not lib.assertions


def test_env_library_of_another_major_is_not_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "libLLVM-14.so.1"
    fake.write_bytes(b"not a library at all")  # loading it would fail with a different message
    monkeypatch.setenv("ENZYME_ARTIFACTS_LLVM_LIBRARY", str(fake))
    result = search_libllvm(15)
    first = result.attempts[0]
    assert first.origin == "env"
    assert "LLVM 14" in first.outcome and "not loaded" in first.outcome
    assert result.found is not None and result.found.origin != "env"  # fell through to the next place


def test_a_library_that_is_not_libllvm_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = compile_shared(tmp_path, "libLLVM-15.so", "int not_llvm(void) { return 1; }\n")
    monkeypatch.setenv("ENZYME_ARTIFACTS_LLVM_LIBRARY", str(lib))
    outcome = search_libllvm(15).attempts[0].outcome
    assert "does not export LLVMContextCreate" in outcome


def test_a_library_of_unknown_major_is_not_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = tmp_path / "libsomething.so"
    lib.write_bytes(b"\0" * 64)
    monkeypatch.setenv("ENZYME_ARTIFACTS_LLVM_LIBRARY", str(lib))
    outcome = search_libllvm(15).attempts[0].outcome
    assert "major cannot be read" in outcome


def test_missing_major_raises_with_install_commands() -> None:
    with pytest.raises(LLVMNotFoundError) as info:
        find_libllvm(99)
    msg = str(info.value)
    assert "LLVM 99" in msg
    assert "apt-get install libllvm99" in msg
    assert "brew install llvm@99" in msg
    assert "conda install -c conda-forge libllvm99" in msg
    assert "/usr/lib/llvm-99/lib" in msg  # says where it looked
    assert info.value.major == 99
    assert install_commands(99)["debian"].endswith("apt-get install libllvm99")


def test_llvm_config_of_another_major_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, reply in (("llvm-config-15", "15.0.1\nstatic\n/nowhere"), ("llvm-config", "14.0.6\n/x\nshared")):
        script = bindir / name
        script.write_text(f"#!/bin/sh\nprintf '{reply}\\n'\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    # (the search itself may stop earlier: this process may already hold libLLVM-15)
    outcomes = {c.where: c.skip for c in finder().llvm_config_candidates(15)}
    assert outcomes[str(bindir / "llvm-config-15")] == "LLVM 15.0.1 was built without a shared libLLVM"
    assert outcomes[str(bindir / "llvm-config")] == "reports LLVM 14.0.6, not 15"


def test_bad_major_argument() -> None:
    with pytest.raises(ValueError):
        search_libllvm(0)
    with pytest.raises(ValueError):
        search_libllvm("15")  # type: ignore[arg-type]


def test_host_platform() -> None:
    plat = host_platform()
    assert plat.cxxstring_abi is None
    assert plat.os == {"linux": "linux", "darwin": "macos", "win32": "windows"}.get(sys.platform, plat.os)
    with_abi = host_platform_for(find_libllvm(15))
    assert with_abi == plat.with_cxxstring_abi("cxx11")
    if sys.platform == "linux":
        assert with_abi.triplet.endswith("-linux-gnu")
        assert str(with_abi) == f"{plat.arch}-linux-gnu-cxx11"
        assert Platform.parse(str(with_abi)) == with_abi


def test_name_parsing_doctests() -> None:
    result = doctest.testmod(_probe)
    assert result.attempted > 0 and result.failed == 0


def test_dynamic_loader_candidate() -> None:
    # the last resort, used when neither llvm-config nor /usr/lib/llvm-15 exists (libllvm15 alone)
    candidates = list(finder().loader_candidates(15))
    assert candidates and candidates[0].path is not None
    lib = finder().validate(candidates[0], 15)
    assert os.path.realpath(lib.path) == str(debian_libllvm15())
    assert lib.origin == "loader" and lib.soname == "libLLVM-15.so.1"
    skipped = list(finder().loader_candidates(98))
    assert skipped[0].path is None and "libLLVM-98.so.1" in str(skipped[0].skip)


def test_fast_elf_reader_agrees_with_pyelftools() -> None:
    from enzyme_artifacts.elf import _fast_dynamic, _read_dynamic, is_elf

    paths = [debian_libllvm15(), Path(sys.executable).resolve()]
    paths += [Path(p) for p in sorted(glob.glob("/usr/lib/*-linux-gnu/lib*.so.*"))[:40]]
    checked = 0
    for p in paths:
        if p.is_file() and is_elf(p):
            assert _fast_dynamic(p) == _read_dynamic(p), p
            checked += 1
    assert checked >= 2
