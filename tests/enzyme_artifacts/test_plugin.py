"""Inspecting a library before it is loaded here (issue 12, item 13): small real shared
libraries built from C with the profile's names -- one that aborts while loading, ones whose
C API returns NULL, one that crashes in a call -- and the real Enzyme."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from enzyme_artifacts import capi
from enzyme_artifacts import plugin as plugin_mod
from enzyme_artifacts.develop import dev
from enzyme_artifacts.errors import InvalidOverrideError, PluginValidationError
from enzyme_artifacts.llvm import find_libllvm
from enzyme_artifacts.plugin import check_plugin, validate_plugin

from ..support.child import check_python
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
    with pytest.raises(PluginValidationError, match=r"exports the names of the Enzyme C-API profile v0.0.289, but "
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
    with pytest.raises(PluginValidationError, match=r"does not export .*and \d+ more, which the Enzyme C-API profile"):
        validate_plugin(lib, find_libllvm(15), PROFILE, what=str(lib), remedy="fix it")


def test_the_real_enzyme_passes_and_reports_every_profile(real_artifact: RealArtifact) -> None:
    report = check_plugin(real_artifact.library, find_libllvm(15), [PROFILE])
    assert report.failure is None and report.ok(PROFILE)
    assert report.profiles[PROFILE].check == "calls" and report.profiles[PROFILE].error is None


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


def test_a_passing_library_is_remembered_by_path_size_and_mtime(
    build: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch, isolated: Dirs
) -> None:
    lib = build("good-stub", stub_source())
    llvm = find_libllvm(15)
    calls: list[object] = []
    real_run = subprocess.run

    def counting_run(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return real_run(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(plugin_mod.subprocess, "run", counting_run)
    validate_plugin(lib, llvm, PROFILE, what="x", remedy="y")
    validate_plugin(lib, llvm, PROFILE, what="x", remedy="y")
    assert len(calls) == 1
    records = list((isolated.cache / "validated").iterdir())
    assert len(records) == 1 and json.loads(records[0].read_text())["file"] == os.path.realpath(lib)
    # another process trusts the record ...
    plugin_mod.clear_memory()
    validate_plugin(lib, llvm, PROFILE, what="x", remedy="y")
    assert len(calls) == 1
    # ... until the file changes (size or mtime), or another profile or libLLVM is asked for
    os.utime(lib, ns=(1, 1))
    validate_plugin(lib, llvm, PROFILE, what="x", remedy="y")
    assert len(calls) == 2
    shutil.copy(lib, lib.with_name("copy.so"))
    with open(lib, "ab") as f:
        f.write(b"\0")
    validate_plugin(lib, llvm, PROFILE, what="x", remedy="y")
    assert len(calls) == 3


def test_a_record_is_not_trusted_when_the_check_changed(build: Callable[[str, str], Path], isolated: Dirs) -> None:
    lib = build("good-stub", stub_source())
    llvm = find_libllvm(15)
    validate_plugin(lib, llvm, PROFILE, what="x", remedy="y")
    (record,) = (isolated.cache / "validated").iterdir()
    data = json.loads(record.read_text())
    data["checker"] = "an older check"
    record.write_text(json.dumps(data))
    plugin_mod.clear_memory()
    assert not plugin_mod._remembered(*plugin_mod.file_stamp(lib), llvm, PROFILE)
