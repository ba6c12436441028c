"""resolve()/locate(): env override, cache, fetch, offline, default major, C-API profile."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from pathlib import Path

import pytest

import enzyme_artifacts
from enzyme_artifacts import (
    ArtifactNotFoundError,
    InvalidOverrideError,
    OfflineError,
    ProfileMismatchError,
    locate,
    resolve,
)

from ..support.fake_enzyme import build_fake_enzyme
from ..support.http import ScriptedServer
from ._support import ENTRY_HEAD, make_tarball, patchelf, sha256
from .conftest import Dirs, RealArtifact, TarballArtifact

resolve_mod = importlib.import_module("enzyme_artifacts.resolver")
selection = importlib.import_module("enzyme_artifacts.selection")


def test_import_is_lazy() -> None:
    code = (
        "import sys, enzyme_artifacts\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('enzyme_artifacts.'))\n"
        "heavy = [m for m in ('requests', 'elftools', 'packaging.tags', 'platformdirs') if m in sys.modules]\n"
        "print(loaded, heavy)\n"
    )
    out = subprocess.run([__import__("sys").executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] []"


def test_package_attribute_resolve_stays_the_function() -> None:
    importlib.import_module("enzyme_artifacts.resolver")
    importlib.import_module("enzyme_artifacts.overrides")
    importlib.import_module("enzyme_artifacts.develop")
    assert callable(enzyme_artifacts.resolve)
    assert enzyme_artifacts.resolve is resolve_mod.resolve
    assert enzyme_artifacts.locate is resolve_mod.locate
    assert callable(enzyme_artifacts.dev) and callable(enzyme_artifacts.undev)


def test_env_library(real_artifact: RealArtifact, monkeypatch: pytest.MonkeyPatch, isolated: Dirs) -> None:
    lib = isolated.root / "LLVMEnzyme-15.so"
    shutil.copy2(real_artifact.library, lib)
    monkeypatch.setenv("ENZYME_ARTIFACTS_LIBRARY", str(lib))
    r = resolve()
    assert r.origin == "env"
    assert r.library == lib
    assert r.llvm.major == 15 and r.llvm.cxx11_abi
    assert r.capi == "v0.0.289"  # what it probes as
    assert r.entry is None  # a local build, though the manifest has an entry for LLVM 15
    assert r.enzyme_version is None
    assert locate(15) == lib
    # nothing fetched; only the record of the child-process check is written
    assert sorted(p.name for p in isolated.cache.iterdir()) == ["validated"]


def test_env_library_capi_variable(real_artifact: RealArtifact, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENZYME_ARTIFACTS_LIBRARY", str(real_artifact.library))
    monkeypatch.setenv("ENZYME_ARTIFACTS_CAPI", "v0.0.289")
    assert resolve(15).capi == "v0.0.289"
    monkeypatch.setenv("ENZYME_ARTIFACTS_CAPI", "v9.9.9")
    with pytest.raises(InvalidOverrideError, match=r"v9.9.9.*known: v0.0.173, v0.0.289"):
        resolve(15)


def test_env_library_missing(monkeypatch: pytest.MonkeyPatch, isolated: Dirs) -> None:
    monkeypatch.setenv("ENZYME_ARTIFACTS_LIBRARY", str(isolated.root / "nope" / "LLVMEnzyme-15.so"))
    with pytest.raises(InvalidOverrideError, match="does not exist.*unset it"):
        resolve(15)


def test_env_library_built_for_another_major(
    real_artifact: RealArtifact, monkeypatch: pytest.MonkeyPatch, isolated: Dirs
) -> None:
    lib = isolated.root / "build" / "libEnzymeOther.so"
    lib.parent.mkdir()
    shutil.copy2(real_artifact.library, lib)
    subprocess.run([patchelf(), "--replace-needed", "libLLVM-15.so.1", "libLLVM-14.so.1", str(lib)], check=True)
    monkeypatch.setenv("ENZYME_ARTIFACTS_LIBRARY", str(lib))
    # its major is read from DT_NEEDED when not given ...
    assert selection.default_llvm_major() == 14
    # ... and asking for 15 is refused before anything is loaded
    with pytest.raises(InvalidOverrideError, match=r"built for LLVM 14 \(its DT_NEEDED names libLLVM-14.so.1\)"):
        resolve(15)


def test_cache_hit(use_real_cache: RealArtifact) -> None:
    r = resolve(15)
    assert r.origin == "cache"
    assert r.library.is_file()
    assert r.library.read_bytes() == use_real_cache.library.read_bytes()
    assert r.entry is not None and r.entry.llvm_version == 15
    assert r.capi == r.entry.capi == "v0.0.289"
    assert r.enzyme_version == "0.0.289"
    assert locate() == r.library  # the default major is 15 here


def test_offline_and_nothing_cached(tarball_artifact: TarballArtifact, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENZYME_ARTIFACTS_OFFLINE", "1")
    with pytest.raises(OfflineError, match="ENZYME_ARTIFACTS_OFFLINE"):
        resolve(15)
    with pytest.raises(OfflineError):
        locate(15, fetch=True)
    assert tarball_artifact.requests() == []  # not a single request


def test_fetch_false_and_nothing_cached(tarball_artifact: TarballArtifact) -> None:
    with pytest.raises(ArtifactNotFoundError, match="enzyme-artifacts fetch --llvm 15") as info:
        resolve(15, fetch=False)
    assert not isinstance(info.value, OfflineError)
    assert tarball_artifact.requests() == []


def test_fetch_then_cache(tarball_artifact: TarballArtifact, real_artifact: RealArtifact, isolated: Dirs) -> None:
    first = resolve(15, progress=False)
    assert first.origin == "fetched"
    assert first.library.read_bytes() == real_artifact.library.read_bytes()
    assert first.library.is_relative_to(isolated.cache)
    second = resolve(15)
    assert second.origin == "cache" and second.library == first.library
    assert len(tarball_artifact.requests()) == 1


def test_default_major_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENZYME_ARTIFACTS_LLVM_VERSION", "15")
    assert selection.default_llvm_major() == 15
    monkeypatch.setenv("ENZYME_ARTIFACTS_LLVM_VERSION", "fifteen")
    with pytest.raises(ValueError, match="ENZYME_ARTIFACTS_LLVM_VERSION"):
        resolve()


def test_bad_arguments() -> None:
    for bad in (0, -1, True, "15"):
        with pytest.raises(ValueError):
            resolve(bad)  # type: ignore[arg-type]


def test_newest_profile_is_by_version() -> None:
    assert selection.newest_profile() == "v0.0.289"


def test_unsupported_major_names_what_exists(tarball_artifact: TarballArtifact, tmp_path: Path) -> None:
    # LLVM 14 may or may not be installed; either way there is no Enzyme for it in the manifest.
    from enzyme_artifacts import LLVMNotFoundError, UnsupportedPlatformError

    with pytest.raises((UnsupportedPlatformError, LLVMNotFoundError)) as info:
        resolve(14)
    if isinstance(info.value, UnsupportedPlatformError):
        assert "LLVM 15" in str(info.value)


def test_overrides_make_no_requests(
    tarball_artifact: TarballArtifact, real_artifact: RealArtifact, monkeypatch: pytest.MonkeyPatch, isolated: Dirs
) -> None:
    from enzyme_artifacts import dev

    monkeypatch.setenv("ENZYME_ARTIFACTS_LIBRARY", str(real_artifact.library))
    assert resolve(15).origin == "env"
    monkeypatch.delenv("ENZYME_ARTIFACTS_LIBRARY")
    build = isolated.root / "build" / "Enzyme"
    build.mkdir(parents=True)
    shutil.copy(real_artifact.library, build / "LLVMEnzyme-15.so")
    dev(15, build.parent)
    assert resolve(15).origin == "override"
    assert resolve(15, fetch=True).library == build / "LLVMEnzyme-15.so"
    assert tarball_artifact.requests() == []


def test_env_library_of_the_2025_c_api(isolated: Dirs, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = build_fake_enzyme(isolated.root / "b", profile="v0.0.173")
    monkeypatch.setenv("ENZYME_ARTIFACTS_LIBRARY", str(lib))
    r = resolve()
    assert r.origin == "env" and r.capi == "v0.0.173" and r.entry is None
    monkeypatch.setenv("ENZYME_ARTIFACTS_CAPI", "v0.0.289")
    with pytest.raises(ProfileMismatchError, match=r"not v0.0.289 as ENZYME_ARTIFACTS_CAPI says.*"
                                                   r"unset ENZYME_ARTIFACTS_CAPI"):
        resolve()


def _entry_serving(server: ScriptedServer, isolated: Dirs, library: Path, capi: str) -> Path:
    """A manifest whose LLVM 15 entry (``capi``) is a tarball holding ``library``."""
    body = make_tarball({"lib/LLVMEnzyme-15.so": library.read_bytes(),
                         "share/licenses/LICENSE": b"Apache-2.0 WITH LLVM-exception (test copy)\n"})
    url = server.route("/fake.tar.gz", server.ok(body))
    manifest = isolated.root / "Artifacts.toml"
    manifest.write_text(ENTRY_HEAD.format(enzyme="0.0.289", llvm=15).replace('capi = "v0.0.289"', f'capi = "{capi}"')
                        + f'[[LLVMEnzyme.download]]\nurl = "{url}"\nsha256 = "{sha256(body)}"\nsize = {len(body)}\n')
    return manifest


def test_a_manifest_entry_whose_binary_has_another_c_api_is_refused(
    server: ScriptedServer, isolated: Dirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = build_fake_enzyme(isolated.root / "fake", profile="v0.0.173")
    monkeypatch.setenv("ENZYME_ARTIFACTS_MANIFEST", str(_entry_serving(server, isolated, fake, "v0.0.289")))
    with pytest.raises(ProfileMismatchError) as info:
        resolve(15)  # fetched, then refused at this first use
    text = str(info.value)
    assert "the artifact LLVMEnzyme.v0.0.289." in text and "has Enzyme's C API v0.0.173" in text
    assert "not v0.0.289 as the manifest entry LLVMEnzyme.v0.0.289." in text
    assert "the manifest's capi for LLVMEnzyme.v0.0.289." in text and "is wrong" in text
    with pytest.raises(ProfileMismatchError):
        resolve(15)  # from the cache now: refused again
    with pytest.raises(ProfileMismatchError):
        resolve_mod.fetch(15)  # `enzyme-artifacts fetch` refuses it as well
    monkeypatch.setenv("ENZYME_ARTIFACTS_CAPI", "v0.0.173")  # the escape hatch the message names
    assert resolve(15).capi == "v0.0.173"


def test_a_manifest_entry_with_the_right_capi_is_accepted(
    server: ScriptedServer, isolated: Dirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = build_fake_enzyme(isolated.root / "fake", profile="v0.0.173")
    monkeypatch.setenv("ENZYME_ARTIFACTS_MANIFEST", str(_entry_serving(server, isolated, fake, "v0.0.173")))
    r = resolve(15)
    assert r.origin == "fetched" and r.capi == "v0.0.173" and r.entry is not None
    assert resolve(15).origin == "cache"
