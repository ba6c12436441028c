"""Isolation, the disk cache and pickling on both input kinds: a C function and the same
computation as a Python function (lowered by numba), with the same calls."""

from __future__ import annotations

import math
import multiprocessing
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import enzyme_py as ez
from enzyme_py import isolation

from . import _tasks

C_SOURCE = """
#include <math.h>
double g(double x, double y) { return x * y + sin(x); }
double ssq(const double *x, long n) { double s = 0; for (long i = 0; i < n; i++) s += x[i] * x[i]; return s; }
"""


@pytest.fixture(scope="module")
def c_module() -> Any:
    return ez.Module.from_c(C_SOURCE, name="both-kinds", flags=["-fno-math-errno"])


@pytest.fixture(params=["c", "python"])
def kind(request: pytest.FixtureRequest, c_module: Any) -> tuple[Any, Any]:
    """(g, ssq) of one input kind; ssq takes (x, n) in both."""
    if request.param == "c":
        return c_module.function("g"), c_module.function("ssq")
    return _tasks.py_g, _tasks.py_ssq


def _forget(f: Any, *example: Any) -> None:
    """Drop the compiled code of ``f`` (for arguments like ``example``) from memory."""
    from enzyme_py._call.fast import python_table
    from enzyme_py._compile import memcache

    if isinstance(f, ez.Function):
        f.module.clear_cache()
    else:
        python_table(f).clear()
        ez.lower(f, *example).module.clear_cache()
    memcache.clear()


def test_isolated_compilation_gives_the_same_derivatives(kind: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENZYME_PY_DISK_CACHE", "0")
    g, ssq = kind
    here = ez.autodiff(ez.Reverse, g, ez.Active, ez.Active(0.7), ez.Active(-1.3))
    x = np.linspace(-1.0, 2.0, 9)
    here_grad = ez.gradient(ssq, x, 9)[0]
    _forget(g, 0.7, -1.3)
    _forget(ssq, x, 9)
    starts = isolation.worker().starts
    with ez.isolated():
        there = ez.autodiff(ez.Reverse, g, ez.Active, ez.Active(0.7), ez.Active(-1.3))
        there_grad = ez.gradient(ssq, x, 9)[0]
    assert isolation.worker().pid is not None and isolation.worker().starts >= starts
    assert there == here
    assert here[0] == pytest.approx((-1.3 + math.cos(0.7), 0.7), rel=1e-14)
    np.testing.assert_array_equal(there_grad, here_grad)
    np.testing.assert_allclose(here_grad, 2 * x, rtol=1e-14)


def test_a_fresh_process_gets_the_derivative_from_the_disk_cache(kind: tuple[Any, Any], cache_dir: Path, python: Any) -> None:
    g, _ = kind
    name = "c" if isinstance(g, ez.Function) else "python"
    code = f"""
import json, sys
import enzyme_py as ez
from enzyme_py import diskcache
from tests.enzyme_py.isolation import _tasks
from tests.enzyme_py.isolation.test_both_kinds import C_SOURCE
g = ez.Module.from_c(C_SOURCE, name="both-kinds", flags=["-fno-math-errno"]).function("g") if {name!r} == "c" else _tasks.py_g
(d,) = ez.autodiff(ez.Reverse, g, ez.Active, ez.Active(0.7), ez.Active(-1.3))
print(json.dumps({{"d": d, "stats": diskcache.stats()}}))
"""
    first = python(code)
    assert first.returncode == 0, first.stderr[-3000:]
    second = python(code)
    assert second.returncode == 0, second.stderr[-3000:]
    import json

    a, b = (json.loads(p.stdout.strip().splitlines()[-1]) for p in (first, second))
    assert a["d"] == b["d"] == pytest.approx([-1.3 + math.cos(0.7), 0.7], rel=1e-14)
    assert a["stats"]["stores"] >= 1 and b["stats"]["hits"] >= 1 and b["stats"]["misses"] == 0


def test_pickled_functions_work_in_spawned_processes(kind: tuple[Any, Any]) -> None:
    g, ssq = kind
    lowered = g if isinstance(g, ez.Function) else ez.lower(g, 0.5, 0.5)
    clone = pickle.loads(pickle.dumps(lowered))
    assert clone(0.5, 2.0) == pytest.approx(0.5 * 2.0 + math.sin(0.5))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        got = pool.map(_tasks.gradient_task, [(ssq, np.arange(4.0))], chunksize=1)
    np.testing.assert_allclose(got[0]["grad"], 2 * np.arange(4.0), rtol=1e-14)
    assert got[0]["value"] == pytest.approx(14.0)
