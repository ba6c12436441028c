"""The C-API profile modules of enzyme_py (issue 15): each binds the parameter lists that
enzyme_artifacts' probe identifies libraries by, and the 2025 C API (v0.0.173) works end to
end -- here through the fake Enzyme of :mod:`tests.support.fake_enzyme`, which builds the
derivatives of the probe's two functions with that profile's parameter lists (the real
from-source builds for LLVM 16 and 19 are checked by hand, see the development guide)."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import pytest

from enzyme_artifacts import capi
from enzyme_py._native.ffi.enzyme import CFnTypeInfo, DiffRequest, load_profile
from enzyme_py.errors import UnsupportedError
from tests.support.child import check_python
from tests.support.fake_enzyme import build_fake_enzyme

_CTYPES = {
    "EnzymeLogicRef": ctypes.c_void_p, "LLVMValueRef": ctypes.c_void_p, "LLVMBuilderRef": ctypes.c_void_p,
    "LLVMTypeRef": ctypes.c_void_p, "EnzymeTypeAnalysisRef": ctypes.c_void_p,
    "EnzymeAugmentedReturnPtr": ctypes.c_void_p, "CDIFFE_TYPE": ctypes.c_int, "CDerivativeMode": ctypes.c_int,
    "CDIFFE_TYPE*": ctypes.POINTER(ctypes.c_int), "CFnTypeInfo": CFnTypeInfo, "size_t": ctypes.c_size_t,
    "uint8_t": ctypes.c_uint8, "uint8_t*": ctypes.POINTER(ctypes.c_uint8), "unsigned int": ctypes.c_uint,
}


@pytest.mark.parametrize("profile", capi.known_profiles())
def test_each_profile_module_binds_the_probed_parameter_lists(profile: str) -> None:
    module = load_profile(profile)
    assert module.PROFILE == profile
    assert set(module.GUARDED) == set(capi.ENTRY_POINTS)
    for function, sig in capi.signatures(profile).items():
        _, argtypes = module.FUNCTIONS[function]
        assert len(argtypes) == sig.count, function
        assert list(argtypes) == [_CTYPES[p.ctype] for p in sig.params], function
    assert set(module.LACKS) == set(capi.get_profile(profile).lacks)


def _request(**flags: bool) -> DiffRequest:
    return DiffRequest(logic=1, function=1, ret_activity=0, arg_activities=(0,), type_analysis=1,
                       return_primal=False, type_info=CFnTypeInfo(), overwritten=(False,), **flags)


def test_a_request_the_2025_c_api_cannot_express_is_refused_before_any_call() -> None:
    calls: list[object] = []
    old = load_profile("v0.0.173")
    with pytest.raises(UnsupportedError, match=r"strongZero .*v0.0.173 .*v0.0.181 or later"):
        old.create_reverse(lambda *a: calls.append(a), _request(strong_zero=True))
    assert calls == []
    load_profile("v0.0.289").check(_request(strong_zero=True))  # it has the parameter


def test_the_2025_c_api_end_to_end(tmp_path: Path) -> None:
    """Loader and frontend together: the library probes as v0.0.173, enzyme_py binds that
    profile, the derivatives come back right, and strong zero is refused with the reason."""
    lib = build_fake_enzyme(tmp_path / "fake", profile="v0.0.173")
    code = r'''
import json, numpy as np, enzyme_py as ez
from enzyme_py._native.library import loaded
m = ez.Module.from_ir("""
define void @f(ptr %x, ptr %y) {
  %a = load double, ptr %x
  %m = fmul double %a, %a
  store double %m, ptr %y
  ret void
}
define double @g(double %x) {
  %a = fmul double %x, %x
  %b = fmul double %a, %x
  ret double %b
}
""")
x, dx, y, dy = np.array([3.0]), np.zeros(1), np.zeros(1), np.ones(1)
ez.autodiff(ez.Reverse, m.function("f"), ez.Const, ez.Duplicated(x, dx), ez.Duplicated(y, dy))
(fwd,) = ez.autodiff(ez.Forward, m.function("g"), ez.Duplicated, ez.Duplicated(2.0, 1.0))
try:
    ez.autodiff(ez.set_strong_zero(ez.Reverse), m.function("f"), ez.Const, ez.Duplicated(x, dx),
                ez.Duplicated(y, dy))
    refused = None
except ez.UnsupportedError as e:
    refused = str(e)
print(json.dumps({"capi": loaded().capi, "dx": dx[0], "y": y[0], "dy": dy[0], "fwd": fwd, "refused": refused}))
'''
    out = json.loads(check_python(code, extra_env={"ENZYME_ARTIFACTS_LIBRARY": str(lib),
                                                   "ENZYME_PY_DISK_CACHE": "0"}).splitlines()[-1])
    assert out["capi"] == "v0.0.173"
    assert (out["dx"], out["y"], out["dy"], out["fwd"]) == (6.0, 9.0, 0.0, 12.0)
    assert "strongZero" in out["refused"] and str(lib) in out["refused"]
