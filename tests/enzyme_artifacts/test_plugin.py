"""Inspecting a library before it is loaded here (issue 12, item 13) and identifying its
C-API profile by probing (issue 15): small real shared libraries built from C with the
profile's names -- one that aborts while loading, ones whose C API returns NULL, one that
crashes in a call, fakes that build derivatives with another profile's parameter lists or
with wrong numbers -- and the real Enzyme."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from enzyme_artifacts import capi
from enzyme_artifacts import plugin as plugin_mod
from enzyme_artifacts.develop import dev
from enzyme_artifacts.errors import (
    InvalidOverrideError,
    PluginValidationError,
    ProfileMismatchError,
)
from enzyme_artifacts.llvm import find_libllvm
from enzyme_artifacts.plugin import check_plugin, identify_plugin, validate_plugin

from ..support.child import check_python
from ..support.fake_enzyme import build_fake_enzyme
from ._support import compile_shared
from .conftest import Dirs, RealArtifact

PROFILE = "v0.0.289"


def stub_source(*, body: dict[str, str] | None = None, prelude: str = "") -> str:
    """C exporting every symbol of the profile; each returns a non-NULL pointer unless
    ``body`` gives its statements."""
    body = body or {}
    lines = ["#include <stdlib.h>", "#include <stddef.h>", prelude]
    for name in sorted(capi.required_symbols(PROFILE)):
        lines.append(f"void *{name}(void *a, void *b, void *c, size_t n) {{ {body.get(name, 'return malloc(8);')} }}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def build(isolated: Dirs) -> Callable[[str, str], Path]:
    def make(kind: str, source: str) -> Path:
        return compile_shared(isolated.root / kind, "LLVMEnzyme-15.so", source)
    return make


@pytest.fixture
def null_type_analysis(build: Callable[[str, str], Path]) -> Path:
    return build("null-ta", stub_source(body={"CreateTypeAnalysis": "return NULL;"}))


@pytest.fixture
def aborting(build: Callable[[str, str], Path]) -> Path:
    return build("abort", stub_source(prelude="__attribute__((constructor)) static void boom(void) { abort(); }"))


def test_a_library_exporting_the_names_as_stubs_is_refused(null_type_analysis: Path) -> None:
    with pytest.raises(PluginValidationError, match=r"exports the names of Enzyme's C API, but "
                                                    r"CreateTypeAnalysis\(logic, NULL, NULL, 0\) returned NULL") as info:
        validate_plugin(null_type_analysis, find_libllvm(15), PROFILE, what=str(null_type_analysis), remedy="fix it")
    assert info.value.check == "calls" and info.value.capi == PROFILE
    assert isinstance(info.value, InvalidOverrideError) and isinstance(info.value, ValueError)


def test_a_null_enzyme_logic_is_refused(build: Callable[[str, str], Path]) -> None:
    lib = build("null-logic", stub_source(body={"CreateEnzymeLogic": "return NULL;"}))
    with pytest.raises(PluginValidationError, match=r"CreateEnzymeLogic\(0\) returned NULL"):
        validate_plugin(lib, find_libllvm(15), PROFILE, what=str(lib), remedy="fix it")


def test_a_crash_in_a_call_names_the_step(build: Callable[[str, str], Path]) -> None:
    lib = build("segv", stub_source(body={"CreateTypeAnalysis": "return *(void **)NULL;"}))
    with pytest.raises(PluginValidationError, match=r"killed by signal 11 \(SIGSEGV\) while it was at step "
                                                    r"'call CreateTypeAnalysis'") as info:
        validate_plugin(lib, find_libllvm(15), PROFILE, what=str(lib), remedy="fix it")
    assert info.value.check == "crash"


def test_a_constructor_that_aborts(aborting: Path) -> None:
    with pytest.raises(PluginValidationError, match=r"killed by signal 6 \(SIGABRT\) while it was at step "
                                                    r"'load library'.*would have done the same to this process"):
        validate_plugin(aborting, find_libllvm(15), PROFILE, what=str(aborting), remedy="fix it")


def test_missing_symbols(build: Callable[[str, str], Path]) -> None:
    lib = build("partial", "void *CreateEnzymeLogic(void) { return 0; }\n")
    with pytest.raises(PluginValidationError, match=r"does not export .*and \d+ more, which every Enzyme C-API "
                                                    r"profile this package knows needs \(v0.0.173, v0.0.289\)"):
        validate_plugin(lib, find_libllvm(15), PROFILE, what=str(lib), remedy="fix it")


def test_the_real_enzyme_passes_and_reports_every_profile(real_artifact: RealArtifact) -> None:
    report = check_plugin(real_artifact.library, find_libllvm(15), [PROFILE, "v0.0.173"])
    assert report.failure is None and report.ok(PROFILE) and report.passed == (PROFILE,)
    ours = report.profiles[PROFILE]
    assert ours.check == "probe" and ours.error is None
    assert ours.found["reverse mode of y = x*x at x = 3"] == [3.0, 6.5, 9.0, 0.0]
    assert ours.found["forward mode of x*x*x at x = 2"] == 18.0
    assert ours.found["the split-mode gradient of y = x*x at x = 3 with dy = 2"][:2] == [3.0, 12.0]
    # the v0.0.173 parameter lists put every argument after runtimeActivity one slot off:
    # the real Enzyme's assertion aborts the test process, which names it
    other = report.profiles["v0.0.173"]
    assert not other.ok and other.check == "crash"
    assert "killed by signal 6 (SIGABRT)" in other.error and "v0.0.173: call EnzymeCreatePrimalAndGradient" in other.error
    assert re.search(r"CApi\.cpp:\d+: Assertion `overwritten_args_size == ", other.error)


def test_the_real_enzyme_is_identified_by_its_strings_then_the_numbers(real_artifact: RealArtifact) -> None:
    ident = identify_plugin(real_artifact.library, find_libllvm(15))
    assert ident.profile == PROFILE and ident.tried == (PROFILE,)  # its strings say v0.0.289: tried first
    assert ident.report is not None and ident.report.processes == 1
    assert "EnzymeCreatePrimalAndGradient 23, EnzymeCreateForwardDiff 20, EnzymeCreateAugmentedPrimal 21" in ident.strings


def test_a_build_without_strings_is_identified_by_the_numbers_alone(isolated: Dirs) -> None:
    """The -DNDEBUG case: nothing in the file tells; v0.0.289 (newest) is tried first, the
    fake aborts on its wrong parameter count, and v0.0.173 gives the right numbers."""
    lib = build_fake_enzyme(isolated.root / "ndebug", profile="v0.0.173")
    assert capi.embedded_signatures(lib.read_bytes()) == {}
    ident = identify_plugin(lib, find_libllvm(15))
    assert ident.profile == "v0.0.173" and ident.tried == ("v0.0.289", "v0.0.173")
    assert ident.report is not None and ident.report.processes == 2
    assert ident.report.profiles["v0.0.289"].check == "crash" and "SIGABRT" in str(ident.report.profiles["v0.0.289"].error)
    assert validate_plugin(lib, find_libllvm(15), None, what="x", remedy="y") == "v0.0.173"


def test_a_library_with_other_signatures_is_refused_as_the_profile_asked(isolated: Dirs) -> None:
    lib = build_fake_enzyme(isolated.root / "other", profile="v0.0.173")
    with pytest.raises(ProfileMismatchError, match=r"has Enzyme's C API v0.0.173 .*not v0.0.289 as the manifest says "
                                                   r".*the probe through v0.0.289: .*SIGABRT.*wrong slots; fix it") as info:
        validate_plugin(lib, find_libllvm(15), PROFILE, what=str(lib), remedy="fix it", asked_by="the manifest")
    assert info.value.found == "v0.0.173" and info.value.capi == PROFILE and info.value.check == "profile"
    assert isinstance(info.value, PluginValidationError)


def test_the_right_names_and_the_wrong_numbers_are_refused(isolated: Dirs) -> None:
    lib = build_fake_enzyme(isolated.root / "wrong", profile=PROFILE, factor=1.5)
    with pytest.raises(PluginValidationError) as info:
        validate_plugin(lib, find_libllvm(15), None, what=str(lib), remedy="fix it")
    e = info.value
    assert e.check == "probe" and not isinstance(e, ProfileMismatchError)
    text = str(e)
    assert "matches none of the Enzyme C-API profiles this package knows" in text
    assert "through v0.0.289: reverse mode of y = x*x at x = 3 gave x=3, dx=9.5, y=9, dy=0 where Enzyme gives " \
           "x=3, dx=6.5, y=9, dy=0" in text
    assert "through v0.0.173: the test process was killed by signal 6 (SIGABRT)" in text
    assert "embeds no C signature strings" in text and "v0.0.173: Enzyme v0.0.173 to v0.0.180" in text


def test_the_numbers_must_agree_with_the_embedded_strings(isolated: Dirs) -> None:
    lib = build_fake_enzyme(isolated.root / "liar", profile=PROFILE, markers=capi.signature_markers("v0.0.173"))
    with pytest.raises(PluginValidationError, match=r"gave the right derivatives through the C-API profile v0.0.289, "
                                                    r"but its embedded C signatures .*those of v0.0.173"):
        validate_plugin(lib, find_libllvm(15), None, what=str(lib), remedy="fix it")


def test_embedded_strings_choose_the_first_candidate(isolated: Dirs) -> None:
    lib = build_fake_enzyme(isolated.root / "strings", profile="v0.0.173", markers=capi.signature_markers("v0.0.173"))
    ident = identify_plugin(lib, find_libllvm(15))
    assert ident.profile == "v0.0.173" and ident.tried == ("v0.0.173",)
    assert ident.report is not None and ident.report.processes == 1


def test_env_library_whose_constructor_aborts_is_refused_before_loading(aborting: Path) -> None:
    """The reproduction: ENZYME_ARTIFACTS_LIBRARY used to be loaded in-process after cheap
    checks, so a constructor calling abort() killed the caller."""
    code = """
import json, enzyme_artifacts
from enzyme_artifacts.errors import PluginValidationError
try:
    enzyme_artifacts.resolve(15)
except PluginValidationError as e:
    print(json.dumps({"type": type(e).__name__, "check": e.check, "message": str(e)}))
"""
    out = json.loads(check_python(code, extra_env={"ENZYME_ARTIFACTS_LIBRARY": str(aborting)}))
    assert out["type"] == "PluginValidationError" and out["check"] == "crash"
    assert "ENZYME_ARTIFACTS_LIBRARY=" in out["message"] and "SIGABRT" in out["message"]


def test_env_library_with_stub_symbols_is_a_documented_error(null_type_analysis: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import enzyme_artifacts

    monkeypatch.setenv("ENZYME_ARTIFACTS_LIBRARY", str(null_type_analysis))
    with pytest.raises(enzyme_artifacts.PluginValidationError, match="CreateTypeAnalysis.*returned NULL.*"
                                                                     "unset ENZYME_ARTIFACTS_LIBRARY"):
        enzyme_artifacts.resolve(15)


def test_enzyme_py_reports_the_refusal_not_a_null_handle(null_type_analysis: Path) -> None:
    code = """
import enzyme_py as ez
try:
    m = ez.Module.from_ir("define double @f(double %x) {\\n  %y = fmul double %x, %x\\n  ret double %y\\n}\\n")
    ez.autodiff(ez.Reverse, m.function("f"), ez.Active, ez.Active(3.0))
except ez.LibraryError as e:
    print(type(e).__name__, "|", e)
"""
    out = check_python(code, extra_env={"ENZYME_ARTIFACTS_LIBRARY": str(null_type_analysis)})
    assert out.startswith("LibraryError |") and "CreateTypeAnalysis" in out and "returned NULL" in out
    assert "cannot wrap a NULL" not in out


def test_dev_path_refuses_the_same_stub(null_type_analysis: Path, isolated: Dirs) -> None:
    with pytest.raises(PluginValidationError, match="CreateTypeAnalysis"):
        dev(15, null_type_analysis)
    assert not isolated.overrides.exists()


def test_an_identification_is_remembered_by_path_size_and_mtime(
    real_artifact: RealArtifact, monkeypatch: pytest.MonkeyPatch, isolated: Dirs
) -> None:
    lib = isolated.root / "LLVMEnzyme-15.so"
    shutil.copy2(real_artifact.library, lib)
    llvm = find_libllvm(15)
    calls: list[object] = []
    real_run = subprocess.run

    def counting_run(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return real_run(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(plugin_mod.subprocess, "run", counting_run)
    assert validate_plugin(lib, llvm, PROFILE, what="x", remedy="y") == PROFILE
    assert validate_plugin(lib, llvm, None, what="x", remedy="y") == PROFILE
    assert len(calls) == 1
    records = list((isolated.cache / "validated").iterdir())
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["file"] == os.path.realpath(lib) and record["capi"] == PROFILE
    # another process trusts the record ...
    plugin_mod.clear_memory()
    assert identify_plugin(lib, llvm).remembered
    assert len(calls) == 1
    # ... until the file changes (size or mtime), or another libLLVM is used
    os.utime(lib, ns=(1, 1))
    validate_plugin(lib, llvm, PROFILE, what="x", remedy="y")
    assert len(calls) == 2
    with open(lib, "ab") as f:
        f.write(b"\0")
    validate_plugin(lib, llvm, PROFILE, what="x", remedy="y")
    assert len(calls) == 3


def test_a_record_is_not_trusted_when_the_check_changed(real_artifact: RealArtifact, isolated: Dirs) -> None:
    llvm = find_libllvm(15)
    validate_plugin(real_artifact.library, llvm, PROFILE, what="x", remedy="y")
    (record,) = (isolated.cache / "validated").iterdir()
    data = json.loads(record.read_text())
    data["checker"] = "an older check"
    record.write_text(json.dumps(data))
    plugin_mod.clear_memory()
    stamp = plugin_mod.file_stamp(real_artifact.library)
    assert plugin_mod._remembered(*stamp, llvm, tuple(capi.known_profiles())) is None


def test_a_refused_library_is_not_remembered(isolated: Dirs, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = build_fake_enzyme(isolated.root / "wrong", factor=2.0)
    for _ in range(2):
        with pytest.raises(PluginValidationError):
            validate_plugin(lib, find_libllvm(15), None, what="x", remedy="y")
    assert not (isolated.cache / "validated").exists()
