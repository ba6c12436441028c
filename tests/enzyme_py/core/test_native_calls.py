"""Native entries (enzyme_py._call.native) and prepared derivatives (enzyme_py.prepared).

A repeated ``gradient(f, *xs)`` / ``autodiff(mode, f, ret, *args)`` and every call of a
prepared derivative go through a JIT-compiled function with CPython's calling convention.
These tests check that it is really used (the validating path is made to fail), that it
gives bit-identical results, that everything it does not take reaches the validating path
and raises there exactly as before (wrong types and counts, None, strings, keywords, arrays
of the wrong dtype, shape or layout, integers out of range), that NaN and infinities pass
through, that reference counts are unchanged after many calls and nothing leaks, that an
exception raised by a Python function comes out of it, that it follows module closing,
cache clearing and option changes, and that threads can share it.
"""

from __future__ import annotations

import gc
import math
import struct
import sys
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

import enzyme_py as ez
from enzyme_py import (
    Active,
    Const,
    Duplicated,
    Forward,
    ForwardWithPrimal,
    Module,
    Reverse,
    ReverseWithPrimal,
    autodiff,
    autodiff_function,
    config,
    gradient,
    gradient_function,
)
from enzyme_py._call import fast as _fast
from enzyme_py._call import native as _native
from enzyme_py._native import pycall
from tests.support.call_ir import IR

N = 6
X = np.linspace(-1.0, 1.5, N)


def dp1(x: float) -> float:
    return math.cos(x) * x + math.sin(x) + math.exp(x)


@pytest.fixture(scope="module")
def mod() -> Iterator[Module]:
    m = Module.from_ir(IR, name="native-calls")
    yield m
    m.close()


def _bits(v: Any) -> Any:
    if isinstance(v, tuple):
        return tuple(_bits(x) for x in v)
    if isinstance(v, np.ndarray):
        return (v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, float):
        return struct.pack("<d", v)
    return v


def _error(run: Callable[[], Any]) -> tuple[type[BaseException], str]:
    with pytest.raises(Exception) as info:
        run()
    return type(info.value), str(info.value)


def _is_native(fn: Any) -> bool:
    return isinstance(getattr(fn, "__self__", None), pycall.NativeCallable)


@contextmanager
def validating_path_fails(*tables: Any) -> Iterator[None]:
    """Inside the block, a call that reaches the validating path of these tables' specs
    fails: what still works was served by a native entry."""

    def boom(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the validating path ran")

    saved = []
    for table in tables:
        for spec in set(table.specs.values()):
            saved.append((spec, spec.run))
            spec.run = boom
    try:
        yield
    finally:
        for spec, run in saved:
            spec.run = run


def _py_p1(x: float) -> float:
    if x > 100.0:
        raise ValueError("x is too large")
    return math.sin(x) * x + math.exp(x)


def _py_sumsq(x: np.ndarray[Any, Any], k: int) -> float:
    s = 0.0
    for i in range(x.shape[0]):
        s += k * x[i] * x[i]
    return s


def _py_mat(a: np.ndarray[Any, Any], s: float) -> float:
    t = 0.0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            t += s * a[i, j] * a[i, j] * (i + 1)
    return t


# --------------------------------------------------------------------------- installed, used


def test_repeated_public_calls_install_and_use_native_entries(mod: Module) -> None:
    p1, two, sumsq = mod.function("p1"), mod.function("two"), mod.function("sumsq")
    runs: list[tuple[Callable[[], Any], Any, str]] = [
        (lambda: gradient(p1, 0.7), p1, "fast_gradient"),
        (lambda: autodiff(Reverse, p1, Active, Active(0.7)), p1, "fast_autodiff"),
        (lambda: gradient(sumsq, X, N), sumsq, "fast_gradient"),
        (lambda: autodiff(ReverseWithPrimal, two, Active, Active(0.4), Const(-1.25)), two, "fast_autodiff"),
        (lambda: gradient(ReverseWithPrimal, two, 0.4, -1.25), two, "fast_gradient_mode"),
        (lambda: gradient(Reverse, sumsq, X, Const(N)), sumsq, "fast_gradient_mode"),
    ]
    for run, holder, attr in runs:
        mod._table.clear()
        first = _bits(run())
        assert getattr(holder, attr) is None  # one call builds nothing native
        assert _bits(run()) == first
        assert _is_native(getattr(holder, attr)), attr
        with validating_path_fails(mod._table):
            assert [_bits(run()) for _ in range(3)] == [first] * 3
    ((d,),) = autodiff(Reverse, p1, Active, Active(0.7))
    assert math.isclose(d, dp1(0.7), rel_tol=1e-14)


def test_python_functions_use_native_entries() -> None:
    jf = ez.jit(_py_p1)
    js = ez.jit(_py_sumsq)
    runs: list[tuple[Callable[[], Any], Any]] = [
        (lambda: jf.grad(0.7), jf),
        (lambda: gradient(_py_p1, 0.7), _py_p1),
        (lambda: jf.autodiff(ReverseWithPrimal, Active, Active(0.7)), jf),
        (lambda: autodiff(Forward, jf, Duplicated, Duplicated(0.7, 1.0)), jf),
        (lambda: js.grad(X, 3), js),
        (lambda: gradient(ReverseWithPrimal, js, X, 3), js),
    ]
    for run, f in runs:
        table = _fast.python_table(f)
        table.clear()
        first = _bits(run())
        assert _bits(run()) == first
        assert any(_is_native(getattr(table, a)) for a in ("fast_gradient", "fast_autodiff", "fast_gradient_mode"))
        with validating_path_fails(table):
            assert _bits(run()) == first
            # the function's own exception comes out of the native entry
            if f in (jf, _py_p1) and run is runs[0][0]:
                with pytest.raises(ValueError, match="x is too large") as info:
                    jf.grad(200.0)
                assert any("under enzyme_py" in n for n in getattr(info.value, "__notes__", []))
    np.testing.assert_allclose(js.grad(X, 3)[0], 6 * X, rtol=1e-15)


def test_gradient_of_an_array_returns_a_fresh_array_each_call(mod: Module) -> None:
    sumsq = mod.function("sumsq")
    g = gradient_function(sumsq, X, N)
    assert _is_native(g)
    a, b = g(X, N)[0], g(X, N)[0]
    assert a is not b and not np.shares_memory(a, b) and not np.shares_memory(a, X)
    np.testing.assert_array_equal(a, 2 * X)
    assert sys.getrefcount(a) == 2  # this name and the argument: nothing else holds it


# --------------------------------------------------------------------------- prepared


def test_prepared_derivatives_of_c_and_python_functions(mod: Module) -> None:
    p1, two, f32, addi = (mod.function(n) for n in ("p1", "two", "f32", "addi"))
    jf = ez.jit(_py_p1)
    cases: list[tuple[Any, Callable[..., Any], tuple[Any, ...]]] = [
        (gradient_function(p1, 0.5), lambda *a: gradient(p1, *a), (0.7,)),
        (gradient_function(ReverseWithPrimal, two, 0.5, 1.0), lambda *a: gradient(ReverseWithPrimal, two, *a), (0.4, 2.5)),
        (gradient_function(two, 0.5, Const(1.0)), lambda *a: gradient(two, *a), (0.4, Const(2.5))),
        (autodiff_function(Reverse, p1, Active, Active(0.5)), lambda *a: autodiff(Reverse, p1, Active, *a), (Active(0.7),)),
        (autodiff_function(Forward, p1, Duplicated, Duplicated(0.5, 1.0)),
         lambda *a: autodiff(Forward, p1, Duplicated, *a), (Duplicated(0.7, 2.0),)),
        (autodiff_function(ForwardWithPrimal, two, Duplicated, Duplicated(0.5, 1.0), 3.0),
         lambda *a: autodiff(ForwardWithPrimal, two, Duplicated, *a), (Duplicated(0.7, 1.0), -2.0)),
        (autodiff_function(ReverseWithPrimal, f32, Active, Active(np.float32(0.5))),
         lambda *a: autodiff(ReverseWithPrimal, f32, Active, *a), (Active(np.float32(0.25)),)),
        (autodiff_function(Reverse, addi, Active, Active(1.5), 3),
         lambda *a: autodiff(Reverse, addi, Active, *a), (Active(1.25), -7)),
        (autodiff_function(Reverse, addi, Active, Active(1.5), np.int16(3)),
         lambda *a: autodiff(Reverse, addi, Active, *a), (Active(1.25), np.int16(-7))),
        (gradient_function(jf, 0.5), lambda *a: gradient(jf, *a), (0.7,)),
        (gradient_function(_py_p1, 0.5), lambda *a: gradient(_py_p1, *a), (0.7,)),
        (gradient_function(ez.jit(_py_sumsq), X, 2), lambda *a: gradient(_py_sumsq, *a), (X, 2)),
        (autodiff_function(Reverse, jf, Active, Active(0.5)), lambda *a: autodiff(Reverse, jf, Active, *a), (Active(0.7),)),
    ]
    for prepared, public, args in cases:
        assert _is_native(prepared), prepared
        assert _bits(prepared(*args)) == _bits(public(*args))
    (d,) = gradient_function(p1, 0.5)(0.7)
    assert math.isclose(d, dp1(0.7), rel_tol=1e-14)


def test_prepared_errors_are_those_of_the_public_function(mod: Module) -> None:
    p1, addi, sumsq, two = (mod.function(n) for n in ("p1", "addi", "sumsq", "two"))
    g = gradient_function(p1, 0.5)
    ga = gradient_function(sumsq, X, N)
    h = autodiff_function(Reverse, sumsq, Active, Duplicated(X, np.zeros(N)), N)
    hi = autodiff_function(Reverse, addi, Active, Active(1.5), 3)
    ro = X.copy()
    ro.setflags(write=False)
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        ("no argument", lambda: g(), lambda: gradient(p1)),
        ("two arguments", lambda: g(0.5, 1.0), lambda: gradient(p1, 0.5, 1.0)),
        ("None", lambda: g(None), lambda: gradient(p1, None)),
        ("string", lambda: g("0.5"), lambda: gradient(p1, "0.5")),
        ("list", lambda: g([0.5]), lambda: gradient(p1, [0.5])),
        ("bool", lambda: g(True), lambda: gradient(p1, True)),
        ("huge int", lambda: g(10**400), lambda: gradient(p1, 10**400)),
        ("array for a scalar", lambda: g(np.ones(2)), lambda: gradient(p1, np.ones(2))),
        ("keyword", lambda: g(x=0.5), lambda: gradient(p1, x=0.5)),  # type: ignore[call-arg]
        ("float32 array", lambda: ga(X.astype(np.float32), N), lambda: gradient(sumsq, X.astype(np.float32), N)),
        ("int array", lambda: ga(np.arange(N), N), lambda: gradient(sumsq, np.arange(N), N)),
        ("non-contiguous", lambda: ga(np.zeros(2 * N)[::2], N), lambda: gradient(sumsq, np.zeros(2 * N)[::2], N)),
        ("read-only", lambda: ga(ro, N), lambda: gradient(sumsq, ro, N)),
        ("length as float", lambda: ga(X, 6.0), lambda: gradient(sumsq, X, 6.0)),
        ("shadow shape", lambda: h(Duplicated(X, np.zeros(N + 1)), N),
         lambda: autodiff(Reverse, sumsq, Active, Duplicated(X, np.zeros(N + 1)), N)),
        ("2-D shadow", lambda: h(Duplicated(X, np.zeros((1, N))), N),
         lambda: autodiff(Reverse, sumsq, Active, Duplicated(X, np.zeros((1, N))), N)),
        ("shadow dtype", lambda: h(Duplicated(X, np.zeros(N, np.float32)), N),
         lambda: autodiff(Reverse, sumsq, Active, Duplicated(X, np.zeros(N, np.float32)), N)),
        ("read-only shadow", lambda: h(Duplicated(X, ro), N),
         lambda: autodiff(Reverse, sumsq, Active, Duplicated(X, ro), N)),
        ("i8 out of range", lambda: hi(Active(1.5), 300), lambda: autodiff(Reverse, addi, Active, Active(1.5), 300)),
        ("negative out of range", lambda: hi(Active(1.5), -129), lambda: autodiff(Reverse, addi, Active, Active(1.5), -129)),
        ("float for an integer", lambda: hi(Active(1.5), 2.0), lambda: autodiff(Reverse, addi, Active, Active(1.5), 2.0)),
        ("Duplicated for Active", lambda: hi(Duplicated(1.5, 1.0), 3),
         lambda: autodiff(Reverse, addi, Active, Duplicated(1.5, 1.0), 3)),
        ("Active of a string", lambda: hi(Active("x"), 3), lambda: autodiff(Reverse, addi, Active, Active("x"), 3)),
    ]
    for name, prepared, public in cases:
        mod._table.clear()
        try:
            fresh = _error(public)
        except BaseException as e:  # pragma: no cover - says which case
            raise AssertionError(name) from e
        assert _error(prepared) == fresh, name
    with pytest.raises(TypeError, match="Active is not allowed in forward mode"):
        autodiff_function(Forward, p1, Duplicated, Active(0.5))
    with pytest.raises(TypeError, match="supports Reverse and ReverseWithPrimal only"):
        gradient_function(Forward, p1, 0.5)
    with pytest.raises(TypeError, match="takes 2 argument"):
        gradient_function(two, 0.5)


def test_nan_and_infinities_pass_through(mod: Module) -> None:
    p1, two = mod.function("p1"), mod.function("two")
    g = gradient_function(p1, 0.5)
    h = gradient_function(two, 0.5, 1.0)
    for fn, args in ((g, (math.nan,)), (h, (0.5, math.nan)), (g, (math.inf,)), (h, (math.inf, 1.0))):
        got = fn(*args)
        want = gradient(p1 if fn is g else two, *args)
        assert _bits(got) == _bits(want)
    (d,) = g(math.nan)
    assert math.isnan(d)
    assert h(0.5, math.nan)[1] == 0.5  # d/dy (x y + sin x) = x, whatever y is
    (d,) = g(-math.inf)
    assert math.isnan(d) or d == 0.0 or math.isinf(d)


def test_other_kinds_take_the_validating_path(mod: Module) -> None:
    p1, sumsq = mod.function("p1"), mod.function("sumsq")
    g = gradient_function(p1, 0.5)
    for v in (2, np.float64(0.25), np.float32(0.5), np.array(0.5)):
        assert _bits(g(v)) == _bits(gradient(p1, v))
    ga = gradient_function(sumsq, X, N)
    x2 = np.arange(6.0).reshape(2, 3)  # a C function takes any C-contiguous array
    assert _bits(ga(x2, 6)) == _bits(gradient(sumsq, x2, 6))
    jm = ez.jit(_py_mat)
    gm = gradient_function(jm, np.ones((2, 3)), 2.0)
    a = np.arange(12.0).reshape(3, 4)
    np.testing.assert_allclose(gm(a, 2.0)[0], 4 * a * (np.arange(3)[:, None] + 1))
    a32 = a.astype(np.float32)  # another layout: lowered for it on the way
    assert _bits(gm(a32, np.float32(2.0))) == _bits(gradient(jm, a32, np.float32(2.0)))


def test_python_functions_returning_arrays_get_a_prepared_call() -> None:
    def double(x):  # type: ignore[no-untyped-def]
        return 2.0 * x

    h = autodiff_function(Forward, double, Duplicated, Duplicated(X, np.ones(N)))
    assert isinstance(h, ez.prepared.PreparedCall)
    (t,) = h(Duplicated(X, np.ones(N)))
    np.testing.assert_array_equal(t, 2.0 * np.ones(N))


# --------------------------------------------------------------------------- reference counts


def _refcounts(objs: list[Any]) -> list[int]:
    return [sys.getrefcount(o) for o in objs]


def test_reference_counts_are_unchanged_after_many_calls(mod: Module) -> None:
    p1, two, sumsq = mod.function("p1"), mod.function("two"), mod.function("sumsq")
    jf, js = ez.jit(_py_p1), ez.jit(_py_sumsq)
    x, dx, n = X.copy(), np.zeros(N), N
    a, c, dup = Active(0.7), Const(-1.5), Duplicated(x, dx)
    f1 = 0.25
    calls: list[tuple[Callable[[], Any], list[Any]]] = [
        (lambda: gradient(p1, f1), [p1, f1]),
        (lambda: autodiff(ReverseWithPrimal, two, Active, a, c), [two, a, c, a.val, c.val]),
        (lambda: autodiff(Reverse, sumsq, Active, dup, n), [sumsq, dup, x, dx]),
        (lambda: gradient(sumsq, x, n), [x]),
        (lambda: jf.grad(f1), [jf, f1]),
        (lambda: js.grad(x, 2), [js, x]),
    ]
    for call, objs in calls:
        for _ in range(3):
            call()
        before = _refcounts(objs)
        none_before = sys.getrefcount(None)
        for _ in range(5000):
            call()
        assert _refcounts(objs) == before
        assert abs(sys.getrefcount(None) - none_before) <= 2
    # the raising path releases what it held too
    with pytest.raises(ValueError):
        jf.grad(500.0)
    bad = 500.0

    def raising() -> None:
        try:
            jf.grad(bad)
        except ValueError:
            return
        raise AssertionError("no exception")

    gc.collect()
    before = sys.getrefcount(bad)
    for _ in range(2000):
        raising()
    gc.collect()  # exceptions and their tracebacks form cycles
    assert sys.getrefcount(bad) == before


def test_no_memory_grows_over_many_calls(mod: Module) -> None:
    p1, sumsq = mod.function("p1"), mod.function("sumsq")
    jf = ez.jit(_py_p1)
    g = gradient_function(p1, 0.5)
    ga = gradient_function(sumsq, X, N)
    h = autodiff_function(ReverseWithPrimal, p1, Active, Active(0.5))
    calls = [lambda: g(0.5), lambda: ga(X, N), lambda: h(Active(0.3)), lambda: jf.grad(0.3)]
    for call in calls:
        for _ in range(200):
            call()
        gc.collect()
        tracemalloc.start()
        try:
            for _ in range(2000):
                call()
            gc.collect()
            first, _ = tracemalloc.get_traced_memory()
            for _ in range(20000):
                call()
            gc.collect()
            second, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert second - first < 64 * 1024, (call, first, second)


# --------------------------------------------------------------------------- invalidation


def test_closing_the_module_sends_calls_to_the_validating_path() -> None:
    m = Module.from_ir(IR, name="native-close")
    p1 = m.function("p1")
    g = gradient_function(p1, 0.5)
    for _ in range(3):
        gradient(p1, 0.5)
    fast = p1.fast_gradient
    assert _is_native(fast)
    m.close()
    assert p1.fast_gradient is None
    closed = (ValueError, "module 'native-close' was closed and cannot be used")
    assert _error(lambda: g(0.5)) == closed
    assert _error(lambda: fast(p1, 0.5)) == closed  # even a kept reference checks
    assert _error(lambda: gradient(p1, 0.5)) == closed


def test_clear_cache_and_options_changes(mod: Module) -> None:
    p1 = mod.function("p1")
    g = gradient_function(p1, 0.5)
    want = g(0.5)
    for _ in range(3):
        gradient(p1, 0.5)
    assert _is_native(p1.fast_gradient)
    mod.clear_cache()
    assert p1.fast_gradient is None
    assert g(0.5) == want  # a prepared function survives (it recompiles through the validating path)
    old = config.set_options(max_alignment=config.options().max_alignment)  # a new options object
    try:
        assert g(0.5) == want and gradient(p1, 0.5) == want
        spec_before = len(mod._table)
        for _ in range(3):
            gradient(p1, 0.5)
        assert len(mod._table) >= spec_before
        assert _is_native(p1.fast_gradient)
    finally:
        config.set_options(**vars(old))
    assert gradient(p1, 0.5) == want


def test_code_with_exit_traps_through_a_native_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Code that may call exit() is compiled with a trap block as its last parameter
    (enzyme_py._native.traps); the native entry passes one and turns a trapped call into
    ProgramExit as the ctypes path does.  (Enzyme's derivatives drop the exit() of this
    function, so its gradient at 20 is 40, on both paths.)"""
    import ctypes

    m = Module.from_c(
        "#include <stdlib.h>\n"
        "double f(double x) { if (x > 10.0) exit(3); return x * x; }\n", name="native-exit"
    )
    f = m.function("f")
    g = gradient_function(f, 0.5)
    assert _is_native(g) and g.__self__.shape.traps
    for _ in range(3):
        gradient(f, 3.0)
    assert _is_native(f.fast_gradient)
    with validating_path_fails(m._table):
        got = [g(3.0), g(20.0), gradient(f, 3.0), gradient(f, 20.0)]
    monkeypatch.setenv("ENZYME_PY_NATIVE_CALLS", "0")
    m.clear_cache()
    assert got == [gradient(f, 3.0), gradient(f, 20.0)] * 2 == [(6.0,), (40.0,)] * 2
    block = (ctypes.c_int64 * 6)(1, 3)  # what a trapped exit(3) leaves
    with pytest.raises(ez.ProgramExit, match=r"f: the program called exit\(3\)") as info:
        _native._trap_raiser("f")(ctypes.addressof(block))
    assert info.value.status == 3
    m.close()


def test_a_native_entry_keeps_its_mode_alive(mod: Module) -> None:
    """A native entry compares the mode by address: the mode it was built for must stay
    alive, so that a new mode object with other flags never takes its address."""
    import weakref

    p1 = mod.function("p1")
    for _ in range(20):
        m1 = ez.set_runtime_activity(Reverse)
        for _ in range(3):
            r1 = autodiff(m1, p1, Active, Active(0.5))
        entry = p1.fast_autodiff
        assert _is_native(entry) and entry.__self__.shape.prefix[0] is m1
        ref = weakref.ref(m1)
        del m1
        assert ref() is not None  # held by the entry
        m2 = ez.set_strong_zero(Reverse)
        r2 = autodiff(m2, p1, Active, Active(0.5))
        assert _bits(r1) == _bits(r2) and ref() is not m2
        del entry


def test_native_calls_can_be_turned_off(mod: Module, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENZYME_PY_NATIVE_CALLS", "0")
    p1 = mod.function("p1")
    mod._table.clear()
    want = gradient(p1, 0.5)
    assert math.isclose(want[0], dp1(0.5), rel_tol=1e-14)
    for _ in range(4):
        assert gradient(p1, 0.5) == want
    assert p1.fast_gradient is None
    g = gradient_function(p1, 0.5)
    assert isinstance(g, ez.prepared.PreparedCall) and g(0.5) == want


# --------------------------------------------------------------------------- threads


def test_threads_share_native_entries(mod: Module) -> None:
    p1, sumsq = mod.function("p1"), mod.function("sumsq")
    g = gradient_function(p1, 0.5)
    ga = gradient_function(sumsq, X, N)
    jf = ez.jit(_py_p1)
    jf.grad(0.1)
    jf.grad(0.1)
    errors: list[str] = []
    barrier = threading.Barrier(4)

    def work(k: int) -> None:
        barrier.wait()
        x = np.linspace(-1, 1, 1000) * (k + 1)
        for i in range(300):
            v = -1.0 + 0.005 * i + 0.001 * k
            (d,) = g(v)
            if not math.isclose(d, dp1(v), rel_tol=1e-13, abs_tol=1e-13):
                errors.append(f"scalar {k} {v}")
            (d,) = jf.grad(v)
            if not math.isclose(d, dp1(v), rel_tol=1e-13, abs_tol=1e-13):
                errors.append(f"python {k} {v}")
            (gx, _) = ga(x, x.size)
            if not np.array_equal(gx, 2 * x):
                errors.append(f"array {k}")
            if i % 60 == 0:
                try:
                    jf.grad(1000.0)
                except ValueError:
                    pass
                else:
                    errors.append("no exception")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(4)))
    assert errors == []


def test_probes_hold_on_this_interpreter() -> None:
    assert pycall.supported()
    assert pycall.arrays_supported()
    assert _native.enabled()
