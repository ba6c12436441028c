"""Mode flags: runtime activity, strong zero, Enzyme's fast math on derivative code."""

from __future__ import annotations

import ctypes
import math
import uuid

import numpy as np
import pytest

import enzyme_py as ez


def test_setters_return_new_modes_and_leave_singletons_alone() -> None:
    m = ez.set_strong_zero(ez.set_runtime_activity(ez.Reverse))
    assert m.runtime_activity and m.strong_zero and m.fast_math
    assert m.reverse and not m.with_primal
    assert not ez.Reverse.runtime_activity and not ez.Reverse.strong_zero
    assert ez.set_runtime_activity(m, False).runtime_activity is False
    assert ez.set_fast_math(ez.Forward, False).fast_math is False
    assert repr(ez.set_fast_math(ez.set_runtime_activity(ez.Forward), False)) == (
        "set_fast_math(set_runtime_activity(Forward), False)"
    )
    assert repr(ez.Reverse) == "Reverse"


@pytest.mark.parametrize("setter", [ez.set_runtime_activity, ez.set_strong_zero])
def test_setters_reject_non_modes(setter) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match="mode"):
        setter("Reverse")


def test_runtime_activity_resolves_mixed_activity(mod) -> None:  # type: ignore[no-untyped-def]
    pick = mod.function("pick")
    x, c = np.array([3.0]), np.array([5.0])
    dx = np.zeros(1)
    # statically, p may be the active x or the constant c: Enzyme refuses
    with pytest.raises(ez.EnzymeError, match="[Mm]ismatched activity"):
        ez.autodiff(ez.Reverse, pick, ez.Active, ez.Duplicated(x, dx), c, 1)
    mode = ez.set_runtime_activity(ez.Reverse)
    ez.autodiff(mode, pick, ez.Active, ez.Duplicated(x, dx), c, 1)
    assert dx[0] == pytest.approx(2 * 3.0 + 1.0)  # d/dx (x^2 + x)
    dx[:] = 0
    ez.autodiff(mode, pick, ez.Active, ez.Duplicated(x, dx), c, 0)
    assert dx[0] == pytest.approx(1.0)  # d/dx (c^2 + x)


def test_strong_zero_turns_zero_times_inf_into_zero(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("zero_times")  # c * (x * y) with y = inf, c = 0
    plain = ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(2.0), math.inf, 0.0)
    assert math.isnan(plain[0][0])  # 0 * inf
    strong = ez.autodiff(ez.set_strong_zero(ez.Reverse), f, ez.Active, ez.Active(2.0), math.inf, 0.0)
    assert strong == ((0.0, None, None),)
    # finite inputs: the flag changes nothing
    a = ez.autodiff(ez.set_strong_zero(ez.Reverse), f, ez.Active, ez.Active(2.0), 3.0, 5.0)
    assert a[0][0] == pytest.approx(15.0)


def _fast_math_option() -> int:
    from enzyme_py._native.library import native

    nat = native()
    get = nat.enzyme.raw("EnzymeGetCLBool")
    get.restype = ctypes.c_uint8
    get.argtypes = [ctypes.c_void_p]
    return int(get(nat.enzyme.global_address("EnzymeFastMath")))


def test_fast_math_is_set_per_compilation_and_keys_the_cache(mod, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # compiled here: not found in the disk cache or among the loaded code (the other
    # parameter of this test compiled the same module already)
    import gc

    from enzyme_py._compile import memcache

    monkeypatch.setenv("ENZYME_PY_DISK_CACHE", "0")
    gc.collect()
    memcache.clear()
    f = mod.function("poly")
    exact = (2 * 1.5 * 2.5, 1.5**2 + 3.0)
    off = ez.set_fast_math(ez.Reverse, False)
    # a fresh module of its own content (no cache, in memory or on disk, holds its code):
    # both variants are compiled here
    name = f"poly2_{uuid.uuid4().hex}"
    m2 = ez.Module.from_c(f"double {name}(double x, double y) {{ return x * x * y + 3.0 * y; }}")
    g = m2.function(name)
    # the option is process-global: it is set for each compilation (in this process unless
    # compilations run in an isolation worker)
    here = not ez.config.options().isolate
    got_off = ez.autodiff(off, g, ez.Active, ez.Active(1.5), ez.Active(2.5))
    assert not here or _fast_math_option() == 0
    got_on = ez.autodiff(ez.Reverse, g, ez.Active, ez.Active(1.5), ez.Active(2.5))
    assert not here or _fast_math_option() == 1
    assert got_off[0] == pytest.approx(exact) and got_on[0] == pytest.approx(exact)
    # the two variants are two cache entries
    plans = m2.program.plans()
    assert {p.fast_math for p in plans} == {True, False}
    assert ez.autodiff(off, f, ez.Active, ez.Active(1.5), ez.Active(2.5))[0] == pytest.approx(exact)
    fwd = ez.autodiff(ez.set_fast_math(ez.Forward, False), f, ez.Duplicated,
                      ez.Duplicated(1.5, 1.0), 2.5)
    assert fwd == pytest.approx((exact[0],))

