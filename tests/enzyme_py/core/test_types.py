"""Parameter and return types beyond double: float results packed in registers, mixed scalar
widths, integer and boolean parameters and returns.

Enzyme returns the derivatives of several Active arguments as one struct; for floats the C ABI
packs two per SSE register (``{float, float, float}`` comes back in two registers, 8 + 4 bytes),
so a naive ctypes call would read the wrong lanes. Each value is checked against analytic
derivatives and central finite differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from enzyme_py import (
    Active,
    Const,
    Duplicated,
    Forward,
    ForwardWithPrimal,
    Module,
    Reverse,
    ReverseWithPrimal,
    autodiff,
    gradient,
)

from ._support import FAST, assert_close, fd_partial

C_TYPES = r"""
#include <stdbool.h>

float f2(float a, float b) { return a * a * b; }

float f3(float a, float b, float c) { return a * b + b * c * c + 3.0f * a * c; }

float f5(float a, float b, float c, float d, float e) { return a * b * c + d * d * e; }

double mixed(double x, int k, float y, short s, unsigned char flag, bool neg) {
    double r = x * (double)k + (double)(y * y) * (double)s + (double)flag;
    return neg ? -r : r;
}

long count_positive(const double *x, long n) {
    long c = 0;
    for (long i = 0; i < n; i++) c += x[i] > 0.0;
    return c;
}

int scaled_int(int a, int b) { return a * b + 1; }

bool is_big(double x) { return x > 10.0; }

double wsum3(const double *x, long n, double a, double b, double c) {
    double s = 0.0;
    for (long i = 0; i < n; i++) s += x[i];
    return a * s + b * x[0] + c * c;
}

double ten(double a0, double a1, double a2, double a3, double a4,
           double a5, double a6, double a7, double a8, double a9) {
    return a0 + 2 * a1 + 3 * a2 + 4 * a3 + 5 * a4 + 6 * a5 + 7 * a6 + 8 * a7 + 9 * a8
           + 10 * a9 * a9;
}

/* float and double Active arguments together: a struct {float, double, float}. */
float mixret(float a, double b, float c) { return a * (float)b + c * c; }
"""

f32 = st.floats(-2.0, 2.0, width=32, allow_nan=False, allow_infinity=False)


@pytest.fixture(scope="module")
def tmod():  # type: ignore[no-untyped-def]
    return Module.from_c(C_TYPES, name="types")


@FAST
@given(a=f32, b=f32)
def test_two_float_results(tmod, a: float, b: float) -> None:  # type: ignore[no-untyped-def]
    f = tmod.function("f2")
    exact = (2 * a * b, a * a)
    (d,) = autodiff(Reverse, f, Active, Active(a), Active(b))
    assert_close(d, exact, rtol=2e-6, atol=1e-6)
    fds = [fd_partial(f, [a, b], i, h=1e-2) for i in range(2)]
    assert_close(d, fds, rtol=2e-2, atol=2e-2)
    d2, p = autodiff(ReverseWithPrimal, f, Active, Active(a), Active(b))
    assert_close(d2, exact, rtol=2e-6, atol=1e-6)
    assert_close(p, a * a * b, rtol=2e-6, atol=1e-6)


@FAST
@given(a=f32, b=f32, c=f32)
def test_three_float_results(tmod, a: float, b: float, c: float) -> None:  # type: ignore[no-untyped-def]
    f = tmod.function("f3")
    exact = (b + 3 * c, a + c * c, 2 * b * c + 3 * a)
    (d,) = autodiff(Reverse, f, Active, Active(a), Active(b), Active(c))
    assert len(d) == 3
    assert_close(d, exact, rtol=2e-6, atol=1e-5)
    fds = [fd_partial(f, [a, b, c], i, h=1e-2) for i in range(3)]
    assert_close(d, fds, rtol=2e-2, atol=2e-2)
    d2, p = autodiff(ReverseWithPrimal, f, Active, Active(a), Active(b), Active(c))
    assert_close(d2, exact, rtol=2e-6, atol=1e-5)
    assert_close(p, a * b + b * c * c + 3 * a * c, rtol=2e-6, atol=1e-5)
    # two of three Active: the struct shrinks to {float, float}
    (d3,) = autodiff(Reverse, f, Active, Active(a), Const(b), Active(c))
    assert d3[1] is None
    assert_close([d3[0], d3[2]], [exact[0], exact[2]], rtol=2e-6, atol=1e-5)


@FAST
@given(a=f32, b=f32, c=f32, d=f32, e=f32)
def test_five_float_results(tmod, a: float, b: float, c: float, d: float, e: float) -> None:  # type: ignore[no-untyped-def]
    f = tmod.function("f5")
    exact = (b * c, a * c, a * b, 2 * d * e, d * d)
    res = autodiff(Reverse, f, Active, *(Active(v) for v in (a, b, c, d, e)))
    assert_close(res[0], exact, rtol=2e-6, atol=1e-5)
    assert_close(gradient(f, a, b, c, d, e), exact, rtol=2e-6, atol=1e-5)
    tangents = (1.0, -1.0, 0.5, 2.0, -0.25)
    t, p = autodiff(ForwardWithPrimal, f, Duplicated,
                    *(Duplicated(v, w) for v, w in zip((a, b, c, d, e), tangents, strict=True)))
    assert_close(t, sum(x * w for x, w in zip(exact, tangents, strict=True)), rtol=1e-5,
                 atol=1e-5)
    assert_close(p, a * b * c + d * d * e, rtol=2e-6, atol=1e-5)


@FAST
@given(x=st.floats(-3, 3), k=st.integers(-1000, 1000), y=f32, s=st.integers(-300, 300),
       flag=st.integers(0, 255), neg=st.booleans())
def test_mixed_scalar_widths(tmod, x: float, k: int, y: float, s: int, flag: int,  # type: ignore[no-untyped-def]
                             neg: bool) -> None:
    f = tmod.function("mixed")
    sign = -1.0 if neg else 1.0
    yy = float(np.float32(y) * np.float32(y))  # C squares y in float, then widens
    primal = sign * (x * k + yy * s + flag)
    # float32 rounding of the y terms, scaled by their size (the sum may cancel)
    tol32 = 1e-6 * (1.0 + abs(yy * s) + abs(y * s))
    assert_close(f(x, k, y, s, flag, neg), primal, rtol=1e-12, atol=1e-9)
    (d,) = autodiff(Reverse, f, Active, Active(x), k, Active(y), s, Const(flag), neg)
    assert d[1] is None and d[3] is None and d[4] is None and d[5] is None
    assert_close(d[0], sign * k, rtol=1e-15)
    assert_close(d[2], sign * 2 * y * s, rtol=1e-6, atol=tol32)
    assert_close(d[0], fd_partial(lambda v: f(v, k, y, s, flag, neg), [x], 0),
                 rtol=1e-6, atol=1e-6)
    (t,) = autodiff(Forward, f, Duplicated, Duplicated(x, 1.0), k, Duplicated(y, 0.5), s, flag,
                    neg)
    assert_close(t, sign * (k + y * s), rtol=1e-6, atol=tol32)


def test_integer_and_boolean_returns(tmod) -> None:  # type: ignore[no-untyped-def]
    cp = tmod.function("count_positive")
    x = np.array([1.0, -2.0, 3.0, 0.0])
    assert cp(x, 4) == 2 and isinstance(cp(x, 4), int)
    si = tmod.function("scaled_int")
    assert si(6, 7) == 43 and isinstance(si(6, 7), int)
    assert si(-(2**15), 2**15) == -(2**30) + 1
    big = tmod.function("is_big")
    assert big(11.0) is True or big(11.0) == 1
    assert not big(3.0)
    # An integer-valued function has no derivative: only Const makes sense as its return.
    assert autodiff(Reverse, cp, Const, Duplicated(x, np.zeros(4)), 4) == ((None, None),)
    assert autodiff(ForwardWithPrimal, cp, Const, Duplicated(x, np.ones(4)), 4) == (2,)


def test_nonfinite_values_propagate(tmod) -> None:  # type: ignore[no-untyped-def]
    f = tmod.function("f2")
    ((da, db),) = autodiff(Reverse, f, Active, Active(math.inf), Active(1.0))
    assert math.isinf(da) or math.isnan(da)
    assert math.isinf(db)


def test_many_and_mixed_active_results(tmod) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    x = np.array([1.0, 2.0, 3.0])
    dx = np.zeros(3)
    res, p = autodiff(ReverseWithPrimal, tmod.function("wsum3"), Active, Duplicated(x, dx), 3,
                      Active(2.0), Active(3.0), Active(4.0))
    assert res == (None, None, 6.0, 1.0, 8.0) and p == 31.0
    np.testing.assert_array_equal(dx, [5.0, 2.0, 2.0])

    ten = tmod.function("ten")
    args = [0.5 * i - 1.0 for i in range(10)]
    (d,) = autodiff(Reverse, ten, Active, *(Active(v) for v in args))
    exact = [float(i + 1) for i in range(9)] + [20.0 * args[9]]
    assert list(d) == exact
    assert_close(d, [fd_partial(ten, args, i) for i in range(10)], rtol=1e-6, atol=1e-6)

    mixret = tmod.function("mixret")
    d3, p3 = autodiff(ReverseWithPrimal, mixret, Active, Active(2.0), Active(3.0), Active(4.0))
    assert d3 == (3.0, 2.0, 8.0) and p3 == 22.0
    assert autodiff(Forward, mixret, Duplicated, Duplicated(2.0, 1.0), Duplicated(3.0, 1.0),
                    Duplicated(4.0, 1.0)) == (13.0,)
