"""Vector math: loops over exp, log, sin, cos, tanh, pow (and cosh, sinh) call glibc's
libmvec when the host has it, and their results stay within 4 ulp of the scalar libm's;
``vector_math=False`` (``ENZYME_PY_VECTOR_MATH=0``) keeps the scalar calls, bitwise."""

from __future__ import annotations

import math

import numpy as np
import pytest

import enzyme_py as ez
from enzyme_py import config
from enzyme_py._native import jit, vecmath

ULP_BOUND = 4

#: name -> (arity, input ranges: many random values in each, edge ranges included)
FUNCTIONS = {
    "exp": (1, [(-5, 5), (-745, -700), (700, 709.7), (-1e-300, 1e-300)]),
    "log": (1, [(1e-3, 1e3), (1e-308, 1e-300), (0.5, 2.0), (1e300, 1.7e308)]),
    "sin": (1, [(-10, 10), (-1e5, 1e5), (-1e-8, 1e-8)]),
    "cos": (1, [(-10, 10), (-1e5, 1e5), (-1e-8, 1e-8)]),
    "tanh": (1, [(-3, 3), (-25, 25), (-1e-9, 1e-9)]),
    "cosh": (1, [(-5, 5), (-700, 700)]),
    "sinh": (1, [(-5, 5), (-1e-9, 1e-9), (-700, 700)]),
    "pow": (2, [(0.1, 10)]),
}

_SOURCE = """
#include <math.h>
void run_{name}(const double *x, const double *y, double *out, long n) {{
    for (long i = 0; i < n; i++) out[i] = {call};
}}
void run_{name}f(const float *x, const float *y, float *out, long n) {{
    for (long i = 0; i < n; i++) out[i] = {callf};
}}
"""


def _module(name: str) -> ez.Module:
    arity = FUNCTIONS[name][0]
    call = f"{name}(x[i], y[i])" if arity == 2 else f"{name}(x[i])"
    callf = f"{name}f(x[i], y[i])" if arity == 2 else f"{name}f(x[i])"
    return ez.Module.from_c(_SOURCE.format(name=name, call=call, callf=callf), name=f"vm_{name}")


def _inputs(name: str, dtype: type, n: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(len(name))
    parts = []
    for lo, hi in FUNCTIONS[name][1]:
        if dtype is np.float32 and name in ("exp", "cosh", "sinh"):
            lo, hi = max(lo, -87.0), min(hi, 88.0)  # float32's range of exp
            if lo >= hi:
                lo, hi = 80.0, 88.0
        if dtype is np.float32 and name == "log" and hi > 1e30:
            lo, hi = 1e30, 3e38
        if dtype is np.float32 and name == "log" and hi < 1e-30:
            lo, hi = 1e-37, 1e-30
        parts.append(rng.uniform(lo, hi, n))
    x = np.concatenate(parts).astype(dtype)
    y = rng.uniform(-3, 3, x.size).astype(dtype)
    return x, y


def _ulps(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    spacing = np.spacing(np.abs(ref).astype(got.dtype))
    return np.abs(got.astype(np.float64) - ref.astype(np.float64)) / spacing.astype(np.float64)


def _scalar_libm(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    fn = getattr(math, name)
    if FUNCTIONS[name][0] == 2:
        return np.array([fn(float(a), float(b)) for a, b in zip(x, y)])
    return np.array([fn(float(a)) for a in x])


pytestmark = pytest.mark.skipif(vecmath.library() is None, reason="no libmvec on this host")


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_vectorised_loops_are_within_4_ulp_of_libm(name):
    mod = _module(name)
    for dtype, suffix in ((np.float64, ""), (np.float32, "f")):
        x, y = _inputs(name, dtype)
        out = np.empty_like(x)
        mod.function(f"run_{name}{suffix}")(x, y, out, x.size)
        # the reference: the scalar libm in double precision, rounded to the element type
        ref = _scalar_libm(name, x, y).astype(dtype)
        finite = np.isfinite(ref)
        assert np.array_equal(np.isfinite(out), finite), f"{name}{suffix}: non-finite results differ"
        worst = float(np.max(_ulps(out[finite], ref[finite])))
        assert worst <= ULP_BOUND, f"{name}{suffix}: {worst} ulp"
    widths = {v[2] for v in vecmath.library().variants.get(name, ())}
    assert widths & set(jit._defined), f"no libmvec variant of {name} was linked"


def test_the_derivative_calls_libmvec_too():
    src = "#include <math.h>\ndouble f(const double *x, long n) { double s = 0; for (long i = 0; i < n; i++) s += tanh(x[i]) * x[i]; return s; }"
    f = ez.Module.from_c(src, name="vm_grad").function("f")
    x = np.linspace(-2, 2, 1001)
    (g, _) = ez.gradient(f, x, ez.Const(x.size))
    expected = np.tanh(x) + x / np.cosh(x) ** 2
    np.testing.assert_allclose(g, expected, rtol=1e-14, atol=1e-14)
    assert "_ZGVdN4v_cosh" in jit._defined or "_ZGVbN2v_cosh" in jit._defined


def test_vector_math_off_keeps_libm_bitwise():
    old = config.set_options(vector_math=False)
    try:
        assert not config.options().vector_math
        mod = _module("tanh")  # a new module: compiled under the option in force
        x, y = _inputs("tanh", np.float64)
        out = np.empty_like(x)
        mod.function("run_tanh")(x, y, out, x.size)
        assert np.array_equal(out, _scalar_libm("tanh", x, y))
    finally:
        config.set_options(**vars(old))


def test_environment_variable(monkeypatch):
    monkeypatch.setenv("ENZYME_PY_VECTOR_MATH", "0")
    assert config.Options.from_environment().vector_math is False
    monkeypatch.setenv("ENZYME_PY_VECTOR_MATH", "1")
    assert config.Options.from_environment().vector_math is True
    monkeypatch.setenv("ENZYME_PY_VECTOR_MATH", "maybe")
    with pytest.raises(ValueError, match="ENZYME_PY_VECTOR_MATH"):
        config.Options.from_environment()
