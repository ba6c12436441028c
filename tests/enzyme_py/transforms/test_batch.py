"""Vector (batch) mode: BatchDuplicated / BatchDuplicatedNoNeed, forward and reverse."""

from __future__ import annotations

import numpy as np
import pytest

import enzyme_py as ez
from enzyme_py import BatchDuplicated, BatchDuplicatedNoNeed, Duplicated

from ._support import central_difference, vecfun_jac, vecfun_np


def test_forward_scalars_width_2_and_4(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("poly")  # x^2 y + 3y
    x, y = 1.5, -2.0
    dfdx, dfdy = 2 * x * y, x * x + 3
    got = ez.autodiff(
        ez.Forward, f, BatchDuplicated, BatchDuplicated(x, (1.0, 0.0)), BatchDuplicated(y, (0.0, 1.0))
    )
    assert got == (pytest.approx((dfdx, dfdy)),)
    assert isinstance(got[0], tuple) and len(got[0]) == 2
    tx, ty = (1.0, 0.0, 2.0, -1.0), (0.0, 1.0, 0.5, 3.0)
    got4 = ez.autodiff(
        ez.ForwardWithPrimal, f, BatchDuplicated, BatchDuplicated(x, tx), BatchDuplicated(y, ty)
    )
    want = tuple(dfdx * a + dfdy * b for a, b in zip(tx, ty))
    assert got4[0] == pytest.approx(want)
    assert got4[1] == pytest.approx(x * x * y + 3 * y)
    # each lane equals the single-tangent call
    for a, b in zip(tx, ty):
        one = ez.autodiff(ez.Forward, f, Duplicated, Duplicated(x, a), Duplicated(y, b))
        assert one[0] == pytest.approx(dfdx * a + dfdy * b)


def test_forward_batched_return_class_and_noneed(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("sq")
    # Duplicated as the return activity of a batched call is the batched return
    assert ez.autodiff(ez.Forward, f, Duplicated, BatchDuplicated(3.0, (1.0, 2.0))) == (
        pytest.approx((6.0, 12.0)),
    )
    assert ez.autodiff(
        ez.Forward, f, BatchDuplicatedNoNeed, BatchDuplicatedNoNeed(3.0, (1.0, 2.0, 3.0))
    ) == (pytest.approx((6.0, 12.0, 18.0)),)
    assert ez.autodiff(ez.ForwardWithPrimal, f, ez.Const, BatchDuplicated(3.0, (1.0, 2.0))) == (9.0,)


def test_forward_float32(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("polyf")
    got = ez.autodiff(
        ez.Forward, f, BatchDuplicated, BatchDuplicated(1.5, (1.0, 0.0, 1.0)),
        BatchDuplicated(2.0, (0.0, 1.0, 1.0)),
    )
    assert got[0] == pytest.approx((6.0, 5.25, 11.25), rel=1e-6)


def test_forward_arrays_in_place_output_columns(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("vecfun")
    n = 5
    x = np.array([0.3, 1.2, -0.7, 2.0, 0.1])
    y = np.empty(n + 1)
    eye = np.eye(n)
    dxs = tuple(eye[j].copy() for j in range(3))
    dys = tuple(np.zeros(n + 1) for _ in range(3))
    assert ez.autodiff(ez.Forward, f, ez.Const, BatchDuplicated(x, dxs), BatchDuplicated(y, dys), n) == ()
    np.testing.assert_allclose(y, vecfun_np(x))
    jac = vecfun_jac(x)
    for j in range(3):
        np.testing.assert_allclose(dys[j], jac[:, j], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        np.stack(dys, axis=1), central_difference(vecfun_np, x)[:, :3], rtol=1e-6, atol=1e-8
    )


def test_reverse_active_return_seeds_every_lane(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("cubes")
    x = np.array([0.5, -1.0, 2.0, 3.0])
    shadows = tuple(np.zeros(4) for _ in range(3))
    shadows[1][:] = 1.0  # reverse mode accumulates: lane 1 starts at 1
    got = ez.autodiff(ez.ReverseWithPrimal, f, ez.Active, BatchDuplicated(x, shadows), 4)
    assert got == ((None, None), pytest.approx(float(np.sum(x**3))))
    np.testing.assert_allclose(shadows[0], 3 * x**2)
    np.testing.assert_allclose(shadows[1], 3 * x**2 + 1)
    np.testing.assert_allclose(shadows[2], 3 * x**2)


def test_reverse_rows_of_a_jacobian(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("vecfun")
    n = 5
    x = np.array([0.3, 1.2, -0.7, 2.0, 0.1])
    y = np.empty(n + 1)
    seeds = tuple(np.eye(n + 1)[i].copy() for i in (0, 4, 5))
    dxs = tuple(np.zeros(n) for _ in seeds)
    ez.autodiff(ez.Reverse, f, ez.Const, BatchDuplicated(x, dxs), BatchDuplicated(y, seeds), n)
    jac = vecfun_jac(x)
    for row, dx in zip((0, 4, 5), dxs):
        np.testing.assert_allclose(dx, jac[row], rtol=1e-12, atol=1e-14)
    for s in seeds:  # the seeds are consumed (zeroed), as for Duplicated
        assert not s.any()


def test_reverse_float32_arrays(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("cubesf")
    x = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    shadows = (np.zeros(3, np.float32), np.zeros(3, np.float32))
    ez.autodiff(ez.Reverse, f, ez.Active, BatchDuplicated(x, shadows), 3)
    for s in shadows:
        np.testing.assert_allclose(s, 3 * x**2, rtol=1e-6)


@pytest.mark.parametrize(
    ("make", "exc", "text"),
    [
        (lambda x: (BatchDuplicated(x, (np.zeros(4), np.zeros(3))), 4), ValueError, "shape"),
        (lambda x: (BatchDuplicated(x, (np.zeros(4), np.zeros(4, np.float32))), 4), TypeError, "dtype"),
        (lambda x: (BatchDuplicated(x, (np.zeros(4), np.zeros(4)[::-1])), 4), ValueError, "contiguous"),
        (lambda x: (BatchDuplicated(x, (x, np.zeros(4))), 4), ValueError, "distinct"),
        (lambda x: (Duplicated(x, np.zeros(4)), 4), None, None),
    ],
)
def test_invalid_array_batches(mod, make, exc, text) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("cubes")
    x = np.arange(4.0)
    args = make(x)
    if exc is None:  # the valid control case
        ez.autodiff(ez.Reverse, f, ez.Active, *args)
        return
    with pytest.raises(exc, match=text):
        ez.autodiff(ez.Reverse, f, ez.Active, *args)


def test_invalid_batch_requests(mod) -> None:  # type: ignore[no-untyped-def]
    poly, sq, cubes = mod.function("poly"), mod.function("sq"), mod.function("cubes")
    with pytest.raises(ValueError, match="same number of shadows"):
        ez.autodiff(ez.Forward, poly, Duplicated,
                    BatchDuplicated(1.0, (1.0, 0.0)), BatchDuplicated(2.0, (1.0, 0.0, 0.0)))
    with pytest.raises(ValueError, match="width must be >= 1"):
        BatchDuplicated(1.0, ())
    with pytest.raises(TypeError, match="tuple of shadows"):
        BatchDuplicated(1.0, 2.0)
    with pytest.raises(TypeError, match="needs at least one BatchDuplicated"):
        ez.autodiff(ez.Forward, sq, BatchDuplicated, Duplicated(1.0, 1.0))
    with pytest.raises(TypeError, match="BatchDuplicated"):
        ez.autodiff(ez.Forward, poly, Duplicated, BatchDuplicated(1.0, (1.0, 0.0)), Duplicated(2.0, 1.0))
    with pytest.raises(TypeError, match="Active in reverse mode"):
        ez.autodiff(ez.Reverse, sq, ez.Active, BatchDuplicated(1.0, (1.0, 0.0)))
    with pytest.raises(ValueError, match="maximum"):
        ez.autodiff(ez.Forward, sq, Duplicated, BatchDuplicated(1.0, (1.0,) * 65))
    with pytest.raises(TypeError, match="tangent 1"):
        ez.autodiff(ez.Forward, sq, Duplicated, BatchDuplicated(1.0, (1.0, "a")))
    with pytest.raises(TypeError, match="integer"):
        ez.autodiff(ez.Forward, cubes, ez.Const,
                    BatchDuplicated(np.zeros(2), (np.zeros(2), np.zeros(2))),
                    BatchDuplicated(2, (1, 1)))
    primal = sq if isinstance(sq, ez.Function) else ez.lower(sq, 1.0)  # a Function's own call
    with pytest.raises(TypeError, match="primal call"):
        primal(BatchDuplicated(1.0, (1.0,)))
    ro = np.zeros(4)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ez.autodiff(ez.Reverse, cubes, ez.Active, BatchDuplicated(np.arange(4.0), (np.zeros(4), ro)), 4)


def test_width_one_batch_matches_duplicated(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("cubes")
    x = np.array([1.0, 2.0])
    a, b = np.zeros(2), np.zeros(2)
    ez.autodiff(ez.Reverse, f, ez.Active, BatchDuplicated(x, (a,)), 2)
    ez.autodiff(ez.Reverse, f, ez.Active, Duplicated(x, b), 2)
    np.testing.assert_array_equal(a, b)
    assert ez.autodiff(ez.Forward, mod.function("sq"), BatchDuplicated, BatchDuplicated(2.0, (1.0,))) == ((4.0,),)
