"""``enzyme-artifacts status``: every place tried for libLLVM and for the plugin, the command
that fixes each missing piece, in text and --json, and a non-zero exit when what was asked
for cannot work (issue 16), run as real child processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import enzyme_artifacts
from enzyme_artifacts import LLVMNotFoundError, resolve
from enzyme_artifacts.status import diagnose

from ..support.fake_enzyme import build_fake_enzyme
from ..support.http import ScriptedServer
from ._support import ENTRY_HEAD, compile_shared, run_cli
from .conftest import Dirs, RealArtifact, TarballArtifact
from .test_resolve import _entry_serving


def status(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    as_json = run_cli("status", "--json", *args, env=env)
    as_text = run_cli("status", *args, env=env)
    assert as_json.returncode == as_text.returncode
    assert "Traceback" not in as_json.stderr + as_text.stderr
    return as_json.returncode, json.loads(as_json.stdout), as_text.stdout


def test_a_fresh_machine_can_work_and_says_what_the_first_use_fetches(tarball_artifact: TarballArtifact) -> None:
    code, data, text = status()
    assert code == 0 and data["ok"] is True
    assert data["libllvm"]["found"] and data["libllvm"]["attempts"][-1]["accepted"]
    steps = {s["origin"]: s for s in data["plugin"]["attempts"]}
    assert list(steps) == ["env", "override", "cache", "package", "fetch"]
    assert steps["cache"]["outcome"] == "not installed"
    assert steps["fetch"]["fix"] == "enzyme-artifacts fetch --llvm 15"
    assert data["plugin"]["would_fetch"] is True
    assert "LLVMEnzyme:    not installed yet (the first use downloads it)" in text
    assert "[fetch]" in text and "fix: enzyme-artifacts fetch --llvm 15" in text
    assert tarball_artifact.requests() == []  # status downloads nothing


def test_missing_libllvm_lists_every_place_with_its_fix_and_fails() -> None:
    code, data, text = status("--llvm", "99")
    assert code == 3 and data["ok"] is False
    attempts = data["libllvm"]["attempts"]
    assert attempts and not data["libllvm"]["found"]
    assert {a["origin"] for a in attempts} >= {"env", "llvm-config", "conda", "system", "loader"}
    for a in attempts:
        if a["origin"] != "loaded":
            assert a["fix"], a
    assert any(a["fix"] == "sudo apt-get install libllvm99" for a in attempts)
    assert data["libllvm"]["install"]["homebrew"] == "brew install llvm@99"
    assert any("brew install llvm@99" in s for s in data["next_steps"])
    # the text shows each place once, with its fix, and no second copy of the long message
    assert text.count("[system] /usr/lib/llvm-99/lib") == 1
    assert "fix: sudo apt-get install libllvm99" in text
    assert "Install LLVM 99 as a shared library" not in text
    assert "NOT USABLE" in text


def test_no_libllvm_for_any_candidate_major_still_shows_the_places(isolated: Dirs,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = isolated.root / "Artifacts.toml"
    manifest.write_text(ENTRY_HEAD.format(enzyme="0.0.289", llvm=98)
                        + '[[LLVMEnzyme.download]]\nurl = "https://example.invalid/E.tar.gz"\n'
                        + f'sha256 = "{"0" * 64}"\nsize = 10\n')
    code, data, text = status(env={"ENZYME_ARTIFACTS_MANIFEST": str(manifest)})
    assert code == 3
    assert data["llvm_major"]["value"] is None and "LLVM 98" in data["llvm_major"]["error"]
    assert data["libllvm"]["attempts"] and data["libllvm"]["searches"][0]["major"] == 98
    assert "tried for LLVM 98:" in text


def test_offline_with_nothing_installed_fails_with_the_fix(tarball_artifact: TarballArtifact) -> None:
    code, data, _ = status(env={"ENZYME_ARTIFACTS_OFFLINE": "1"})
    assert code == 3 and data["ok"] is False
    fetch = data["plugin"]["attempts"][-1]
    assert fetch["origin"] == "fetch" and "ENZYME_ARTIFACTS_OFFLINE is set" in fetch["outcome"]
    assert "unset ENZYME_ARTIFACTS_OFFLINE" in fetch["fix"]
    assert any("unset ENZYME_ARTIFACTS_OFFLINE" in s for s in data["next_steps"])


def test_a_refused_env_library_fails_with_exit_5(isolated: Dirs) -> None:
    lib = compile_shared(isolated.root / "b", "LLVMEnzyme-15.so", "int CreateEnzymeLogic(int x) { return x; }\n")
    code, data, _ = status(env={"ENZYME_ARTIFACTS_LIBRARY": str(lib)})
    assert code == 5
    (step,) = data["plugin"]["attempts"]
    assert step["origin"] == "env" and step["outcome"].startswith("refused:") and "does not export" in step["outcome"]
    assert "unset ENZYME_ARTIFACTS_LIBRARY" in step["fix"]


def test_a_ready_machine(use_real_cache: RealArtifact) -> None:
    code, data, text = status()
    assert code == 0 and data["plugin"]["found"] and data["plugin"]["origin"] == "cache"
    assert data["plugin"]["attempts"][-1]["accepted"] and data["next_steps"] == []
    assert "Ready:         nothing is missing" in text
    assert "fix:" not in text  # nothing is missing, so nothing to fix


def test_the_libllvm_message_appears_once() -> None:
    with pytest.raises(LLVMNotFoundError) as info:
        resolve(99)
    e = info.value
    assert e.__cause__ is None and e.__context__ is None  # not wrapped in another error of ours
    assert str(e).count("Install LLVM 99 as a shared library") == 1
    assert e.major == 99 and e.attempts
    d = diagnose(99)
    assert d.ok is False and isinstance(d.error, LLVMNotFoundError)
    assert "Install LLVM 99" not in json.dumps(d.data)  # the data carries the places, not the prose


def test_status_writes_nothing(isolated: Dirs, tarball_artifact: TarballArtifact) -> None:
    status()
    assert not isolated.cache.exists() and not isolated.config.exists()


def test_diagnose_is_plain_data(tarball_artifact: TarballArtifact) -> None:
    d = diagnose()
    json.dumps(d.data)  # JSON-ready
    assert d.ok and d.error is None
    assert Path(d.data["manifest"]["path"]) == tarball_artifact.manifest


def test_status_names_the_fix_for_an_entry_of_another_c_api(server: ScriptedServer, isolated: Dirs,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fake = build_fake_enzyme(isolated.root / "fake", profile="v0.0.173")
    manifest = _entry_serving(server, isolated, fake, "v0.0.289")
    monkeypatch.setenv("ENZYME_ARTIFACTS_MANIFEST", str(manifest))
    with pytest.raises(enzyme_artifacts.ProfileMismatchError):
        resolve(15)  # installs it, then refuses it
    d = diagnose(15)
    assert not d.ok and isinstance(d.error, enzyme_artifacts.ProfileMismatchError)
    step = d.data["plugin"]["attempts"][-1]
    assert step["origin"] == "cache" and step["outcome"].startswith("refused:")
    assert step["fix"].startswith("set ENZYME_ARTIFACTS_CAPI=v0.0.173")
