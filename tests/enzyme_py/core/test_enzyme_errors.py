"""Enzyme's own failures (FACTS §4) surface as Python exceptions, and the process lives on.

Without handlers this Enzyme exits the process (undefined external call, untyped memcpy) or
returns a silently wrong derivative (type conflict). enzyme_py installs Enzyme's
``CustomErrorHandler`` and a diagnostic handler and turns any report into an ``EnzymeError``.
Each case runs in a fresh interpreter: a test fails, rather than the suite dying, if the process
exits or aborts. Every child ends by computing a correct derivative and exits 0.
"""

from __future__ import annotations

UNDEFINED_EXTERNAL = r'''
IR = """
declare double @mystery(double)

define double @f(double %x) {
entry:
  %y = call double @mystery(double %x)
  %z = fmul double %y, %x
  ret double %z
}
"""
f = Module.from_ir(IR, name="undefined-external").function("f")
for attempt in range(2):  # a failed request is not cached as a success
    e = expect_raises(enzyme_py.EnzymeError, lambda: autodiff(Reverse, f, Active, Active(2.0)))
    assert isinstance(e, RuntimeError) and isinstance(e, enzyme_py.EnzymePyError)
    assert isinstance(e, enzyme_py.NoDerivativeError), type(e).__mro__
    assert "mystery" in e.message, e.message          # Enzyme's own message names the callee
    assert "mystery" in str(e)
    assert e.instruction is None or "@mystery" in e.instruction, e.instruction
e = expect_raises(enzyme_py.EnzymeError,
                  lambda: autodiff(Forward, f, Duplicated, Duplicated(2.0, 1.0)))
assert "mystery" in str(e), str(e)
e = expect_raises(enzyme_py.EnzymeError, lambda: gradient(f, 2.0))
assert "mystery" in str(e), str(e)
'''

# The same stack slot is stored as a double and loaded as an i64 that feeds sitofp: type analysis
# sees Float@double and Integer for one value ("Illegal updateAnalysis"). In Enzyme v0.0.289,
# TypeAnalyzer::updateAnalysis calls the CustomErrorHandler (ErrorType IllegalTypeAnalysis) and
# then, when the value is an instruction, emits an LLVM diagnostic and calls exit(1) itself: a
# handler that returns cannot stop it (measured: the child exits with status 1 and prints
# nothing). The contract of enzyme_py is an IllegalTypeAnalysisError and a live process, so that
# is what is asserted; a process exit is a failure of this test, never a silently wrong value.
TYPE_CONFLICT = r'''
IR = """
define double @f(double %x) {
entry:
  %a = alloca double, align 8
  store double %x, ptr %a, align 8
  %i = load i64, ptr %a, align 8
  %k = sitofp i64 %i to double
  %r = fmul double %k, %x
  ret double %r
}
"""
f = Module.from_ir(IR, name="type-conflict").function("f")
assert f(2.0) == float(np.float64(2.0).view(np.int64)) * 2.0  # the primal is fine
e = expect_raises(enzyme_py.EnzymeError, lambda: autodiff(Reverse, f, Active, Active(2.0)))
assert isinstance(e, enzyme_py.IllegalTypeAnalysisError), type(e).__mro__
assert "Illegal" in e.message or "updateAnalysis" in e.message, e.message
e = expect_raises(enzyme_py.EnzymeError, lambda: autodiff(Forward, f, Duplicated, Duplicated(2.0, 1.0)))
assert isinstance(e, enzyme_py.IllegalTypeAnalysisError), type(e).__mro__
'''

# Memory read as double in one place and as an integer index in another, through an array
# argument described to Enzyme as float64: a conflict between the caller's type and the IR's.
TYPE_CONFLICT_ARRAY = r'''
IR = """
define double @g(ptr %x, i64 %n) {
entry:
  %v = load double, ptr %x, align 8
  %bits = load i64, ptr %x, align 8
  %k = sitofp i64 %bits to double
  %r = fmul double %v, %k
  ret double %r
}
"""
g = Module.from_ir(IR, name="type-conflict-array").function("g")
x = np.array([1.5, 2.0])
try:
    dx = make_zero(x)
    res = autodiff(Reverse, g, Active, Duplicated(x, dx), 2)
except enzyme_py.EnzymeError as e:
    print(f"RAISED {type(e).__name__}: {e!r}")
    assert isinstance(e, enzyme_py.IllegalTypeAnalysisError), type(e).__mro__
else:
    # Never a silently wrong derivative: d/dx0 (x0 * bits(x0)) through the double path only
    # would be bits(x0), which is what Enzyme yields when it ignores the conflict.
    print(f"NO-EXCEPTION dx={dx.tolist()}")
    raise SystemExit(5)
'''

# memcpy between two pointer arguments, reverse mode. Enzyme needs the copied memory's type
# ("Cannot deduce type of copy" otherwise; without a handler this Enzyme exits the process).
# enzyme_py describes a float64 array argument to Enzyme as {[-1]:Pointer, [-1,-1]:Float@double},
# so through this API the copy between two float64 arrays is typed and must differentiate
# correctly: d(src) += d(dst), d(dst) = 0. The outcome must be either an EnzymeError naming the
# copy or the correct derivative, never a wrong one.
MEMCPY = r'''
IR = """
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)

define void @copy(ptr %dst, ptr %src, i64 %nbytes) {
entry:
  call void @llvm.memcpy.p0.p0.i64(ptr %dst, ptr %src, i64 %nbytes, i1 false)
  ret void
}
"""
copy = Module.from_ir(IR, name="memcpy").function("copy")
src = np.array([1.0, 2.0, 3.0])
dst = np.zeros(3)
copy(dst, src, 24)
assert dst.tolist() == [1.0, 2.0, 3.0]
dsrc = np.zeros(3)
seed = np.array([0.5, -1.0, 4.0])
try:
    autodiff(Reverse, copy, Const, Duplicated(dst, seed), Duplicated(src, dsrc), 24)
except enzyme_py.EnzymeError as e:
    print(f"RAISED {type(e).__name__}: {e!r}")
    assert "copy" in str(e), str(e)
else:
    assert dsrc.tolist() == [0.5, -1.0, 4.0], dsrc
    assert seed.tolist() == [0.0, 0.0, 0.0], seed
    print("TYPED-COPY-CORRECT")
'''


def test_undefined_external_call(run_child) -> None:  # type: ignore[no-untyped-def]
    out = run_child(UNDEFINED_EXTERNAL + "\nstill_alive()\n")
    assert out.count("RAISED NoDerivativeError") >= 2, out
    assert out.count("RAISED ") == 4, out
    assert out.rstrip().endswith("ALIVE"), out


def test_type_conflict_reported_by_handler(run_child) -> None:  # type: ignore[no-untyped-def]
    out = run_child(TYPE_CONFLICT + "\nstill_alive()\n")
    assert out.count("RAISED IllegalTypeAnalysisError") == 2, out
    assert out.rstrip().endswith("ALIVE"), out


def test_type_conflict_on_array_memory(run_child) -> None:  # type: ignore[no-untyped-def]
    out = run_child(TYPE_CONFLICT_ARRAY + "\nstill_alive()\n")
    assert "RAISED IllegalTypeAnalysisError" in out, out
    assert out.rstrip().endswith("ALIVE"), out


def test_memcpy_reverse_mode(run_child) -> None:  # type: ignore[no-untyped-def]
    out = run_child(MEMCPY + "\nstill_alive()\n")
    assert "TYPED-COPY-CORRECT" in out or "RAISED NoTypeError" in out, out
    assert out.rstrip().endswith("ALIVE"), out


def test_failures_then_success_in_one_process(run_child) -> None:  # type: ignore[no-untyped-def]
    """Every Enzyme failure back to back (the type conflict twice) in one interpreter, then
    correct derivatives, from this thread and from two new threads (no lock left held)."""
    out = run_child(
        UNDEFINED_EXTERNAL + TYPE_CONFLICT + MEMCPY + TYPE_CONFLICT
        + "\nstill_alive()\n"
        + "g, = gradient(Module.from_ir(SQ_IR, name='after').function('sq'), 4.0)\n"
        + "assert g == 8.0, g\nprint('AFTER', g)\n"
        + THREADS_AFTER
    )
    assert "AFTER 8.0" in out, out
    assert "THREADS [2.0, 4.0]" in out, out


THREADS_AFTER = r'''
import threading
results = {}
def work(k):
    f = Module.from_ir(SQ_IR, name=f"thread{k}").function("sq")
    results[k] = autodiff(Reverse, f, Active, Active(float(k)))[0][0]
threads = [threading.Thread(target=work, args=(k,)) for k in (1, 2)]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=120)
    assert not t.is_alive(), "a thread hung after the failures"
print("THREADS", [results[1], results[2]])
'''


CONCURRENT = r'''
import threading
IR_BAD = """
define double @f(double %x) {
entry:
  %a = alloca double, align 8
  store double %x, ptr %a, align 8
  %i = load i64, ptr %a, align 8
  %k = sitofp i64 %i to double
  %r = fmul double %k, %x
  ret double %r
}
"""
GOOD = """
define double @g(double %x) {{
entry:
  %xx = fmul double %x, %x
  %r = fmul double %xx, {k}.0
  ret double %r
}}
"""
errors, wrong = [], []
def failing():
    for i in range(12):
        bad = Module.from_ir(IR_BAD, name=f"bad{i}").function("f")
        try:
            autodiff(Reverse, bad, Active, Active(2.0))
        except enzyme_py.IllegalTypeAnalysisError:
            errors.append(i)
def succeeding(base):
    for i in range(12):
        k = base + i
        g = Module.from_ir(GOOD.format(k=k), name=f"good{k}").function("g")
        d = autodiff(Reverse, g, Active, Active(1.5))[0][0]
        if d != 3.0 * k:
            wrong.append((k, d))
threads = [threading.Thread(target=failing), threading.Thread(target=succeeding, args=(1,)),
           threading.Thread(target=succeeding, args=(100,))]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=150)
    assert not t.is_alive(), "a thread hung"
assert len(errors) == 12, errors
assert wrong == [], wrong
print("CONCURRENT-OK")
'''


def test_failures_concurrent_with_good_requests(run_child) -> None:  # type: ignore[no-untyped-def]
    """One thread keeps hitting the type conflict while two others differentiate correctly."""
    out = run_child(CONCURRENT + "\nstill_alive()\n")
    assert "CONCURRENT-OK" in out and out.rstrip().endswith("ALIVE"), out
