"""Every invalid request raises TypeError/ValueError (or the documented error) and the process lives.

Each case runs in a fresh interpreter (``run_child``): an invalid request that slipped through to
Enzyme would abort the process, which must show up as one failed test. After the error each child
computes a correct derivative (``still_alive``) and exits 0. A last test runs every case in one
process, then differentiates correctly.
"""

from __future__ import annotations

import pytest

# Typed-pointer IR: the element type of every pointer is known, so dtype errors are detectable.
SETUP = r'''
IR = """
define double @sq(double %x) {
entry:
  %r = fmul double %x, %x
  ret double %r
}

define double @sumsq(double* %x, i64 %n) {
entry:
  %c0 = icmp sgt i64 %n, 0
  br i1 %c0, label %loop, label %exit
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %acc = phi double [ 0.0, %entry ], [ %acc1, %loop ]
  %p = getelementptr inbounds double, double* %x, i64 %i
  %v = load double, double* %p, align 8
  %v2 = fmul double %v, %v
  %acc1 = fadd double %acc, %v2
  %i1 = add nuw nsw i64 %i, 1
  %done = icmp eq i64 %i1, %n
  br i1 %done, label %exit, label %loop
exit:
  %r = phi double [ 0.0, %entry ], [ %acc1, %loop ]
  ret double %r
}

define double @scalei(double %x, i64 %k) {
entry:
  %kf = sitofp i64 %k to double
  %r = fmul double %x, %kf
  ret double %r
}

define i64 @count(double %x) {
entry:
  %r = fptosi double %x to i64
  ret i64 %r
}

define void @twice_into(double* %x, double* %y, i64 %n) {
entry:
  %c0 = icmp sgt i64 %n, 0
  br i1 %c0, label %loop, label %exit
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %p = getelementptr inbounds double, double* %x, i64 %i
  %v = load double, double* %p, align 8
  %w = fmul double %v, 2.0
  %q = getelementptr inbounds double, double* %y, i64 %i
  store double %w, double* %q, align 8
  %i1 = add nuw nsw i64 %i, 1
  %done = icmp eq i64 %i1, %n
  br i1 %done, label %exit, label %loop
exit:
  ret void
}
"""
m = Module.from_ir(IR, name="invalid")
sq = m.function("sq")
sumsq = m.function("sumsq")
scalei = m.function("scalei")
count = m.function("count")
twice_into = m.function("twice_into")
x = np.array([1.0, 2.0, 3.0])
dx = np.zeros(3)
y = np.zeros(3)
dy = np.ones(3)
BAD = (TypeError, ValueError)
'''

CASES: dict[str, str] = {
    "wrong_arity": """
expect_raises(BAD, lambda: autodiff(Reverse, sq, Active, Active(1.0), Active(2.0)))
expect_raises(BAD, lambda: autodiff(Reverse, sumsq, Active, Duplicated(x, dx)))
expect_raises(BAD, lambda: autodiff(Forward, sq, Duplicated))
expect_raises(BAD, lambda: gradient(Reverse, sumsq, x))
expect_raises(TypeError, lambda: sq(1.0, 2.0))
expect_raises(TypeError, lambda: sq())
""",
    "active_on_pointer": """
expect_raises(BAD, lambda: autodiff(Reverse, sumsq, Active, Active(x), 3))
expect_raises(BAD, lambda: autodiff(ReverseWithPrimal, twice_into, Const, Active(x), Duplicated(y, dy), 3))
""",
    "active_on_integer": """
expect_raises(BAD, lambda: autodiff(Reverse, scalei, Active, Active(1.0), Active(3)))
expect_raises(BAD, lambda: autodiff(Reverse, sumsq, Active, Duplicated(x, dx), Active(3)))
expect_raises(BAD, lambda: autodiff(Forward, scalei, Duplicated, Duplicated(1.0, 1.0), Duplicated(3, 1)))
expect_raises(BAD, lambda: autodiff(Reverse, count, Active, Active(1.5)))  # Active return of an i64
""",
    "active_in_forward_mode": """
expect_raises(TypeError, lambda: autodiff(Forward, sq, Duplicated, Active(3.0)))
expect_raises(TypeError, lambda: autodiff(ForwardWithPrimal, sq, Duplicated, Active(3.0)))
expect_raises(TypeError, lambda: autodiff(Forward, sq, Active, Duplicated(3.0, 1.0)))
expect_raises(TypeError, lambda: autodiff(ForwardWithPrimal, sq, Active, Duplicated(3.0, 1.0)))
""",
    "active_return_on_void": """
expect_raises(BAD, lambda: autodiff(Reverse, twice_into, Active, Duplicated(x, dx), Duplicated(y, dy), 3))
expect_raises(BAD, lambda: autodiff(ReverseWithPrimal, twice_into, Active, Duplicated(x, dx),
              Duplicated(y, dy), 3))
expect_raises(BAD, lambda: gradient(Reverse, twice_into, x, Const(y), Const(3)))
""",
    "duplicated_return_on_void": """
expect_raises(BAD, lambda: autodiff(Forward, twice_into, Duplicated, Duplicated(x, dx), Duplicated(y, dy), 3))
expect_raises(BAD, lambda: autodiff(ForwardWithPrimal, twice_into, DuplicatedNoNeed, Duplicated(x, dx),
              Duplicated(y, dy), 3))
expect_raises(BAD, lambda: autodiff(Reverse, twice_into, Duplicated, Duplicated(x, dx), Duplicated(y, dy), 3))
""",
    "wrong_dtype": """
x32 = x.astype(np.float32)
xi = np.array([1, 2, 3], dtype=np.int64)
expect_raises(BAD, lambda: autodiff(Reverse, sumsq, Active, Duplicated(x32, np.zeros(3, np.float32)), 3))
expect_raises(BAD, lambda: autodiff(Reverse, sumsq, Active, Duplicated(xi, np.zeros(3, np.int64)), 3))
expect_raises(BAD, lambda: autodiff(Reverse, sumsq, Active, Duplicated(x, np.zeros(3, np.float32)), 3))
expect_raises(BAD, lambda: gradient(sumsq, x32, Const(3)))
expect_raises(BAD, lambda: sumsq(x32, 3))
expect_raises(BAD, lambda: autodiff(Reverse, sq, Active, Active("3.0")))
expect_raises(BAD, lambda: autodiff(Reverse, scalei, Active, Active(1.0), 2.5))  # float for an i64
expect_raises(BAD, lambda: gradient(sumsq, x.astype(">f8"), Const(3)))  # byte-swapped
expect_raises(BAD, lambda: autodiff(Reverse, sq, Active, Active(True)))  # bool for a double
expect_raises(BAD, lambda: autodiff(Reverse, scalei, Active, Active(1.0), 2**70))  # out of range
""",
    "non_contiguous": """
xl = np.arange(6, dtype=np.float64)
expect_raises(BAD, lambda: autodiff(Reverse, sumsq, Active, Duplicated(xl[::2], np.zeros(3)), 3))
expect_raises(BAD, lambda: autodiff(Reverse, sumsq, Active, Duplicated(x, np.zeros(6)[::2]), 3))
expect_raises(BAD, lambda: gradient(sumsq, xl[::2], Const(3)))
expect_raises(BAD, lambda: autodiff(Forward, sumsq, Duplicated, Duplicated(xl[::2], np.ones(3)), 3))
expect_raises(BAD, lambda: sumsq(xl[::2], 3))
expect_raises(BAD, lambda: sumsq(np.asfortranarray(np.ones((2, 2))), 4))
""",
    "read_only_shadow": """
ro = np.zeros(3)
ro.setflags(write=False)
expect_raises(BAD, lambda: autodiff(Reverse, sumsq, Active, Duplicated(x, ro), 3))
expect_raises(BAD, lambda: autodiff(Reverse, twice_into, Const, Duplicated(x, np.zeros(3)), Duplicated(y, ro), 3))
ro_out = np.zeros(3)
ro_out.setflags(write=False)
expect_raises(BAD, lambda: autodiff(Forward, twice_into, Const, Duplicated(x, np.ones(3)),
              Duplicated(y, ro_out), 3))
ry = np.zeros(3)
ry.setflags(write=False)
expect_raises(BAD, lambda: twice_into(x, ry, 3))  # the primal writes through y
""",
    "shadow_shape_differs": """
expect_raises(BAD, lambda: autodiff(Reverse, sumsq, Active, Duplicated(x, np.zeros(4)), 3))
expect_raises(BAD, lambda: autodiff(Reverse, sumsq, Active, Duplicated(x, np.zeros(2)), 3))
expect_raises(BAD, lambda: autodiff(Reverse, sumsq, Active, Duplicated(x, np.zeros((3, 1))), 3))
expect_raises(BAD, lambda: autodiff(Forward, sumsq, Duplicated, Duplicated(x, np.ones(5)), 3))
expect_raises(BAD, lambda: autodiff(Reverse, sumsq, Active, Duplicated(x, 1.0), 3))
expect_raises(BAD, lambda: autodiff(Forward, sq, Duplicated, Duplicated(3.0, np.ones(1))))
""",
    "list_instead_of_array": """
expect_raises(BAD, lambda: autodiff(Reverse, sumsq, Active, Duplicated([1.0, 2.0, 3.0], dx), 3))
expect_raises(BAD, lambda: autodiff(Reverse, sumsq, Active, Duplicated(x, [0.0, 0.0, 0.0]), 3))
expect_raises(BAD, lambda: autodiff(Reverse, sumsq, Active, Duplicated(x, dx), [3]))
expect_raises(BAD, lambda: gradient(sumsq, [1.0, 2.0, 3.0], Const(3)))
expect_raises(BAD, lambda: sumsq([1.0, 2.0, 3.0], 3))
expect_raises(BAD, lambda: autodiff(Reverse, sumsq, Active, [1.0, 2.0, 3.0], 3))
""",
    "bad_mode_or_activity_objects": """
expect_raises(BAD, lambda: autodiff("reverse", sq, Active, Active(1.0)))
expect_raises(BAD, lambda: autodiff(Reverse, sq, "Active", Active(1.0)))
expect_raises(BAD, lambda: autodiff(Reverse, sq, Active(1.0), Active(1.0)))
expect_raises(BAD, lambda: autodiff(Reverse, "sq", Active, Active(1.0)))
expect_raises(BAD, lambda: autodiff(Reverse, sq, Active, Active(Active(1.0))))
""",
    "unknown_function_name": """
e = expect_raises(KeyError, lambda: m.function("no_such_fn"))
assert "no_such_fn" in str(e) and "sumsq" in str(e) and "twice_into" in str(e), str(e)
expect_raises(KeyError, lambda: m.function(""))
""",
    "ir_parse_error": """
text = "define double @f(double %x) {\\nentry:\\n  %a = fmul double %x, %x\\n  %b = fadd double %a, %nope\\n  ret double %b\\n}\\n"
e = expect_raises(enzyme_py.IRParseError, lambda: Module.from_ir(text))
assert isinstance(e, ValueError), type(e).__mro__
assert ":4:" in str(e) or "line 4" in str(e), str(e)
e = expect_raises(ValueError, lambda: Module.from_ir("this is not IR\\n"))
assert ":1:" in str(e) or "line 1" in str(e), str(e)
expect_raises(ValueError, lambda: Module.from_ir("define double @f(double %x) {\\n  ret double %x\\n"))
expect_raises(enzyme_py.IRParseError, lambda: Module.from_bitcode(b"not bitcode at all"))
e = expect_raises(enzyme_py.CompileError, lambda: Module.from_c("double f(double x) { return x * ; }\\n"))
assert isinstance(e, RuntimeError)
assert "expected expression" in str(e), str(e)
""",
    "nan_is_fine": """
import math
((d,),) = autodiff(Reverse, sq, Active, Active(float("nan")))
assert math.isnan(d), d
g, _ = gradient(sumsq, np.array([1.0, float("nan")]), Const(2))
assert g[0] == 2.0 and math.isnan(g[1]), g
print("NAN-OK")
""",
}

EXPECTED_RAISES = {name: code.count("expect_raises(") for name, code in CASES.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_request_raises_and_process_lives(run_child, case: str) -> None:  # type: ignore[no-untyped-def]
    out = run_child(SETUP + CASES[case] + "\nstill_alive()\n")
    assert out.count("RAISED ") == EXPECTED_RAISES[case], out
    assert "NO-EXCEPTION" not in out and "WRONG-EXCEPTION" not in out
    assert out.rstrip().endswith("ALIVE"), out


def test_all_invalid_requests_in_one_process(run_child) -> None:  # type: ignore[no-untyped-def]
    """Every invalid request back to back in one interpreter; then a correct derivative."""
    body = "".join(CASES[name] for name in sorted(CASES))
    out = run_child(SETUP + body + "\nstill_alive()\nprint(autodiff(Reverse, sumsq, Active, "
                    "Duplicated(x, make_zero(x)), 3))\ng, _ = gradient(sumsq, x, Const(3))\n"
                    "print('GRAD', g.tolist())\n")
    assert out.count("RAISED ") == sum(EXPECTED_RAISES.values()), out
    assert "ALIVE" in out
    assert "GRAD [2.0, 4.0, 6.0]" in out
