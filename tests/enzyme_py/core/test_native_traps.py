"""The pipeline traps of FACTS §4 that could crash the process, each exercised in a child process.

* C calling ``tanh``/``cosh`` compiled with clang's default flags (errno attributes that clash
  with the ones Enzyme adds, which the verifier rejects);
* nested loops whose reverse pass caches one value per row, compiled for the host CPU after AD
  (Enzyme's over-aligned cache stores became aligned vector stores and segfaulted);
* an inner loop with a constant trip count, which clang unrolls before AD unless told not to;
* large arrays that start off a vector boundary, through code vectorised for the host CPU;
* use of a module after ``close()``.

A crash is a failed test, not a dead suite; each child checks its numbers against analytic
derivatives and central finite differences.
"""

from __future__ import annotations

from pathlib import Path

MLP = r'''
SRC = r"""
#include <math.h>
/* s = sum_i tanh(sum_j W[i*m+j] * x[j]) + cosh(x[0]) */
double mlp(const double *W, const double *x, long n, long m) {
    double s = 0.0;
    for (long i = 0; i < n; i++) {
        double h = 0.0;
        for (long j = 0; j < m; j++) h += W[i * m + j] * x[j];
        s += tanh(h);
    }
    return s + cosh(x[0]);
}
"""
f = Module.from_c(SRC, name="mlp").function("mlp")
rng = np.random.default_rng(7)
n, m = 67, 37
W = rng.standard_normal(n * m) / np.sqrt(m)
x = rng.standard_normal(m)
h = (W.reshape(n, m) @ x)
primal = np.tanh(h).sum() + np.cosh(x[0])
assert abs(f(W, x, n, m) - primal) < 1e-12 * abs(primal)
sech2 = 1.0 - np.tanh(h) ** 2
gW_exact = np.outer(sech2, x).ravel()
gx_exact = W.reshape(n, m).T @ sech2
gx_exact[0] += np.sinh(x[0])
for _ in range(3):  # repeated calls reuse the compiled code and its caches
    gW, gx, _, _ = gradient(f, W, x, Const(n), Const(m))
    np.testing.assert_allclose(gW, gW_exact, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(gx, gx_exact, rtol=1e-11, atol=1e-13)
# finite differences on a few coordinates of x and W
for j in (0, 5, m - 1):
    e = np.zeros(m); e[j] = 1e-6
    fd = (f(W, x + e, n, m) - f(W, x - e, n, m)) / 2e-6
    assert abs(fd - gx[j]) < 1e-6 * (1 + abs(fd)), (j, fd, gx[j])
for k in (0, 100, n * m - 1):
    e = np.zeros(n * m); e[k] = 1e-6
    fd = (f(W + e, x, n, m) - f(W - e, x, n, m)) / 2e-6
    assert abs(fd - gW[k]) < 1e-6 * (1 + abs(fd)), (k, fd, gW[k])
# forward mode along a random direction equals <grad, v>
vW, vx = rng.standard_normal(n * m), rng.standard_normal(m)
(t,) = autodiff(Forward, f, Duplicated, Duplicated(W, vW), Duplicated(x, vx), n, m)
assert abs(t - (gW_exact @ vW + gx_exact @ vx)) < 1e-10 * (1 + abs(t)), t
print("MLP-OK")
'''

UNROLLED = r'''
SRC = r"""
/* An inner loop of fixed length 4 (clang unrolls it fully) inside a variable outer loop. */
double blocks(const double *x, long nblocks) {
    double s = 0.0;
    for (long b = 0; b < nblocks; b++) {
        double p = 1.0;
        for (int k = 0; k < 4; k++) p *= x[4 * b + k];
        s += p * p;
    }
    return s;
}
"""
f = Module.from_c(SRC, name="unrolled").function("blocks")
x = np.linspace(0.5, 1.5, 4 * 9)
nb = 9
xb = x.reshape(nb, 4)
p = xb.prod(axis=1)
exact = (2.0 * p[:, None] * p[:, None] / xb).ravel()  # d(p^2)/dx_k = 2 p^2 / x_k
assert abs(f(x, nb) - (p * p).sum()) < 1e-12
(g, _) = gradient(f, x, Const(nb))
np.testing.assert_allclose(g, exact, rtol=1e-12)
dx = make_zero(x)
autodiff(Reverse, f, Active, Duplicated(x, dx), nb)
np.testing.assert_allclose(dx, exact, rtol=1e-12)
e = np.zeros_like(x); e[6] = 1e-6
assert abs((f(x + e, nb) - f(x - e, nb)) / 2e-6 - g[6]) < 1e-6
print("UNROLL-OK")
'''

LARGE_UNALIGNED = r'''
import sys
sys.path.insert(0, SOURCES_DIR)
from _sources import C_DOUBLE, ir_double
n = 1_000_003  # odd: vector loops need a remainder
buf = np.linspace(-1.0, 1.0, n + 1)
x = buf[1:]  # 8 bytes past the allocation's start: not 16-, 32- or 64-byte aligned
assert x.ctypes.data % 16 == 8
for m in (Module.from_c(C_DOUBLE, name="large-c"), Module.from_ir(ir_double(typed=False))):
    f = m.function("sumsq")
    assert abs(f(x, n) - float(x @ x)) < 1e-9 * float(x @ x)
    gbuf = np.zeros(n + 1)
    gx = gbuf[1:]
    autodiff(Reverse, f, Active, Duplicated(x, gx), n)
    np.testing.assert_allclose(gx, 2.0 * x, rtol=1e-15)
    assert gbuf[0] == 0.0  # nothing written before the view
    g, _ = gradient(m.function("rosen"), x, Const(n))
    a = x[1:] - x[:-1] ** 2
    expect = np.zeros(n)
    expect[:-1] += -400.0 * x[:-1] * a - 2.0 * (1.0 - x[:-1])
    expect[1:] += 200.0 * a
    np.testing.assert_allclose(g, expect, rtol=1e-12, atol=1e-12)
    v = np.cos(np.arange(n) * 0.001)
    (t,) = autodiff(Forward, f, Duplicated, Duplicated(x, v), n)
    assert abs(t - 2.0 * float(x @ v)) < 1e-9 * (1 + abs(t))
print("LARGE-OK")
'''

USE_AFTER_CLOSE = r'''
m = Module.from_ir(SQ_IR, name="closed")
f = m.function("sq")
assert autodiff(Reverse, f, Active, Active(3.0)) == ((6.0,),)
m.close()
expect_raises((ValueError, RuntimeError), lambda: f(2.0))
expect_raises((ValueError, RuntimeError), lambda: autodiff(Reverse, f, Active, Active(3.0)))  # was compiled
expect_raises((ValueError, RuntimeError), lambda: autodiff(Forward, f, Duplicated, Duplicated(3.0, 1.0)))
expect_raises((ValueError, RuntimeError), lambda: m.function("sq"))
m.close()  # closing twice is harmless
with Module.from_ir(SQ_IR, name="ctx") as m2:
    g = m2.function("sq")
    assert g(5.0) == 25.0
expect_raises((ValueError, RuntimeError), lambda: g(5.0))
'''


def test_large_unaligned_arrays(run_child) -> None:  # type: ignore[no-untyped-def]
    out = run_child(
        f"SOURCES_DIR = {str(Path(__file__).parent)!r}\n" + LARGE_UNALIGNED + "\nstill_alive()\n"
    )
    assert "LARGE-OK" in out and out.rstrip().endswith("ALIVE"), out


def test_use_after_close_raises(run_child) -> None:  # type: ignore[no-untyped-def]
    out = run_child(USE_AFTER_CLOSE + "\nstill_alive()\n")
    assert out.count("RAISED ") == 5, out
    assert out.rstrip().endswith("ALIVE"), out


def test_nested_loops_with_tanh_cosh_from_c(run_child) -> None:  # type: ignore[no-untyped-def]
    out = run_child(MLP + "\nstill_alive()\n")
    assert "MLP-OK" in out and out.rstrip().endswith("ALIVE"), out


def test_inner_loop_with_constant_trip_count(run_child) -> None:  # type: ignore[no-untyped-def]
    out = run_child(UNROLLED + "\nstill_alive()\n")
    assert "UNROLL-OK" in out and out.rstrip().endswith("ALIVE"), out
