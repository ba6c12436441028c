"""LLVM's ordered reductions hold only while the pipeline after Enzyme runs: source
optimised before differentiation keeps its loops scalar however many derivatives were
compiled before it in the process, and the pointer analysis reads vector loads as their
element type."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

import enzyme_py as ez

POINTS32 = "float {name}(const float *xy, int n) {{ float s = 0; for (int i = 0; i < n; i++) s += xy[2*i] * xy[2*i+1]; return s; }}"


def test_source_stays_scalar_after_a_derivative_was_compiled() -> None:
    strict = ez.Module.from_c(
        "double sq(const double *x, long n) { double s = 0; for (long i = 0; i < n; i++) s += x[i] * x[i]; return s; }",
        name=f"strict_{uuid.uuid4().hex[:8]}",
    ).function("sq")
    x = np.linspace(-1.0, 1.0, 257)
    (g, _) = ez.gradient(strict, x, ez.Const(x.size))  # the post-Enzyme pipeline ran
    np.testing.assert_allclose(g, 2 * x)
    name = f"points_{uuid.uuid4().hex[:8]}"
    m = ez.Module.from_c(POINTS32.format(name=name), name=name)
    assert "x float>" not in m.ir, "the loop was vectorised before differentiation"
    f = m.function(name)
    assert f.layout.params[0].pointee == "f32"
    xy = np.arange(8, dtype=np.float32)
    assert f(xy, 4) == pytest.approx(float(xy[0::2] @ xy[1::2]))
    with pytest.raises(TypeError):
        f(xy.astype(np.float64), 4)
    with pytest.raises(TypeError, match="reads f32 values through this pointer, not pointers"):
        f([xy], 1)


def test_a_strict_float32_sum_is_the_sequential_sum() -> None:
    name = f"total_{uuid.uuid4().hex[:8]}"
    src = f"float {name}(const float *x, long n) {{ float s = 0; for (long i = 0; i < n; i++) s += x[i]; return s; }}"
    f = ez.Module.from_c(src, name=name).function(name)
    x = np.random.default_rng(3).standard_normal(1001).astype(np.float32) * np.float32(1e3)
    sequential = np.cumsum(x, dtype=np.float32)[-1]  # cumsum adds in order
    got = ez.autodiff(ez.ReverseWithPrimal, f, ez.Active, ez.Duplicated(x, np.zeros_like(x)), ez.Const(x.size))
    assert np.float32(got[1]) == sequential
    assert np.float32(f(x, x.size)) == sequential


def test_vector_loads_give_the_element_type() -> None:
    ir = """
define float @vsum(ptr %p) {
  %v = load <4 x float>, ptr %p, align 4
  %s = call float @llvm.vector.reduce.fadd.v4f32(float 0.0, <4 x float> %v)
  ret float %s
}
declare float @llvm.vector.reduce.fadd.v4f32(float, <4 x float>)
"""
    f = ez.Module.from_ir(ir, name=f"vsum_{uuid.uuid4().hex[:8]}").function("vsum")
    assert f.layout.params[0].pointee == "f32"
    assert f(np.arange(4, dtype=np.float32)) == 6.0
    with pytest.raises(TypeError):
        f(np.arange(4, dtype=np.float64))
    with pytest.raises(TypeError, match="reads f32 values"):
        f([np.arange(4, dtype=np.float32)])
