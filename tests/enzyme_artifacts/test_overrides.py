"""dev()/undev() and Overrides.toml: the round trip, validation in a child process, refusals."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from enzyme_artifacts import (
    InvalidOverrideError,
    OfflineError,
    ProfileMismatchError,
    dev,
    resolve,
    undev,
)
from enzyme_artifacts.llvm import find_libllvm

from ..support.fake_enzyme import build_fake_enzyme
from ._support import compile_shared, patchelf
from .conftest import Dirs, RealArtifact, TarballArtifact

overrides = importlib.import_module("enzyme_artifacts.overrides")
plugin = importlib.import_module("enzyme_artifacts.plugin")
paths = importlib.import_module("enzyme_artifacts.paths")


def test_dev_round_trip(use_real_cache: RealArtifact, isolated: Dirs) -> None:
    ov = dev(15)
    expected = isolated.dev / "LLVMEnzyme-15" / "override" / "lib" / "LLVMEnzyme-15.so"
    assert ov.library == expected and ov.kind == "copy"
    assert ov.capi is None and ov.validated is not None and ov.validated.capi == "v0.0.289"  # found, not asked for
    assert expected.read_bytes() == use_real_cache.library.read_bytes()
    assert (expected.parent.parent / "share" / "licenses").is_dir()  # laid out like the artifact
    assert not (expected.parent.parent / "enzyme-artifact.json").exists()  # the cache's record stays there
    data = tomllib.loads(isolated.overrides.read_text())
    assert data["LLVMEnzyme"]["15"]["library"] == str(expected)

    r = resolve(15)
    assert r.origin == "override" and r.library == expected and r.capi == "v0.0.289"

    # replace the library with a symlink to another copy: it is followed (and validated)
    other = isolated.root / "mybuild" / "Enzyme" / "LLVMEnzyme-15.so"
    other.parent.mkdir(parents=True)
    shutil.copy(use_real_cache.library, other)
    expected.unlink()
    expected.symlink_to(other)
    r = resolve(15)
    assert r.origin == "override"
    assert os.path.realpath(r.library) == str(other)
    stamp = tomllib.loads(isolated.overrides.read_text())["LLVMEnzyme"]["15"]["validated"]
    assert stamp["file"] == str(other)  # the new file was validated and remembered

    # dev again keeps the existing override folder (your symlink survives)
    dev(15)
    assert expected.is_symlink()

    removed = undev(15)
    assert removed is not None and removed.library == expected
    assert resolve(15).origin == "cache"
    assert undev(15) is None


def test_dev_path_build_folder(use_real_cache: RealArtifact, isolated: Dirs) -> None:
    build = isolated.root / "enzyme" / "build"
    (build / "Enzyme").mkdir(parents=True)
    shutil.copy(use_real_cache.library, build / "Enzyme" / "LLVMEnzyme-15.so")
    ov = dev(15, build)
    assert ov.kind == "path" and ov.library == build / "Enzyme" / "LLVMEnzyme-15.so"
    assert resolve(15).library == ov.library


def test_dev_path_refuses_a_file_that_is_not_a_library(isolated: Dirs) -> None:
    text = isolated.root / "LLVMEnzyme-15.so"
    text.write_text("hello\n")
    with pytest.raises(InvalidOverrideError, match="not an ELF shared library"):
        dev(15, text)
    assert not isolated.overrides.exists()


def test_dev_path_refuses_a_library_that_is_not_a_plugin(isolated: Dirs) -> None:
    lib = compile_shared(isolated.root / "b", "LLVMEnzyme-15.so", "int CreateEnzymeLogic(int x) { return x; }\n")
    with pytest.raises(InvalidOverrideError, match=r"does not export .*C-API profile this package knows needs"):
        dev(15, lib)
    assert not isolated.overrides.exists()


def test_dev_path_refuses_another_llvm_major(real_artifact: RealArtifact, isolated: Dirs) -> None:
    lib = isolated.root / "b16" / "Enzyme" / "LLVMEnzyme-15.so"
    lib.parent.mkdir(parents=True)
    shutil.copy(real_artifact.library, lib)
    subprocess.run([patchelf(), "--replace-needed", "libLLVM-15.so.1", "libLLVM-16.so.1", str(lib)], check=True)
    with pytest.raises(InvalidOverrideError, match=r"was built for LLVM 16 .*not for LLVM 15") as info:
        dev(15, lib.parent.parent)
    assert "libLLVM-16.so.1" in str(info.value)
    assert not isolated.overrides.exists()


def test_crash_while_loading_is_a_refusal(isolated: Dirs) -> None:
    lib = compile_shared(
        isolated.root / "crash",
        "LLVMEnzyme-15.so",
        "#include <stdlib.h>\n__attribute__((constructor)) static void boom(void) { abort(); }\n"
        "int CreateEnzymeLogic(int x) { return x; }\n",
    )
    with pytest.raises(InvalidOverrideError, match="killed by signal 6"):
        plugin.validate_plugin(lib, find_libllvm(15), "v0.0.289", what=str(lib), remedy="fix it")


def test_validation_is_remembered(use_real_cache: RealArtifact, isolated: Dirs, monkeypatch: pytest.MonkeyPatch) -> None:
    ov = dev(15)
    calls: list[object] = []
    real_run = subprocess.run

    def counting_run(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return real_run(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(plugin.subprocess, "run", counting_run)
    assert resolve(15).origin == "override"
    assert calls == []  # unchanged since dev validated it: no child process
    os.utime(ov.library, ns=(1, 1))  # touched: validated again, once
    resolve(15)
    resolve(15)
    assert len(calls) == 1


def test_broken_override_says_what_to_do(use_real_cache: RealArtifact, isolated: Dirs) -> None:
    ov = dev(15)
    ov.library.unlink()
    ov.library.symlink_to(isolated.root / "gone.so")
    with pytest.raises(InvalidOverrideError, match="undev --llvm 15"):
        resolve(15)


def test_hand_written_overrides_file(use_real_cache: RealArtifact, isolated: Dirs) -> None:
    prefix = isolated.root / "prefix"
    (prefix / "lib").mkdir(parents=True)
    shutil.copy(use_real_cache.library, prefix / "lib" / "LLVMEnzyme-15.so")
    isolated.config.mkdir()
    isolated.overrides.write_text(f'[LLVMEnzyme.15]\nlibrary = "{prefix}"\n')  # a prefix, like Julia's
    r = resolve(15)
    assert r.origin == "override" and r.library == prefix / "lib" / "LLVMEnzyme-15.so"
    assert r.capi == "v0.0.289"


@pytest.mark.parametrize(
    "text, match",
    [
        ("[LLVMEnzyme.15]\nlibrary = 3\n", "'library' must be a non-empty string"),
        ("[LLVMEnzyme.abc]\nlibrary = 'x'\n", "must be an LLVM major"),
        ("[LLVMEnzyme.15]\nlibrary = 'x'\ncolour = 'red'\n", "unknown key"),
        ("not toml = = =\n", "TOML"),
    ],
)
def test_malformed_overrides_file(isolated: Dirs, text: str, match: str) -> None:
    isolated.config.mkdir()
    isolated.overrides.write_text(text)
    with pytest.raises(InvalidOverrideError, match=match) as info:
        overrides.load_overrides()
    assert str(isolated.overrides) in str(info.value)


def test_dev_offline_without_cache(tarball_artifact: TarballArtifact, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENZYME_ARTIFACTS_OFFLINE", "1")
    with pytest.raises(OfflineError):
        dev(15)
    assert tarball_artifact.requests() == []


def test_dev_fetches_when_needed(tarball_artifact: TarballArtifact, isolated: Dirs) -> None:
    ov = dev(15)
    assert ov.library.is_file() and len(tarball_artifact.requests()) == 1


def test_undev_needs_a_major_when_several(use_real_cache: RealArtifact, isolated: Dirs) -> None:
    isolated.config.mkdir()
    isolated.overrides.write_text("[LLVMEnzyme.15]\nlibrary = '/x'\n[LLVMEnzyme.16]\nlibrary = '/y'\n")
    with pytest.raises(ValueError, match="--llvm N"):
        undev()
    assert undev(16) is not None
    assert undev() is not None  # only one left
    assert overrides.load_overrides() == {}


def test_dev_dir_defaults_are_not_created_on_import(tmp_path: Path) -> None:
    assert paths.dev_root() == Path(os.environ["ENZYME_ARTIFACTS_DEV_DIR"])
    assert not paths.dev_root().exists()


def test_dev_path_takes_the_major_from_the_build(use_real_cache: RealArtifact, isolated: Dirs) -> None:
    build = isolated.root / "b" / "Enzyme"
    build.mkdir(parents=True)
    shutil.copy(use_real_cache.library, build / "LLVMEnzyme-15.so")
    ov = dev(path=build.parent)  # no llvm given: the build says 15
    assert ov.llvm == 15 and overrides.load_overrides()[15].library == build / "LLVMEnzyme-15.so"


def test_dev_path_binds_a_build_with_the_profile_it_probes_as(isolated: Dirs, use_real_cache: RealArtifact) -> None:
    """A local LLVM 15 build of another C API than the manifest entry of LLVM 15: accepted
    with its own profile; the manifest entry's profile does not apply to it."""
    build = build_fake_enzyme(isolated.root / "b" / "Enzyme", profile="v0.0.173")
    ov = dev(15, build.parent.parent)
    assert ov.capi is None and ov.validated is not None and ov.validated.capi == "v0.0.173"
    r = resolve(15)
    assert r.origin == "override" and r.capi == "v0.0.173" and r.entry is None
    # rebuilt as the other C API: identified again, bound with the new profile
    fresh = build_fake_enzyme(isolated.root / "c", profile="v0.0.289")
    shutil.copy(fresh, build)
    os.utime(build, ns=(2, 2))
    assert resolve(15).capi == "v0.0.289"


def test_dev_capi_must_match_what_the_build_probes_as(isolated: Dirs) -> None:
    build = build_fake_enzyme(isolated.root / "b", profile="v0.0.173")
    with pytest.raises(ProfileMismatchError, match=r"has Enzyme's C API v0.0.173 .*not v0.0.289 as --capi says.*"
                                                   r"omit --capi: the build's profile is identified by probing"):
        dev(15, build, capi="v0.0.289")
    assert not isolated.overrides.exists()
    ov = dev(15, build, capi="v0.0.173")
    assert ov.capi == "v0.0.173"  # asked for: written, and required at every later validation


def test_dev_with_an_unknown_profile_says_the_profile_is_the_problem(isolated: Dirs) -> None:
    build = build_fake_enzyme(isolated.root / "b", profile="v0.0.173")
    with pytest.raises(InvalidOverrideError) as info:
        dev(15, build, capi="v0.0.79")
    text = str(info.value)
    assert "--capi v0.0.79: unknown Enzyme C-API profile; known: v0.0.173, v0.0.289" in text
    assert "omit --capi" in text
    assert "--llvm" not in text and "built against LLVM" not in text  # not an LLVM problem
