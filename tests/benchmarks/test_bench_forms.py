"""The C, plain-Python and Numba forms of every problem agree on the primal."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.native import CKernel
from benchmarks.problems import PROBLEMS, get_problem, numba_forms

SIZES = {"P1": 1, "P2": 300, "P3": 300, "P4": 12, "P4N": 12, "P5": 1000}


@pytest.fixture(scope="module")
def jitted() -> dict[str, object]:
    import numba  # the numba extra is part of the test setup

    return {pid: numba.njit(f) for pid, f in numba_forms.FORMS.items()}


@pytest.mark.parametrize("pid", list(PROBLEMS))
def test_c_python_and_numba_primals_agree(
    pid: str, hand_libraries: dict[str, Path], jitted: dict[str, object]
) -> None:
    problem = PROBLEMS[pid]
    inputs = problem.inputs(SIZES[pid], seed=11)
    c_value = CKernel(problem, inputs, hand_libraries[pid]).primal()
    py_value = numba_forms.FORMS[pid](*inputs.args)
    nb_value = jitted[pid](*inputs.args)  # type: ignore[operator]
    assert math.isfinite(c_value)
    assert py_value == pytest.approx(c_value, rel=1e-12)
    assert nb_value == pytest.approx(c_value, rel=1e-12)


def test_forms_agree_with_numpy_formulas() -> None:
    x = PROBLEMS["P2"].inputs(200, seed=4).args[0]
    rosen = np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    assert numba_forms.p2_rosenbrock(x, x.size) == pytest.approx(rosen, rel=1e-13)
    w1, w2, xs, y, batch, _, _ = PROBLEMS["P4"].inputs(10, seed=4).args
    mse = np.mean((np.tanh(xs @ w1) @ w2 - y) ** 2)
    assert numba_forms.p4_mlp(w1, w2, xs, y, batch, *w1.shape) == pytest.approx(mse, rel=1e-12)
    assert numba_forms.p1_scalar(0.5) == pytest.approx(math.sin(0.5) * 0.5 + math.exp(0.5))


def test_lorenz_stays_on_the_attractor() -> None:
    # 10 time units from (1, 1, 1): bounded, and away from the start.
    x = numba_forms.p5_lorenz(np.ones(3), 1000)
    assert 0.0 < abs(x) < 30.0 and abs(x - 1.0) > 1e-3


def test_inputs_are_deterministic_float64() -> None:
    for problem in PROBLEMS.values():
        a = problem.inputs(problem.quick_size if problem.id != "P2" else 64, seed=9)
        b = problem.inputs(problem.quick_size if problem.id != "P2" else 64, seed=9)
        for u, v in zip(a.args, b.args, strict=True):
            if isinstance(u, np.ndarray):
                assert u.dtype == np.float64 and u.flags.c_contiguous
                np.testing.assert_array_equal(u, v)
            else:
                assert u == v
        assert a.active and all(
            isinstance(a.args[i], np.ndarray | float) for i in a.active
        )


def test_bad_problem_and_size_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown problem 'P9'.*P1"):
        get_problem("P9")
    with pytest.raises(ValueError, match="n >= 2"):
        PROBLEMS["P2"].inputs(1)
    with pytest.raises(ValueError, match="at least 1"):
        PROBLEMS["P3"].inputs(0)
    assert get_problem("p3") is PROBLEMS["P3"]
