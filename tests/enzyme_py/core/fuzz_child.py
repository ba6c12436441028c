"""The body of the fuzz test (run in a child process by ``test_fuzz.py``).

Hypothesis drives the public API with bad and good inputs alike and with mutated IR.  An
outcome is either a result, checked against the analytic derivative (itself checked
against finite differences), or an exception from the documented tree; anything else is
recorded as a failure, and a signal kills this process (which the parent reports).

Prints one JSON line: counts of outcomes and the failures (at most 20).
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import enzyme_py as ez
from enzyme_py.activity import Annotation

EXAMPLES = int(sys.argv[1]) if len(sys.argv) > 1 else 300

C_SRC = """
double sumsq(const double *x, long n) { double s = 0; for (long i = 0; i < n; i++) s += x[i] * x[i]; return s; }
double poly(double x, double y) { return x * x * y + 3.0 * y; }
"""
MOD = ez.Module.from_c(C_SRC, name="fuzz")


def py_sumsq(x):  # type: ignore[no-untyped-def]
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i]
    return s


def py_poly(x, y):  # type: ignore[no-untyped-def]
    return x * x * y + 3.0 * y


TARGETS = {
    "c_sumsq": MOD.function("sumsq"),
    "c_poly": MOD.function("poly"),
    "py_sumsq": py_sumsq,
    "py_poly": py_poly,
}
ALLOWED = (TypeError, ValueError, ez.EnzymePyError)
counts = {"result": 0, "checked": 0, "error": 0}
failures: list[str] = []


def _fail(what: str) -> None:
    if len(failures) < 20:
        failures.append(what)


# --------------------------------------------------------------------------- values

floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.5, -1.25, 3.0]),
)
ints = st.one_of(st.integers(-5, 10), st.sampled_from([10**400, -(10**30), 2**63, 2**64]))


@st.composite
def arrays(draw: Any) -> Any:
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int32, np.bool_, np.complex128, np.int8]))
    shape = draw(st.sampled_from([(), (3,), (0,), (2, 3), (2, 2, 2), (4,)]))
    a = np.ones(shape, dtype=dtype) * draw(st.sampled_from([1, 2]))
    kind = draw(st.sampled_from(["plain", "strided", "readonly", "fortran"]))
    if kind == "strided" and a.ndim >= 1 and a.shape[0] > 1:
        a = np.repeat(a, 2, axis=0)[::2]
    elif kind == "readonly":
        a.setflags(write=False)
    elif kind == "fortran" and a.ndim == 2:
        a = np.asfortranarray(a)
    return a


plain_values = st.one_of(floats, ints, arrays(), st.none(), st.text(max_size=3), st.just(1j))


@st.composite
def annotated(draw: Any) -> Any:
    v = draw(plain_values)
    which = draw(st.sampled_from(["bare", "Active", "Const", "Duplicated", "NoNeed", "Batch", "class"]))
    if which == "bare":
        return v
    if which == "class":
        return draw(st.sampled_from([ez.Active, ez.Duplicated, ez.Const]))
    if which == "Active":
        return ez.Active(v)
    if which == "Const":
        return ez.Const(v)
    dv = draw(st.one_of(plain_values, st.just(np.zeros_like(v) if isinstance(v, np.ndarray) else 0.0)))
    if which == "Duplicated":
        return ez.Duplicated(v, dv)
    if which == "NoNeed":
        return ez.DuplicatedNoNeed(v, dv)
    try:
        return ez.BatchDuplicated(v, (dv, dv))
    except ALLOWED:
        return v


modes = st.sampled_from([
    ez.Reverse, ez.ReverseWithPrimal, ez.Forward, ez.ForwardWithPrimal, ez.ReverseSplitWithPrimal,
    ez.set_runtime_activity(ez.Reverse), "Reverse", None,
])
rets = st.sampled_from([ez.Active, ez.Const, ez.Duplicated, ez.DuplicatedNoNeed, ez.BatchDuplicated, None, 1.0])


def _expected(name: str, values: list[Any]) -> tuple[float, list[Any]]:
    """The primal and the gradient of a target at valid values."""
    if name.endswith("sumsq"):
        x = np.asarray(values[0], dtype=np.float64)
        return float(x @ x), [2 * x]
    x, y = float(values[0]), float(values[1])
    return x * x * y + 3 * y, [2 * x * y, x * x + 3]


def _check_result(name: str, mode: Any, ret: Any, args: list[Any], got: Any) -> None:
    """Check the common valid requests' results against the analytic derivative."""
    counts["result"] += 1
    if not isinstance(got, tuple):
        _fail(f"{name}: autodiff returned {type(got).__name__}, not a tuple")
        return
    vals = [a.val if isinstance(a, Annotation) else a for a in args]
    if not all(np.all(np.isfinite(np.asarray(v, dtype=float))) for v in vals if not isinstance(v, str)):
        return  # nan/inf inputs: any float is an honest answer
    try:
        _primal, grad = _expected(name, vals)
    except (TypeError, ValueError, IndexError):
        return
    if mode is ez.Reverse and ret is ez.Active and name.endswith("poly"):
        for i, a in enumerate(args):
            if type(a) is ez.Active:
                d = got[0][i]
                if not math.isclose(d, grad[i], rel_tol=1e-5, abs_tol=1e-9):
                    _fail(f"{name}: d{i} = {d}, want {grad[i]} for {args!r}")
        counts["checked"] += 1


def _run(name: str, mode: Any, ret: Any, args: list[Any], gradient: bool) -> None:
    f = TARGETS[name]
    try:
        got = ez.gradient(f, *args) if gradient else ez.autodiff(mode, f, ret, *args)
    except ALLOWED:
        counts["error"] += 1
        return
    except BaseException as e:  # noqa: BLE001
        _fail(f"{name}: {type(e).__module__}.{type(e).__name__}: {e!s:.200} for mode={mode!r} ret={ret!r} args={args!r:.200}")
        return
    _check_result(name, mode, ret, args, got)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(
    name=st.sampled_from(sorted(TARGETS)),
    mode=modes,
    ret=rets,
    args=st.lists(annotated(), max_size=3),
    gradient=st.booleans(),
)
def fuzz_bad_inputs(name: str, mode: Any, ret: Any, args: list[Any], gradient: bool) -> None:
    _run(name, mode, ret, args, gradient)


@settings(max_examples=EXAMPLES // 3, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(
    name=st.sampled_from(["c_poly", "py_poly"]),
    x=st.floats(-10, 10),
    y=st.floats(-10, 10),
    which=st.sampled_from(["xy", "x", "y"]),
)
def fuzz_good_inputs(name: str, x: float, y: float, which: str) -> None:
    args = [ez.Active(x) if "x" in which else x, ez.Active(y) if "y" in which else ez.Const(y)]
    _run(name, ez.Reverse, ez.Active, args, False)


SMOOTH_IR = """
define double @f(double %x, double %y) {
entry:
  %a = fmul double %x, %y
  %b = fadd double %a, %x
  %c = fmul double %b, %b
  %d = fsub double %c, %y
  ret double %d
}
"""


@settings(max_examples=EXAMPLES // 3, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(["delete", "opcode", "constant", "duplicate"]), st.integers(0, 10**6)),
        min_size=1, max_size=3,
    ),
)
def fuzz_mutated_ir(edits: list[tuple[str, int]]) -> None:
    text = SMOOTH_IR
    for how, at in edits:
        if how == "delete":
            i = at % len(text)
            text = text[:i] + text[i + 1 :]
        elif how == "opcode":
            ops = ["fmul", "fadd", "fsub"]
            text = text.replace(ops[at % 3], ops[(at + 1) % 3], 1)
        elif how == "constant":
            text = text.replace("%y)", f"{float(at % 7)})", 1)
        else:
            lines = text.splitlines()
            k = at % len(lines)
            text = "\n".join(lines[: k + 1] + lines[k:])
    try:
        with ez.isolated():  # a crash of Enzyme on odd IR is an exception, not a signal
            m = ez.Module.from_ir(text, name="mutated")
            f = m.function("f")
            (dx, dy), primal = ez.autodiff(ez.ReverseWithPrimal, f, ez.Active, ez.Active(0.7), ez.Active(-0.4))
    except (ALLOWED + (KeyError,)):
        counts["error"] += 1
        return
    except BaseException as e:  # noqa: BLE001
        _fail(f"mutated IR: {type(e).__name__}: {e!s:.200}\n{text}")
        return
    counts["result"] += 1
    eps = 1e-6
    fdx = (f(0.7 + eps, -0.4) - f(0.7 - eps, -0.4)) / (2 * eps)
    fdy = (f(0.7, -0.4 + eps) - f(0.7, -0.4 - eps)) / (2 * eps)
    if not (math.isclose(dx, fdx, rel_tol=1e-5, abs_tol=1e-7) and math.isclose(dy, fdy, rel_tol=1e-5, abs_tol=1e-7)):
        _fail(f"mutated IR: derivative ({dx}, {dy}) against differences ({fdx}, {fdy})\n{text}")
    counts["checked"] += 1
    if primal != f(0.7, -0.4):
        _fail("mutated IR: the primal of ReverseWithPrimal differs from the function's")


if __name__ == "__main__":
    fuzz_bad_inputs()
    fuzz_good_inputs()
    fuzz_mutated_ir()
    print(json.dumps({"counts": counts, "failures": failures}))
