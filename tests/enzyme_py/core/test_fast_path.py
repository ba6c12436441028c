"""Repeated calls (enzyme_py._call.fast): prepared specs per request kind.

After a first call, a call with the same argument kinds runs the spec built for that kind
without building it again (no kind-level validation, no lowering, no compilation).  These
tests check that this changes nothing a user can see: results are bit-identical to the
first call, every invalid request raises the same exception with the same message on a
cached kind as on a fresh one (the checks exist once, in the converters), closing a module
or changing the options drops the specs, and threads share specs safely.  Some tests prove
the spec was reused by making ``request.build`` fail.
"""

from __future__ import annotations

import math
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

import enzyme_py
from enzyme_py import (
    Active,
    Const,
    Duplicated,
    DuplicatedNoNeed,
    Forward,
    ForwardWithPrimal,
    Module,
    Reverse,
    ReverseWithPrimal,
    api,
    autodiff,
    config,
    gradient,
    make_zero,
    set_runtime_activity,
)
from enzyme_py._call import fast as _fast
from enzyme_py._call import request as _request
from tests.support.call_ir import IR

N = 6


@pytest.fixture(scope="module")
def mod() -> Any:
    m = Module.from_ir(IR, name="fastpath")
    yield m
    m.close()


def _bits(v: Any) -> Any:
    """A bit-exact image of a result (floats by their IEEE bytes, arrays by their buffer)."""
    if isinstance(v, tuple):
        return tuple(_bits(x) for x in v)
    if isinstance(v, np.ndarray):
        return (v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, float):
        return struct.pack("<d", v)
    return v


@pytest.fixture
def no_slow_path(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call the returned function to make the slow path fail from then on."""

    def forbid() -> None:
        def boom(*_a: Any, **_k: Any) -> Any:
            raise AssertionError("the slow path ran where the fast path should have")

        monkeypatch.setattr(_request, "build", boom)

    return forbid


# --------------------------------------------------------------------------- identical results

X = np.linspace(-1.0, 1.5, N)


def _requests(mod: Any) -> list[tuple[str, Callable[[], Any]]]:
    p1, two, f32, addi = (mod.function(n) for n in ("p1", "two", "f32", "addi"))
    sumsq, twice = mod.function("sumsq"), mod.function("twice")
    return [
        ("reverse", lambda: autodiff(Reverse, p1, Active, Active(0.7))),
        ("reverse int value", lambda: autodiff(Reverse, p1, Active, Active(2))),
        ("reverse np.float64", lambda: autodiff(Reverse, p1, Active, Active(np.float64(0.3)))),
        ("reverse with primal", lambda: autodiff(ReverseWithPrimal, p1, Active, Active(0.7))),
        ("reverse two args", lambda: autodiff(ReverseWithPrimal, two, Active, Active(0.4), Active(-1.25))),
        ("reverse const arg", lambda: autodiff(Reverse, two, Active, Const(0.4), Active(-1.25))),
        ("reverse const return", lambda: autodiff(Reverse, p1, Const, Active(0.7))),
        ("runtime activity", lambda: autodiff(set_runtime_activity(Reverse), p1, Active, Active(0.7))),
        ("forward", lambda: autodiff(Forward, p1, Duplicated, Duplicated(0.7, 1.0))),
        ("forward no need", lambda: autodiff(Forward, p1, DuplicatedNoNeed, Duplicated(0.7, 2.0))),
        ("forward with primal", lambda: autodiff(ForwardWithPrimal, two, Duplicated, Duplicated(0.7, 1.0), 3.0)),
        ("forward const return", lambda: autodiff(ForwardWithPrimal, p1, Const, Duplicated(0.7, 1.0))),
        ("float32", lambda: autodiff(ReverseWithPrimal, f32, Active, Active(np.float32(0.5)))),
        ("integer arg", lambda: autodiff(Reverse, addi, Active, Active(1.5), 3)),
        ("integer np arg", lambda: autodiff(Reverse, addi, Active, Active(1.5), np.int16(-4))),
        ("integer bool arg", lambda: autodiff(Reverse, addi, Active, Active(1.5), True)),
        ("gradient", lambda: gradient(p1, 0.7)),
        ("gradient with primal", lambda: gradient(ReverseWithPrimal, two, 0.4, 2)),
        ("gradient const", lambda: gradient(two, Const(0.4), 2.0)),
        ("primal", lambda: p1(0.7)),
        ("primal int", lambda: addi(2.0, 5)),
        ("primal array", lambda: sumsq(X, N)),
    ] + [
        ("array reverse", lambda: _with_shadow(lambda dx: autodiff(Reverse, sumsq, Active, Duplicated(X, dx), N))),
        ("array forward", lambda: autodiff(Forward, sumsq, Duplicated, Duplicated(X, np.ones(N)), N)),
        ("array const", lambda: autodiff(Forward, sumsq, Const, Const(X), N)),
        ("array gradient", lambda: gradient(sumsq, X, N)),
        ("array gradient with primal", lambda: gradient(ReverseWithPrimal, sumsq, X, Const(N))),
        ("void output seed", lambda: _output_seed(twice)),
    ]


def _with_shadow(run: Callable[[np.ndarray[Any, Any]], Any]) -> Any:
    dx = np.zeros(N)
    res = run(dx)
    return res, dx


def _output_seed(twice: Any) -> Any:
    y, dx, dy = np.zeros(N), np.zeros(N), np.ones(N)
    res = autodiff(Reverse, twice, Const, Duplicated(X, dx), Duplicated(y, dy), N)
    return res, y, dx, dy


def test_fast_results_are_bit_identical_to_the_slow_path(mod: Any) -> None:
    for name, run in _requests(mod):
        mod._table.clear()
        slow = _bits(run())  # no plan: the slow path (which stores one)
        fast = [_bits(run()) for _ in range(3)]  # the stored plan
        assert fast == [slow] * 3, name
    assert len(mod._table), "no spec was stored"


def test_repeated_calls_do_not_run_the_slow_path(mod: Any, no_slow_path: Callable[[], None]) -> None:
    reqs = _requests(mod)
    before = [_bits(run()) for _, run in reqs]
    no_slow_path()
    after = [_bits(run()) for _, run in reqs]
    assert after == before
    # and the values are right
    ((d,),) = autodiff(Reverse, mod.function("p1"), Active, Active(0.7))
    assert math.isclose(d, math.cos(0.7) * 0.7 + math.sin(0.7) + math.exp(0.7), rel_tol=1e-14)
    g, dx = gradient(mod.function("sumsq"), X, N), None
    np.testing.assert_allclose(g[0], 2 * X, rtol=1e-15)
    assert g[1] is None and dx is None


def test_gradient_returns_a_fresh_shadow_each_call(mod: Any) -> None:
    sumsq = mod.function("sumsq")
    g1 = gradient(sumsq, X, N)[0]
    g2 = gradient(sumsq, X, N)[0]
    assert g1 is not g2 and not np.shares_memory(g1, g2)
    np.testing.assert_array_equal(g1, g2)


def test_reverse_still_accumulates_into_shadows(mod: Any) -> None:
    sumsq = mod.function("sumsq")
    dx = make_zero(X)
    for _ in range(3):
        autodiff(Reverse, sumsq, Active, Duplicated(X, dx), N)
    np.testing.assert_allclose(dx, 6 * X, rtol=1e-15)


# --------------------------------------------------------------------------- identical errors


def _error(run: Callable[[], Any]) -> tuple[type[BaseException], str]:
    with pytest.raises(Exception) as info:
        run()
    return type(info.value), str(info.value)


def _ro(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    a = a.copy()
    a.setflags(write=False)
    return a


def _bad_requests(mod: Any) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """(name, a good call, an invalid call of the same or a neighbouring kind)."""
    p1, addi, sumsq, twice = (mod.function(n) for n in ("p1", "addi", "sumsq", "twice"))
    dx = np.zeros(N)
    return [
        ("shadow shape", lambda: autodiff(Reverse, sumsq, Active, Duplicated(X, dx), N),
         lambda: autodiff(Reverse, sumsq, Active, Duplicated(X, np.zeros(N + 1)), N)),
        ("read-only array", lambda: autodiff(Reverse, sumsq, Active, Duplicated(X, dx), N),
         lambda: autodiff(Reverse, sumsq, Active, Duplicated(_ro(X), dx), N)),
        ("read-only const array", lambda: autodiff(Forward, sumsq, Const, Const(X), N),
         lambda: autodiff(Forward, sumsq, Const, Const(_ro(X)), N)),
        ("read-only shadow", lambda: autodiff(Reverse, sumsq, Active, Duplicated(X, dx), N),
         lambda: autodiff(Reverse, sumsq, Active, Duplicated(X, _ro(dx)), N)),
        ("non-contiguous array", lambda: autodiff(Reverse, sumsq, Active, Duplicated(X, dx), N),
         lambda: autodiff(Reverse, sumsq, Active, Duplicated(np.zeros(2 * N)[::2], dx), N)),
        ("non-contiguous shadow", lambda: autodiff(Reverse, sumsq, Active, Duplicated(X, dx), N),
         lambda: autodiff(Reverse, sumsq, Active, Duplicated(X, np.zeros(2 * N)[::2]), N)),
        ("shadow dtype", lambda: autodiff(Reverse, sumsq, Active, Duplicated(X, dx), N),
         lambda: autodiff(Reverse, sumsq, Active, Duplicated(X, dx.astype(np.float32)), N)),
        ("array dtype", lambda: gradient(sumsq, X, N),
         lambda: gradient(sumsq, X.astype(np.float32), N)),
        ("gradient read-only", lambda: gradient(sumsq, X, N), lambda: gradient(sumsq, _ro(X), N)),
        ("gradient non-contiguous", lambda: gradient(sumsq, X, N),
         lambda: gradient(sumsq, np.zeros(2 * N)[::2], N)),
        ("int out of range", lambda: autodiff(Reverse, addi, Active, Active(1.5), 3),
         lambda: autodiff(Reverse, addi, Active, Active(1.5), 300)),
        ("np int out of range", lambda: autodiff(Reverse, addi, Active, Active(1.5), np.int64(3)),
         lambda: autodiff(Reverse, addi, Active, Active(1.5), np.int64(-300))),
        ("primal int out of range", lambda: addi(1.0, 3), lambda: addi(1.0, 1000)),
        ("huge int as float", lambda: autodiff(Reverse, p1, Active, Active(2)),
         lambda: autodiff(Reverse, p1, Active, Active(10**400))),
        ("bool as float", lambda: autodiff(Reverse, p1, Active, Active(0.5)),
         lambda: autodiff(Reverse, p1, Active, Active(True))),
        ("string as float", lambda: gradient(p1, 0.5), lambda: gradient(p1, "0.5")),
        ("arity", lambda: autodiff(Reverse, p1, Active, Active(0.5)),
         lambda: autodiff(Reverse, p1, Active, Active(0.5), 1.0)),
        ("active in forward", lambda: autodiff(Forward, p1, Duplicated, Duplicated(0.5, 1.0)),
         lambda: autodiff(Forward, p1, Duplicated, Active(0.5))),
        ("duplicated scalar in reverse", lambda: autodiff(Reverse, p1, Active, Active(0.5)),
         lambda: autodiff(Reverse, p1, Active, Duplicated(0.5, 1.0))),
        ("void with active return", lambda: _output_seed(twice),
         lambda: autodiff(Reverse, twice, Active, Duplicated(X, dx), Duplicated(np.zeros(N), np.ones(N)), N)),
        ("array as scalar", lambda: p1(0.5), lambda: p1(np.ones(2))),
    ]


def test_invalid_requests_raise_the_same_error_on_a_cached_kind(mod: Any) -> None:
    for name, good, bad in _bad_requests(mod):
        mod._table.clear()
        fresh = _error(bad)  # no plan at all
        good()
        good()  # the kind is now served by a plan
        cached = _error(bad)
        assert cached == fresh, name
        assert _error(bad) == fresh, name
        good()  # and the good call still works afterwards


# --------------------------------------------------------------------------- invalidation


def test_close_drops_the_plans_and_calls_raise_as_before() -> None:
    m = Module.from_ir(IR, name="fastpath-close")
    p1 = m.function("p1")
    autodiff(Reverse, p1, Active, Active(0.5))
    gradient(p1, 0.5)
    p1(0.5)
    assert len({id(spec) for spec in m._table.specs.values()}) == 3
    m.close()
    assert len(m._table) == 0
    for run in (
        lambda: autodiff(Reverse, p1, Active, Active(0.5)),
        lambda: gradient(p1, 0.5),
        lambda: p1(0.5),
    ):
        assert _error(run) == (ValueError, "module 'fastpath-close' was closed and cannot be used")


def test_clear_cache_drops_the_plans(mod: Any) -> None:
    p1 = mod.function("p1")
    first = autodiff(Reverse, p1, Active, Active(0.5))
    assert len(mod._table)
    mod.clear_cache()
    assert len(mod._table) == 0
    assert _bits(autodiff(Reverse, p1, Active, Active(0.5))) == _bits(first)


def test_changed_options_go_through_the_slow_path_once(mod: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    p1 = mod.function("p1")
    autodiff(Reverse, p1, Active, Active(0.5))
    calls = []
    real = _request.build

    def counting(*a: Any, **k: Any) -> Any:
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(_request, "build", counting)
    autodiff(Reverse, p1, Active, Active(0.5))
    assert calls == []
    old = config.set_options(max_alignment=config.options().max_alignment)  # a new options object
    try:
        autodiff(Reverse, p1, Active, Active(0.5))
        autodiff(Reverse, p1, Active, Active(0.5))
        assert calls == [1]
    finally:
        config.set_options(**vars(old))


def test_plans_are_bounded(mod: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fast, "MAX_SPECS", 4)
    p1 = mod.function("p1")
    mod._table.clear()
    values = [0.5, 2, np.float64(0.5), np.float32(0.5), np.int64(3), np.float16(0.5), np.int32(1)]
    results = []
    for mode in (Reverse, ReverseWithPrimal, set_runtime_activity(Reverse)):
        for v in values:
            results.append(_bits(autodiff(mode, p1, Active, Active(v))))
            assert len(mod._table) <= 4 + 1  # the limit, and the recent slot just set
    # evicted kinds still work (through the slow path), with the same results
    again = [_bits(autodiff(m, p1, Active, Active(v)))
             for m in (Reverse, ReverseWithPrimal, set_runtime_activity(Reverse)) for v in values]
    assert again == results


def test_a_new_equal_mode_object_is_not_confused_with_a_dead_one(mod: Any) -> None:
    """Plans are keyed by the mode object; a plan keeps its mode alive, so the id of a
    mode with other flags can never alias a stored plan's."""
    p1 = mod.function("p1")
    for _ in range(50):
        m1 = set_runtime_activity(Reverse)
        r1 = autodiff(m1, p1, Active, Active(0.5))
        del m1
        m2 = enzyme_py.set_strong_zero(Reverse)
        r2 = autodiff(m2, p1, Active, Active(0.5))
        assert _bits(r1) == _bits(r2)


# --------------------------------------------------------------------------- threads


def test_threads_share_plans_and_out_structs(mod: Any) -> None:
    two = mod.function("two")
    autodiff(ReverseWithPrimal, two, Active, Active(0.1), Active(0.2))
    specs = list(mod._table.specs.values())
    assert any(s.entry().out_type is not None for s in specs)  # this request fills an out-struct
    errors: list[str] = []
    barrier = threading.Barrier(4)

    def work(k: int) -> None:
        barrier.wait()
        rng = np.random.default_rng(k)
        for _ in range(300):
            x, y = (float(v) for v in rng.uniform(-2, 2, 2))
            (dx, dy), primal = autodiff(ReverseWithPrimal, two, Active, Active(x), Active(y))
            want = (y + math.cos(x), x, x * y + math.sin(x))
            for got, exp in zip((dx, dy, primal), want):
                if not math.isclose(got, exp, rel_tol=1e-13, abs_tol=1e-13):
                    errors.append(f"thread {k}: {got} != {exp}")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(4)))
    assert errors == []


# --------------------------------------------------------------------------- Python functions


def _py_scalar(x: float) -> float:
    if x > 100.0:
        raise ValueError("x is too large")
    return math.sin(x) * x + math.exp(x)


def _py_sumsq(x: np.ndarray[Any, Any], k: int) -> float:
    s = 0.0
    for i in range(x.shape[0]):
        s += k * x[i] * x[i]
    return s


def test_python_functions_fast_and_slow_agree() -> None:
    jf = enzyme_py.jit(_py_scalar)
    js = enzyme_py.jit(_py_sumsq)
    runs: list[tuple[str, Callable[[], Any]]] = [
        ("gradient", lambda: gradient(_py_scalar, 0.7)),
        ("jit grad", lambda: jf.grad(0.7)),
        ("jit autodiff", lambda: jf.autodiff(ReverseWithPrimal, Active, Active(0.7))),
        ("autodiff forward", lambda: autodiff(Forward, jf, Duplicated, Duplicated(0.7, 1.0))),
        ("array grad", lambda: js.grad(X, 3)),
        ("array autodiff", lambda: _with_shadow(lambda dx: js.autodiff(Reverse, Active, Duplicated(X, dx), 3))),
        ("array const", lambda: js.autodiff(ForwardWithPrimal, Const, Const(X), 3)),
    ]
    for name, run in runs:
        _fast.python_table(jf).clear(); _fast.python_table(js).clear()
        slow = _bits(run())
        assert [_bits(run()) for _ in range(3)] == [slow] * 3, name
    ((d,),) = autodiff(Reverse, jf, Active, Active(0.7))
    assert math.isclose(d, math.cos(0.7) * 0.7 + math.sin(0.7) + math.exp(0.7), rel_tol=1e-14)
    np.testing.assert_allclose(js.grad(X, 3)[0], 6 * X, rtol=1e-15)


def test_python_function_errors_are_identical_on_a_cached_kind() -> None:
    jf = enzyme_py.jit(_py_scalar)
    js = enzyme_py.jit(_py_sumsq)
    dx = np.zeros(N)
    cases = [
        ("raised by the function", lambda: jf.grad(0.5), lambda: jf.grad(200.0)),
        ("raised by the function (autodiff)", lambda: gradient(_py_scalar, 0.5), lambda: gradient(_py_scalar, 200.0)),
        ("shadow shape", lambda: js.autodiff(Reverse, Active, Duplicated(X, dx), 3),
         lambda: js.autodiff(Reverse, Active, Duplicated(X, np.zeros(N + 2)), 3)),
        ("read-only shadow", lambda: js.autodiff(Reverse, Active, Duplicated(X, dx), 3),
         lambda: js.autodiff(Reverse, Active, Duplicated(X, _ro(dx)), 3)),
        ("non-contiguous", lambda: js.grad(X, 3), lambda: js.grad(np.zeros(2 * N)[::2], 3)),
        ("integer overflow", lambda: js.grad(X, 3), lambda: js.grad(X, 2**64)),
    ]
    for name, good, bad in cases:
        _fast.python_table(jf).clear(); _fast.python_table(js).clear()
        fresh = _error(bad)
        good()
        good()
        cached = _error(bad)
        assert cached == fresh, name
        good()
    with pytest.raises(ValueError, match="x is too large") as info:
        jf.grad(200.0)
    assert any("under enzyme_py" in n for n in getattr(info.value, "__notes__", []))


def test_python_function_threads() -> None:
    jf = enzyme_py.jit(_py_scalar)
    jf.grad(0.1)
    errors: list[str] = []

    def work(k: int) -> None:
        for i in range(200):
            x = -1.0 + 0.01 * i + 0.001 * k
            (d,) = jf.grad(x)
            exp = math.cos(x) * x + math.sin(x) + math.exp(x)
            if not math.isclose(d, exp, rel_tol=1e-13, abs_tol=1e-13):
                errors.append(f"{k}: {d} != {exp}")
            if k == 0 and i % 50 == 0:
                with pytest.raises(ValueError):
                    jf.grad(500.0)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(4)))
    assert errors == []


def test_python_repeated_calls_do_not_run_the_slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    jf = enzyme_py.jit(_py_scalar)
    js = enzyme_py.jit(_py_sumsq)
    runs = [
        lambda: jf.grad(0.3),
        lambda: gradient(_py_scalar, 0.3),
        lambda: autodiff(Reverse, jf, Active, Active(0.3)),
        lambda: js.grad(X, 2),
        lambda: js.autodiff(Forward, Duplicated, Duplicated(X, np.ones(N)), 2),
    ]
    before = [_bits(run()) for run in runs]
    assert len(_fast.python_table(jf)) and len(_fast.python_table(js))

    def boom(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the slow path ran where the fast path should have")

    monkeypatch.setattr(api, "function_for", boom)
    monkeypatch.setattr(_request, "build", boom)
    assert [_bits(run()) for run in runs] == before


def _py_weighted(a: np.ndarray[Any, Any], s: float) -> float:
    t = 0.0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            t += s * a[i, j] * a[i, j] * (i + 1) + j
    return t


def test_python_two_dimensional_and_float32_arrays() -> None:
    jw = enzyme_py.jit(_py_weighted)
    a32 = (np.arange(12, dtype=np.float32) / 10).reshape(3, 4)
    b64 = np.arange(12.0).reshape(4, 3)
    for a, s in ((a32, np.float32(2.0)), (b64, 1.5)):
        _fast.python_table(jw).clear()
        slow = _bits(jw.grad(a, s))
        fast = _bits(jw.grad(a, s))
        assert fast == slow
        g, ds = jw.grad(a, s)
        rows = np.arange(a.shape[0])[:, None] + 1
        np.testing.assert_allclose(g, 2 * float(s) * a * rows, rtol=1e-6)
        assert g.dtype == a.dtype and ds == pytest.approx(float((a.astype(np.float64) ** 2 * rows).sum()), rel=1e-6)
    # a transposed (non-contiguous) view of the same dtype and ndim: the slow path's error
    _fast.python_table(jw).clear()
    fresh = _error(lambda: jw.grad(b64.T, 1.5))
    jw.grad(b64, 1.5)
    jw.grad(b64, 1.5)
    assert len(_fast.python_table(jw))
    assert _error(lambda: jw.grad(b64.T, 1.5)) == fresh
