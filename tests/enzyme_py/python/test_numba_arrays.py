"""Array functions: 1-D and 2-D, Duplicated and Const, outputs written in place."""

from __future__ import annotations

import math

import numpy as np
import pytest


def sum_of_squares(a):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * a[i]
    return s


def rosenbrock(x):
    s = 0.0
    for i in range(x.shape[0] - 1):
        s += 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


def rosenbrock_grad(x):
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return g


def logsumexp_loop(x):
    m = x[0]
    for i in range(1, x.shape[0]):
        m = max(m, x[i])
    s = 0.0
    for i in range(x.shape[0]):
        s += math.exp(x[i] - m)
    return m + math.log(s)


def dot(a, b):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


def mlp_loss(W1, b1, w2, X, y):
    """Two-layer tanh network, mean squared error; W1 (h, d), b1 (h,), w2 (h,), X (n, d)."""
    h, d = W1.shape
    n = X.shape[0]
    loss = 0.0
    for k in range(n):
        out = 0.0
        for j in range(h):
            z = b1[j]
            for i in range(d):
                z += W1[j, i] * X[k, i]
            out += w2[j] * math.tanh(z)
        r = out - y[k]
        loss += r * r
    return loss / n


def mlp_grads(W1, b1, w2, X, y):
    Z = X @ W1.T + b1
    H = np.tanh(Z)
    r = H @ w2 - y
    n = X.shape[0]
    dout = 2.0 * r / n
    dw2 = H.T @ dout
    dZ = np.outer(dout, w2) * (1.0 - H**2)
    return dZ.T @ X, dZ.sum(axis=0), dw2


def rk4_decay(y0, k, dt, steps):
    """RK4 for y' = -k y on every component; returns the sum of the final state."""
    total = 0.0
    for c in range(y0.shape[0]):
        y = y0[c]
        for _ in range(steps):
            k1 = -k * y
            k2 = -k * (y + 0.5 * dt * k1)
            k3 = -k * (y + 0.5 * dt * k2)
            k4 = -k * (y + dt * k3)
            y = y + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        total += y
    return total


def weighted_matrix(A):
    s = 0.0
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            s += (i + 1.0) * A[i, j] ** 2 + math.sin(A[i, j]) * j
    return s


def square_into(x, out):
    for i in range(x.shape[0]):
        out[i] = x[i] * x[i] * 3.0


def scale_rows_into(A, s, out):
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            out[i, j] = A[i, j] * s[i]


RNG = np.random.default_rng(1234)
X5 = RNG.uniform(-1.0, 1.0, 7)


@pytest.mark.parametrize(
    ("f", "args", "analytic"),
    [
        (sum_of_squares, (X5.copy(),), lambda a: [2 * a]),
        (rosenbrock, (X5.copy(),), lambda x: [rosenbrock_grad(x)]),
        (
            logsumexp_loop,
            (X5.copy(),),
            lambda x: [np.exp(x - x.max()) / np.exp(x - x.max()).sum()],
        ),
        (dot, (X5.copy(), X5[::-1].copy()), lambda a, b: [b, a]),
        (weighted_matrix, (RNG.normal(size=(3, 4)),),
         lambda A: [2 * np.arange(1.0, 4.0)[:, None] * A + np.cos(A) * np.arange(4.0)[None, :]]),
    ],
    ids=lambda c: getattr(c, "__name__", None),
)
def test_array_gradients(bridge, fd, f, args, analytic):
    grads = bridge.reverse(f, *args)
    for g, e, n in zip(grads, analytic(*args), fd(f, args)):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("f", "args"),
    [
        (sum_of_squares, (X5.copy(),)),
        (rosenbrock, (X5.copy(),)),
        (logsumexp_loop, (X5.copy(),)),
        (dot, (X5.copy(), X5[::-1].copy())),
        (weighted_matrix, (RNG.normal(size=(3, 4)),)),
    ],
    ids=lambda c: getattr(c, "__name__", None),
)
def test_forward_matches_reverse_on_arrays(bridge, f, args):
    rng = np.random.default_rng(11)
    tangents = [rng.normal(size=a.shape) for a in args]
    grads = bridge.reverse(f, *args)
    expected = sum(float(np.sum(g * v)) for g, v in zip(grads, tangents))
    assert bridge.forward(f, args, tangents) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_mlp_loss(bridge, fd):
    W1 = RNG.normal(size=(4, 3))
    b1 = RNG.normal(size=4)
    w2 = RNG.normal(size=4)
    X = RNG.normal(size=(6, 3))
    y = RNG.normal(size=6)
    args = (W1, b1, w2, X, y)
    grads = bridge.reverse(mlp_loss, *args, active=[True, True, True, False, False])
    assert grads[3] is None and grads[4] is None
    for g, e, n in zip(grads[:3], mlp_grads(*args), fd(mlp_loss, args)[:3]):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-8)
    tangents = [RNG.normal(size=W1.shape), RNG.normal(size=b1.shape), RNG.normal(size=w2.shape), None, None]
    expected = sum(float(np.sum(g * t)) for g, t in zip(grads[:3], tangents[:3]))
    assert bridge.forward(mlp_loss, args, tangents) == pytest.approx(expected, rel=1e-10)


def test_rk4_integrator(bridge, fd):
    y0 = np.array([1.0, 0.5, -2.0])
    k, dt, steps = 0.7, 0.1, 20
    gy0, gk, gdt, gsteps = bridge.reverse(rk4_decay, y0, k, dt, steps)
    a = k * dt
    growth = 1 - a + a**2 / 2 - a**3 / 6 + a**4 / 24
    np.testing.assert_allclose(gy0, np.full(3, growth**steps), rtol=1e-12)
    dgrowth = -1 + a - a**2 / 2 + a**3 / 6
    assert gk == pytest.approx(y0.sum() * steps * growth ** (steps - 1) * dgrowth * dt, rel=1e-10)
    assert gdt == pytest.approx(y0.sum() * steps * growth ** (steps - 1) * dgrowth * k, rel=1e-10)
    assert gsteps is None
    numeric = fd(rk4_decay, (y0, k, dt, steps))
    assert gk == pytest.approx(numeric[1], rel=1e-6)
    np.testing.assert_allclose(gy0, numeric[0], rtol=1e-6)


def test_in_place_output_reverse_and_forward(bridge):
    x = X5.copy()
    out = np.zeros_like(x)
    seed = RNG.normal(size=x.shape)
    gx, gout = bridge.reverse(square_into, x, out, seeds={1: seed})
    np.testing.assert_allclose(out, 3 * x * x, rtol=1e-15)
    np.testing.assert_allclose(gx, 6 * x * seed, rtol=1e-12)
    np.testing.assert_array_equal(gout, np.zeros_like(x))  # the seed is consumed
    v = RNG.normal(size=x.shape)
    _, tout = bridge.forward(square_into, (x, np.zeros_like(x)), (v, np.zeros_like(x)))
    np.testing.assert_allclose(tout, 6 * x * v, rtol=1e-12)
    assert float(tout @ seed) == pytest.approx(float(gx @ v), rel=1e-10)


def test_in_place_2d_output(bridge):
    A = RNG.normal(size=(3, 5))
    s = RNG.normal(size=3)
    out = np.zeros_like(A)
    seed = RNG.normal(size=A.shape)
    gA, gs, _ = bridge.reverse(scale_rows_into, A, s, out, seeds={2: seed})
    np.testing.assert_allclose(out, A * s[:, None], rtol=1e-15)
    np.testing.assert_allclose(gA, seed * s[:, None], rtol=1e-12)
    np.testing.assert_allclose(gs, (seed * A).sum(axis=1), rtol=1e-12)


def test_const_array_gets_no_gradient(bridge):
    a, b = X5.copy(), X5[::-1].copy()
    ga, gb = bridge.reverse(dot, a, b, active=[True, False])
    np.testing.assert_allclose(ga, b, rtol=1e-14)
    assert gb is None


def test_float32_arrays(bridge):
    x = X5.astype(np.float32)
    (g,) = bridge.reverse(sum_of_squares, x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, 2 * x, rtol=1e-6)


def gather_cubes(x, idx):
    s = 0.0
    for i in range(idx.shape[0]):
        s += x[idx[i]] ** 3
    return s


def test_integer_index_array_is_const(bridge):
    x = np.arange(1.0, 6.0)
    idx = np.array([0, 2, 2, 4])
    gx, gidx = bridge.reverse(gather_cubes, x, idx)
    assert gidx is None
    np.testing.assert_allclose(gx, [3.0, 0.0, 2 * 27.0, 0.0, 75.0], rtol=1e-14)


def test_same_array_passed_twice_accumulates():
    import enzyme_py as ez

    a = np.arange(1.0, 4.0)
    da = np.zeros_like(a)
    assert ez.autodiff(ez.Reverse, dot, ez.Active, ez.Duplicated(a, da), ez.Duplicated(a, da)) == ((None, None),)
    np.testing.assert_allclose(da, 2 * a, rtol=1e-15)


def test_closure_constant(bridge):
    scale = 3.0

    def scaled_square(x):
        return scale * x * x

    assert bridge.reverse(scaled_square, 2.0) == [pytest.approx(12.0)]


def test_empty_arrays(bridge):
    (g,) = bridge.reverse(sum_of_squares, np.zeros(0))
    assert g.shape == (0,)
