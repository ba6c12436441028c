"""Vector mode and mode flags on Python functions (through the numba bridge)."""

from __future__ import annotations

import numpy as np
import pytest

import enzyme_py as ez


def poly(x, y):  # type: ignore[no-untyped-def]
    return x * x * y + 3.0 * y


def cubes(x):  # type: ignore[no-untyped-def]
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] ** 3
    return s


def test_batched_forward_on_a_python_function() -> None:
    x, y = 1.5, -2.0
    got = ez.autodiff(
        ez.Forward, poly, ez.BatchDuplicated,
        ez.BatchDuplicated(x, (1.0, 0.0, 2.0)), ez.BatchDuplicated(y, (0.0, 1.0, 1.0)),
    )
    dfdx, dfdy = 2 * x * y, x * x + 3
    assert got == (pytest.approx((dfdx, dfdy, 2 * dfdx + dfdy)),)


def test_mode_flags_on_a_python_function() -> None:
    x = np.array([0.5, -1.0, 2.0])
    dx = np.zeros(3)
    mode = ez.set_fast_math(ez.set_runtime_activity(ez.Reverse), False)
    ez.autodiff(mode, cubes, ez.Active, ez.Duplicated(x, dx))
    np.testing.assert_allclose(dx, 3 * x**2, rtol=1e-14)
    assert ez.autodiff(ez.set_strong_zero(ez.Forward), poly, ez.Duplicated,
                       ez.Duplicated(1.5, 1.0), -2.0) == (pytest.approx(2 * 1.5 * -2.0),)
