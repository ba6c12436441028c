"""Scalar functions of 1-4 arguments: reverse, forward, analytic and finite differences."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


def square(x):
    return x * x


def product_power(x, y):
    return x * y + x**3 / y


def transcendental(x, y, z):
    return math.exp(x) * math.sin(y) + math.cos(z) * math.log(x + 2.0)


def four(x, y, z, w):
    return math.tanh(x * y) + math.sqrt(z * z + w * w) + x**2.5 * w


def horner(x, n):
    s = 0.0
    for _ in range(n):
        s = s * x + 1.0
    return s


def piecewise(x):
    if x > 0:
        return math.sin(x) * x
    return x * x * x


@numba.njit
def bump(u):
    return u * math.exp(-u)


def calls_jitted(x, y):
    return bump(x) * bump(y) + bump(x * y)


def bump_d(u):
    return math.exp(-u) * (1.0 - u)


CASES = [
    (square, (1.0,), lambda x: [2 * x]),
    (square, (-3.5,), lambda x: [2 * x]),
    (product_power, (1.5, 2.0), lambda x, y: [y + 3 * x**2 / y, x - x**3 / y**2]),
    (
        transcendental,
        (0.5, 0.3, 0.7),
        lambda x, y, z: [
            math.exp(x) * math.sin(y) + math.cos(z) / (x + 2.0),
            math.exp(x) * math.cos(y),
            -math.sin(z) * math.log(x + 2.0),
        ],
    ),
    (
        four,
        (0.5, 0.3, 0.7, 1.1),
        lambda x, y, z, w: [
            y / math.cosh(x * y) ** 2 + 2.5 * x**1.5 * w,
            x / math.cosh(x * y) ** 2,
            z / math.hypot(z, w),
            w / math.hypot(z, w) + x**2.5,
        ],
    ),
    (horner, (0.9, 6), lambda x, n: [sum(k * x ** (k - 1) for k in range(1, n)), None]),
    (piecewise, (0.7,), lambda x: [math.cos(x) * x + math.sin(x)]),
    (piecewise, (-0.7,), lambda x: [3 * x * x]),
    (
        calls_jitted,
        (0.3, 0.9),
        lambda x, y: [
            bump_d(x) * bump.py_func(y) + y * bump_d(x * y),
            bump.py_func(x) * bump_d(y) + x * bump_d(x * y),
        ],
    ),
]


@pytest.mark.parametrize(("f", "args", "analytic"), CASES, ids=lambda c: getattr(c, "__name__", None))
def test_reverse_matches_analytic_and_fd(bridge, fd, f, args, analytic):
    grads, primal = bridge.reverse(f, *args, primal=True)
    assert primal == pytest.approx(f(*args), rel=1e-12)
    expected = analytic(*args)
    numeric = fd(f, args)
    for g, e, n in zip(grads, expected, numeric):
        if e is None:
            assert g is None
            continue
        assert g == pytest.approx(e, rel=1e-10, abs=1e-12)
        assert g == pytest.approx(n, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize(("f", "args", "analytic"), CASES, ids=lambda c: getattr(c, "__name__", None))
def test_forward_agrees_with_reverse(bridge, f, args, analytic):
    rng = np.random.default_rng(7)
    tangents = [float(rng.normal()) if isinstance(a, float) else None for a in args]
    grads = bridge.reverse(f, *args)
    expected = sum(g * t for g, t in zip(grads, tangents) if t is not None)
    assert bridge.forward(f, args, tangents) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_headline_square_at_one(bridge):
    assert bridge.reverse(square, 1.0) == [2.0]


def test_dispatcher_and_plain_function_agree(bridge):
    jitted = numba.njit(transcendental)
    args = (0.2, 1.1, -0.4)
    assert bridge.reverse(jitted, *args) == pytest.approx(bridge.reverse(transcendental, *args), rel=1e-14)


def test_float32_scalars(bridge):
    x = np.float32(1.5)
    (g,) = bridge.reverse(square, x)
    assert isinstance(g, (float, np.floating))
    assert g == pytest.approx(3.0, rel=1e-6)


def test_integer_argument_is_constant(bridge):
    (gx, gn) = bridge.reverse(horner, 0.5, 3)
    assert gn is None
    assert gx == pytest.approx(1.0 + 2 * 0.5, rel=1e-12)


def test_primal_through_entry(bridge):
    assert bridge.call(four, 0.5, 0.3, 0.7, 1.1) == pytest.approx(four(0.5, 0.3, 0.7, 1.1), rel=1e-14)


@settings(max_examples=40, deadline=None)
@given(
    x=st.floats(-3.0, 3.0),
    y=st.floats(0.1, 3.0),
    z=st.floats(-3.0, 3.0),
)
def test_reverse_matches_analytic_everywhere(bridge, x, y, z):
    x = max(x, -1.9)  # keep log(x + 2) defined
    grads = bridge.reverse(transcendental, x, y, z)
    expected = [
        math.exp(x) * math.sin(y) + math.cos(z) / (x + 2.0),
        math.exp(x) * math.cos(y),
        -math.sin(z) * math.log(x + 2.0),
    ]
    assert grads == pytest.approx(expected, rel=1e-9, abs=1e-12)
