"""The command line, run as real child processes: --json for every command, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ..support.fake_enzyme import build_fake_enzyme
from ._support import run_cli
from .conftest import Dirs, RealArtifact, TarballArtifact


def ok_json(*args: str, env: dict[str, str] | None = None) -> dict:
    proc = run_cli(*args, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" or "Traceback" not in proc.stderr
    return json.loads(proc.stdout)


def failing(code: int, *args: str, env: dict[str, str] | None = None) -> tuple[str, dict]:
    proc = run_cli(*args, "--json", env=env)
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("enzyme-artifacts: error: ")
    data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    if data:
        assert data["error"]["exit_code"] == code
    return lines[0], data


def test_platform() -> None:
    data = ok_json("platform")
    assert set(data) == {"platform", "triplet", "arch", "os", "libc", "cxxstring_abi", "cxxstring_abi_from"}
    assert data["cxxstring_abi"] == "cxx11"
    assert data["platform"] == f"{data['triplet']}-cxx11"
    plain = run_cli("platform")
    assert plain.returncode == 0 and plain.stdout.strip() == data["platform"]


def test_status_on_a_fresh_machine(isolated: Dirs) -> None:
    data = ok_json("status")
    assert {"platform", "llvm_major", "libllvm", "manifest", "cache", "overrides", "environment",
            "would_load", "next_steps"} <= set(data)
    assert data["libllvm"]["found"] is True
    assert data["llvm_major"]["value"] == 15
    assert data["cache"]["exists"] is False and data["cache"]["root"] == str(isolated.cache)
    assert data["manifest"]["entries"] and data["manifest"]["entries"][0]["installed"] is False
    assert data["would_load"]["library"] is None and "not installed" in data["would_load"]["missing"]
    assert any("enzyme-artifacts fetch --llvm 15" in s for s in data["next_steps"])
    assert data["environment"]["ENZYME_ARTIFACTS_CACHE"] == str(isolated.cache)
    text = run_cli("status")
    assert text.returncode == 0
    for heading in ("Platform:", "libLLVM:", "Would load:", "Manifest:", "Cache:", "Overrides:", "Next steps:"):
        assert heading in text.stdout
    assert not isolated.cache.exists()  # status creates nothing


def test_status_missing_llvm_gives_install_commands() -> None:
    proc = run_cli("status", "--llvm", "99", "--json")
    assert proc.returncode == 3, proc.stderr  # what was asked for cannot work
    data = json.loads(proc.stdout)
    assert data["libllvm"]["found"] is False
    assert data["libllvm"]["install"]["debian"].endswith("apt-get install libllvm99")
    assert any("brew install llvm@99" in s for s in data["next_steps"])
    assert data["libllvm"]["attempts"]


def test_which_never_downloads(tarball_artifact: TarballArtifact) -> None:
    line, data = failing(3, "which", "--llvm", "15")
    assert "enzyme-artifacts fetch --llvm 15" in line
    assert data["error"]["type"] == "ArtifactNotFoundError"
    assert tarball_artifact.requests() == []


def test_fetch_which_verify_clean(tarball_artifact: TarballArtifact, isolated: Dirs) -> None:
    fetched = ok_json("fetch", "--llvm", "15")
    assert fetched["origin"] == "fetched" and Path(fetched["path"]).is_file()
    again = ok_json("fetch")
    assert again["origin"] == "cache" and again["path"] == fetched["path"]
    which = ok_json("which")
    assert which["path"] == os.path.realpath(fetched["path"]) and which["origin"] == "cache"
    assert which["llvm"]["major"] == 15 and which["capi"] == "v0.0.289"
    plain = run_cli("which")
    assert plain.stdout.strip() == which["path"]

    verified = ok_json("verify")
    assert verified["ok"] is True and len(verified["artifacts"]) == 1

    # corrupt the installed library: verify fails (exit 1), verify --fix re-fetches
    lib = Path(fetched["path"])
    lib.chmod(0o644)
    with open(lib, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00garbage\x00")
    proc = run_cli("verify", "--json")
    assert proc.returncode == 1, proc.stdout
    report = json.loads(proc.stdout)
    assert report["ok"] is False and report["artifacts"][0]["problems"]
    fixed = ok_json("verify", "--fix")
    assert fixed["artifacts"][0]["fixed"] is True
    assert ok_json("verify")["ok"] is True
    assert len(tarball_artifact.requests()) == 2

    stray = isolated.cache / "artifacts" / ("0" * 64)
    stray.mkdir()
    dry = ok_json("clean", "--dry-run")
    assert dry["dry_run"] is True and str(stray) in dry["removed"] and stray.exists()
    done = ok_json("clean")
    assert str(stray) in done["removed"] and not stray.exists()
    assert ok_json("which")["path"] == which["path"]  # the referenced artifact stays


def test_dev_and_undev(use_real_cache: RealArtifact, isolated: Dirs) -> None:
    made = ok_json("dev", "--llvm", "15")
    lib = Path(made["path"])
    assert made["kind"] == "copy" and lib.is_file() and lib.is_relative_to(isolated.dev)
    assert ok_json("which")["origin"] == "override"
    other = isolated.root / "other" / "LLVMEnzyme-15.so"
    other.parent.mkdir()
    shutil.copy(use_real_cache.library, other)
    lib.unlink()
    lib.symlink_to(other)
    which = ok_json("which", "--llvm", "15")
    assert which["path"] == str(other) and which["library"] == str(lib)
    status = ok_json("status")
    assert status["overrides"]["entries"][0]["resolves_to"] == str(other)
    assert status["would_load"]["origin"] == "override"
    removed = ok_json("undev", "--llvm", "15")
    assert removed == {"removed": True, "llvm": 15, "library": str(lib)}
    assert ok_json("which")["origin"] == "cache"
    assert ok_json("undev")["removed"] is False


def test_dev_path_errors_are_one_line(isolated: Dirs) -> None:
    junk = isolated.root / "LLVMEnzyme-15.so"
    junk.write_text("not a library")
    line, data = failing(5, "dev", str(junk), "--llvm", "15")
    assert "not an ELF shared library" in line
    assert data["error"]["type"] == "InvalidOverrideError"
    line, _ = failing(5, "dev", str(isolated.root / "missing"), "--llvm", "15")
    assert "does not exist" in line


def test_offline_fetch(tarball_artifact: TarballArtifact) -> None:
    line, data = failing(3, "fetch", env={"ENZYME_ARTIFACTS_OFFLINE": "1"})
    assert "ENZYME_ARTIFACTS_OFFLINE" in line and data["error"]["type"] == "OfflineError"
    assert tarball_artifact.requests() == []


def test_missing_llvm_is_one_line() -> None:
    line, _ = failing(3, "which", "--llvm", "99")
    assert "apt-get install libllvm99" in line and "brew install llvm@99" in line
    assert "conda install -c conda-forge libllvm99" in line


def test_download_failure_exit_code(tarball_artifact: TarballArtifact) -> None:
    manifest = tarball_artifact.manifest.read_text().replace(tarball_artifact.name, "missing.tar.gz")
    tarball_artifact.manifest.write_text(manifest)
    line, _ = failing(4, "fetch", env={"ENZYME_ARTIFACTS_RETRIES": "0"})
    assert "404" in line


def test_usage_errors() -> None:
    for args in (["frobnicate"], ["which", "--llvm", "abc"], ["verify", "--bogus"]):
        proc = run_cli(*args)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    line, _ = failing(2, "which", env={"ENZYME_ARTIFACTS_LLVM_VERSION": "fifteen"})
    assert "ENZYME_ARTIFACTS_LLVM_VERSION" in line


def test_broken_manifest_exit_code(isolated: Dirs) -> None:
    bad = isolated.root / "bad.toml"
    bad.write_text("[[LLVMEnzyme]]\nllvm_version = 'x'\n")
    line, _ = failing(6, "which", "--llvm", "15", env={"ENZYME_ARTIFACTS_MANIFEST": str(bad)})
    assert str(bad) in line


def test_console_script_is_installed() -> None:
    exe = shutil.which("enzyme-artifacts") or str(Path(sys.executable).with_name("enzyme-artifacts"))
    proc = subprocess.run([exe, "platform", "--json"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["cxxstring_abi"] == "cxx11"


def test_version() -> None:
    from importlib.metadata import version

    import enzyme_artifacts

    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"enzyme-artifacts {version('enzyme-py')} (enzyme-py)"
    assert enzyme_artifacts.__version__ == version("enzyme-py")
    assert "--version" in run_cli("--help").stdout


def test_help_lists_every_command() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for name in ("platform", "status", "which", "fetch", "verify", "dev", "undev", "clean"):
        assert name in proc.stdout


@pytest.mark.parametrize("command", ["platform", "status", "which", "fetch", "verify", "dev", "undev", "clean"])
def test_every_command_accepts_json(command: str) -> None:
    proc = run_cli(command, "--help")
    assert proc.returncode == 0 and "--json" in proc.stdout


def test_json_flag_before_the_command() -> None:
    proc = run_cli("--json", "platform")
    assert proc.returncode == 0 and json.loads(proc.stdout)["cxxstring_abi"] == "cxx11"


def test_env_library_via_cli(real_artifact: RealArtifact) -> None:
    data = ok_json("which", env={"ENZYME_ARTIFACTS_LIBRARY": str(real_artifact.library)})
    assert data["origin"] == "env" and data["path"] == os.path.realpath(real_artifact.library)
    status = ok_json("status", env={"ENZYME_ARTIFACTS_LIBRARY": str(real_artifact.library)})
    assert status["would_load"]["origin"] == "env"
    assert status["environment"]["ENZYME_ARTIFACTS_LIBRARY"] == str(real_artifact.library)


def test_which_reports_no_manifest_key_for_a_local_build(real_artifact: RealArtifact, isolated: Dirs) -> None:
    """A local LLVM 15 build is not the manifest's LLVM 15 entry, though both are LLVM 15."""
    build = isolated.root / "build" / "Enzyme" / "LLVMEnzyme-15.so"
    build.parent.mkdir(parents=True)
    shutil.copy(real_artifact.library, build)
    env = {"ENZYME_ARTIFACTS_LIBRARY": str(build)}
    which = ok_json("which", env=env)
    assert which["origin"] == "env" and which["key"] is None and which["capi"] == "v0.0.289"
    status = ok_json("status", env=env)
    assert status["plugin"]["key"] is None and status["would_load"]["key"] is None
    text = run_cli("status", env=env).stdout
    assert "C API v0.0.289, a local build, no manifest entry)" in text


def test_status_says_where_the_major_of_an_env_library_comes_from(shared_lib_pair: Callable[..., Path]) -> None:
    """An LLVM 16 build named without its major: the major is its DT_NEEDED's, and status
    does not claim a manifest entry for it (the manifest has none for LLVM 16)."""
    lib = shared_lib_pair("libLLVM-16.so.1", name="libmyenzyme.so")
    proc = run_cli("status", "--json", env={"ENZYME_ARTIFACTS_LIBRARY": str(lib)})
    data = json.loads(proc.stdout)
    assert data["llvm_major"] == {"value": 16, "source": "ENZYME_ARTIFACTS_LIBRARY (its DT_NEEDED libLLVM-16.so.1)",
                                  "error": None}
    text = run_cli("status", env={"ENZYME_ARTIFACTS_LIBRARY": str(lib)}).stdout
    assert "LLVM major:    16 (ENZYME_ARTIFACTS_LIBRARY (its DT_NEEDED libLLVM-16.so.1))" in text
    assert "manifest entry" not in text.split("\n")[1]


def test_dev_with_an_unknown_profile_is_one_line_about_the_profile(isolated: Dirs) -> None:
    build = build_fake_enzyme(isolated.root / "b", profile="v0.0.173")
    line, _ = failing(5, "dev", str(build), "--llvm", "15", "--capi", "v0.0.79")
    assert "unknown Enzyme C-API profile; known: v0.0.173, v0.0.289" in line and "omit --capi" in line
    assert "built against LLVM" not in line
    made = ok_json("dev", str(build), "--llvm", "15")
    assert made["capi"] == "v0.0.173" and made["capi_asked"] is None
    text = run_cli("which", "--llvm", "15", "--json").stdout
    assert json.loads(text)["capi"] == "v0.0.173"
