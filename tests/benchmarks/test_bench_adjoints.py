"""Each hand-written C adjoint against central finite differences of its C primal."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.child import finite_difference_error
from benchmarks.native import CKernel
from benchmarks.problems import PROBLEMS, Inputs

SMALL = {"P1": 1, "P2": 40, "P3": 40, "P4": 6, "P4N": 6, "P5": 60}
"""Small sizes: every coordinate (or a sample of them, for P4) is differenced."""

MAX_COORDS = 40


def _coordinate_fd(kernel: CKernel, inputs: Inputs, h: float = 1e-6) -> list[np.ndarray]:
    """Central differences of the primal for (a sample of) the coordinates of each active
    argument; NaN where a coordinate was not sampled."""
    rng = np.random.default_rng(7)
    out = []
    for pos in inputs.active:
        a = inputs.args[pos]
        if isinstance(a, float):
            plus = list(inputs.args)
            minus = list(inputs.args)
            plus[pos] = a + h
            minus[pos] = a - h
            out.append(np.array(
                (kernel.primal_at(tuple(plus)) - kernel.primal_at(tuple(minus))) / (2 * h)))
            continue
        fd = np.full(a.shape, np.nan)
        flat = np.arange(a.size)
        picked = flat if a.size <= MAX_COORDS else rng.choice(flat, MAX_COORDS, replace=False)
        for k in picked:
            idx = np.unravel_index(k, a.shape)
            ap = a.copy()
            am = a.copy()
            ap[idx] += h
            am[idx] -= h
            plus = list(inputs.args)
            minus = list(inputs.args)
            plus[pos] = ap
            minus[pos] = am
            fd[idx] = (kernel.primal_at(tuple(plus)) - kernel.primal_at(tuple(minus))) / (2 * h)
        out.append(fd)
    return out


@pytest.mark.parametrize("pid", list(PROBLEMS))
def test_adjoint_matches_central_differences(pid: str, hand_libraries: dict[str, Path]) -> None:
    problem = PROBLEMS[pid]
    inputs = problem.inputs(SMALL[pid], seed=3)
    kernel = CKernel(problem, inputs, hand_libraries[pid])
    grads = kernel.gradient_value()
    fds = _coordinate_fd(kernel, inputs)
    assert len(grads) == len(fds) == len(inputs.active)
    for g, fd in zip(grads, fds, strict=True):
        assert g.shape == np.shape(fd)
        sampled = ~np.isnan(fd)
        assert sampled.any()
        scale = max(float(np.max(np.abs(g))), 1.0)
        np.testing.assert_allclose(g[sampled], fd[sampled], rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("pid", ["P2", "P3", "P4", "P4N", "P5"])
def test_adjoint_directional_derivative_at_benchmark_shape(
    pid: str, hand_libraries: dict[str, Path]
) -> None:
    # The real P4 width and the real P5 step count; vectors kept at 1000 (see FD_MAX_SIZE).
    problem = PROBLEMS[pid]
    inputs = problem.inputs(min(problem.size, 1000), seed=5)
    kernel = CKernel(problem, inputs, hand_libraries[pid])
    assert finite_difference_error(kernel, inputs, kernel.gradient_value()) < 1e-6


def test_p1_adjoint_is_the_analytic_derivative(hand_libraries: dict[str, Path]) -> None:
    problem = PROBLEMS["P1"]
    kernel = CKernel(problem, problem.inputs(), hand_libraries["P1"])
    for x in (-2.0, 0.0, 0.5, 3.0):
        want = math.cos(x) * x + math.sin(x) + math.exp(x)
        assert kernel.gradient_at(x) == pytest.approx(want, rel=1e-15)


@pytest.mark.parametrize("pid", ["P2", "P3", "P4", "P4N", "P5"])
def test_adjoint_overwrites_instead_of_accumulating(
    pid: str, hand_libraries: dict[str, Path]
) -> None:
    problem = PROBLEMS[pid]
    kernel = CKernel(problem, problem.inputs(SMALL[pid], seed=1), hand_libraries[pid])
    first = kernel.gradient_value()
    for s in kernel.shadows:
        s[...] = np.nan
    second = kernel.gradient_value()
    for a, b in zip(first, second, strict=True):
        assert np.all(np.isfinite(b))
        np.testing.assert_array_equal(a, b)


def test_p3_gradient_is_the_softmax(hand_libraries: dict[str, Path]) -> None:
    problem = PROBLEMS["P3"]
    inputs = problem.inputs(500, seed=2)
    kernel = CKernel(problem, inputs, hand_libraries["P3"])
    (g,) = kernel.gradient_value()
    x = inputs.args[0]
    e = np.exp(x - x.max())
    np.testing.assert_allclose(g, e / e.sum(), rtol=1e-12, atol=1e-300)
    assert kernel.primal() == pytest.approx(float(np.log(np.sum(np.exp(x)))), rel=1e-13)


def test_p4n_adjoint_is_p4s(hand_libraries: dict[str, Path]) -> None:
    """The BLAS form and the loop form compute one function: same loss, same gradient."""
    inputs = PROBLEMS["P4"].inputs(20, seed=6)
    loops = CKernel(PROBLEMS["P4"], inputs, hand_libraries["P4"])
    blas = CKernel(PROBLEMS["P4N"], inputs, hand_libraries["P4N"])
    assert blas.primal() == pytest.approx(loops.primal(), rel=1e-13)
    for a, b in zip(blas.gradient_value(), loops.gradient_value(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
