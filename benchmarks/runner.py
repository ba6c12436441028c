"""The parent side: plan the cases, start one child per case, collect the rows.

Thread settings (the child environment is made before the child's interpreter starts, so it holds
before any framework is imported):

* ``"1"`` — ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and friends set to 1,
  ``XLA_FLAGS`` extended with ``--xla_cpu_multi_thread_eigen=false
  intra_op_parallelism_threads=1``, and the child pinned to one CPU with ``taskset -c <cpu>``
  (or ``sched_setaffinity`` in the child when ``taskset`` is absent): jaxlib uses every core
  otherwise. torch additionally calls ``set_num_threads(1)``.
* ``"default"`` — those variables removed, no pinning: what a user gets out of the box. Only
  tools whose runtime is multi-threaded (jax, torch) are run this way; the C tools are
  single-threaded code and their ``"1"`` row stands for both.

Every child: ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` removed, ``JAX_PLATFORMS=cpu``, and a
fresh empty ``TORCHINDUCTOR_CACHE_DIR`` so compile times are cold.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.child import RESULT_PREFIX, CaseSpec
from benchmarks.native import BuildError, build_hand
from benchmarks.problems import Problem
from benchmarks.report import Row, add_ratios
from benchmarks.tools import Tool

__all__ = ["THREAD_VARIABLES", "RunConfig", "child_environment", "run"]

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
"""Variables set to 1 in pinned children and removed in default-thread children."""

XLA_SINGLE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RunConfig:
    """One invocation: which problems and tools, thread settings (a subset of ``("1",
    "default")``), quick or full budgets, an optional size override, the per-child timeout."""

    problems: tuple[Problem, ...]
    tools: tuple[Tool, ...]
    threads: tuple[str, ...] = ("1", "default")
    quick: bool = False
    size: int | None = None
    seed: int = 0
    timeout_s: float = 600.0
    clock: str = "wall"


def child_environment(threads: str, inductor_dir: Path) -> dict[str, str]:
    """The environment of a child for thread setting ``threads``."""
    env = dict(os.environ)
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", *THREAD_VARIABLES):
        env.pop(name, None)
    env["JAX_PLATFORMS"] = "cpu"
    env["TORCHINDUCTOR_CACHE_DIR"] = str(inductor_dir)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(_PACKAGE_ROOT) + (os.pathsep + path if path else "")
    xla = env.get("XLA_FLAGS", "")
    if threads == "1":
        for name in THREAD_VARIABLES:
            env[name] = "1"
        env["XLA_FLAGS"] = (xla + " " + XLA_SINGLE_THREAD).strip()
    return env


def _pin_cpu() -> int:
    if hasattr(os, "sched_getaffinity"):
        return min(os.sched_getaffinity(0))
    return 0


def _run_child(spec: CaseSpec, env: dict[str, str], timeout_s: float) -> Row:
    base = Row(problem=spec.problem, tool=spec.tool, threads=spec.threads, size=spec.size,
               status="crashed")
    taskset = shutil.which("taskset")
    cpu = spec.pin_cpu
    if spec.threads == "1" and taskset and cpu is not None:
        # Pin before the interpreter starts; the child then need not pin itself.
        spec = dataclasses.replace(spec, pin_cpu=None)
        cmd = [taskset, "-c", str(cpu), sys.executable, "-m", "benchmarks.child", spec.to_json()]
    else:
        cmd = [sys.executable, "-m", "benchmarks.child", spec.to_json()]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired:
        return dataclasses.replace(base, status="timeout", message=f"no result after {timeout_s:.0f} s")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return Row.from_json(json.loads(line[len(RESULT_PREFIX):]))
    how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
           else f"exit status {proc.returncode}")
    tail = " / ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
    return dataclasses.replace(base, status="crashed", message=f"child {how} without a result: {tail}")


def run(config: RunConfig, progress: Callable[[str], None] | None = None) -> list[Row]:
    """Run every case of ``config``; the rows, with ratios filled in."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="enzyme-py-bench-") as tmp:
        tmpdir = Path(tmp)
        for problem in config.problems:
            size = config.size or (problem.quick_size if config.quick else problem.size)
            try:
                reference = build_hand(problem, tmpdir)
            except (BuildError, OSError) as e:
                # Without the reference adjoint nothing can be cross-checked, so nothing runs.
                rows.extend(
                    Row(problem=problem.id, tool=tool.name, threads="1", size=size,
                        status="unavailable",
                        message=f"the reference adjoint did not build (set CC?): {e}")
                    for tool in config.tools
                )
                continue
            for tool in config.tools:
                settings: Sequence[str] = [t for t in config.threads
                                           if t == "1" or tool.threaded]
                for threads in settings:
                    base = Row(problem=problem.id, tool=tool.name, threads=threads,
                               size=size, status="skipped")
                    missing = tool.missing()
                    if missing:
                        rows.append(dataclasses.replace(base, status="not installed",
                                        message=f"missing: {', '.join(missing)} "
                                                "(pip install -e '.[bench]')"))
                        continue
                    reason = tool.skip_reason(problem.id)
                    if reason:
                        rows.append(dataclasses.replace(base, status="skipped", message=reason))
                        continue
                    if progress:
                        progress(f"{problem.id} {tool.name} ({threads} thr)")
                    inductor = Path(tempfile.mkdtemp(prefix="inductor-", dir=tmpdir))
                    spec = CaseSpec(problem=problem.id, tool=tool.name, threads=threads,
                                    size=size, seed=config.seed, quick=config.quick,
                                    reference_library=str(reference), clock=config.clock,
                                    pin_cpu=_pin_cpu() if threads == "1" else None)
                    env = child_environment(threads, inductor)
                    if tool.warm_start:
                        # cold: an empty disk cache of its own; then warm: the one it filled
                        env["ENZYME_PY_CACHE_DIR"] = tempfile.mkdtemp(prefix="cache-", dir=tmpdir)
                    row = _run_child(spec, env, config.timeout_s)
                    if tool.warm_start and row.status == "ok":
                        warm = _run_child(dataclasses.replace(spec, first_only=True), env,
                                          config.timeout_s)
                        if warm.status == "ok":
                            row = dataclasses.replace(row, first_gradient_warm_s=warm.first_gradient_s)
                    rows.append(row)
    return add_ratios(rows)
