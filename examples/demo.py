"""enzyme-py in one minute: fetch Enzyme, differentiate C and Python, check the numbers.

Run from a checkout after ``bash .ci/setup --no-fetch``::

    .venv/bin/python examples/demo.py

On first use the LLVMEnzyme-15 artifact is fetched into the per-user cache (with a progress
bar on a terminal), verified by sha256 and bound to the machine's libLLVM-15.  Everything
after that happens in this process: no compiler toolchain runs for IR and Python input.
"""

from __future__ import annotations

import math
import time

import numpy as np

import enzyme_artifacts
import enzyme_py
from enzyme_py import Active, Const, Duplicated, Forward, Reverse, autodiff, gradient

ROSENBROCK_C = r"""
double rosenbrock(const double *x, long n) {
    double s = 0.0;
    for (long i = 0; i < n - 1; ++i) {
        double a = x[i + 1] - x[i] * x[i];
        double b = 1.0 - x[i];
        s += 100.0 * a * a + b * b;
    }
    return s;
}
"""


def rosenbrock_gradient(x: np.ndarray) -> np.ndarray:
    """The hand-derived gradient, to check Enzyme's against."""
    g = np.zeros_like(x)
    a = x[1:] - x[:-1] ** 2
    g[:-1] += -400.0 * a * x[:-1] - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * a
    return g


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    print("1. Locating Enzyme for LLVM 15 (fetched and verified on first use)")
    t0 = time.perf_counter()
    found = enzyme_artifacts.resolve(15, progress=True)
    print(f"   libLLVM : {found.llvm.path} (LLVM {found.llvm.version})")
    print(f"   Enzyme  : {found.library} (v{found.enzyme_version}, from {found.origin}, "
          f"{time.perf_counter() - t0:.2f} s)")

    print("\n2. A C function, differentiated in-process")
    t0 = time.perf_counter()
    f = enzyme_py.Module.from_c(ROSENBROCK_C).function("rosenbrock")
    n = 1_000_000
    x = np.random.default_rng(0).uniform(-2.0, 2.0, n)
    g, _ = gradient(Reverse, f, x, Const(n))
    first = time.perf_counter() - t0
    err = np.max(np.abs(g - rosenbrock_gradient(x))) / np.max(np.abs(g))
    print(f"   rosenbrock(x), n = {n:,}: first gradient after {first * 1e3:.0f} ms "
          f"(C → IR → Enzyme → JIT), relative error vs hand-derived {err:.1e}")
    t_primal = best_of(lambda: f(x, n))
    dx = np.zeros_like(x)

    def reverse() -> None:
        dx[:] = 0.0
        autodiff(Reverse, f, Active, Duplicated(x, dx), Const(n))

    t_grad = best_of(reverse)
    print(f"   primal {t_primal * 1e3:.2f} ms, gradient {t_grad * 1e3:.2f} ms "
          f"(gradient/primal {t_grad / t_primal:.2f})")

    v = np.random.default_rng(1).standard_normal(n)
    (jvp,) = autodiff(Forward, f, Duplicated, Duplicated(x, v), Const(n))
    h = 1e-6
    fd = (f(x + h * v, n) - f(x - h * v, n)) / (2 * h)
    print(f"   forward mode: directional derivative {jvp:.6e}, finite differences {fd:.6e}, "
          f"<grad, v> {float(g @ v):.6e}")

    print("\n3. An LLVM IR function: d/dx x*x at 3")
    sq = enzyme_py.Module.from_ir(
        "define double @sq(double %x) {\n  %y = fmul double %x, %x\n  ret double %y\n}\n"
    ).function("sq")
    print(f"   autodiff(Reverse, sq, Active, Active(3.0)) = {autodiff(Reverse, sq, Active, Active(3.0))}")

    print("\n4. Plain Python functions, through Numba")

    def f1(x: float) -> float:
        return math.sin(x) * x + math.exp(x)

    ((d,),) = autodiff(f1, Active(0.5))
    exact = math.cos(0.5) * 0.5 + math.sin(0.5) + math.exp(0.5)
    print(f"   d/dx [sin(x)·x + exp(x)] at 0.5 = {d!r} (exact {exact!r})")

    @enzyme_py.jit
    def loss(w: np.ndarray, x: np.ndarray) -> float:
        s = 0.0
        for i in range(x.shape[0]):
            s += math.tanh(w[i] * x[i]) ** 2
        return s

    rng = np.random.default_rng(2)
    w, xs = rng.standard_normal(5), rng.standard_normal(5)
    gw, gx = loss.grad(w, xs)
    t = np.tanh(w * xs)
    print(f"   @enzyme_py.jit loss(w, x) = Σ tanh(w·x)²: max error of .grad vs analytic "
          f"{max(np.max(np.abs(gw - 2 * t * (1 - t**2) * xs)), np.max(np.abs(gx - 2 * t * (1 - t**2) * w))):.1e}")

if __name__ == "__main__":
    main()
