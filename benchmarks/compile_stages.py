"""Where the time from IR to a callable derivative goes, stage by stage, and what the
compile-speed choices of :mod:`enzyme_py._native.tuning` save
(``python -m benchmarks.compile_stages [--repeat N] [--json FILE]``).

Three requests, each compiled afresh (new module, caches cleared, the on-disk cache off):
``x*x`` (reverse, Active), a sum-of-squares loop over a ``double*`` and the Rosenbrock sum
from C (both reverse, Duplicated array, Active return).

* **stages**: median thread CPU time of each stage: IR text to :class:`~enzyme_py.Module`
  (parse, verify, bitcode), request validation, bitcode parse, Enzyme, entry point,
  finishing (internalise, alignment clamp), tuning attribute, verifier, ``globaldce`` +
  ``default<O2>``, code generation and JIT load;
* **before/after**, measured alternately in one process so that a change of machine load
  hits both alike: ``before`` = host-CPU tuning, the target attributes clang wrote left
  alone and code generation at ``options().codegen_level`` for every module (what
  enzyme_py did before :mod:`enzyme_py._native.tuning`), ``after`` = the defaults.  Compile
  times (wall and thread CPU) of the three requests, and the run time of the
  sum-of-squares and Rosenbrock gradients at n = 1e6 compiled each way (medians; every
  round times all four in a new random order, since a fixed order biased one variant by
  up to 14% here).

The before variant is reproduced by replacing ``apply_tuning`` (no attributes changed) and
``emit_level`` (one level) in :mod:`enzyme_py._compile.pipeline` for the duration of its
compilations.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import time
import timeit
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .cli import subcommand_parser
from .compile import ARRAY_IR, SCALAR_IR

__all__ = ["ROSENBROCK_C", "main", "measure"]

ROSENBROCK_C = """
double rosen(const double *x, long n) {
    double f = 0.0;
    for (long i = 0; i < n - 1; i++) {
        double t = x[i + 1] - x[i] * x[i];
        double u = 1.0 - x[i];
        f += 100.0 * t * t + u * u;
    }
    return f;
}
"""

#: (label, module attribute path) of the stages timed; the functions are looked up on
#: their modules at run time and wrapped for the duration of the measurement.
STAGES = (
    ("from_ir (parse, verify, bitcode)", "module", "Module.from_ir"),
    ("validate request", "_call.request", "build"),
    ("parse bitcode", "_native.handles", "ContextRef.parse_bitcode"),
    ("Enzyme", "_native.enzyme", "_session"),
    ("entry point", "_native.transforms", "build_entry"),
    ("finish (internalise, clamp)", "_native.transforms", "finish"),
    ("tuning attribute", "_compile.pipeline", "apply_tuning"),
    ("verify", "_native.handles", "ModuleRef.verify"),
    ("globaldce + O2", "_native.handles", "ModuleRef.run_passes"),
    ("code generation", "_native.handles", "ModuleRef.emit_object"),
    ("JIT load", "_compile.service", "LoadedCode"),
)


@contextlib.contextmanager
def _stage_timer(acc: dict[str, float]) -> Iterator[None]:
    """Wrap every stage of :data:`STAGES`; add its thread CPU time to ``acc``."""
    import importlib

    undo: list[tuple[Any, str, Any]] = []
    for label, modname, attr in STAGES:
        mod = importlib.import_module(f"enzyme_py.{modname}")
        owner: Any = mod
        *path, name = attr.split(".")
        for p in path:
            owner = getattr(owner, p)
        real = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        fn = real.__func__ if isinstance(real, classmethod) else real

        def timed(*a: Any, _fn: Any = fn, _label: str = label, **k: Any) -> Any:
            t0 = time.thread_time()
            try:
                return _fn(*a, **k)
            finally:
                acc[_label] += time.thread_time() - t0

        setattr(owner, name, classmethod(timed) if isinstance(real, classmethod) else timed)
        undo.append((owner, name, real))
    try:
        yield
    finally:
        for owner, name, real in reversed(undo):
            setattr(owner, name, real)


@contextlib.contextmanager
def _before() -> Iterator[None]:
    """Compile as before :mod:`enzyme_py._tuning`: host tuning, one codegen level."""
    from enzyme_py import config
    from enzyme_py._compile import pipeline

    # The names pipeline imported from enzyme_py._native.tuning, replaced where pipeline
    # looks them up.
    fakes: dict[str, Callable[..., int]] = {
        "emit_level": lambda module, level: level,
        "apply_tuning": lambda *args, **kwargs: 0,
    }
    old = config.set_options(tune_cpu="host")
    reals = {name: getattr(pipeline, name) for name in fakes}
    for name, fake in fakes.items():
        setattr(pipeline, name, fake)
    try:
        yield
    finally:
        for name, real in reals.items():
            setattr(pipeline, name, real)
        config.set_options(tune_cpu=old.tune_cpu)


def _requests(n: int) -> dict[str, Callable[[], tuple[Any, Any, Any]]]:
    """name -> () -> (module, request prepared, owns module)."""
    import numpy as np

    import enzyme_py as ez
    from enzyme_py._call import request  # looked up at each call: the stage timer wraps build

    def prepare(mode: Any, f: Any, ret: Any, args: tuple[Any, ...]) -> Any:
        return request.build(f, request.AUTODIFF, mode, ret, args)

    x = np.random.default_rng(0).standard_normal(n)
    rosen = ez.Module.from_c(ROSENBROCK_C, name="rosen")  # clang is not what is timed

    def scalar() -> tuple[Any, Any, Any]:
        m = ez.Module.from_ir(SCALAR_IR, name="sq")
        return m, prepare(ez.Reverse, m.function("sq"), ez.Active, (ez.Active(1.0),)), True

    def sumsq() -> tuple[Any, Any, Any]:
        m = ez.Module.from_ir(ARRAY_IR, name="sumsq")
        args = (ez.Duplicated(x, np.zeros_like(x)), n)
        return m, prepare(ez.Reverse, m.function("sumsq"), ez.Active, args), True

    def rosenbrock() -> tuple[Any, Any, Any]:
        args = (ez.Duplicated(x, np.zeros_like(x)), n)
        return rosen, prepare(ez.Reverse, rosen.function("rosen"), ez.Active, args), False

    return {"x*x": scalar, "sum of squares": sumsq, "Rosenbrock": rosenbrock}


def _compile_once(make: Callable[[], tuple[Any, Any, Any]]) -> tuple[float, float, Any]:
    """(wall s, thread CPU s, LoadedCode) of one fresh compilation (module creation
    included for IR requests)."""
    w0, c0 = time.perf_counter(), time.thread_time()
    module, prep, owned = make()
    code = module.program.code(prep.plan)
    wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
    return wall, cpu, (module, owned, code)


def _release(handle: Any) -> None:
    from enzyme_py._compile import memcache as _cache

    module, owned, _ = handle
    if owned:
        module.close()
    else:
        module.clear_cache()
    _cache.clear()


def measure(repeat: int = 15, runs: int = 25) -> dict[str, Any]:
    """Stage times, then before/after compile and run times; returns a JSON-able dict."""
    os.environ["ENZYME_PY_DISK_CACHE"] = "0"  # time compilations, not disk hits
    import numpy as np

    import enzyme_py as ez
    from enzyme_py._call import request
    from enzyme_py._compile.loader import LoadedCode
    from enzyme_py._compile.pipeline import compile_plan

    def prepare(mode: Any, f: Any, ret: Any, args: tuple[Any, ...]) -> Any:
        return request.build(f, request.AUTODIFF, mode, ret, args)

    requests = _requests(16)
    for make in requests.values():  # first use: library load, JIT creation
        _release(_compile_once(make)[2])

    out: dict[str, Any] = {"stages_ms": {}, "compile_ms": {}, "run_ms": {}}
    for name, make in requests.items():
        samples: dict[str, list[float]] = defaultdict(list)
        for _ in range(repeat):
            acc: dict[str, float] = defaultdict(float)
            with _stage_timer(acc):
                wall, cpu, handle = _compile_once(make)
            _release(handle)
            acc["total (thread CPU)"] = cpu
            for k, v in acc.items():
                samples[k].append(v)
        out["stages_ms"][name] = {k: statistics.median(v) * 1e3 for k, v in samples.items()}

    variants: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
        "before": _before, "after": contextlib.nullcontext,
    }
    times: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for _ in range(repeat):
        for vname, ctx in variants.items():
            for name, make in requests.items():
                with ctx():
                    wall, cpu, handle = _compile_once(make)
                _release(handle)
                times[(vname, name, "wall")].append(wall)
                times[(vname, name, "cpu")].append(cpu)
    for (vname, name, kind), ts in times.items():
        out["compile_ms"].setdefault(vname, {})[f"{name} ({kind})"] = statistics.median(ts) * 1e3

    n = 1_000_000
    rng = np.random.default_rng(1)
    x = rng.uniform(-1.5, 1.5, n)
    mods = {
        "sum of squares": (ez.Module.from_ir(ARRAY_IR, name="sumsq_rt"), "sumsq"),
        "Rosenbrock": (ez.Module.from_c(ROSENBROCK_C, name="rosen_rt"), "rosen"),
    }
    loaded: dict[tuple[str, str], tuple[Any, tuple[Any, ...], Any]] = {}
    for vname, ctx in variants.items():
        for name, (m, fname) in mods.items():
            dx = np.zeros(n)  # each variant its own shadow, allocated in the same order
            call_args = (ez.Duplicated(x, dx), n)
            prep = prepare(ez.Reverse, m.function(fname), ez.Active, call_args)
            values = tuple(prep.convert(call_args)[0])
            with ctx():
                code = LoadedCode(compile_plan(m.bitcode, m.content_hash, prep.plan))
            code.cfunc(*values)
            expect = 2 * x if name == "sum of squares" else _rosenbrock_grad(x)
            if not np.allclose(dx, expect, rtol=1e-10, atol=1e-10):
                raise AssertionError(f"{name} gradient ({vname}) is wrong")
            loaded[(vname, name)] = (code, values, dx)
    rt: dict[tuple[str, str], list[float]] = defaultdict(list)
    order = list(loaded)
    shuffle = random.Random(0).shuffle
    for _ in range(runs):
        shuffle(order)  # a new order each round: no variant always follows another
        for key in order:
            code, values, _ = loaded[key]
            f = code.cfunc

            def run(f: Callable[..., object] = f, v: tuple[Any, ...] = values) -> object:
                return f(*v)

            rt[key].append(timeit.timeit(run, number=5) / 5)
    for (vname, name), ts in rt.items():
        out["run_ms"].setdefault(vname, {})[f"{name} gradient, n=1e6"] = statistics.median(ts) * 1e3
    for code, _, _ in loaded.values():
        code.close()
    for m, _ in mods.values():
        m.close()
    out["reference_python_us"] = (
        min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6
    )
    return out


def _rosenbrock_grad(x: Any) -> Any:
    import numpy as np

    g = np.zeros_like(x)
    t = x[1:] - x[:-1] ** 2
    g[:-1] += -400.0 * x[:-1] * t - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * t
    return g


def main(argv: list[str] | None = None) -> int:
    """Print the stage table and the before/after comparison; ``--json FILE`` too."""
    parser = subcommand_parser("compile-stages", __doc__)
    parser.add_argument("--repeat", type=int, default=15, help="compilations per measurement")
    parser.add_argument("--runs", type=int, default=25, help="timings per gradient run time")
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")
    args = parser.parse_args(argv)
    res = measure(args.repeat, args.runs)
    names = list(res["stages_ms"])
    print("stage (median thread CPU ms)".ljust(36) + "".join(f"{n:>16s}" for n in names))
    labels = [s[0] for s in STAGES] + ["total (thread CPU)"]
    for label in labels:
        row = [res["stages_ms"][n].get(label, 0.0) for n in names]
        print(label.ljust(36) + "".join(f"{v:16.3f}" for v in row))
    print()
    print("compile (median ms)".ljust(36) + f"{'before':>12s}{'after':>12s}{'after/before':>14s}")
    for key in res["compile_ms"]["after"]:
        b, a = res["compile_ms"]["before"][key], res["compile_ms"]["after"][key]
        print(key.ljust(36) + f"{b:12.2f}{a:12.2f}{a / b:14.2f}")
    print("run time (median ms)".ljust(36) + f"{'before':>12s}{'after':>12s}{'after/before':>14s}")
    for key in res["run_ms"]["after"]:
        b, a = res["run_ms"]["before"][key], res["run_ms"]["after"][key]
        print(key.ljust(36) + f"{b:12.3f}{a:12.3f}{a / b:14.2f}")
    print(f"reference sum(range(1000)): {res['reference_python_us']:.1f} us (8-10 on an idle core)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
