"""The Python twins of the C functions in ``_support.C_SOURCE``: the same arguments, the
same arithmetic, lowered by enzyme_py through numba (plain functions, not decorated)."""

from __future__ import annotations

import math

import numpy as np


def sq(x):  # type: ignore[no-untyped-def]
    return x * x


def poly(x, y):  # type: ignore[no-untyped-def]
    return x * x * y + 3.0 * y


def polyf(x, y):  # type: ignore[no-untyped-def]
    return x * x * y + np.float32(3.0) * y


def cubes(x, n):  # type: ignore[no-untyped-def]
    s = 0.0
    for i in range(n):
        s += x[i] * x[i] * x[i]
    return s


def cubesf(x, n):  # type: ignore[no-untyped-def]
    s = np.float32(0.0)
    for i in range(n):
        s += x[i] * x[i] * x[i]
    return s


def vecfun(x, y, n):  # type: ignore[no-untyped-def]
    for i in range(n):
        y[i] = math.sin(x[i]) * x[(i + 1) % n]
    y[n] = x[0] * x[1]


def vecfun_yx(y, x, n):  # type: ignore[no-untyped-def]
    for i in range(n):
        y[i] = math.sin(x[i]) * x[(i + 1) % n]
    y[n] = x[0] * x[1]


def rosen(x, n):  # type: ignore[no-untyped-def]
    s = 0.0
    for i in range(n - 1):
        a = x[i + 1] - x[i] * x[i]
        b = 1.0 - x[i]
        s += 100.0 * a * a + b * b
    return s


def scaled_rosen(x, n, c):  # type: ignore[no-untyped-def]
    s = 0.0
    for i in range(n - 1):
        a = x[i + 1] - x[i] * x[i]
        b = 1.0 - x[i]
        s += 100.0 * a * a + b * b
    return c * s


def zero_times(x, y, c):  # type: ignore[no-untyped-def]
    return c * (x * y)


def pick(x, c, flag):  # type: ignore[no-untyped-def]
    p = x if flag else c
    return p[0] * p[0] + x[0]


def count(x, n):  # type: ignore[no-untyped-def]
    return n


TWINS = {name: obj for name, obj in list(globals().items()) if callable(obj) and not name.startswith("_")
         and getattr(obj, "__module__", None) == __name__}
