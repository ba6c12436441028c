"""Functions that allocate array temporaries, and functions that raise."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest


def times_two_then_dot(a):
    b = a * 2.0
    return np.sum(b * a)


def empty_then_fill(a):
    t = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        t[i] = math.sin(a[i])
    s = 0.0
    for i in range(a.shape[0]):
        s += t[i] * a[i]
    return s


def sum_of_powers(x):
    return np.sum(x**2)


def max_times_sum(x):
    return x.max() * np.sum(x)


def logsumexp_numpy(x):
    m = x.max()
    return m + math.log(np.sum(np.exp(x - m)))


def ufunc_chain(x, y):
    return np.sum(np.tanh(x) * np.exp(-y * y))


def matrix_temporaries(A):
    B = A * A + 1.0
    return np.sum(np.log(B))


def negative_raises(x):
    if x < 0:
        raise ValueError("negative input")
    return math.sqrt(x)


class CustomError(Exception):
    pass


def custom_raises(a, limit):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i]
    if s > limit:
        raise CustomError("sum too large", 3)
    return s * s


def index_at(a, i):
    return a[i] * 2.0


X = np.random.default_rng(99).uniform(-1.0, 1.0, 9)


@pytest.mark.parametrize(
    ("f", "analytic"),
    [
        (times_two_then_dot, lambda a: 4 * a),
        (empty_then_fill, lambda a: np.cos(a) * a + np.sin(a)),
        (sum_of_powers, lambda x: 2 * x),
        (max_times_sum, lambda x: x.max() + (np.arange(x.size) == np.argmax(x)) * x.sum()),
        (logsumexp_numpy, lambda x: np.exp(x - x.max()) / np.exp(x - x.max()).sum()),
    ],
    ids=lambda c: getattr(c, "__name__", None),
)
def test_allocating_functions(bridge, fd, f, analytic):
    x = X.copy()
    (g,) = bridge.reverse(f, x)
    np.testing.assert_allclose(g, analytic(x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g, fd(f, (x,))[0], rtol=1e-6, atol=1e-8)
    v = np.random.default_rng(5).normal(size=x.shape)
    assert bridge.forward(f, (x,), (v,)) == pytest.approx(float(g @ v), rel=1e-10, abs=1e-12)


def test_allocating_two_arguments(bridge, fd):
    x, y = X.copy(), X[::-1].copy()
    gx, gy = bridge.reverse(ufunc_chain, x, y)
    np.testing.assert_allclose(gx, np.exp(-y * y) / np.cosh(x) ** 2, rtol=1e-10)
    np.testing.assert_allclose(gy, -2 * y * np.tanh(x) * np.exp(-y * y), rtol=1e-10)
    nx, ny = fd(ufunc_chain, (x, y))
    np.testing.assert_allclose(gx, nx, rtol=1e-6)
    np.testing.assert_allclose(gy, ny, rtol=1e-6, atol=1e-9)


def test_allocating_2d(bridge):
    A = np.random.default_rng(3).normal(size=(4, 3))
    (g,) = bridge.reverse(matrix_temporaries, A)
    np.testing.assert_allclose(g, 2 * A / (A * A + 1.0), rtol=1e-10)


def test_repeated_calls_reuse_and_stay_correct(bridge):
    x = X.copy()
    first = bridge.reverse(times_two_then_dot, x)[0]
    for _ in range(50):
        again = bridge.reverse(times_two_then_dot, x)[0]
        np.testing.assert_array_equal(again, first)


def test_raise_in_body_surfaces(bridge):
    assert bridge.reverse(negative_raises, 4.0) == [pytest.approx(0.25)]
    with pytest.raises(ValueError, match="negative input") as info:
        bridge.reverse(negative_raises, -1.0)
    assert any("negative_raises" in note for note in info.value.__notes__)
    with pytest.raises(ValueError, match="negative input"):
        bridge.forward(negative_raises, (-1.0,), (1.0,))
    with pytest.raises(ValueError, match="negative input"):
        bridge.call(negative_raises, -2.0)


def test_user_exception_class_and_args(bridge):
    a = np.ones(4)
    (g, _) = bridge.reverse(custom_raises, a, 10.0, active=[True, False])
    np.testing.assert_allclose(g, np.full(4, 8.0))
    with pytest.raises(CustomError) as info:
        bridge.reverse(custom_raises, a, 1.0, active=[True, False])
    assert info.value.args == ("sum too large", 3)


def test_out_of_bounds_with_boundscheck(bridge):
    checked = numba.njit(boundscheck=True)(index_at)
    a = X.copy()
    g, _ = bridge.reverse(checked, a, 2)
    np.testing.assert_array_equal(g, 2.0 * (np.arange(a.size) == 2))
    with pytest.raises(IndexError):
        bridge.reverse(checked, a, a.size + 3)
    with pytest.raises(IndexError):
        bridge.call(checked, a, -a.size - 1)


def test_zero_size_reduction_raises(bridge):
    with pytest.raises(ValueError, match="zero-size array"):
        bridge.reverse(max_times_sum, np.zeros(0))


@numba.njit
def _checked_sqrt(u):
    if u < 0:
        raise ArithmeticError("negative in callee", 7)
    return math.sqrt(u)


def calls_raising_helper(x):
    return _checked_sqrt(x) * 2.0


def test_exception_raised_in_a_called_jitted_function(bridge):
    assert bridge.reverse(calls_raising_helper, 4.0) == [pytest.approx(0.5)]
    with pytest.raises(ArithmeticError) as info:
        bridge.reverse(calls_raising_helper, -4.0)
    assert info.value.args == ("negative in callee", 7)


def outer_tanh(x, y):
    t = np.empty((x.shape[0], y.shape[0]))
    for i in range(x.shape[0]):
        for j in range(y.shape[0]):
            t[i, j] = x[i] * y[j]
    return np.sum(np.tanh(t))


def test_2d_temporary_from_np_empty(bridge, fd):
    x = np.linspace(0.0, 1.0, 4)
    y = np.array([-1.0, 0.3, 2.0])
    gx, gy = bridge.reverse(outer_tanh, x, y)
    s = 1.0 - np.tanh(np.outer(x, y)) ** 2
    np.testing.assert_allclose(gx, s @ y, rtol=1e-10)
    np.testing.assert_allclose(gy, s.T @ x, rtol=1e-10)
    nx, ny = fd(outer_tanh, (x, y))
    np.testing.assert_allclose(gx, nx, rtol=1e-6)
    np.testing.assert_allclose(gy, ny, rtol=1e-6)
