"""Several threads compile different functions and call derivatives concurrently."""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from enzyme_py import (
    Active,
    Const,
    Duplicated,
    Forward,
    Module,
    Reverse,
    ReverseWithPrimal,
    autodiff,
    gradient,
    make_zero,
)

THREADS = 4
ROUNDS = 40

# f_k(x) = k * x^3 + sin(x): distinct content per thread, so each thread compiles its own module.
IR_TEMPLATE = """
declare double @llvm.sin.f64(double)

define double @poly(double %x) {{
entry:
  %xx = fmul double %x, %x
  %xxx = fmul double %xx, %x
  %kx = fmul double %xxx, {k:.1f}
  %s = call double @llvm.sin.f64(double %x)
  %r = fadd double %kx, %s
  ret double %r
}}
"""

# g_k(x) = sum(k * x[i]^2), from C.
C_TEMPLATE = """
double wsum(const double *x, long n) {{
    double s = 0.0;
    for (long i = 0; i < n; i++) s += {k:.1f} * x[i] * x[i];
    return s;
}}
"""


def _worker(k: int, barrier: threading.Barrier) -> list[str]:
    problems: list[str] = []
    barrier.wait()  # start compiling at the same time
    poly = Module.from_ir(IR_TEMPLATE.format(k=float(k)), name=f"poly{k}").function("poly")
    wsum = Module.from_c(C_TEMPLATE.format(k=float(k)), name=f"wsum{k}").function("wsum")
    barrier.wait()  # then differentiate and call at the same time
    rng = np.random.default_rng(k)
    for r in range(ROUNDS):
        x = float(rng.uniform(-2.0, 2.0))
        exact = 3.0 * k * x * x + math.cos(x)
        ((d,),) = autodiff(Reverse, poly, Active, Active(x))
        (d2,), primal = autodiff(ReverseWithPrimal, poly, Active, Active(x))
        (t,) = autodiff(Forward, poly, Duplicated, Duplicated(x, 1.0))
        for name, got in (("reverse", d), ("reverse+primal", d2), ("forward", t)):
            if not math.isclose(got, exact, rel_tol=1e-12, abs_tol=1e-12):
                problems.append(f"thread {k} round {r} {name}: {got} != {exact}")
        if not math.isclose(primal, k * x**3 + math.sin(x), rel_tol=1e-13, abs_tol=1e-13):
            problems.append(f"thread {k} round {r} primal: {primal}")

        xs = rng.uniform(-1.0, 1.0, size=5 + k)
        dx = make_zero(xs)
        autodiff(Reverse, wsum, Active, Duplicated(xs, dx), xs.size)
        g, _ = gradient(wsum, xs, Const(xs.size))
        for name, got in (("array reverse", dx), ("array gradient", g)):
            if not np.allclose(got, 2.0 * k * xs, rtol=1e-13, atol=1e-14):
                problems.append(f"thread {k} round {r} {name}: {got} != {2.0 * k * xs}")
    return problems


def test_threads_compile_and_differentiate_concurrently() -> None:
    barrier = threading.Barrier(THREADS)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(_worker, k + 1, barrier) for k in range(THREADS)]
        problems = [p for fut in futures for p in fut.result(timeout=300)]
    assert problems == []


def test_threads_share_one_function() -> None:
    """Many threads calling the same compiled derivative (first use races on the cache)."""
    f = Module.from_ir(IR_TEMPLATE.format(k=5.0), name="shared").function("poly")
    xs = np.linspace(-2.0, 2.0, 64)

    def run(x: float) -> float:
        ((d,),) = autodiff(Reverse, f, Active, Active(float(x)))
        return d

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        got = list(pool.map(run, xs))
    np.testing.assert_allclose(got, 15.0 * xs**2 + np.cos(xs), rtol=1e-12, atol=1e-12)
