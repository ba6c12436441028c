"""Compile and call costs of enzyme_py (``python -m benchmarks compile [--json FILE]``).

Measured in one process, medians of repeated runs:

* ``scalar_compile_ms``: IR text -> callable reverse derivative of ``x*x`` (parse, Enzyme,
  ``default<O2>``, object code, JIT), a new module each time (target <= 5 ms);
* ``array_compile_ms``: the same for a sum-of-squares loop over a ``double*`` (<= 25 ms);
* ``call_ratio``: one call of the JIT-compiled scalar derivative over one bare ctypes call
  of the same JIT-compiled primal (<= 1.5), plus both times in ns;
* ``sumsq_ratio``: gradient / primal time for the sum of squares at n = 1e6 (<= 1.0);
* ``autodiff_call_us``: one ``autodiff(...)`` call, validation included;
* ``autodiff_repeat_call_us``, ``gradient_repeat_call_us``, ``autodiff_call_ratio``: one
  ``autodiff``/``gradient`` call on a function object already called with arguments of
  the same kinds (the native entry of repeated calls), and ``autodiff() call / bare ctypes
  primal call``, measured alternately with the bare call;
* ``prepared_call_us``, ``prepared_call_ratio``: one call of ``gradient_function(f, 3.0)``
  (a prepared derivative), alone and over the bare ctypes call (targets 0.3 us, 2.0);
* ``cached_module_ms``: a new module of already-compiled IR to a callable derivative;
* ``*_cpu_ms``: the same compile measurements in CPU time of the calling thread, and
  ``reference_python_us`` (``sum(range(1000))``, about 8-10 us on an idle modern core) to
  judge how loaded the machine was.

The first compilation (library load, JIT creation) is excluded and reported separately.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cli import subcommand_parser

__all__ = ["main", "measure"]

SCALAR_IR = """
define double @sq(double %x) {
entry:
  %y = fmul double %x, %x
  ret double %y
}
"""

ARRAY_IR = """
define double @sumsq(ptr %x, i64 %n) {
entry:
  %empty = icmp sle i64 %n, 0
  br i1 %empty, label %done, label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %next, %loop ]
  %acc = phi double [ 0.0, %entry ], [ %sum, %loop ]
  %p = getelementptr inbounds double, ptr %x, i64 %i
  %v = load double, ptr %p, align 8
  %sq = fmul double %v, %v
  %sum = fadd double %acc, %sq
  %next = add nuw nsw i64 %i, 1
  %more = icmp slt i64 %next, %n
  br i1 %more, label %loop, label %done
done:
  %r = phi double [ 0.0, %entry ], [ %sum, %loop ]
  ret double %r
}
"""

TARGETS = {
    "scalar_compile_ms": 5.0,
    "array_compile_ms": 25.0,
    "call_ratio": 1.5,
    "sumsq_ratio": 1.0,
    "prepared_call_us": 0.3,
    "autodiff_call_ratio": 2.0,
}


def _median_time(fn: Callable[[], Any], repeat: int, clock: Callable[[], float] = time.perf_counter) -> float:
    times = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def _paired(
    a: Callable[[], Any], b: Callable[[], Any], number: int, repeat: int
) -> tuple[float, float]:
    """Median times of ``number`` calls of ``a`` and of ``b``, measured alternately so
    that a change of machine load affects both alike."""
    ta, tb = [], []
    for _ in range(repeat):
        ta.append(timeit.timeit(a, number=number))
        tb.append(timeit.timeit(b, number=number))
    return statistics.median(ta), statistics.median(tb)


def _loaded(ir: str, fname: str, mode: Any, ret: Any, args: tuple[Any, ...]) -> Any:
    """``(module, loaded code, ctypes values)`` of one request compiled from IR text
    (``mode`` None: the primal)."""
    from enzyme_py.module import Module

    m = Module.from_ir(ir, name=fname)
    return (m, *_code(m, fname, mode, ret, args))


def _code(m: Any, fname: str, mode: Any, ret: Any, args: tuple[Any, ...]) -> tuple[Any, Any]:
    from enzyme_py._call import request

    route = request.PRIMAL_ROUTE if mode is None else request.AUTODIFF
    spec = request.build(m.function(fname), route, mode, ret, args)
    return spec.entry().code, tuple(spec.convert(args)[0])


def measure(repeat: int = 30) -> dict[str, float]:
    """Run every measurement once; returns name -> value."""
    # Time compilations, not hits in the on-disk cache of compiled derivatives.
    os.environ["ENZYME_PY_DISK_CACHE"] = "0"
    import numpy as np

    import enzyme_py as ez

    out: dict[str, float] = {}
    # How fast this machine is right now (a loaded 2-core VM can be several times slower):
    # about 8-10 us on an idle modern core.
    out["reference_python_us"] = (
        min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6
    )
    t0 = time.perf_counter()
    m, _, _ = _loaded(SCALAR_IR, "sq", ez.Reverse, ez.Active, (ez.Active(1.0),))
    out["first_compile_ms"] = (time.perf_counter() - t0) * 1e3
    m.close()

    from enzyme_py._compile import memcache as _cache

    def scalar() -> None:
        mod, _, _ = _loaded(SCALAR_IR, "sq", ez.Reverse, ez.Active, (ez.Active(1.0),))
        mod.close()
        _cache.clear()  # measure compilation, not the process-wide cache

    x = np.random.default_rng(0).standard_normal(16)

    def array() -> None:
        mod, _, _ = _loaded(
            ARRAY_IR, "sumsq", ez.Reverse, ez.Active, (ez.Duplicated(x, np.zeros_like(x)), 16)
        )
        mod.close()
        _cache.clear()

    out["scalar_compile_ms"] = _median_time(scalar, repeat) * 1e3
    out["array_compile_ms"] = _median_time(array, repeat) * 1e3
    # CPU time of this thread: less inflated than wall time on a loaded machine.
    out["scalar_compile_cpu_ms"] = _median_time(scalar, repeat, time.thread_time) * 1e3
    out["array_compile_cpu_ms"] = _median_time(array, repeat, time.thread_time) * 1e3

    ms, dcode, _ = _loaded(SCALAR_IR, "sq", ez.Reverse, ez.Active, (ez.Active(1.0),))
    pcode, _ = _code(ms, "sq", None, None, (1.0,))
    dfn, pfn = dcode.cfunc, pcode.cfunc
    assert dfn(3.0) == 6.0 and pfn(3.0) == 9.0
    number = 100_000
    d, p = _paired(lambda: dfn(3.0), lambda: pfn(3.0), number, 15)
    out["derivative_call_ns"] = d / number * 1e9
    out["primal_call_ns"] = p / number * 1e9
    out["call_ratio"] = d / p
    t = statistics.median(
        timeit.repeat(lambda: ez.autodiff(ez.Reverse, ms.function("sq"), ez.Active, ez.Active(3.0)),
                      number=20_000, repeat=5)
    )
    out["autodiff_call_us"] = t / 20_000 * 1e6
    # Through the public API with a function object and argument kinds used before (the
    # fast path of repeated calls), paired with a bare ctypes call of the JIT-ed primal.
    fsq, a3 = ms.function("sq"), ez.Active(3.0)
    number = 20_000
    ad, bare = _paired(lambda: ez.autodiff(ez.Reverse, fsq, ez.Active, a3), lambda: pfn(3.0), number, 15)
    gr, _ = _paired(lambda: ez.gradient(fsq, 3.0), lambda: pfn(3.0), number, 15)
    out["autodiff_repeat_call_us"] = ad / number * 1e6
    out["gradient_repeat_call_us"] = gr / number * 1e6
    out["autodiff_call_ratio"] = ad / bare  # autodiff() call / bare ctypes primal call
    g = ez.gradient_function(fsq, 3.0)
    assert g(3.0) == (6.0,)
    pc, bare2 = _paired(lambda: g(3.0), lambda: pfn(3.0), number, 15)
    out["prepared_call_us"] = pc / number * 1e6
    out["prepared_call_ratio"] = pc / bare2

    def cached() -> None:
        mod, _, _ = _loaded(SCALAR_IR, "sq", ez.Reverse, ez.Active, (ez.Active(1.0),))
        mod.close()

    cached()
    out["cached_module_ms"] = _median_time(cached, repeat) * 1e3

    n = 1_000_000
    big = np.random.default_rng(1).standard_normal(n)
    dbig = np.zeros(n)
    ma, gcode, gvals = _loaded(
        ARRAY_IR, "sumsq", ez.Reverse, ez.Active, (ez.Duplicated(big, dbig), n)
    )
    acode, _ = _code(ma, "sumsq", None, None, (big, n))
    gfn, afn = gcode.cfunc, acode.cfunc
    xa = big.ctypes.data
    assert abs(afn(xa, n) - float(big @ big)) < 1e-6 * n
    gfn(*gvals)
    assert np.allclose(dbig, 2 * big)
    g, pr = _paired(lambda: gfn(*gvals), lambda: afn(xa, n), 5, 15)
    g, pr = g / 5, pr / 5
    out["sumsq_gradient_ms"] = g * 1e3
    out["sumsq_primal_ms"] = pr * 1e3
    out["sumsq_ratio"] = g / pr
    ms.close()
    ma.close()
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the measurements (and targets); ``--json FILE`` also writes them."""
    parser = subcommand_parser("compile", __doc__)
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")
    parser.add_argument("--repeat", type=int, default=30, help="runs per compile measurement")
    args = parser.parse_args(argv)
    results = measure(args.repeat)
    for name, value in results.items():
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            verdict = f"  (target <= {target:g}: {'ok' if value <= target else 'MISSED'})"
        print(f"{name:22s} {value:10.3f}{verdict}")
    if args.json:
        args.json.write_text(
            json.dumps({"results": results, "targets": TARGETS}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
