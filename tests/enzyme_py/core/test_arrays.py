"""Array functions: reverse accumulation into shadows, seeds from output shadows, forward tangents.

Functions come from C, typed-pointer IR and opaque-pointer IR (``dmod``), or from C only
(``cmod``: logsumexp and the coupled map). Derivatives are checked against analytic values and
central finite differences of the JIT-compiled primal.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from enzyme_py import (
    Active,
    Const,
    Duplicated,
    DuplicatedNoNeed,
    Forward,
    ForwardWithPrimal,
    Reverse,
    ReverseWithPrimal,
    autodiff,
    gradient,
    make_zero,
)

from ._support import FAST, assert_close, fd_directional, fd_gradient

elements = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False)


def vectors(min_size: int = 1, max_size: int = 9) -> st.SearchStrategy[np.ndarray]:
    return st.integers(min_size, max_size).flatmap(
        lambda n: hnp.arrays(np.float64, n, elements=elements)
    )


def _rosen_grad(x: np.ndarray) -> np.ndarray:
    g = np.zeros_like(x)
    a = x[1:] - x[:-1] ** 2
    g[:-1] += -400.0 * x[:-1] * a - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * a
    return g


def _rosen(x: np.ndarray) -> float:
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


def test_signatures(dmod) -> None:  # type: ignore[no-untyped-def]
    ptr = {"c": "ptr", "ir-opaque": "ptr", "ir-typed": "double*"}
    sig = dmod.function("sumsq").signature
    assert sig in {f"double ({p}, i64)" for p in set(ptr.values())}
    assert dmod.function("sqsin_into").signature.startswith("void (")


@FAST
@given(x=vectors())
def test_sumsq_every_mode(dmod, x: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    f = dmod.function("sumsq")
    n = x.size
    x0 = x.copy()
    exact = 2.0 * x
    assert_close(f(x, n), np.sum(x * x), rtol=1e-13, atol=1e-14)
    fd = fd_gradient(lambda v: f(v, n), x)
    assert_close(exact, fd, rtol=1e-6, atol=1e-7)

    dx = make_zero(x)
    assert autodiff(Reverse, f, Active, Duplicated(x, dx), n) == ((None, None),)
    assert_close(dx, exact, rtol=1e-13, atol=1e-14)
    assert_close(dx, fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(x, x0)  # the primal input is untouched

    dx2 = np.zeros_like(x)
    res, primal = autodiff(ReverseWithPrimal, f, Active, DuplicatedNoNeed(x, dx2), Const(n))
    assert res == (None, None)
    assert_close(primal, np.sum(x * x), rtol=1e-13, atol=1e-14)
    assert_close(dx2, exact, rtol=1e-13, atol=1e-14)

    dx4 = make_zero(x)
    assert autodiff(f, Duplicated(x, dx4), n) == ((None, None),)  # Reverse, Active by default
    assert_close(dx4, exact, rtol=1e-13, atol=1e-14)

    (g, gn) = gradient(Reverse, f, x, Const(n))
    assert gn is None
    assert isinstance(g, np.ndarray) and g.shape == x.shape and g.dtype == np.float64
    assert_close(g, exact, rtol=1e-13, atol=1e-14)

    v = np.linspace(-1.0, 1.0, n)
    (t,) = autodiff(Forward, f, Duplicated, Duplicated(x, v), n)
    assert_close(t, exact @ v, rtol=1e-12, atol=1e-12)
    assert_close(t, fd_directional(lambda z: f(z, n), x, v), rtol=1e-6, atol=1e-7)
    t2, p2 = autodiff(ForwardWithPrimal, f, Duplicated, Duplicated(x, v), n)
    assert_close(t2, exact @ v, rtol=1e-12, atol=1e-12)
    assert_close(p2, np.sum(x * x), rtol=1e-13, atol=1e-14)
    np.testing.assert_array_equal(v, np.linspace(-1.0, 1.0, n))  # forward reads the tangent
    (t3,) = autodiff(Forward, f, DuplicatedNoNeed, DuplicatedNoNeed(x, v), n)
    assert_close(t3, exact @ v, rtol=1e-12, atol=1e-12)
    assert autodiff(Forward, f, Const, Duplicated(x, v), n) == ()

    # A Const return seeds nothing: the shadow is left as it was.
    dx3 = np.full(n, 7.0)
    assert autodiff(Reverse, f, Const, Duplicated(x, dx3), n) == ((None, None),)
    np.testing.assert_array_equal(dx3, np.full(n, 7.0))
    res4, p4 = autodiff(ReverseWithPrimal, f, Const, Duplicated(x, dx3), n)
    assert res4 == (None, None)
    assert_close(p4, np.sum(x * x), rtol=1e-13, atol=1e-14)
    np.testing.assert_array_equal(dx3, np.full(n, 7.0))


@FAST
@given(x=vectors(min_size=2))
def test_rosenbrock(dmod, x: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    f = dmod.function("rosen")
    n = x.size
    exact = _rosen_grad(x)
    assert_close(f(x, n), _rosen(x), rtol=1e-12, atol=1e-12)
    fd = fd_gradient(lambda v: f(v, n), x)
    scale = 1.0 + np.max(np.abs(exact))
    assert_close(exact, fd, rtol=1e-6, atol=1e-7 * scale)

    (g, _) = gradient(f, x, Const(n))
    assert_close(g, exact, rtol=1e-11, atol=1e-11)
    assert_close(g, fd, rtol=1e-6, atol=1e-7 * scale)

    v = np.cos(np.arange(n, dtype=np.float64))
    (t,) = autodiff(Forward, f, Duplicated, Duplicated(x, v), n)
    assert_close(t, exact @ v, rtol=1e-10, atol=1e-10)


@FAST
@given(data=st.data(), n=st.integers(1, 8))
def test_dot_and_const_arrays(dmod, data: st.DataObject, n: int) -> None:  # type: ignore[no-untyped-def]
    f = dmod.function("dot")
    x = data.draw(hnp.arrays(np.float64, n, elements=elements))
    y = data.draw(hnp.arrays(np.float64, n, elements=elements))
    y0 = y.copy()
    assert_close(f(x, y, n), x @ y, rtol=1e-12, atol=1e-13)

    gx, gy, gn = gradient(f, x, y, Const(n))
    assert gn is None
    assert_close(gx, y, rtol=1e-13, atol=1e-14)
    assert_close(gy, x, rtol=1e-13, atol=1e-14)
    assert_close(gx, fd_gradient(lambda v: f(v, y, n), x), rtol=1e-6, atol=1e-7)

    # A Const array: None in its slot, and it is only read.
    gx2, gy2, _ = gradient(Reverse, f, x, Const(y), Const(n))
    assert gy2 is None
    assert_close(gx2, y, rtol=1e-13, atol=1e-14)
    np.testing.assert_array_equal(y, y0)

    dx = make_zero(x)
    assert autodiff(Reverse, f, Active, Duplicated(x, dx), y, n) == ((None, None, None),)
    assert_close(dx, y, rtol=1e-13, atol=1e-14)

    # Forward with one tangent array, the other array constant.
    v = np.ones(n)
    (t,) = autodiff(Forward, f, Duplicated, Duplicated(x, v), Const(y), n)
    assert_close(t, y.sum(), rtol=1e-12, atol=1e-12)


@FAST
@given(x=vectors(min_size=1, max_size=8))
def test_logsumexp_stable(cmod, x: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    f = cmod.function("logsumexp")
    n = x.size
    m = np.max(x)
    softmax = np.exp(x - m) / np.sum(np.exp(x - m))
    assert_close(f(x, n), m + np.log(np.sum(np.exp(x - m))), rtol=1e-13, atol=1e-13)
    (g, _) = gradient(f, x, Const(n))
    assert_close(g, softmax, rtol=1e-11, atol=1e-13)
    assert_close(g, fd_gradient(lambda v: f(v, n), x), rtol=1e-6, atol=1e-7)
    assert_close(np.sum(g), 1.0, rtol=1e-12)


def test_logsumexp_large_inputs(cmod) -> None:  # type: ignore[no-untyped-def]
    """The max-first form stays finite where exp overflows; so must its gradient."""
    f = cmod.function("logsumexp")
    x = np.array([1000.0, 999.0, 998.0])
    (g, _) = gradient(f, x, Const(3))
    e = np.exp(x - 1000.0)
    assert np.all(np.isfinite(g))
    assert_close(g, e / e.sum(), rtol=1e-12)


@FAST
@given(x=vectors(max_size=7))
def test_inplace_output(dmod, x: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """void sqsin_into(const double* x, double* y, long n): y = x**2 + sin(x)."""
    f = dmod.function("sqsin_into")
    n = x.size
    jac_diag = 2.0 * x + np.cos(x)

    y = np.full(n, np.nan)
    assert f(x, y, n) is None
    assert_close(y, x * x + np.sin(x), rtol=1e-13, atol=1e-14)

    # Reverse: the output shadow is the seed, dx += J^T w, and the seed is zeroed.
    w = np.linspace(0.5, 2.0, n)
    dx = make_zero(x)
    dy = w.copy()
    y = np.zeros(n)
    res = autodiff(Reverse, f, Const, Duplicated(x, dx), Duplicated(y, dy), n)
    assert res == ((None, None, None),)
    assert_close(dx, jac_diag * w, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(dy, np.zeros(n))
    assert_close(y, x * x + np.sin(x), rtol=1e-13, atol=1e-14)  # primal side effects kept

    def prim(v: np.ndarray) -> np.ndarray:
        out = np.empty(n)
        f(v, out, n)
        return out

    fd_jtw = fd_gradient(lambda v: float(prim(v) @ w), x)
    assert_close(dx, fd_jtw, rtol=1e-6, atol=1e-7)

    res2, primal = autodiff(ReverseWithPrimal, f, Const, Duplicated(x, make_zero(x)),
                            Duplicated(np.zeros(n), w.copy()), n)
    assert res2 == (None, None, None) and primal is None

    # Forward: the output shadow receives J v.
    v = np.sin(np.arange(1, n + 1, dtype=np.float64))
    dy2 = np.full(n, np.nan)
    assert autodiff(Forward, f, Const, Duplicated(x, v), Duplicated(np.zeros(n), dy2), n) == ()
    assert_close(dy2, jac_diag * v, rtol=1e-12, atol=1e-13)
    assert_close(dy2, fd_directional(prim, x, v), rtol=1e-6, atol=1e-7)


def test_reverse_accumulates_into_shadows(dmod) -> None:  # type: ignore[no-untyped-def]
    f = dmod.function("sumsq")
    x = np.array([1.0, -2.0, 0.5, 3.0])
    dx = make_zero(x)
    autodiff(Reverse, f, Active, Duplicated(x, dx), 4)
    assert_close(dx, 2 * x, rtol=1e-14)
    autodiff(Reverse, f, Active, Duplicated(x, dx), 4)
    assert_close(dx, 4 * x, rtol=1e-14)  # twice without zeroing: 2x the gradient
    dx[:] = 10.0
    autodiff(Reverse, f, Active, Duplicated(x, dx), 4)
    assert_close(dx, 10.0 + 2 * x, rtol=1e-14)

    # Output seeds are consumed: a second call with the zeroed seed adds nothing.
    g = dmod.function("sqsin_into")
    dx = make_zero(x)
    dy = np.ones(4)
    autodiff(Reverse, g, Const, Duplicated(x, dx), Duplicated(np.zeros(4), dy), 4)
    first = dx.copy()
    autodiff(Reverse, g, Const, Duplicated(x, dx), Duplicated(np.zeros(4), dy), 4)
    np.testing.assert_array_equal(dx, first)
    assert_close(first, 2 * x + np.cos(x), rtol=1e-13)


def test_gradient_returns_fresh_arrays(dmod) -> None:  # type: ignore[no-untyped-def]
    f = dmod.function("sumsq")
    x = np.array([1.0, 2.0, 3.0])
    g1, _ = gradient(f, x, Const(3))
    g2, _ = gradient(f, x, Const(3))
    assert g1 is not g2 and g1 is not x
    assert_close(g1, 2 * x, rtol=1e-14)
    assert_close(g2, 2 * x, rtol=1e-14)  # not accumulated across gradient calls


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_make_zero(dtype: type) -> None:
    x = np.arange(1, 7, dtype=dtype).reshape(6)
    z = make_zero(x)
    assert isinstance(z, np.ndarray)
    assert z is not x and not np.shares_memory(z, x)
    assert z.shape == x.shape and z.dtype == x.dtype
    assert z.flags.c_contiguous and z.flags.writeable
    np.testing.assert_array_equal(z, np.zeros(6, dtype=dtype))
    np.testing.assert_array_equal(x, np.arange(1, 7, dtype=dtype))


@FAST
@given(x=vectors(min_size=2, max_size=8), k=st.floats(-2.0, 2.0))
def test_forward_reverse_dot_product(cmod, x: np.ndarray, k: float) -> None:  # type: ignore[no-untyped-def]
    """<J v, w> == <v, J^T w> for mixmap(x, y, n, k), with J v also checked by finite differences."""
    f = cmod.function("mixmap")
    n = x.size
    rng = np.random.default_rng(n)
    v = rng.standard_normal(n)
    w = rng.standard_normal(n)

    def prim(z: np.ndarray) -> np.ndarray:
        out = np.empty(n)
        f(z, out, n, k)
        return out

    jac = np.diag(np.cos(x) * k)
    jac[np.arange(n), np.arange(n)[::-1]] += x
    jac[np.arange(n), np.arange(n)] += x[::-1]

    jv = np.full(n, np.nan)
    autodiff(Forward, f, Const, Duplicated(x, v), Duplicated(np.empty(n), jv), n, Const(k))
    assert_close(jv, jac @ v, rtol=1e-11, atol=1e-12)
    assert_close(jv, fd_directional(prim, x, v), rtol=1e-6, atol=1e-7)

    jtw = make_zero(x)
    res = autodiff(Reverse, f, Const, Duplicated(x, jtw), Duplicated(np.empty(n), w.copy()), n,
                   Active(k))
    assert_close(jtw, jac.T @ w, rtol=1e-11, atol=1e-12)
    assert_close(float(jv @ w), float(v @ jtw), rtol=1e-10, atol=1e-11)
    # d<y, w>/dk = sum(sin(x) * w), returned for the Active scalar beside the arrays.
    assert res[0][:3] == (None, None, None)
    assert_close(res[0][3], np.sin(x) @ w, rtol=1e-11, atol=1e-12)


def test_array_forms(cmod, dmod) -> None:  # type: ignore[no-untyped-def]
    """Contiguous views with an offset, 2-D arrays, NumPy scalars, empty and read-only inputs."""
    f = dmod.function("sumsq")
    base = np.arange(8, dtype=np.float64)
    view = base[2:5]  # contiguous, starts 16 bytes into the buffer
    g, _ = gradient(f, view, Const(3))
    assert_close(g, 2 * view, rtol=1e-15)
    dx = np.zeros(8)
    autodiff(Reverse, f, Active, Duplicated(view, dx[2:5]), 3)
    np.testing.assert_array_equal(dx, np.r_[0.0, 0.0, 2 * view, 0.0, 0.0, 0.0])

    m2 = base.reshape(2, 4)
    g2, _ = gradient(f, m2, Const(8))
    assert g2.shape == (2, 4)
    assert_close(g2, 2 * m2, rtol=1e-15)

    ((d,),) = autodiff(Reverse, dmod.function("sq"), Active, Active(np.float64(1.5)))
    assert d == 3.0
    g3, _ = gradient(f, base, Const(np.int64(8)))
    assert_close(g3, 2 * base, rtol=1e-15)

    empty, _ = gradient(f, np.zeros(0), Const(0))
    assert empty.shape == (0,)
    assert f(np.zeros(0), 0) == 0.0

    # A read-only input is fine where the function cannot write through the pointer
    # (clang marks `const double *` parameters it only reads as readonly).
    ro = np.arange(1.0, 5.0)
    ro.setflags(write=False)
    gro, _ = gradient(cmod.function("sumsq"), ro, Const(4))
    assert_close(gro, 2 * ro, rtol=1e-15)
    assert cmod.function("dot")(ro, ro, 4) == 30.0
    dxr = np.zeros(4)
    y = np.zeros(4)
    autodiff(Reverse, cmod.function("sqsin_into"), Const, Duplicated(ro, dxr),
             Duplicated(y, np.ones(4)), 4)
    assert_close(dxr, 2 * ro + np.cos(ro), rtol=1e-14)
