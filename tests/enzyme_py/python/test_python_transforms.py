"""Python functions get the whole vocabulary: array and tuple results, Jacobians of
vector-valued functions, hvp, split mode, vector mode on arrays, every scalar type numba
types, self-recursion, and lowerings that die with their function.

Derivatives are compared with analytic values and with central differences of the plain
Python function run by CPython (tests.support.fd).
"""

from __future__ import annotations

import gc
import math
import weakref

import numba
import numpy as np
import pytest

import enzyme_py as ez
from tests.support.fd import central_difference


def vector_valued(x):  # type: ignore[no-untyped-def]
    out = np.empty(3)
    out[0] = x[0] * x[1]
    out[1] = math.sin(x[1])
    out[2] = x[0] ** 2
    return out


def vector_valued_jac(x):  # type: ignore[no-untyped-def]
    return np.array([[x[1], x[0]], [0.0, math.cos(x[1])], [2 * x[0], 0.0]])


def elementwise(x):  # type: ignore[no-untyped-def]
    return np.sin(x) * x


def matrix_result(a):  # type: ignore[no-untyped-def]
    return a.T.copy() * 2.0


def every_other(x):  # type: ignore[no-untyped-def]
    return x[::2]  # a view of the input: strided


def pair(a, b):  # type: ignore[no-untyped-def]
    return (a * b, a + b)


def rosen(x):  # type: ignore[no-untyped-def]
    s = 0.0
    for i in range(x.shape[0] - 1):
        s += 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


X = np.array([1.5, 0.5])


def test_array_result_primal_forward_reverse() -> None:
    np.testing.assert_allclose(ez.lower(vector_valued, X)(X), vector_valued(X))
    (t,) = ez.autodiff(ez.Forward, vector_valued, ez.Duplicated, ez.Duplicated(X, np.array([1.0, 0.0])))
    np.testing.assert_allclose(t, vector_valued_jac(X)[:, 0], rtol=1e-14)
    t, y = ez.autodiff(ez.ForwardWithPrimal, vector_valued, ez.Duplicated, ez.Duplicated(X, np.array([0.0, 1.0])))
    np.testing.assert_allclose(t, vector_valued_jac(X)[:, 1], rtol=1e-14)
    np.testing.assert_allclose(y, vector_valued(X))
    dx = np.zeros(2)
    seed = np.array([1.0, 2.0, -1.0])
    kept = seed.copy()
    ((d,),) = ez.autodiff(ez.Reverse, vector_valued, ez.Duplicated, ez.Duplicated(X, dx), seed=seed)
    assert d is None
    np.testing.assert_allclose(dx, seed @ vector_valued_jac(X), rtol=1e-14)
    np.testing.assert_array_equal(seed, kept)  # the caller's seed is not consumed
    (c,) = ez.autodiff(ez.ForwardWithPrimal, vector_valued, ez.Const, ez.Const(X))
    np.testing.assert_allclose(c, vector_valued(X))


@pytest.mark.parametrize("mode", [ez.Forward, ez.Reverse], ids=["forward", "reverse"])
@pytest.mark.parametrize("chunk", [None, 1, 2])
def test_jacobian_of_a_vector_valued_function(mode, chunk) -> None:  # type: ignore[no-untyped-def]
    (jac,) = ez.jacobian(mode, vector_valued, X, chunk=chunk)
    assert jac.shape == (3, 2)
    np.testing.assert_allclose(jac, vector_valued_jac(X), rtol=1e-14)
    np.testing.assert_allclose(jac, central_difference(vector_valued, X), rtol=1e-7, atol=1e-9)
    x = np.linspace(-1.0, 2.0, 7)
    (je,) = ez.jacobian(mode, elementwise, x, chunk=chunk)
    np.testing.assert_allclose(je, np.diag(np.cos(x) * x + np.sin(x)), rtol=1e-13, atol=1e-15)


def test_jacobian_shapes_of_matrix_results_and_views() -> None:
    a = np.arange(6.0).reshape(2, 3)
    for mode in (ez.Forward, ez.Reverse):
        (j,) = ez.jacobian(mode, matrix_result, a)
        assert j.shape == (3, 2, 2, 3)
        np.testing.assert_allclose(j, central_difference(matrix_result, a), atol=1e-8)
        x = np.arange(6.0)
        (jv,) = ez.jacobian(mode, every_other, x)
        np.testing.assert_array_equal(jv, np.eye(6)[::2])


def test_the_result_shape_follows_the_input_shape() -> None:
    for n in (3, 8, 1, 8):  # a cached shape is checked on every call
        x = np.linspace(0.0, 1.0, n)
        (t,) = ez.autodiff(ez.Forward, elementwise, ez.Duplicated, ez.Duplicated(x, np.ones(n)))
        assert t.shape == (n,)
        np.testing.assert_allclose(t, np.cos(x) * x + np.sin(x), rtol=1e-14)


def test_tuple_results() -> None:
    assert ez.lower(pair, 1.0, 2.0)(2.0, 3.0) == (6.0, 5.0)
    assert ez.autodiff(ez.Forward, pair, ez.Duplicated, ez.Duplicated(2.0, 1.0), 3.0) == ((3.0, 1.0),)
    assert ez.autodiff(ez.Reverse, pair, ez.Duplicated, ez.Active(2.0), ez.Active(3.0), seed=(1.0, 0.0)) == (
        (3.0, 2.0),
    )
    assert ez.autodiff(ez.Reverse, pair, ez.Duplicated, ez.Active(2.0), ez.Active(3.0), seed=(0.0, 1.0)) == (
        (1.0, 1.0),
    )


def test_result_requests_are_validated() -> None:
    with pytest.raises(TypeError, match="seed"):
        ez.autodiff(ez.Reverse, vector_valued, ez.Duplicated, ez.Duplicated(X, np.zeros(2)))
    with pytest.raises(ValueError, match="seed has shape"):
        ez.autodiff(ez.Reverse, vector_valued, ez.Duplicated, ez.Duplicated(X, np.zeros(2)), seed=np.ones(2))
    with pytest.raises(TypeError, match="not Active"):
        ez.autodiff(ez.Reverse, vector_valued, ez.Active, ez.Duplicated(X, np.zeros(2)))
    with pytest.raises(TypeError, match="returning a float"):
        ez.gradient(vector_valued, X)
    with pytest.raises(TypeError, match="seed= does not apply"):
        ez.autodiff(ez.Reverse, rosen, ez.Active, ez.Duplicated(X, np.zeros(2)), seed=np.ones(3))


def test_hvp_and_gradient_of_a_plain_python_function() -> None:
    x = np.array([1.2, -0.7, 0.4, 2.0])
    v = np.array([1.0, 0.0, -1.0, 0.5])
    hv, g = ez.hvp_and_gradient(rosen, x, v)
    grad = central_difference(rosen, x)
    np.testing.assert_allclose(g, grad, rtol=1e-6)

    def gradient(y):  # type: ignore[no-untyped-def]
        return ez.gradient(rosen, y)[0]

    np.testing.assert_allclose(hv, central_difference(gradient, x) @ v, rtol=1e-6)
    np.testing.assert_allclose(ez.hvp(rosen, x, v), hv, rtol=1e-15)


def test_split_mode_on_a_python_function() -> None:
    fwd, rev = ez.autodiff_thunk(ez.ReverseSplitWithPrimal, rosen, ez.Active, ez.Duplicated)
    x, dx = np.array([1.2, -0.7, 0.4]), np.zeros(3)
    tape, primal, _ = fwd(ez.Duplicated(x, dx))
    assert primal == pytest.approx(rosen(x))
    assert rev(ez.Duplicated(x, dx), 1.0, tape) == ((None,),)
    np.testing.assert_allclose(dx, ez.gradient(rosen, x)[0], rtol=1e-14)
    with pytest.raises(ez.TapeError):
        rev(ez.Duplicated(x, dx), 1.0, tape)


def test_batched_arrays_on_a_python_function() -> None:
    x = np.array([1.2, -0.7, 0.4])
    eye = np.eye(3)
    (dirs,) = ez.autodiff(ez.Forward, rosen, ez.BatchDuplicated, ez.BatchDuplicated(x, tuple(eye)))
    np.testing.assert_allclose(dirs, ez.gradient(rosen, x)[0], rtol=1e-13)
    shadows = (np.zeros(3), np.zeros(3))
    ez.autodiff(ez.Reverse, rosen, ez.Active, ez.BatchDuplicated(x, shadows))
    for s in shadows:
        np.testing.assert_allclose(s, ez.gradient(rosen, x)[0], rtol=1e-14)


def scaled(x, k, flag):  # type: ignore[no-untyped-def]
    return x * k if flag else x - k


@pytest.mark.parametrize(
    "k",
    [np.int8(3), np.int16(3), np.int32(3), np.int64(3), np.uint8(3), np.uint16(3), np.uint32(3),
     np.uint64(3), 3],
    ids=lambda k: type(k).__name__,
)
def test_every_integer_scalar_type(k) -> None:  # type: ignore[no-untyped-def]
    assert ez.gradient(scaled, 2.0, k, True) == (3.0, None, None)
    assert ez.lower(scaled, 2.0, k, True)(2.0, k, False) == -1.0
    assert ez.autodiff(ez.Forward, scaled, ez.Duplicated, ez.Duplicated(2.0, 1.0), k, np.bool_(True)) == (3.0,)


def test_float32_bool_results_and_ranges() -> None:
    assert ez.gradient(scaled, np.float32(2.0), 3, True) == (3.0, None, None)

    def positive(x):  # type: ignore[no-untyped-def]
        return x > 1.0

    low = ez.lower(positive, 2.0)
    assert low(2.0) is True and low(0.5) is False
    with pytest.raises(ValueError, match="argument 1 of scaled .*300 does not fit in uint8"):
        ez.lower(scaled, 2.0, np.uint8(3), True)(2.0, 300, True)


def test_self_recursive_numba_function() -> None:
    @numba.njit
    def power(x, n):  # type: ignore[no-untyped-def]
        if n <= 0:
            return 1.0
        return x * power(x, n - 1)

    assert power(2.0, 3) == 8.0
    assert ez.gradient(power, 2.0, 3) == (12.0, None)
    assert ez.autodiff(ez.Forward, power, ez.Duplicated, ez.Duplicated(1.5, 1.0), 4) == (
        pytest.approx(4 * 1.5**3),
    )


def test_lowerings_die_with_their_function() -> None:
    """Closures differentiated and deleted leave no module alive."""
    def make(k: float):  # type: ignore[no-untyped-def]
        def closure(x):  # type: ignore[no-untyped-def]
            return k * x * x

        return closure

    refs = []
    for k in range(5):
        closure = make(float(k))
        assert ez.gradient(closure, 3.0) == (6.0 * k,)
        refs.append((weakref.ref(closure), weakref.ref(ez.lower(closure, 3.0).module)))
        del closure
    # a function's death frees its prepared-call table in a weakref callback during the
    # collection; the module <-> Function cycle that table held is garbage for the next one
    for _ in range(3):
        gc.collect()
    # numba itself may keep the function it compiled last; every function that is gone
    # took its module (and compiled code) with it
    gone = [module() is None for function, module in refs if function() is None]
    assert len(gone) >= 4 and all(gone), refs
