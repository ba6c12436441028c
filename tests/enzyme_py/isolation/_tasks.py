"""Functions run in spawned processes and Dask workers (importable by name there)."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np


def gradient_task(job: tuple[Any, np.ndarray]) -> dict[str, Any]:
    """The gradient of an unpickled ``f(x, n)`` at ``x``, with this process's disk-cache
    counters and pid."""
    import enzyme_py as ez
    from enzyme_py import diskcache

    f, x = job
    grad, _ = ez.gradient(f, x, ez.Const(x.size))
    return {"grad": grad, "value": f(x, x.size), "stats": diskcache.stats(), "pid": os.getpid()}


def scalar_task(job: tuple[Any, float]) -> tuple[float, float]:
    import enzyme_py as ez

    f, x = job
    (d,), primal = ez.autodiff(ez.ReverseWithPrimal, f, ez.Active, ez.Active(x))
    return d, primal


def py_g(x, y):  # type: ignore[no-untyped-def]
    """The Python twin of the C ``g`` of test_both_kinds."""
    return x * y + math.sin(x)


def py_ssq(x, n):  # type: ignore[no-untyped-def]
    """The Python twin of the C ``ssq``."""
    s = 0.0
    for i in range(n):
        s += x[i] * x[i]
    return s
