"""The walk that finds calls an Enzyme would end the process on (``FATAL_CALLS``):
through direct calls and through functions passed as arguments (an OpenMP region's
body), but not into functions Enzyme does not differentiate."""

from __future__ import annotations

import uuid

import enzyme_py as ez
from enzyme_py._native import transforms
from enzyme_py._native.ffi import capi_v0_0_173, capi_v0_0_289

SRC = """#include <math.h>
double s(const double *x, int n) { double t = 0;
#pragma omp parallel for reduction(+:t)
  for (int i = 0; i < n; i++) t += sin(x[i]);
  return t; }
__attribute__((noinline, enzyme_inactive)) double quiet(double x) { return lgamma(x); }
__attribute__((noinline)) double loud(double x) { return lgamma(x); }
double uses_quiet(double x) { return x * quiet(x); }
double uses_loud(double x) { return x * loud(x); }
"""


def test_the_walk_follows_calls_and_region_bodies_but_not_inactive_functions() -> None:
    m = ez.Module.from_c(SRC, flags=["-fopenmp"], name=f"fatal_{uuid.uuid4().hex[:8]}")
    mod = m._handle()
    reductions = transforms.fatal_calls(mod, "s", capi_v0_0_173.FATAL_CALLS)
    assert [callee for _, callee in reductions] in (["__kmpc_reduce_nowait"], ["__kmpc_reduce"])
    assert reductions[0][0] != "s"  # found in the outlined region's body
    assert transforms.fatal_calls(mod, "s", capi_v0_0_289.FATAL_CALLS) == []
    assert transforms.fatal_calls(mod, "uses_loud", transforms.FATAL_CALLS) == [("loud", "lgamma")]
    assert transforms.fatal_calls(mod, "uses_quiet", transforms.FATAL_CALLS) == []
