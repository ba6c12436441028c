"""Test sources and NumPy reference implementations for the transform tests.

Every function of :data:`C_SOURCE` has a Python twin in :mod:`.python_twins` with the same
arguments (an array and its length, an output array written in place), so each transform
test runs on both input kinds with the very same calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np

C_SOURCE = r"""
#include <math.h>

double sq(double x) { return x * x; }
double poly(double x, double y) { return x * x * y + 3.0 * y; }
float polyf(float x, float y) { return x * x * y + 3.0f * y; }
double cubes(const double *x, long n) {
    double s = 0; for (long i = 0; i < n; i++) s += x[i] * x[i] * x[i]; return s;
}
float cubesf(const float *x, long n) {
    float s = 0; for (long i = 0; i < n; i++) s += x[i] * x[i] * x[i]; return s;
}
/* y[i] = sin(x[i]) * x[(i + 1) % n] for i < n, and y[n] = x[0] * x[1]: m = n + 1 */
void vecfun(const double *x, double *y, long n) {
    for (long i = 0; i < n; i++) y[i] = sin(x[i]) * x[(i + 1) % n];
    y[n] = x[0] * x[1];
}
/* the same with the output first: wrt=1, out=0 */
void vecfun_yx(double *y, const double *x, long n) { vecfun(x, y, n); }
double rosen(const double *x, long n) {
    double s = 0;
    for (long i = 0; i + 1 < n; i++) {
        double a = x[i + 1] - x[i] * x[i], b = 1.0 - x[i];
        s += 100.0 * a * a + b * b;
    }
    return s;
}
double scaled_rosen(const double *x, long n, double c) { return c * rosen(x, n); }
double zero_times(double x, double y, double c) { return c * (x * y); }
double pick(double *x, double *c, int flag) { double *p = flag ? x : c; return p[0] * p[0] + x[0]; }
int count(const double *x, long n) { return (int)n; }
"""



def rosen_grad(x: Any) -> Any:
    g = np.zeros_like(x)
    a = x[1:] - x[:-1] ** 2
    g[:-1] += -400.0 * a * x[:-1] - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * a
    return g


def rosen_hess(x: Any) -> Any:
    n = x.size
    h = np.zeros((n, n))
    for i in range(n - 1):
        h[i, i] += 1200.0 * x[i] ** 2 - 400.0 * x[i + 1] + 2.0
        h[i + 1, i + 1] += 200.0
        h[i, i + 1] += -400.0 * x[i]
        h[i + 1, i] += -400.0 * x[i]
    return h


def vecfun_np(x: Any) -> Any:
    n = x.size
    y = np.empty(n + 1)
    y[:n] = np.sin(x) * np.roll(x, -1)
    y[n] = x[0] * x[1]
    return y


def vecfun_jac(x: Any) -> Any:
    n = x.size
    j = np.zeros((n + 1, n))
    for i in range(n):
        j[i, i] += np.cos(x[i]) * x[(i + 1) % n]
        j[i, (i + 1) % n] += np.sin(x[i])
    j[n, 0] += x[1]
    j[n, 1] += x[0]
    return j




def central_difference(f: Any, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Columns d f / d x_j by central differences (f returns a float or an array)."""
    cols = []
    for j in range(x.size):
        e = np.zeros_like(x)
        e.flat[j] = eps
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps))
    return np.stack(cols, axis=-1)
