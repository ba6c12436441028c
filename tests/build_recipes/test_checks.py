"""The binary checks on the real LLVM 15 plugin (from `repack`), on doctored copies, and on
small libraries built from C that export the profile's names (with its signatures, with the
2025 C API's, with none), depend on a second libLLVM, or carry the build machine's RUNPATH."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from build_recipes.checks import (
    check_library,
    classify_needed,
    identify_capi_profile,
    libllvm_major,
)
from build_recipes.errors import UnknownProfileError
from build_recipes.recipe import Policy, Recipe
from enzyme_artifacts import capi
from enzyme_artifacts.platforms import Platform
from tests.support.fake_enzyme import fake_enzyme_source

from .conftest import SIGNATURES_2025, Repacked, compile_library, plugin_c_source, run_cli

GNU = Platform("x86_64", "linux", "glibc", "cxx11")
MUSL = Platform("x86_64", "linux", "musl", "cxx11")


def _check(recipe: Recipe, path: Path, *, policy: str = "manylinux_2_34", load: bool = True):
    return check_library(path, llvm=15, platform=GNU, policy=recipe.policies[policy],
                         capi_profile=recipe.enzyme.capi, load=load)


def _by_name(report) -> dict:
    return {r.name: r for r in report.results}


def test_real_plugin_passes_every_check(recipe: Recipe, repacked: Repacked) -> None:
    report = _check(recipe, repacked.library)
    results = _by_name(report)
    assert report.ok, report.format()
    assert results["needed"].data["needed"] == ["libLLVM-15.so.1", "libstdc++.so.6", "libc.so.6"]
    assert "GLIBC_2.32 <= 2.34" in results["symbol-versions"].detail
    assert "GLIBCXX_3.4.29 <= 3.4.29" in results["symbol-versions"].detail
    assert results["exports"].ok and "26 symbols" in results["exports"].detail
    assert results["capi"].data["verdict"] == "match" and results["capi"].data["probed"] is True
    assert results["capi"].data["matching"] == ["v0.0.289"]
    assert "derivatives are right through that profile; its embedded signatures agree" in results["capi"].detail
    assert results["runpath"].ok and "only $ORIGIN-relative" in results["runpath"].detail
    assert results["load"].ok and not results["load"].skipped
    assert results["load"].data["llvm_library"].endswith("libLLVM-15.so.1")
    assert "no second libLLVM mapped" in results["load"].detail
    assert [Path(p).name for p in results["load"].data["libllvm_mapped"]] == [
        Path(results["load"].data["llvm_library"]).resolve().name]


def test_real_plugin_is_beyond_manylinux_2_28(recipe: Recipe, repacked: Repacked) -> None:
    report = _check(recipe, repacked.library, policy="manylinux_2_28", load=False)
    assert not report.ok
    assert [r.name for r in report.failures] == ["symbol-versions"]
    detail = report.failures[0].detail
    assert "GLIBC_2.32 > 2.28" in detail and "GLIBCXX_3.4.29 > 3.4.25" in detail


def test_needed_of_another_major_fails(recipe: Recipe, real_copy: Path, patchelf: str) -> None:
    subprocess.run([patchelf, "--replace-needed", "libLLVM-15.so.1", "libLLVM-16.so.1", str(real_copy)],
                   check=True)
    report = _check(recipe, real_copy)
    failed = {r.name: r.detail for r in report.failures}
    assert set(failed) == {"needed", "capi", "load"}  # two LLVMs in the probe's process too
    assert "libLLVM-16.so.1 is LLVM 16, not LLVM 15" in failed["needed"]
    # Without libLLVM-16 on the machine it does not load; with it, it loads beside libLLVM-15,
    # which the load check refuses too.
    assert "libLLVM-16" in failed["load"]


def test_the_wheels_bundled_llvm_name_fails(recipe: Recipe, real_copy: Path, patchelf: str) -> None:
    subprocess.run([patchelf, "--replace-needed", "libLLVM-15.so.1", "libLLVM-15-a95c9aa1.so.1",
                    str(real_copy)], check=True)
    report = _check(recipe, real_copy, load=False)
    assert [r.name for r in report.failures] == ["needed"]
    assert "renamed, bundled copy" in report.failures[0].detail


def _rename_dynsym(path: Path, old: str, new: str) -> None:
    """Rename one exported symbol inside .dynstr (same length), as if it were not exported."""
    from elftools.elf.elffile import ELFFile

    assert len(old) == len(new)
    with open(path, "rb") as f:
        dynstr = ELFFile(f).get_section_by_name(".dynstr")
        start, size = dynstr["sh_offset"], dynstr["sh_size"]
    data = bytearray(path.read_bytes())
    at = data.find(b"\0" + old.encode() + b"\0", start, start + size)
    assert at >= 0
    data[at + 1: at + 1 + len(old)] = new.encode()
    path.write_bytes(bytes(data))


def test_missing_capi_symbol_fails(recipe: Recipe, real_copy: Path) -> None:
    _rename_dynsym(real_copy, "EnzymeCreateForwardDiff", "EnzymeCreateForwardDifX")
    report = _check(recipe, real_copy)
    failed = {r.name: r for r in report.failures}
    assert set(failed) == {"exports", "capi", "load"}
    assert failed["exports"].data["missing"] == ["EnzymeCreateForwardDiff"]
    assert "does not export EnzymeCreateForwardDiff" in failed["capi"].detail
    assert "dlsym misses EnzymeCreateForwardDiff" in failed["load"].detail


def test_tiny_library_fails_exports_but_not_needed(recipe: Recipe, tmp_path: Path, cc: str) -> None:
    src = tmp_path / "tiny.c"
    src.write_text("double CreateEnzymeLogic(double x) { return x; }\n")
    lib = tmp_path / "libtiny.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    report = _check(recipe, lib)
    results = _by_name(report)
    assert results["needed"].ok and "no libLLVM entry" in results["needed"].detail
    assert not results["exports"].ok
    assert "CreateEnzymeLogic" not in results["exports"].data["missing"]
    assert len(results["exports"].data["missing"]) == 25
    assert not results["load"].ok
    assert results["capi"].data["verdict"] == "mismatch" and not results["capi"].ok
    assert "no known profile fits it" in results["capi"].detail and "does not export" in results["capi"].detail


def test_a_working_library_of_the_profile_passes(recipe: Recipe, tmp_path: Path, cc: str) -> None:
    lib = compile_library(cc, tmp_path / "LLVMEnzyme-15.so",
                          fake_enzyme_source(markers=capi.signature_markers("v0.0.289")))
    report = _check(recipe, lib)
    assert report.ok, report.format()
    assert _by_name(report)["capi"].data["verdict"] == "match"


def test_the_profiles_names_and_strings_without_an_enzyme_behind_are_refused(recipe: Recipe, tmp_path: Path,
                                                                              cc: str) -> None:
    """Names and embedded signatures are not enough: the probe differentiates through them."""
    lib = compile_library(cc, tmp_path / "LLVMEnzyme-15.so", plugin_c_source())
    report = _check(recipe, lib)
    results = _by_name(report)
    assert [r.name for r in report.failures] == ["capi"]
    assert results["capi"].data["verdict"] == "mismatch" and "no known profile fits it" in results["capi"].detail
    assert results["capi"].data["embedded"]  # the strings are there ...
    # ... and without a libLLVM to probe with they would have been believed
    assert _by_name(_check(recipe, lib, load=False))["capi"].ok


def test_same_names_other_signatures_is_refused(recipe: Recipe, tmp_path: Path, cc: str) -> None:
    """The 2025 C API exports the same 26 names; only the parameter lists tell it apart."""
    lib = compile_library(cc, tmp_path / "LLVMEnzyme-15.so",
                          fake_enzyme_source(profile="v0.0.173", markers=capi.signature_markers("v0.0.173")))
    report = _check(recipe, lib)
    results = _by_name(report)
    assert results["exports"].ok and results["load"].ok
    assert [r.name for r in report.failures] == ["capi"]
    detail = results["capi"].detail
    assert "not C API v0.0.289: it is C API v0.0.173" in detail and "pass --capi v0.0.173" in detail
    assert "EnzymeCreatePrimalAndGradient has 22 parameters in the library, 23 in v0.0.289" in detail
    assert "EnzymeCreateForwardDiff has 19 parameters in the library, 20 in v0.0.289" in detail
    assert "EnzymeCreateAugmentedPrimal has 18 parameters in the library, 21 in v0.0.289" in detail
    assert "through v0.0.289: the test process was killed by signal 6 (SIGABRT)" in detail
    assert "normal for a build without assertions" not in report.format()
    assert results["capi"].data["verdict"] == "mismatch" and results["capi"].data["matching"] == ["v0.0.173"]
    proc = run_cli("check", str(lib), "--llvm", "15", "--policy", "none", "--json")
    assert proc.returncode == 1
    statuses = {c["name"]: c["status"] for c in json.loads(proc.stdout)["checks"]}
    assert statuses["capi"] == "FAIL" and statuses["exports"] == "PASS"
    ok = run_cli("check", str(lib), "--llvm", "15", "--policy", "none", "--capi", "v0.0.173")
    assert ok.returncode == 0, ok.stdout


def test_a_build_without_strings_is_identified_by_the_probe(recipe: Recipe, tmp_path: Path, cc: str) -> None:
    """-DNDEBUG: nothing embedded; the probe alone says v0.0.173 (and, with --no-load, the
    check says it cannot tell)."""
    lib = compile_library(cc, tmp_path / "LLVMEnzyme-15.so", fake_enzyme_source(profile="v0.0.173"))
    ident = identify_capi_profile(lib, "v0.0.173", llvm=15)
    assert (ident.verdict, ident.matching, ident.embedded, ident.probed) == ("match", ("v0.0.173",), {}, True)
    cannot = _by_name(_check(recipe, lib, load=False))["capi"]
    assert not cannot.ok and cannot.data["verdict"] == "unknown" and "cannot be told here" in cannot.detail


def test_identification_is_the_loaders(tmp_path: Path, cc: str, repacked: Repacked) -> None:
    good = identify_capi_profile(repacked.library, "v0.0.289")
    assert (good.verdict, good.matching, good.differences, good.probed) == ("match", ("v0.0.289",), (), True)
    from enzyme_artifacts.llvm import find_libllvm
    from enzyme_artifacts.plugin import identify_plugin

    assert identify_plugin(repacked.library, find_libllvm(15)).remembered  # the check's answer, remembered
    other = identify_capi_profile(compile_library(cc, tmp_path / "a.so", plugin_c_source(SIGNATURES_2025)),
                                  "v0.0.289", llvm=15)
    assert other.verdict == "mismatch" and other.matching == ()
    strings_only = identify_capi_profile(tmp_path / "a.so", "v0.0.289", probe=False)
    assert strings_only.verdict == "mismatch" and strings_only.matching == ("v0.0.173",)
    with pytest.raises(UnknownProfileError, match="unknown Enzyme C-API profile 'v0.0.79'; known: v0.0.173, v0.0.289"):
        identify_capi_profile(repacked.library, "v0.0.79")


def test_a_second_libllvm_in_the_process_fails_the_load_check(recipe: Recipe, tmp_path: Path, cc: str) -> None:
    """An LLVM 16 plugin loaded "against libLLVM-15" pulls libLLVM-16 in by itself: the
    load must fail even though every symbol resolves."""
    folder = tmp_path / "lib"
    compile_library(cc, folder / "libLLVM-16.so.1", "int llvm_version_major(void) { return 16; }\n",
                    "-Wl,-soname,libLLVM-16.so.1")
    lib = compile_library(cc, folder / "LLVMEnzyme-16.so", fake_enzyme_source(), f"-L{folder}",
                          "-Wl,--no-as-needed", "-l:libLLVM-16.so.1", "-Wl,-rpath,$ORIGIN")
    report = check_library(lib, llvm=16, platform=GNU, policy=recipe.policies["manylinux_2_34"],
                           capi_profile="v0.0.289", llvm_library=Path("/usr/lib/llvm-15/lib/libLLVM-15.so.1"))
    results = _by_name(report)
    assert results["needed"].ok and results["needed"].data["needed"][0] == "libLLVM-16.so.1"
    assert results["runpath"].ok and results["exports"].ok
    assert [r.name for r in report.failures] == ["load"]
    assert "pulled a second libLLVM into the process" in results["load"].detail
    assert str(folder / "libLLVM-16.so.1") in results["load"].detail
    assert any(m.endswith("libLLVM-15.so.1") for m in results["load"].data["libllvm_mapped"])


def test_runpath_of_the_build_machine(recipe: Recipe, tmp_path: Path, cc: str) -> None:
    lib = compile_library(cc, tmp_path / "LLVMEnzyme-15.so", plugin_c_source(),
                          "-Wl,-rpath,$ORIGIN/../lib:/usr/lib/llvm-15/lib")
    strict = _by_name(_check(recipe, lib, load=False))["runpath"]
    assert not strict.ok and "/usr/lib/llvm-15/lib" in strict.detail and "CMAKE_SKIP_RPATH" in strict.detail
    assert strict.data["runpath"] == ["$ORIGIN/../lib", "/usr/lib/llvm-15/lib"]
    local = check_library(lib, llvm=15, platform=GNU, policy=Policy("none", {}), capi_profile="v0.0.289",
                          load=False)
    assert _by_name(local)["runpath"].ok and "kept for policy none" in _by_name(local)["runpath"].detail


def test_unknown_profile_is_a_usage_error_not_a_traceback(repacked: Repacked) -> None:
    proc = run_cli("check", str(repacked.library), "--llvm", "16", "--capi", "v0.0.79")
    assert proc.returncode == 2
    assert "unknown Enzyme C-API profile 'v0.0.79'; known: v0.0.173, v0.0.289" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    as_json = run_cli("check", str(repacked.library), "--llvm", "16", "--capi", "v0.0.79", "--json")
    assert as_json.returncode == 2 and "v0.0.79" in json.loads(as_json.stdout)["error"]


def test_unlisted_dependency_and_bundled_llvm_fail(recipe: Recipe, tmp_path: Path, cc: str) -> None:
    src = tmp_path / "bundle.c"
    src.write_text("void *LLVMContextCreate(void) { return 0; }\n")
    lib = tmp_path / "libbundle.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(src), "-Wl,--no-as-needed", "-lz"], check=True)
    report = _check(recipe, lib, load=False)
    failed = {r.name: r.detail for r in report.failures}
    assert "libz.so.1 is not on the allow-list" in failed["needed"]
    assert "LLVMContextCreate" in failed["bundled-llvm"]


def test_not_a_library(recipe: Recipe, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _check(recipe, tmp_path / "absent.so")
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"\x7fELF" + b"\0" * 60)
    report = _check(recipe, junk, load=False)
    assert not report.ok and report.results[0].name == "elf"


@pytest.mark.parametrize(("name", "expected"), [
    ("libLLVM-15.so.1", (15, False)), ("libLLVM-15.so", (15, False)), ("libLLVM.so.18.1", (18, False)),
    ("libLLVM-17.0.6.so", (17, False)), ("libLLVM-15-a95c9aa1.so.1", (15, True)),
    ("libLLVMSupport.so", None), ("libc.so.6", None),
])
def test_libllvm_soname_spellings(name: str, expected: object) -> None:
    assert libllvm_major(name) == expected


def test_allow_list_by_libc() -> None:
    ok, bad = classify_needed(["libc.musl-x86_64.so.1", "libstdc++.so.6", "libgcc_s.so.1", "libLLVM-16.so"],
                              llvm=16, platform=MUSL)
    assert bad == [] and len(ok) == 4
    ok, bad = classify_needed(["libc.so.6", "ld-linux-x86-64.so.2", "libm.so.6", "libc.musl-x86_64.so.1"],
                              llvm=16, platform=GNU)
    assert ok == ["libc.so.6", "ld-linux-x86-64.so.2", "libm.so.6"] and len(bad) == 1


def test_check_cli_exit_codes_and_json(repacked: Repacked, real_copy: Path, patchelf: str) -> None:
    good = run_cli("check", str(repacked.library), "--llvm", "15", "--policy", "manylinux_2_34", "--json")
    assert good.returncode == 0, good.stdout + good.stderr
    payload = json.loads(good.stdout)
    assert payload["ok"] is True and {c["status"] for c in payload["checks"]} == {"PASS"}
    strict = run_cli("check", str(repacked.library), "--llvm", "15", "--no-load")
    assert strict.returncode == 1
    assert "FAIL  symbol-versions" in strict.stdout and "beyond policy manylinux_2_28" in strict.stdout
    subprocess.run([patchelf, "--replace-needed", "libLLVM-15.so.1", "libLLVM-16.so.1", str(real_copy)],
                   check=True)
    bad = run_cli("check", str(real_copy), "--llvm", "15", "--triplet", "x86_64-linux-gnu", "--json",
                  "--policy", "none")
    assert bad.returncode == 1
    statuses = {c["name"]: c["status"] for c in json.loads(bad.stdout)["checks"]}
    assert statuses["needed"] == "FAIL" and statuses["load"] == "FAIL" and statuses["exports"] == "PASS"
    assert "(no ceiling)" in next(c["detail"] for c in json.loads(bad.stdout)["checks"]
                                  if c["name"] == "symbol-versions")
