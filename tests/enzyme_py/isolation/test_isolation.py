"""Compilation in the isolation worker: results equal in-process ones, and a worker that
aborts, exits or segfaults fails one request with EnzymeCrashError while the caller lives on."""

from __future__ import annotations

import math
import os
import signal
from typing import Any

import numpy as np
import pytest

import enzyme_py as ez
from enzyme_py import isolation
from enzyme_py._compile.client import compile_isolated
from enzyme_py._compile.plan import REVERSE, ArgPlan, Plan

from .conftest import last_json, run_python

pytestmark = pytest.mark.usefixtures("cache_dir")


@pytest.fixture(autouse=True)
def _no_disk_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every request must really reach the worker.
    monkeypatch.setenv("ENZYME_PY_DISK_CACHE", "0")


def _forget(module: Any) -> None:
    """Drop compiled code from memory so that the next request compiles again."""
    from enzyme_py._compile import memcache as _cache

    module.clear_cache()
    _cache.clear()


def _grad_g(f: Any, x: float, y: float) -> tuple[float, float]:
    (dx, dy), = ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(x), ez.Active(y))
    return dx, dy


def test_isolated_results_match_in_process_and_analytic(scalar_module: Any) -> None:
    g = scalar_module.function("g")
    with ez.isolated():
        assert isolation.active()
        dx, dy = _grad_g(g, 0.7, -1.3)
        fwd = ez.autodiff(ez.ForwardWithPrimal, g, ez.Duplicated, ez.Duplicated(0.7, 1.0), -1.3)
    assert not isolation.active()
    assert dx == pytest.approx(-1.3 + math.cos(0.7), rel=1e-14)
    assert dy == pytest.approx(0.7, rel=1e-14)
    assert fwd[0] == pytest.approx(dx, rel=1e-14)
    assert fwd[1] == pytest.approx(0.7 * -1.3 + math.sin(0.7), rel=1e-14)
    assert isolation.worker().pid is not None
    assert isolation.worker().pid != os.getpid()


def test_isolated_array_gradient(array_module: Any) -> None:
    f = array_module.function("ssq")
    x = np.linspace(-1.0, 2.0, 17)
    with ez.isolated():
        grad, none = ez.gradient(ez.Reverse, f, x, ez.Const(x.size))
    assert none is None
    np.testing.assert_allclose(grad, 2 * x, rtol=1e-14)
    h = 1e-6
    e3 = np.zeros_like(x)
    e3[3] = h
    fd = (f(x + e3, x.size) - f(x - e3, x.size)) / (2 * h)
    assert grad[3] == pytest.approx(fd, rel=1e-6)


def test_global_option_turns_isolation_on(scalar_module: Any) -> None:
    isolation.shutdown()
    ez.config.set_options(isolate=True)
    assert isolation.active()
    (d,), = ez.autodiff(ez.Reverse, scalar_module.function("sq"), ez.Active, ez.Active(4.0))
    assert d == 8.0
    assert isolation.worker().pid is not None  # the request started the worker
    with ez.isolated(False):
        assert not isolation.active()


def test_environment_variable_turns_isolation_on() -> None:
    proc = run_python(
        """
        import json, os, enzyme_py as ez
        from enzyme_py import isolation
        m = ez.Module.from_ir("define double @f(double %x) {\\n %y = fmul double %x, %x\\n ret double %y\\n}\\n")
        (d,), = ez.autodiff(ez.Reverse, m.function("f"), ez.Active, ez.Active(2.5))
        w = isolation.worker()
        print(json.dumps({"d": d, "worker": w.pid, "me": os.getpid(), "opt": ez.config.options().isolate}))
        """,
        env={"ENZYME_PY_ISOLATE": "1", "ENZYME_PY_DISK_CACHE": "0"},
    )
    out = last_json(proc)
    assert out["d"] == 5.0
    assert out["opt"] is True
    assert out["worker"] not in (None, out["me"])


def test_enzyme_errors_come_back_with_their_class() -> None:
    m = ez.Module.from_ir(
        "declare double @mystery(double)\n"
        "define double @h(double %x) {\n  %y = call double @mystery(double %x)\n  ret double %y\n}\n"
    )
    with ez.isolated(), pytest.raises(ez.NoDerivativeError) as info:
        ez.autodiff(ez.Reverse, m.function("h"), ez.Active, ez.Active(1.0))
    assert "mystery" in info.value.message
    assert info.value.function == "h"
    m.close()


@pytest.mark.parametrize(
    ("how", "returncode", "signame"),
    [("abort", -signal.SIGABRT, "SIGABRT"), ("exit", 1, None), ("segv", -signal.SIGSEGV, "SIGSEGV")],
)
def test_worker_death_fails_one_request(
    scalar_module: Any, how: str, returncode: int, signame: str | None
) -> None:
    w = isolation.worker()
    with ez.isolated():
        _grad_g(scalar_module.function("g"), 1.0, 2.0)  # worker up
    dead_pid = w.pid
    with pytest.raises(ez.EnzymeCrashError) as info:
        w.request({"op": "crash", "how": how}, what="running a test crash")
    err = info.value
    assert isinstance(err, ez.EnzymeError)
    assert err.returncode == returncode
    assert err.signal == signame
    assert f"crashing on request ({how})" in err.stderr
    assert w.pid is None
    # the caller is alive and the next request gets a new worker
    _forget(scalar_module)
    with ez.isolated():
        dx, dy = _grad_g(scalar_module.function("g"), 1.0, 2.0)
    assert (dx, dy) == pytest.approx((2.0 + math.cos(1.0), 1.0))
    assert w.pid not in (None, dead_pid)


def test_enzyme_assertion_in_worker_is_an_exception(scalar_module: Any) -> None:
    # The public API refuses an Active return on a void function before Enzyme sees it;
    # sent raw to the worker, the same request trips an assertion inside Enzyme.
    with pytest.raises(TypeError):
        ez.autodiff(ez.Reverse, scalar_module.function("nothing"), ez.Active, ez.Active(1.0))
    raw = Plan("nothing", REVERSE, False, (ArgPlan("f64", None, 0),), "void", 0)
    with pytest.raises(ez.EnzymeCrashError) as info:
        compile_isolated(scalar_module.bitcode, scalar_module.content_hash, raw)
    err = info.value
    assert err.signal == "SIGABRT"
    assert err.function == "nothing"
    assert "Assertion" in err.stderr
    assert "SIGABRT" in str(err) and "next one starts a new worker" in str(err)
    with ez.isolated():
        (d,), = ez.autodiff(ez.Reverse, scalar_module.function("sq"), ez.Active, ez.Active(-3.0))
    assert d == -6.0


def test_timeout_kills_a_hung_worker(monkeypatch: pytest.MonkeyPatch, scalar_module: Any) -> None:
    w = isolation.worker()
    with ez.isolated():
        _grad_g(scalar_module.function("g"), 1.0, 2.0)
    pid = w.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # a worker that never answers
    monkeypatch.setenv("ENZYME_PY_ISOLATE_TIMEOUT", "0.5")
    with pytest.raises(ez.EnzymeCrashError, match="ENZYME_PY_ISOLATE_TIMEOUT"):
        w.request({"op": "ping"}, what="answering a ping")
    monkeypatch.delenv("ENZYME_PY_ISOLATE_TIMEOUT")
    assert w.request({"op": "ping"}, what="answering a ping") not in (None, pid)


def test_bad_timeout_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENZYME_PY_ISOLATE_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="ENZYME_PY_ISOLATE_TIMEOUT"):
        isolation.worker().request({"op": "ping"}, what="answering a ping")


def test_shutdown_and_restart(scalar_module: Any) -> None:
    with ez.isolated():
        _grad_g(scalar_module.function("g"), 0.1, 0.2)
    isolation.shutdown()
    assert isolation.worker().pid is None
    _forget(scalar_module)
    with ez.isolated():
        assert _grad_g(scalar_module.function("g"), 0.0, 3.0) == pytest.approx((4.0, 0.0))
