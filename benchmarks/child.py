"""One benchmark case, run in a fresh child process: ``python -m benchmarks.child SPEC_JSON``.

The parent starts one child per (problem, tool, thread setting) with the thread environment
already set (see :mod:`benchmarks.runner`), so imports, pinning, compile caches and peak memory
belong to that case alone. The child prints one line ``BENCH-RESULT <json>`` holding a
:class:`benchmarks.report.Row`.

Order inside the child: pin to one CPU when asked (if the parent could not use ``taskset``);
build the inputs; compute the reference gradient with the hand-written adjoint; import the tool
(``import_s``); prepare it and take the first gradient (``first_gradient_s``); compare that
gradient with the reference (a relative error above the problem's tolerance gives status
``mismatch`` and nothing is timed); time the primal, the gradient and, for scalar problems, the
Python-level call latency (and the tool's other ways of calling it, ``latencies``, each checked
to give the same derivative first, and the hand-written adjoint's ctypes call, interleaved with
them in :data:`LATENCY_ROUNDS` rounds, each call getting the lowest of its rounds' medians:
``hand_latency_s``); read the peak RSS.  A ``first_only`` case (the second,
warm-cache run of a tool with a disk cache) stops after the check.

For the ``hand`` tool the reference is itself, so it is checked instead against a central finite
difference of the C primal along a random direction.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.native import BuildError, CKernel
from benchmarks.problems import Array, Inputs, Problem, get_problem
from benchmarks.report import Row
from benchmarks.timing import Budget, measure
from benchmarks.tools import get_tool

__all__ = ["RESULT_PREFIX", "CaseSpec", "main", "relative_error", "run_case"]

RESULT_PREFIX = "BENCH-RESULT "
"""The prefix of the line carrying the child's JSON result."""

FD_TOLERANCE = 1e-5
"""Bound on the relative disagreement between the hand adjoint and a central difference."""

FD_MAX_SIZE = 1000
"""The largest size at which the hand adjoint is checked by finite differences."""

LATENCY_ROUNDS = 5
"""Interleaved rounds of the P1 call-latency measurements (the hand adjoint's call among them)."""


@dataclass(frozen=True)
class CaseSpec:
    """What one child measures. ``threads`` is ``"1"`` (pinned) or ``"default"``."""

    problem: str
    tool: str
    threads: str
    size: int
    seed: int
    quick: bool
    reference_library: str
    pin_cpu: int | None = None
    clock: str = "wall"
    first_only: bool = False

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> CaseSpec:
        return cls(**json.loads(text))


def relative_error(got: tuple[Array, ...], ref: tuple[Array, ...]) -> float:
    """``max |got - ref| / max |ref|`` over all arrays (infinite when shapes differ or NaN)."""
    if len(got) != len(ref):
        return float("inf")
    scale = max((float(np.max(np.abs(r))) for r in ref), default=0.0) or 1.0
    worst = 0.0
    for g, r in zip(got, ref, strict=True):
        g = np.asarray(g, dtype=np.float64)
        if g.shape != r.shape:
            return float("inf")
        d = float(np.max(np.abs(g - r))) if r.size else 0.0
        if not np.isfinite(d):
            return float("inf")
        worst = max(worst, d)
    return worst / scale


def finite_difference_error(kernel: CKernel, inputs: Inputs, grad: tuple[Array, ...],
                            seed: int = 1) -> float:
    """Relative gap between ``grad . v`` and a central difference of the primal along a random
    unit-scale direction ``v`` over the active arguments."""
    rng = np.random.default_rng(seed)
    dirs = [rng.normal(size=np.shape(a)) for a in inputs.active_args()]
    h = 1e-6

    def shifted(sign: float) -> tuple[object, ...]:
        args = list(inputs.args)
        for i, d in zip(inputs.active, dirs, strict=True):
            a = args[i]
            args[i] = float(a) + sign * h * float(d) if isinstance(a, float) else a + sign * h * d
        return tuple(args)

    fd = (kernel.primal_at(shifted(1.0)) - kernel.primal_at(shifted(-1.0))) / (2 * h)
    dot = sum(float(np.sum(g * d)) for g, d in zip(grad, dirs, strict=True))
    return abs(fd - dot) / max(abs(dot), 1e-300)


def _hand_fd_error(problem: Problem, spec: CaseSpec, library: Path) -> float:
    """The hand adjoint against a central difference, at a size small enough (at most
    :data:`FD_MAX_SIZE`) for the difference of two large sums not to drown in rounding."""
    inputs = problem.inputs(min(spec.size, FD_MAX_SIZE), spec.seed)
    kernel = CKernel(problem, inputs, library)
    return finite_difference_error(kernel, inputs, kernel.gradient_value())


def _budget(quick: bool) -> Budget:
    if quick:
        return Budget(total_s=0.25, min_sample_s=0.002, min_repeats=3, max_repeats=100, warmup=1)
    return Budget(total_s=2.0, min_sample_s=0.005, min_repeats=7, max_repeats=1000, warmup=3)


def _peak_rss_mib() -> float:
    # Linux reports kilobytes, macOS bytes.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def run_case(spec: CaseSpec) -> Row:
    """Measure one case in this process (the child's body)."""
    if spec.pin_cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {spec.pin_cpu})
    problem: Problem = get_problem(spec.problem)
    tool = get_tool(spec.tool)
    base = Row(problem=problem.id, tool=tool.name, threads=spec.threads, size=spec.size,
               status="error")
    missing = tool.missing()
    if missing:
        return replace(base, status="not installed",
                   message=f"missing: {', '.join(missing)} (pip install -e '.[bench]')")
    inputs = problem.inputs(spec.size, spec.seed)
    reference = CKernel(problem, inputs, Path(spec.reference_library))
    ref = reference.gradient_value()
    threads = 1 if spec.threads == "1" else None
    with tempfile.TemporaryDirectory(prefix=f"bench-{problem.id}-{tool.name}-") as tmp:
        try:
            module = tool.load()
            t0 = time.perf_counter()
            module.setup(threads)
            import_s = time.perf_counter() - t0
        except ImportError as e:
            return replace(base, status="not installed", message=f"{type(e).__name__}: {e}")
        try:
            t0 = time.perf_counter()
            prepared = module.prepare(problem, inputs, Path(tmp))
            prepared.gradient()
            first_s = time.perf_counter() - t0
        except BuildError as e:
            status = "unavailable" if "not found" in str(e) else "error"
            return replace(base, status=status, message=str(e), import_s=import_s)
        except Exception as e:  # noqa: BLE001 - any tool failure becomes a row
            return replace(base, status="error", message=_describe(e), import_s=import_s)
        got = prepared.gradient_value()
        if tool.name == "hand":
            err = max(relative_error(got, ref), _hand_fd_error(problem, spec, reference.library))
            bound = FD_TOLERANCE
        else:
            err = relative_error(got, ref)
            bound = problem.tolerance
        common = replace(base, first_gradient_s=first_s, import_s=import_s, max_rel_error=err)
        if not err <= bound:
            return replace(common, status="mismatch", peak_rss_mib=_peak_rss_mib(),
                       message=f"gradient differs from the hand-written adjoint: relative error "
                               f"{err:.3g} > {bound:.1g}")
        if spec.first_only:
            return replace(common, status="ok", peak_rss_mib=_peak_rss_mib())
        budget = _budget(spec.quick)
        primal = measure(prepared.primal, budget, clock=spec.clock)
        grad = measure(prepared.gradient, budget, warmup=0, clock=spec.clock)  # run twice above
        latency = hand_latency = None
        latencies: dict[str, float] | None = None
        if prepared.latency is not None:
            x0 = float(inputs.args[inputs.active[0]])
            call = prepared.latency
            want = call(x0)
            calls: dict[str, Any] = {"call": call}
            for label in list(prepared.latencies):
                got = prepared.latencies[label](x0)
                if got != want:
                    return replace(common, status="mismatch", message=f"{label} gave {got!r}, "
                                   f"the gradient {want!r}")
                calls[label] = prepared.latencies[label]  # (a tool may replace it at its first call)
            # The hand-written adjoint's ctypes call is timed in this child too, interleaved
            # with the tool's calls in rounds; each gets the lowest of its rounds' medians
            # (a round the scheduler disturbed only ever reads slower).
            calls["hand"] = reference.gradient_function()
            rounds: dict[str, list[float]] = {k: [] for k in calls}
            for _ in range(LATENCY_ROUNDS):
                for label, fn in calls.items():

                    def timed(f: Callable[[float], object] = fn) -> object:
                        return f(x0)

                    rounds[label].append(measure(timed, budget, clock=spec.clock).median_s)
            medians = {k: min(v) for k, v in rounds.items()}
            latency, hand_latency = medians.pop("call"), medians.pop("hand")
            latencies = medians or None
        return replace(common, status="ok", primal_s=primal.median_s, gradient_s=grad.median_s,
                   call_latency_s=latency, peak_rss_mib=_peak_rss_mib(), repeats=grad.repeats,
                   latencies=latencies, hand_latency_s=hand_latency)


def _describe(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    lines = text.splitlines()
    return lines[0] if len(lines) == 1 else " / ".join(line for line in lines[:6] if line.strip())


def main(argv: list[str] | None = None) -> int:
    """Run the case given as JSON in ``argv[0]`` and print its row."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m benchmarks.child SPEC_JSON", file=sys.stderr)
        return 2
    spec = CaseSpec.from_json(argv[0])
    try:
        row = run_case(spec)
    except Exception as e:  # noqa: BLE001 - report, the parent decides
        traceback.print_exc()
        row = Row(problem=spec.problem, tool=spec.tool, threads=spec.threads, size=spec.size,
                  status="error", message=_describe(e))
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(row.to_json()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
