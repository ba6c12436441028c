"""float32 functions (``float f(float)``, ``float*`` arrays) in C, typed IR and opaque IR.

Tolerances fit single precision: analytic comparisons at ~1e-5 relative; finite differences are
taken on the float32 primal with a large step, so they are compared at ~1e-2.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from enzyme_py import (
    Active,
    Const,
    Duplicated,
    Forward,
    ForwardWithPrimal,
    Reverse,
    ReverseWithPrimal,
    autodiff,
    gradient,
    make_zero,
)

from ._support import FAST, assert_close, fd_directional, fd_gradient, fd_partial

f32 = st.floats(-2.0, 2.0, width=32, allow_nan=False, allow_infinity=False)
RTOL = 2e-5
FD_RTOL = 2e-2
FD_ATOL = 2e-2


def test_signatures(fmod) -> None:  # type: ignore[no-untyped-def]
    assert fmod.function("cubef").signature == "float (float)"
    assert fmod.function("prodf").signature == "float (float, float)"
    assert fmod.function("sumsqf").signature in {"float (float*, i64)", "float (ptr, i64)"}


@FAST
@given(x=f32)
def test_cube_every_mode(fmod, x: float) -> None:  # type: ignore[no-untyped-def]
    f = fmod.function("cubef")
    primal = x**3 + 2 * x
    exact = 3 * x * x + 2
    fd = fd_partial(f, [x], 0, h=1e-2)
    assert_close(f(x), primal, rtol=RTOL, atol=1e-5)
    assert_close(exact, fd, rtol=FD_RTOL, atol=FD_ATOL)

    ((d,),) = autodiff(Reverse, f, Active, Active(x))
    assert isinstance(d, float)
    assert_close(d, exact, rtol=RTOL, atol=1e-5)
    assert_close(d, fd, rtol=FD_RTOL, atol=FD_ATOL)
    (d2,), p = autodiff(ReverseWithPrimal, f, Active, Active(x))
    assert_close([d2, p], [exact, primal], rtol=RTOL, atol=1e-5)
    (t,) = autodiff(Forward, f, Duplicated, Duplicated(x, 1.0))
    assert_close(t, exact, rtol=RTOL, atol=1e-5)
    t2, p2 = autodiff(ForwardWithPrimal, f, Duplicated, Duplicated(x, 2.0))
    assert_close([t2, p2], [2 * exact, primal], rtol=RTOL, atol=1e-5)
    assert_close(gradient(f, x)[0], exact, rtol=RTOL, atol=1e-5)


def test_cube_exact_values(fmod) -> None:  # type: ignore[no-untyped-def]
    f = fmod.function("cubef")
    assert f(2.0) == 12.0
    assert autodiff(Reverse, f, Active, Active(2.0)) == ((14.0,),)
    assert autodiff(ForwardWithPrimal, f, Duplicated, Duplicated(2.0, 1.0)) == (14.0, 12.0)


@FAST
@given(x=f32, y=f32)
def test_two_args(fmod, x: float, y: float) -> None:  # type: ignore[no-untyped-def]
    f = fmod.function("prodf")
    exact = (2 * x * y, x * x)
    (d,) = autodiff(Reverse, f, Active, Active(x), Active(y))
    assert_close(d, exact, rtol=RTOL, atol=1e-5)
    fds = [fd_partial(f, [x, y], i, h=1e-2) for i in range(2)]
    assert_close(d, fds, rtol=FD_RTOL, atol=FD_ATOL)
    assert autodiff(Reverse, f, Active, Active(x), Const(y))[0][1] is None


@FAST
@given(x=st.integers(1, 9).flatmap(lambda n: hnp.arrays(np.float32, n, elements=f32)))
def test_float_arrays(fmod, x: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    f = fmod.function("sumsqf")
    n = x.size
    exact = 2.0 * x.astype(np.float64)
    assert_close(f(x, n), np.sum(x.astype(np.float64) ** 2), rtol=1e-5, atol=1e-5)

    dx = make_zero(x)
    assert dx.dtype == np.float32
    autodiff(Reverse, f, Active, Duplicated(x, dx), n)
    assert_close(dx, exact, rtol=RTOL, atol=1e-6)
    fd = fd_gradient(lambda v: f(v, n), x, h=1e-2)
    assert_close(dx, fd, rtol=FD_RTOL, atol=FD_ATOL)

    (g, _) = gradient(f, x, Const(n))
    assert g.dtype == np.float32
    assert_close(g, exact, rtol=RTOL, atol=1e-6)

    v = np.ones(n, dtype=np.float32)
    (t,) = autodiff(Forward, f, Duplicated, Duplicated(x, v), n)
    assert_close(t, exact.sum(), rtol=1e-4, atol=1e-5)

    # void scale_intof(const float* x, float* y, long n): y = 3 x^2.
    h = fmod.function("scale_intof")
    w = np.linspace(1.0, 2.0, n).astype(np.float32)
    dxs = make_zero(x)
    dy = w.copy()
    autodiff(Reverse, h, Const, Duplicated(x, dxs), Duplicated(np.zeros(n, np.float32), dy), n)
    assert_close(dxs, 6.0 * x.astype(np.float64) * w, rtol=RTOL, atol=1e-5)
    np.testing.assert_array_equal(dy, np.zeros(n, np.float32))

    def prim(z: np.ndarray) -> np.ndarray:
        out = np.empty(n, np.float32)
        h(z.astype(np.float32), out, n)
        return out

    jv = np.zeros(n, np.float32)
    autodiff(Forward, h, Const, Duplicated(x, v), Duplicated(np.zeros(n, np.float32), jv), n)
    assert_close(jv, 6.0 * x.astype(np.float64), rtol=RTOL, atol=1e-5)
    assert_close(jv, fd_directional(prim, x.astype(np.float64), v.astype(np.float64), h=1e-2),
                 rtol=FD_RTOL, atol=FD_ATOL)
