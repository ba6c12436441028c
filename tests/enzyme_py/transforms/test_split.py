"""Split reverse mode: autodiff_thunk, tapes, overwritten arguments."""

from __future__ import annotations

import numpy as np
import pytest

import enzyme_py as ez
from enzyme_py import Active, Const, Duplicated, ReverseSplitNoPrimal, ReverseSplitWithPrimal

from ._support import rosen_grad

X = np.array([0.3, 1.2, -0.7, 2.0, 0.1])
N = X.size


def test_split_equals_combined_for_scalars(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("poly")
    fwd, rev = ez.autodiff_thunk(ReverseSplitWithPrimal, f, Active, Active, Active)
    tape, primal, shadow = fwd(Active(1.5), Active(-2.0))
    assert primal == pytest.approx(1.5**2 * -2.0 + 3 * -2.0) and shadow is None
    assert not tape.consumed
    got = rev(Active(1.5), Active(-2.0), 1.0, tape)
    assert tape.consumed
    combined = ez.autodiff(ez.Reverse, f, Active, Active(1.5), Active(-2.0))
    assert got[0] == pytest.approx(combined[0])
    assert got[0] == pytest.approx((2 * 1.5 * -2.0, 1.5**2 + 3))
    tape, _, _ = fwd(Active(1.5), Active(-2.0))
    assert rev(Active(1.5), Active(-2.0), 2.5, tape)[0][0] == pytest.approx(2.5 * 2 * 1.5 * -2.0)


def test_split_equals_combined_for_arrays(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("rosen")
    fwd, rev = ez.autodiff_thunk(ReverseSplitWithPrimal, f, Active, Duplicated, Const)
    x, dx = X.copy(), np.zeros(N)
    tape, primal, _ = fwd(Duplicated(x, dx), N)
    assert primal == pytest.approx(f(X, N))
    assert rev(Duplicated(x, dx), N, 1.0, tape) == ((None, None),)
    dx_combined = np.zeros(N)
    ez.autodiff(ez.Reverse, f, Active, Duplicated(X.copy(), dx_combined), N)
    np.testing.assert_allclose(dx, dx_combined, rtol=1e-14)
    np.testing.assert_allclose(dx, rosen_grad(X), rtol=1e-12)


def test_input_overwritten_between_the_passes(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("cubes")
    fwd, rev = ez.autodiff_thunk(ReverseSplitWithPrimal, f, Active, Duplicated, Const)
    x, dx = X.copy(), np.zeros(N)
    tape, _, _ = fwd(Duplicated(x, dx), N)
    x[:] = 100.0  # the caller reuses its buffer before the reverse pass
    rev(Duplicated(x, dx), N, 1.0, tape)
    np.testing.assert_allclose(dx, 3 * X**2, rtol=1e-14)  # the gradient at the forward inputs
    # promising "not overwritten" and keeping the promise gives the same result
    fwd2, rev2 = ez.autodiff_thunk(
        ReverseSplitWithPrimal, f, Active, Duplicated, Const, overwritten=(False, False)
    )
    x2, dx2 = X.copy(), np.zeros(N)
    tape2, _, _ = fwd2(Duplicated(x2, dx2), N)
    rev2(Duplicated(x2, dx2), N, 1.0, tape2)
    np.testing.assert_allclose(dx2, 3 * X**2, rtol=1e-14)


def test_no_primal_mode_and_const_return(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("vecfun")
    fwd, rev = ez.autodiff_thunk(ReverseSplitNoPrimal, f, Const, Duplicated, Duplicated, Const)
    x, dx = X.copy(), np.zeros(N)
    y, dy = np.empty(N + 1), np.zeros(N + 1)
    tape, primal, _ = fwd(Duplicated(x, dx), Duplicated(y, dy), N)
    assert primal is None
    dy[:] = np.arange(N + 1.0)  # the seed, set between the passes
    assert rev(Duplicated(x, dx), Duplicated(y, dy), N, tape) == ((None, None, None),)
    from ._support import vecfun_jac

    np.testing.assert_allclose(dx, np.arange(N + 1.0) @ vecfun_jac(X), rtol=1e-12)


def test_tapes_are_single_use_and_bound_to_their_thunk(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("cubes")
    fwd, rev = ez.autodiff_thunk(ReverseSplitWithPrimal, f, Active, Duplicated, Const)
    _, other_rev = ez.autodiff_thunk(ReverseSplitWithPrimal, f, Active, Duplicated, Const)
    x, dx = X.copy(), np.zeros(N)
    tape, _, _ = fwd(Duplicated(x, dx), N)
    with pytest.raises(ez.TapeError, match="another thunk"):
        other_rev(Duplicated(x, dx), N, 1.0, tape)
    rev(Duplicated(x, dx), N, 1.0, tape)
    snapshot = dx.copy()
    with pytest.raises(ez.TapeError, match="already consumed"):
        rev(Duplicated(x, dx), N, 1.0, tape)
    np.testing.assert_array_equal(dx, snapshot)  # nothing ran
    assert isinstance(ez.TapeError("x"), ValueError)


def test_split_invalid_requests(mod) -> None:  # type: ignore[no-untyped-def]
    f = mod.function("cubes")
    with pytest.raises(TypeError, match="ReverseSplitWithPrimal"):
        ez.autodiff_thunk(ez.Reverse, f, Active, Duplicated, Const)
    with pytest.raises(TypeError, match="autodiff_thunk"):
        ez.autodiff(ReverseSplitWithPrimal, f, Active, Duplicated(X, np.zeros(N)), N)
    with pytest.raises(TypeError, match="Active or Const"):
        ez.autodiff_thunk(ReverseSplitWithPrimal, f, Duplicated, Duplicated, Const)
    with pytest.raises(TypeError, match="activity class"):
        ez.autodiff_thunk(ReverseSplitWithPrimal, f, Active, Duplicated)
    with pytest.raises(TypeError, match="argtypes"):
        ez.autodiff_thunk(ReverseSplitWithPrimal, f, Active, Duplicated(X, X), Const)
    with pytest.raises(ValueError, match="overwritten"):
        ez.autodiff_thunk(ReverseSplitWithPrimal, f, Active, Duplicated, Const, overwritten=(True,))
    fwd, rev = ez.autodiff_thunk(ReverseSplitWithPrimal, f, Active, Duplicated, Const)
    with pytest.raises(TypeError, match="declared Duplicated"):
        fwd(X, N)
    with pytest.raises(TypeError, match="declared Const"):
        fwd(Duplicated(X, np.zeros(N)), Active(1.0))
    with pytest.raises(ValueError, match="shape"):
        fwd(Duplicated(X, np.zeros(2)), N)
    x, dx = X.copy(), np.zeros(N)
    tape, _, _ = fwd(Duplicated(x, dx), N)
    with pytest.raises(TypeError, match="dret"):
        rev(Duplicated(x, dx), N, tape)
    with pytest.raises(TypeError, match="Tape"):
        rev(Duplicated(x, dx), N, 1.0, "tape")
    assert not tape.consumed  # failed calls did not consume it
    rev(Duplicated(x, dx), N, 1.0, tape)
    np.testing.assert_allclose(dx, 3 * X**2)


def test_unconsumed_tapes_are_released(run_child) -> None:  # type: ignore[no-untyped-def]
    out = run_child(
        """
        import gc, resource
        m = ez.Module.from_c("double cubes(const double *x, long n) {"
                             " double s = 0; for (long i = 0; i < n; i++) s += x[i]*x[i]*x[i];"
                             " return s; }")
        f = m.function("cubes")
        fwd, rev = ez.autodiff_thunk(ez.ReverseSplitWithPrimal, f, ez.Active, ez.Duplicated, ez.Const)
        n = 250_000
        x, dx = np.random.default_rng(0).random(n), np.zeros(n)
        t, _, _ = fwd(ez.Duplicated(x, dx), n)
        rev(ez.Duplicated(x, dx), n, 1.0, t)
        dx[:] = 0
        gc.collect()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for _ in range(200):  # each tape caches n doubles (2 MB): 400 MB if leaked
            t, _, _ = fwd(ez.Duplicated(x, dx), n)
            del t
        gc.collect()
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert grown_mb < 100, grown_mb
        assert not dx.any()  # releasing a tape leaves the caller's shadows alone
        # and the thunk still works
        t, _, _ = fwd(ez.Duplicated(x, dx), n)
        rev(ez.Duplicated(x, dx), n, 1.0, t)
        assert np.allclose(dx, 3 * x**2)
        # a tape whose module was closed: a clear error, no crash
        t, _, _ = fwd(ez.Duplicated(x, dx), n)
        m.close()
        import enzyme_py._compile.memcache as cache
        cache.clear()
        expect_raises((ez.TapeError, ValueError), rev, ez.Duplicated(x, dx), n, 1.0, t)
        print("OK", round(grown_mb, 1))
        """
    )
    assert "OK" in out


def test_no_primal_mode_with_a_float_result_and_float32(mod) -> None:  # type: ignore[no-untyped-def]
    fwd, rev = ez.autodiff_thunk(ReverseSplitNoPrimal, mod.function("poly"), Active, Active, Const)
    tape, primal, _ = fwd(Active(1.5), -2.0)
    assert primal is None
    assert rev(Active(1.5), -2.0, 1.0, tape) == ((pytest.approx(2 * 1.5 * -2.0), None),)
    fwd32, rev32 = ez.autodiff_thunk(ReverseSplitWithPrimal, mod.function("cubesf"), Active,
                                     Duplicated, Const)
    x = np.array([0.5, -1.0, 2.0], np.float32)
    dx = np.zeros(3, np.float32)
    tape, primal, _ = fwd32(Duplicated(x, dx), 3)
    assert primal == pytest.approx(float(np.sum(x**3)))
    rev32(Duplicated(x, dx), 3, 1.0, tape)
    np.testing.assert_allclose(dx, 3 * x**2, rtol=1e-6)
