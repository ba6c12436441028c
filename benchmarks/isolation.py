"""Costs of crash isolation and of the disk cache (``python -m benchmarks isolation [--json FILE]``).

Measured, medians of repeated runs (each compile uses a new module and an emptied
in-memory cache, so that compilation really happens):

* ``inprocess_{scalar,array}_ms``: IR -> callable reverse derivative, compiled in this
  process (disk cache off);
* ``isolated_{scalar,array}_ms``: the same compiled in the warm isolation worker (the
  bitcode and plan go over a pipe, object code comes back, this process's JIT loads it);
  ``isolation_overhead_{scalar,array}_ms`` is the difference;
* ``worker_start_ms``: the first isolated compilation of a process (starting the worker:
  interpreter, imports, loading libLLVM and Enzyme) minus a warm isolated compile;
* ``crash_recovery_ms``: a request whose worker aborts, plus the next request (which
  starts a new worker);
* ``diskcache_first_derivative_ms``: fresh process, warm disk cache: time from the
  ``autodiff`` call to its result with the libraries already loaded (``Module.from_ir``
  done) and the API imported; ``diskcache_first_derivative_with_load_ms``: from before ``import enzyme_py`` to
  the result (imports, library loading, module parse included);
  ``nocache_first_derivative_ms``: the same first call with the disk cache off (it
  compiles); medians over ``--processes`` fresh processes.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .cli import subcommand_parser
from .compile import ARRAY_IR, SCALAR_IR

__all__ = ["main", "measure"]

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import enzyme_py as ez
from enzyme_py import Active, Reverse, autodiff  # the API modules, imported
m = ez.Module.from_ir(sys.argv[1])  # loads libLLVM and Enzyme
f = m.function("sq")
t1 = time.perf_counter()
(d,), = autodiff(Reverse, f, Active, Active(3.0))
t2 = time.perf_counter()
assert d == 6.0, d
from enzyme_py import diskcache
print(json.dumps({"call_ms": (t2 - t1) * 1e3, "total_ms": (t2 - t0) * 1e3,
                  "hits": diskcache.stats()["hits"]}))
"""


def _compile_once(ir: str, name: str, args: Callable[[], tuple[Any, ...]]) -> None:
    import enzyme_py as ez
    from enzyme_py._compile import memcache as _cache

    m = ez.Module.from_ir(ir, name=name)
    ez.autodiff(ez.Reverse, m.function(name), ez.Active, *args())
    m.close()
    _cache.clear()


def _child_runs(n: int, env: dict[str, str]) -> list[dict[str, float]]:
    out = []
    for _ in range(n):
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, SCALAR_IR],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=300,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark child failed:\n{proc.stderr[-3000:]}")
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def measure(repeat: int = 20, processes: int = 7) -> dict[str, float]:
    """Run every measurement once; returns name -> value."""
    import numpy as np

    import enzyme_py as ez
    from enzyme_py import isolation
    from enzyme_py._compile.client import compile_isolated
    from enzyme_py._compile.plan import REVERSE, ArgPlan, Plan

    os.environ["ENZYME_PY_DISK_CACHE"] = "0"
    x = np.random.default_rng(0).standard_normal(16)

    def scalar_args() -> tuple[Any, ...]:
        return (ez.Active(1.0),)

    def array_args() -> tuple[Any, ...]:
        return (ez.Duplicated(x, np.zeros_like(x)), 16)

    out: dict[str, float] = {}
    _compile_once(SCALAR_IR, "sq", scalar_args)  # libraries, JIT
    t0 = time.perf_counter()
    with ez.isolated():
        _compile_once(SCALAR_IR, "sq", scalar_args)
    first_isolated = time.perf_counter() - t0

    for label, ir, name, args in (
        ("scalar", SCALAR_IR, "sq", scalar_args),
        ("array", ARRAY_IR, "sumsq", array_args),
    ):
        in_proc: list[float] = []
        iso: list[float] = []
        for _ in range(repeat):  # alternate, so that load changes affect both alike
            t0 = time.perf_counter()
            _compile_once(ir, name, args)
            in_proc.append(time.perf_counter() - t0)
            with ez.isolated():
                t0 = time.perf_counter()
                _compile_once(ir, name, args)
                iso.append(time.perf_counter() - t0)
        out[f"inprocess_{label}_ms"] = statistics.median(in_proc) * 1e3
        out[f"isolated_{label}_ms"] = statistics.median(iso) * 1e3
        out[f"isolation_overhead_{label}_ms"] = (
            out[f"isolated_{label}_ms"] - out[f"inprocess_{label}_ms"]
        )
    out["worker_start_ms"] = first_isolated * 1e3 - out["isolated_scalar_ms"]

    m = ez.Module.from_ir(SCALAR_IR + "define void @v(double %x) {\n ret void\n}\n")
    raw = Plan("v", REVERSE, False, (ArgPlan("f64", None, 0),), "void", 0)
    t0 = time.perf_counter()
    try:
        compile_isolated(m.bitcode, m.content_hash, raw)
    except ez.EnzymeCrashError:
        pass
    with ez.isolated():
        _compile_once(SCALAR_IR, "sq", scalar_args)
    out["crash_recovery_ms"] = (time.perf_counter() - t0) * 1e3
    m.close()
    isolation.shutdown()
    del os.environ["ENZYME_PY_DISK_CACHE"]

    with tempfile.TemporaryDirectory(prefix="enzyme_py_bench_") as tmp:
        env = {"ENZYME_PY_CACHE_DIR": tmp, "ENZYME_PY_DISK_CACHE": "1"}
        _child_runs(1, env)  # fills the cache
        warm = _child_runs(processes, env)
        if any(r["hits"] != 1 for r in warm):
            raise RuntimeError("a fresh process did not hit the warm disk cache")
        cold = _child_runs(processes, {**env, "ENZYME_PY_DISK_CACHE": "0"})
    out["diskcache_first_derivative_ms"] = statistics.median(r["call_ms"] for r in warm)
    out["diskcache_first_derivative_with_load_ms"] = statistics.median(
        r["total_ms"] for r in warm
    )
    out["nocache_first_derivative_ms"] = statistics.median(r["call_ms"] for r in cold)
    out["nocache_first_derivative_with_load_ms"] = statistics.median(r["total_ms"] for r in cold)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = subcommand_parser("isolation", __doc__)
    parser.add_argument("--repeat", type=int, default=20, help="compiles per measurement")
    parser.add_argument("--processes", type=int, default=7, help="fresh processes for first-call times")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    results = measure(args.repeat, args.processes)
    width = max(map(len, results))
    for name, value in results.items():
        print(f"{name:<{width}}  {value:10.2f}")
    target = results["diskcache_first_derivative_ms"]
    print(f"\nfirst derivative from the disk cache in a fresh process: {target:.2f} ms (target <= 20 ms)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
