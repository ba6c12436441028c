"""Modules and functions pickle by content and work in spawned processes and on a Dask
cluster, where their derivatives come from the shared disk cache."""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import enzyme_py as ez
from enzyme_py import diskcache

from ._tasks import gradient_task, scalar_task
from .conftest import IR_SCALAR


def test_round_trip_in_process(scalar_module: Any) -> None:
    f = scalar_module.function("g")
    g = pickle.loads(pickle.dumps(f))
    assert g.name == "g" and g.signature == f.signature
    assert g.module.content_hash == scalar_module.content_hash
    assert g.module.bitcode == scalar_module.bitcode
    assert g(0.5, 2.0) == pytest.approx(f(0.5, 2.0))
    got = ez.autodiff(ez.Reverse, g, ez.Active, ez.Active(0.5), ez.Active(2.0))
    assert got[0] == pytest.approx((2.0 + np.cos(0.5), 0.5))
    # unpickling the same content again gives the same live module
    h = pickle.loads(pickle.dumps(f))
    assert h.module is g.module
    m2 = pickle.loads(pickle.dumps(scalar_module))
    assert m2 is g.module and m2.functions == scalar_module.functions


def test_symbols_are_pickled_by_name() -> None:
    libm = ctypes.CDLL(ctypes.util.find_library("m"), mode=ctypes.RTLD_GLOBAL)
    cos_addr = ctypes.cast(libm.cos, ctypes.c_void_p).value
    ir = "declare double @cos(double)\ndefine double @c(double %x) {\n  %y = call double @cos(double %x)\n  ret double %y\n}\n"
    m = ez.Module.from_ir(ir, symbols={"cos": cos_addr})
    m2 = pickle.loads(pickle.dumps(m))
    # resolved again by name in this process: the address the process gives "cos" (on a
    # non-PIE interpreter that is the executable's own stub, not libm's entry)
    by_name = ctypes.cast(ctypes.CDLL(None).cos, ctypes.c_void_p).value
    assert m2.symbols == {"cos": by_name}
    assert m2.function("c")(0.3) == pytest.approx(np.cos(0.3))
    m.close()
    missing = ez.Module.from_ir(
        "declare double @no_such_fn_xyz(double)\ndefine double @c(double %x) {\n"
        "  %y = call double @no_such_fn_xyz(double %x)\n  ret double %y\n}\n",
        symbols={"no_such_fn_xyz": cos_addr},
    )
    data = pickle.dumps(missing)
    with pytest.raises(ez.CompileError, match="no_such_fn_xyz"):
        pickle.loads(data)
    missing.close()


def _children_run_current_sources() -> None:
    """Key this process's entries by the package sources as they are now, as the new
    processes will: the identity is taken once per process, and the tree may have
    been edited since this test session started (harmless outside development)."""
    from enzyme_py._compile import diskcache as implementation

    implementation._source = None  # the identity lives in the implementation, not the facade


def _ssq_module() -> Any:
    from .conftest import IR_ARRAY

    return ez.Module.from_ir(IR_ARRAY, name="array")


def _jobs(f: Any, n: int) -> list[tuple[Any, np.ndarray]]:
    rng = np.random.default_rng(7)
    return [(f, rng.standard_normal(5 + i)) for i in range(n)]


def test_spawn_workers_get_gradients_from_the_disk_cache(cache_dir: Path) -> None:
    _children_run_current_sources()
    m = _ssq_module()
    f = m.function("ssq")
    jobs = _jobs(f, 6)
    ez.gradient(f, jobs[0][1], ez.Const(jobs[0][1].size))  # fills the disk cache
    f(jobs[0][1], jobs[0][1].size)  # and the primal
    sm = ez.Module.from_ir(IR_SCALAR)
    ez.autodiff(ez.ReverseWithPrimal, sm.function("sq"), ez.Active, ez.Active(1.0))
    assert diskcache.stats()["stores"] == 3
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.map(gradient_task, jobs, chunksize=1)
        scalars = pool.map(scalar_task, [(sm.function("sq"), x) for x in (1.5, -2.0)])
    for (_, x), r in zip(jobs, results):
        np.testing.assert_allclose(r["grad"], 2 * x, rtol=1e-13)
        assert r["value"] == pytest.approx(float(x @ x))
        assert r["stats"]["misses"] == 0 and r["stats"]["hits"] >= 1
        assert r["pid"] != os.getpid()
    assert len({r["pid"] for r in results}) >= 1
    assert scalars == [(3.0, 2.25), (-4.0, 4.0)]
    m.close()
    sm.close()


def test_dask_local_cluster_batch_of_gradients(cache_dir: Path) -> None:
    _children_run_current_sources()
    import distributed  # in the test extra: imported here to keep collection fast
    m = _ssq_module()
    f = m.function("ssq")
    jobs = _jobs(f, 8)
    ez.gradient(f, jobs[0][1], ez.Const(jobs[0][1].size))
    f(jobs[0][1], jobs[0][1].size)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        futures = client.map(gradient_task, jobs, pure=False)
        results = client.gather(futures)
    for (_, x), r in zip(jobs, results):
        np.testing.assert_allclose(r["grad"], 2 * x, rtol=1e-13)
        assert r["stats"]["misses"] == 0 and r["stats"]["hits"] >= 1
    m.close()
