"""jacobian (forward by columns, reverse by rows), hvp and hvp_and_gradient."""

from __future__ import annotations

import numpy as np
import pytest

import enzyme_py as ez

from ._support import central_difference, rosen_grad, rosen_hess, vecfun_jac, vecfun_np

X = np.array([0.3, 1.2, -0.7, 2.0, 0.1])
N = X.size


@pytest.mark.parametrize("chunk", [None, 1, 2, 3, 5, 64])
def test_forward_jacobian_in_place_output(mod, chunk) -> None:  # type: ignore[no-untyped-def]
    (jac,) = ez.jacobian(ez.Forward, mod.function("vecfun"), X, np.empty(N + 1), N, chunk=chunk)
    assert jac.shape == (N + 1, N)
    np.testing.assert_allclose(jac, vecfun_jac(X), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("chunk", [None, 1, 4])
def test_reverse_jacobian_in_place_output(mod, chunk) -> None:  # type: ignore[no-untyped-def]
    (jac,) = ez.jacobian(ez.Reverse, mod.function("vecfun"), X, np.empty(N + 1), N, chunk=chunk)
    np.testing.assert_allclose(jac, vecfun_jac(X), rtol=1e-12, atol=1e-14)


def test_jacobian_columns_and_rows_agree_with_single_calls(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("vecfun")
    (fwd,) = ez.jacobian(ez.Forward, f, X, np.empty(N + 1), N, chunk=2)
    (rev,) = ez.jacobian(ez.Reverse, f, X, np.empty(N + 1), N, chunk=3)
    for j in range(N):  # column j: one forward call with tangent e_j
        dy = np.zeros(N + 1)
        ez.autodiff(ez.Forward, f, ez.Const, ez.Duplicated(X.copy(), np.eye(N)[j].copy()),
                    ez.Duplicated(np.empty(N + 1), dy), N)
        np.testing.assert_array_equal(fwd[:, j], dy)
    for i in range(N + 1):  # row i: one reverse call with seed e_i
        dx = np.zeros(N)
        ez.autodiff(ez.Reverse, f, ez.Const, ez.Duplicated(X.copy(), dx),
                    ez.Duplicated(np.empty(N + 1), np.eye(N + 1)[i].copy()), N)
        np.testing.assert_allclose(rev[i], dx, rtol=1e-15, atol=0)
    np.testing.assert_allclose(fwd, rev, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fwd, central_difference(vecfun_np, X), rtol=1e-6, atol=1e-8)


def test_jacobian_output_position_and_shapes(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("vecfun_yx")  # (y, x, n)
    (jac,) = ez.jacobian(ez.Forward, f, np.empty(N + 1), X, N, wrt=1, out=0)
    np.testing.assert_allclose(jac, vecfun_jac(X), rtol=1e-12)
    (jac_r,) = ez.jacobian(ez.Reverse, f, np.empty(N + 1), X, N, wrt=1, out=0)
    np.testing.assert_allclose(jac_r, jac, rtol=1e-12)
    if not isinstance(f, ez.Function):
        return  # a C pointer sees a 2-D array as flat memory; Python indexes its rows
    # a 2-D output array: the result has shape y.shape + x.shape
    x2 = np.array([0.3, 1.2, -0.7])
    (j2,) = ez.jacobian(ez.Forward, mod.function("vecfun"), x2, np.empty((2, 2)), 3)
    assert j2.shape == (2, 2, 3)
    np.testing.assert_allclose(j2.reshape(4, 3), vecfun_jac(x2), rtol=1e-12)


@pytest.mark.parametrize("mode", [ez.Forward, ez.Reverse])
def test_scalar_output_jacobian_is_the_gradient(mod, mode) -> None:  # type: ignore[no-untyped-def]
    (g,) = ez.jacobian(mode, mod.function("rosen"), X, N, chunk=2)
    assert g.shape == X.shape
    np.testing.assert_allclose(g, rosen_grad(X), rtol=1e-12)
    np.testing.assert_allclose(g, ez.gradient(mod.function("rosen"), X, N)[0], rtol=1e-12)


def test_jacobian_invalid_requests(mod) -> None:  # type: ignore[no-untyped-def]
    f, rosen = mod.function("vecfun"), mod.function("rosen")
    y = np.empty(N + 1)
    with pytest.raises(ValueError, match="chunk"):
        ez.jacobian(ez.Forward, f, X, y, N, chunk=0)
    with pytest.raises(ValueError, match="same argument"):
        ez.jacobian(ez.Forward, f, X, y, N, out=0)
    with pytest.raises(ValueError, match="argument index"):
        ez.jacobian(ez.Forward, f, X, y, N, out=7)
    ro = np.empty(N + 1)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ez.jacobian(ez.Forward, f, X, ro, N)
    with pytest.raises(TypeError, match="float64 or float32"):
        ez.jacobian(ez.Forward, f, [1.0, 2.0], y, N)
    with pytest.raises(TypeError, match="WithPrimal"):
        ez.jacobian(ez.ForwardWithPrimal, f, X, y, N)
    with pytest.raises(TypeError, match="only the differentiated"):
        ez.jacobian(ez.Forward, rosen, X, ez.Active(3.0))
    with pytest.raises(TypeError, match="no output argument"):
        ez.jacobian(ez.Forward, rosen, X, N, out=1)
    with pytest.raises(TypeError, match="returns"):
        ez.jacobian(ez.Forward, mod.function("count"), X, N)
    with pytest.raises(ValueError, match="overlaps"):
        buf = np.zeros(2 * N + 1)
        ez.jacobian(ez.Forward, f, buf[:N], buf[N - 1 : 2 * N], N)
    with pytest.raises(TypeError, match="takes"):
        ez.jacobian(ez.Forward, f, X, y)


def test_hvp_matches_hessian_and_gradient_differences(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("rosen")
    v = np.array([1.0, 0.0, 0.5, -1.0, 2.0])
    hv = ez.hvp(f, X, v, N)
    np.testing.assert_allclose(hv, rosen_hess(X) @ v, rtol=1e-12)
    eps = 1e-6
    fd = (ez.gradient(f, X + eps * v, N)[0] - ez.gradient(f, X - eps * v, N)[0]) / (2 * eps)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-5)
    hv2, g = ez.hvp_and_gradient(f, X, v, N)
    np.testing.assert_array_equal(hv2, hv)
    np.testing.assert_allclose(g, rosen_grad(X), rtol=1e-12)
    # columns of the Hessian, one unit vector at a time
    hess = np.stack([ez.hvp(f, X, np.eye(N)[j].copy(), N) for j in range(N)], axis=1)
    np.testing.assert_allclose(hess, rosen_hess(X), rtol=1e-12)


def test_hvp_with_constant_scalars_and_wrt(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("scaled_rosen")  # c * rosen(x, n)
    v = np.array([0.0, 1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(ez.hvp(f, X, v, N, 2.5), 2.5 * rosen_hess(X) @ v, rtol=1e-12)
    np.testing.assert_allclose(ez.hvp(f, X, v, N, ez.Const(2.5), wrt=0), 2.5 * rosen_hess(X) @ v,
                               rtol=1e-12)


def test_hvp_invalid_requests(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("rosen")
    with pytest.raises(ValueError, match="same shape"):
        ez.hvp(f, X, np.ones(3), N)
    with pytest.raises(ValueError, match="same shape"):
        ez.hvp(f, X, np.ones(N, np.float32), N)
    with pytest.raises(TypeError, match="returning a float"):
        ez.hvp(mod.function("vecfun"), X, X, np.empty(N + 1), N)
    with pytest.raises(TypeError, match="constants"):
        ez.hvp(mod.function("scaled_rosen"), X, X, N, ez.Active(1.0))
    with pytest.raises(TypeError, match="takes"):
        ez.hvp(f, X, X)


def test_float32_hvp_and_jacobian(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("cubesf")
    x = np.array([0.5, -1.0, 2.0], np.float32)
    hv = ez.hvp(f, x, np.array([1.0, 2.0, 0.0], np.float32), 3)
    assert hv.dtype == np.float32
    np.testing.assert_allclose(hv, 6 * x * np.array([1.0, 2.0, 0.0]), rtol=1e-6)
    (g,) = ez.jacobian(ez.Forward, f, x, 3, chunk=2)
    np.testing.assert_allclose(g, 3 * x**2, rtol=1e-6)
