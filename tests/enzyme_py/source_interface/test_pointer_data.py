"""``Duplicated`` for data whose shadow holds pointers, through the Python API: a pointer
to pointers (a sequence of arrays with a sequence of shadows) and pointers to C structs
(``ctypes.Structure`` instances, arrays of them, NumPy structured arrays), each compared
with the analytic derivative and with finite differences."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

import enzyme_py as ez
from tests.support.fd import central_difference

SRC = r"""
#include <math.h>
struct Series { double *values; double scale; int n; };
struct Point { double x, y; int id; };
struct Nested { struct Series s; double bias; };

double rows_energy(double **rows, const int *lens, int m) {
  double e = 0;
  for (int r = 0; r < m; r++)
    for (int i = 0; i < lens[r]; i++) e += (r + 1) * sin(rows[r][i]) * rows[r][i];
  return e;
}
void rows_square(double **out, double **in, int m, int n) {
  for (int r = 0; r < m; r++)
    for (int i = 0; i < n; i++) out[r][i] = in[r][i] * in[r][i];
}
double series(const struct Series *s) {
  double e = 0;
  for (int i = 0; i < s->n; i++) e += s->scale * exp(s->values[i] / 4);
  return e;
}
double points(const struct Point *p, int n) {
  double e = 0;
  for (int i = 0; i < n; i++) e += p[i].x * p[i].x * p[i].y + p[i].id;
  return e;
}
double nested(const struct Nested *q) { return q->bias * series(&q->s); }
float points32(const float *xy, int n) { float s = 0; for (int i = 0; i < n; i++) s += xy[2*i] * xy[2*i+1]; return s; }
"""


class Series(ctypes.Structure):
    _fields_ = [("values", ctypes.POINTER(ctypes.c_double)), ("scale", ctypes.c_double), ("n", ctypes.c_int)]


class Nested(ctypes.Structure):
    _fields_ = [("s", Series), ("bias", ctypes.c_double)]


POINT = np.dtype([("x", "f8"), ("y", "f8"), ("id", "i4")], align=True)


@pytest.fixture(scope="module")
def m() -> ez.Module:
    return ez.Module.from_c(SRC, name="pointer_data")


def _series(values: np.ndarray, scale: float) -> Series:
    return Series(values.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), scale, len(values))


# --------------------------------------------------------------------------- pointer to pointers


def test_reverse_through_a_pointer_to_pointers(m: ez.Module) -> None:
    f = m.function("rows_energy")
    rows = [np.array([0.3, -1.2]), np.array([0.5, 2.0, -0.7])]
    lens = np.array([2, 3], dtype=np.int32)
    shadows = ez.make_zero(rows)
    ez.autodiff(ez.Reverse, f, ez.Active, ez.Duplicated(rows, shadows), lens, 2)
    for r, (x, dx) in enumerate(zip(rows, shadows)):
        analytic = (r + 1) * (np.cos(x) * x + np.sin(x))
        np.testing.assert_allclose(dx, analytic, rtol=1e-12)

        def g(v: np.ndarray, r: int = r) -> float:
            trial = [a.copy() for a in rows]
            trial[r] = v
            return float(f(trial, lens, 2))

        np.testing.assert_allclose(dx, central_difference(g, x), rtol=1e-6)


def test_forward_and_outputs_through_pointers_to_pointers(m: ez.Module) -> None:
    f = m.function("rows_square")
    xs = [np.array([1.0, 2.0]), np.array([3.0, -4.0])]
    ys = [np.zeros(2), np.zeros(2)]
    dxs = [np.array([1.0, 0.5]), np.array([0.0, 2.0])]
    dys = ez.make_zero(ys)
    ez.autodiff(ez.Forward, f, ez.Const, ez.Duplicated(ys, dys), ez.Duplicated(xs, dxs), 2, 2)
    for x, y, dx, dy in zip(xs, ys, dxs, dys):
        np.testing.assert_array_equal(y, x * x)
        np.testing.assert_allclose(dy, 2 * x * dx)
    # reverse: the output shadows are the seeds
    seeds = [np.ones(2), np.full(2, 2.0)]
    grads = ez.make_zero(xs)
    ez.autodiff(ez.Reverse, f, ez.Const, ez.Duplicated(ys, seeds), ez.Duplicated(xs, grads), 2, 2)
    np.testing.assert_allclose(grads[0], 2 * xs[0])
    np.testing.assert_allclose(grads[1], 4 * xs[1])


# --------------------------------------------------------------------------- structs


def test_a_struct_with_a_pointer_and_a_float_field(m: ez.Module) -> None:
    f = m.function("series")
    values = np.array([0.1, 0.9, -2.0])
    s = _series(values, 1.5)
    assert f(s) == pytest.approx(1.5 * np.exp(values / 4).sum())
    ds = ez.make_zero(s, values=len(values))  # enzyme_py allocates the shadow buffer
    ez.autodiff(ez.Reverse, f, ez.Active, ez.Duplicated(s, ds))
    dvalues = np.ctypeslib.as_array(ds.values, shape=(3,))
    np.testing.assert_allclose(dvalues, 1.5 * np.exp(values / 4) / 4, rtol=1e-12)
    assert ds.scale == pytest.approx(np.exp(values / 4).sum(), rel=1e-12)
    assert ds.n == 3  # integers are copied, not differentiated
    fd = central_difference(lambda v: f(_series(v, 1.5)), values)
    np.testing.assert_allclose(dvalues, fd, rtol=1e-6)
    fd_scale = central_difference(lambda a: f(_series(values, a)), 1.5)
    assert ds.scale == pytest.approx(fd_scale, rel=1e-6)


def test_a_struct_shadow_given_as_an_array_and_forward_mode(m: ez.Module) -> None:
    f = m.function("series")
    values = np.array([0.5, 1.0])
    s = _series(values, 2.0)
    tangent = np.array([1.0, 0.0])
    ds = ez.make_zero(s, values=tangent)  # the array is the shadow (the tangent here)
    ds.scale = 0.0
    (d,) = ez.autodiff(ez.Forward, f, ez.Duplicated, ez.Duplicated(s, ds))
    assert d == pytest.approx(2.0 * np.exp(0.5 / 4) / 4, rel=1e-12)


def test_a_nested_struct(m: ez.Module) -> None:
    f = m.function("nested")
    values = np.array([1.0, 2.0])
    q = Nested(_series(values, 3.0), 0.5)
    dq = ez.make_zero(q, **{"s.values": 2})
    ez.autodiff(ez.Reverse, f, ez.Active, ez.Duplicated(q, dq))
    assert dq.bias == pytest.approx(3.0 * np.exp(values / 4).sum())
    assert dq.s.scale == pytest.approx(0.5 * np.exp(values / 4).sum())
    np.testing.assert_allclose(np.ctypeslib.as_array(dq.s.values, shape=(2,)), 0.5 * 3.0 * np.exp(values / 4) / 4)


def test_arrays_of_structs_numpy_and_ctypes(m: ez.Module) -> None:
    f = m.function("points")
    p = np.zeros(3, dtype=POINT)
    p["x"], p["y"], p["id"] = [1.0, -2.0, 0.5], [3.0, 0.25, 4.0], [7, 8, 9]
    dp = ez.make_zero(p)
    ez.autodiff(ez.Reverse, f, ez.Active, ez.Duplicated(p, dp), 3)
    np.testing.assert_allclose(dp["x"], 2 * p["x"] * p["y"])
    np.testing.assert_allclose(dp["y"], p["x"] ** 2)
    assert not dp["id"].any()

    def fx(x: np.ndarray) -> float:
        q = p.copy()
        q["x"] = x
        return float(f(q, 3))

    np.testing.assert_allclose(dp["x"], central_difference(fx, p["x"].copy()), rtol=1e-6)

    class Point(ctypes.Structure):
        _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double), ("id", ctypes.c_int)]

    cp = (Point * 2)(Point(1.0, 2.0, 1), Point(3.0, 4.0, 2))
    dcp = ez.make_zero(cp)
    ez.autodiff(ez.Reverse, f, ez.Active, ez.Duplicated(cp, dcp), 2)
    assert [(d.x, d.y) for d in dcp] == [(4.0, 1.0), (24.0, 9.0)]


# --------------------------------------------------------------------------- validation


def test_pointer_data_is_validated_before_native_code(m: ez.Module) -> None:
    f = m.function("rows_energy")
    lens = np.array([2], dtype=np.int32)
    rows = [np.ones(2)]
    with pytest.raises(ValueError, match="2 shadow.*for 1 array"):
        ez.autodiff(ez.Reverse, f, ez.Active, ez.Duplicated(rows, [np.zeros(2), np.zeros(2)]), lens, 1)
    with pytest.raises(ValueError, match="shadow 0 has shape"):
        ez.autodiff(ez.Reverse, f, ez.Active, ez.Duplicated(rows, [np.zeros(3)]), lens, 1)
    with pytest.raises(ValueError, match="shadow 0 is array 0 itself"):
        ez.autodiff(ez.Reverse, f, ez.Active, ez.Duplicated(rows, rows), lens, 1)
    with pytest.raises(TypeError, match="share one supported dtype"):
        ez.autodiff(ez.Reverse, f, ez.Active, ez.Duplicated([np.ones(2), np.ones(2, np.float32)], [np.zeros(2)] * 2), lens, 1)
    with pytest.raises(TypeError, match="only float64/float32 arrays can be differentiated"):
        ez.autodiff(ez.Reverse, f, ez.Active, ez.Duplicated([np.ones(2, np.int64)], [np.zeros(2, np.int64)]), lens, 1)
    with pytest.raises(TypeError, match="sequence of arrays or a struct is not supported"):
        ez.autodiff(ez.Forward, f, ez.Duplicated, ez.BatchDuplicated(rows, ([np.zeros(2)], [np.zeros(2)])), lens, 1)
    with pytest.raises(ValueError, match="must be C-contiguous"):
        f([np.ones(4)[::2]], lens, 1)

    g = m.function("series")
    values = np.ones(2)
    s = _series(values, 1.0)
    with pytest.raises(ValueError, match="pointer field values is set but its shadow is NULL"):
        ez.autodiff(ez.Reverse, g, ez.Active, ez.Duplicated(s, Series()))
    same = _series(values, 0.0)
    with pytest.raises(ValueError, match="points at the primal's memory"):
        ez.autodiff(ez.Reverse, g, ez.Active, ez.Duplicated(s, same))
    with pytest.raises(TypeError, match="must be a Series like the argument"):
        ez.autodiff(ez.Reverse, g, ez.Active, ez.Duplicated(s, Nested()))
    with pytest.raises(ValueError, match="values of Series are set and need a shadow"):
        ez.make_zero(s)
    with pytest.raises(ValueError, match="no pointer field"):
        ez.make_zero(s, values=2, nothing=3)
    p = np.zeros(2, dtype=POINT)
    with pytest.raises(ValueError, match="shadow shape"):
        ez.autodiff(ez.Reverse, m.function("points"), ez.Active, ez.Duplicated(p, np.zeros(3, dtype=POINT)), 2)
    with pytest.raises(TypeError, match="structured array of dtype"):
        ez.autodiff(ez.Reverse, m.function("points"), ez.Active, ez.Duplicated(p, np.zeros(2)), 2)
    with pytest.raises(TypeError, match="reads f32 values through this pointer, not pointers"):
        m.function("points32")([np.ones(2, np.float32)], 1)
