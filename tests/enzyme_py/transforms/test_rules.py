"""Custom rules: inactive functions, user-written derivatives of external functions."""

from __future__ import annotations

import ctypes
import math
import subprocess

import numpy as np
import pytest

import enzyme_py as ez
from enzyme_py.rules import inactive, with_derivative

LIBRARY_C = r"""
#include <math.h>
double bb(double x) { return sin(x) * x; }
void bbvec(const double *x, double *y, long n) { for (long i = 0; i < n; i++) y[i] = sin(x[i]) * x[i]; }
"""

USER_C = """
double bb(double x);
void bbvec(const double *x, double *y, long n);
double user(double x, double y) { return bb(x) * y + x; }
double user_vec(const double *x, double *tmp, long n) {
    bbvec(x, tmp, n);
    double s = 0; for (long i = 0; i < n; i++) s += tmp[i] * tmp[i];
    return s;
}
"""

RULES_C = r"""
#include <math.h>
typedef struct { double val, dval; } pair;
typedef struct { void *tape; double val; } aug;
static double dbb(double x) { return cos(x) * x + sin(x); }
pair bb_fwd(double x, double dx) { pair p = { sin(x) * x, dbb(x) * dx }; return p; }
aug bb_aug(double x) { aug a = { 0, sin(x) * x }; return a; }
double bb_grad(double x, double dret, void *tape) { return dbb(x) * dret; }
void bbvec_fwd(const double *x, const double *dx, double *y, double *dy, long n, long dn) {
    for (long i = 0; i < n; i++) { y[i] = sin(x[i]) * x[i]; dy[i] = dbb(x[i]) * dx[i]; }
}
void *bbvec_aug(const double *x, const double *dx, double *y, double *dy, long n, long dn) {
    for (long i = 0; i < n; i++) y[i] = sin(x[i]) * x[i];
    return 0;
}
void bbvec_grad(const double *x, double *dx, const double *y, double *dy, long n, long dn,
                void *tape) {
    for (long i = 0; i < n; i++) { dx[i] += dbb(x[i]) * dy[i]; dy[i] = 0; }
}
double wrong_fwd(double x) { return x; }
"""


@pytest.fixture(scope="module")
def external(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """A C library enzyme_py has no IR for: built with clang, loaded with ctypes."""
    from enzyme_py._native.library import native
    from enzyme_py.module import find_clang

    d = tmp_path_factory.mktemp("extlib")
    (d / "ext.c").write_text(LIBRARY_C)
    so = d / "libext.so"
    clang = find_clang(native().llvm_major)
    subprocess.run([str(clang), "-O2", "-shared", "-fPIC", "-o", str(so), str(d / "ext.c")],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(str(so))
    _keep.append(lib)
    return {n: ctypes.cast(getattr(lib, n), ctypes.c_void_p).value for n in ("bb", "bbvec")}


_keep: list[object] = []


@pytest.fixture(scope="module")
def user(external):  # type: ignore[no-untyped-def]
    return ez.Module.from_c(USER_C, name="user", symbols=external)


@pytest.fixture(scope="module")
def rules():  # type: ignore[no-untyped-def]
    return ez.Module.from_c(RULES_C, name="rules", flags=["-fno-math-errno"])


@pytest.fixture(scope="module")
def reference():  # type: ignore[no-untyped-def]
    """The same code with the library's IR visible: what the rules stand for."""
    return ez.Module.from_c(LIBRARY_C + USER_C, name="reference", flags=["-fno-math-errno"])


@pytest.fixture(scope="module")
def ruled(user, rules):  # type: ignore[no-untyped-def]
    m = with_derivative(user, "bb", forward="bb_fwd", augment="bb_aug", gradient="bb_grad",
                        rules=rules)
    return with_derivative(m, "bbvec", forward=rules.function("bbvec_fwd"),
                           augment=rules.function("bbvec_aug"),
                           gradient=rules.function("bbvec_grad"))


def test_the_external_function_has_no_derivative_without_rules(user) -> None:  # type: ignore[no-untyped-def]
    assert user.function("user")(1.3, 2.0) == pytest.approx(np.sin(1.3) * 1.3 * 2 + 1.3)
    with pytest.raises(ez.EnzymeError):
        ez.autodiff(ez.Reverse, user.function("user"), ez.Active, ez.Active(1.3), ez.Active(2.0))


@pytest.mark.parametrize("x", [1.3, -0.4, 2.5])
def test_scalar_rules_match_the_function_they_stand_for(ruled, reference, x) -> None:  # type: ignore[no-untyped-def]
    y = 2.0
    want_x = (np.cos(x) * x + np.sin(x)) * y + 1.0
    want_y = np.sin(x) * x
    rev = ez.autodiff(ez.ReverseWithPrimal, ruled.function("user"), ez.Active, ez.Active(x), ez.Active(y))
    ref = ez.autodiff(ez.ReverseWithPrimal, reference.function("user"), ez.Active, ez.Active(x),
                      ez.Active(y))
    assert rev[0] == pytest.approx((want_x, want_y), rel=1e-12)
    assert rev[0] == pytest.approx(ref[0], rel=1e-12) and rev[1] == pytest.approx(ref[1])
    fwd = ez.autodiff(ez.ForwardWithPrimal, ruled.function("user"), ez.Duplicated,
                      ez.Duplicated(x, 1.0), y)
    assert fwd[0] == pytest.approx(want_x, rel=1e-12)
    assert fwd[1] == pytest.approx(np.sin(x) * x * y + x)
    eps = 1e-6
    f = ruled.function("user")
    assert (f(x + eps, y) - f(x - eps, y)) / (2 * eps) == pytest.approx(want_x, rel=1e-6)


def test_array_rules_match_the_function_they_stand_for(ruled, reference) -> None:  # type: ignore[no-untyped-def]
    n = 4
    x = np.array([0.3, 1.0, -2.0, 0.7])
    fx = np.sin(x) * x
    want = 2 * fx * (np.cos(x) * x + np.sin(x))
    grads = ez.gradient(ruled.function("user_vec"), x, np.zeros(n), n)
    np.testing.assert_allclose(grads[0], want, rtol=1e-12)
    ref = ez.gradient(reference.function("user_vec"), x, np.zeros(n), n)
    np.testing.assert_allclose(grads[0], ref[0], rtol=1e-12)
    for j in range(n):  # forward mode, one direction at a time
        tangent = np.eye(n)[j].copy()
        (d,) = ez.autodiff(ez.Forward, ruled.function("user_vec"), ez.Duplicated,
                           ez.Duplicated(x, tangent), ez.Duplicated(np.zeros(n), np.zeros(n)), n)
        assert d == pytest.approx(want[j], rel=1e-12)


def test_inactive_functions_carry_no_derivative(user, reference) -> None:  # type: ignore[no-untyped-def]
    m = inactive(user, "bb")
    got = ez.autodiff(ez.Reverse, m.function("user"), ez.Active, ez.Active(1.3), ez.Active(2.0))
    assert got[0] == pytest.approx((1.0, np.sin(1.3) * 1.3))  # bb(x) is a constant
    assert ez.autodiff(ez.Forward, m.function("user"), ez.Duplicated, ez.Duplicated(1.3, 1.0), 2.0) == (
        pytest.approx(1.0),
    )
    # a defined function too (kept out of line: calls inlined before inactive() are gone)
    noinline = ez.Module.from_c(
        "#include <math.h>\n__attribute__((noinline)) double bb(double x) { return sin(x) * x; }\n"
        "double user(double x, double y) { return bb(x) * y + x; }\n",
        flags=["-fno-math-errno"],
    )
    assert "bb" in noinline.functions
    r = inactive(noinline, "bb")
    got_r = ez.autodiff(ez.Reverse, r.function("user"), ez.Active, ez.Active(1.3), ez.Active(2.0))
    assert got_r[0] == pytest.approx(got[0])
    assert user is not m and "bb" not in m.functions  # still a declaration, a new module
    with pytest.raises(KeyError, match="nothere"):
        inactive(user, "nothere")
    with pytest.raises(TypeError, match="at least one"):
        inactive(user)


def test_invalid_rules_raise_before_enzyme(user, rules, reference) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match="forward rule wrong_fwd must take"):
        with_derivative(user, "bb", forward="wrong_fwd", rules=rules)
    with pytest.raises(TypeError, match="augment rule bbvec_aug must take"):
        with_derivative(user, "bb", augment="bbvec_aug", gradient="bb_grad", rules=rules)
    with pytest.raises(TypeError, match="gradient rule bb_fwd must take"):
        with_derivative(user, "bb", augment="bb_aug", gradient="bb_fwd", rules=rules)
    with pytest.raises(TypeError, match="both"):
        with_derivative(user, "bb", augment="bb_aug", rules=rules)
    with pytest.raises(TypeError, match="rules="):
        with_derivative(user, "bb", forward="bb_fwd")
    with pytest.raises(ValueError, match="external"):
        with_derivative(reference, "bb", forward="bb_fwd", rules=rules)
    with pytest.raises(KeyError):
        with_derivative(user, "nothere", forward="bb_fwd", rules=rules)
    with pytest.raises(KeyError):
        with_derivative(user, "bb", forward="nothere", rules=rules)
    with pytest.raises(TypeError, match="needs forward"):
        with_derivative(user, "bb")
    other = ez.Module.from_c("double g(double x) { return x; }")
    with pytest.raises(ValueError, match="one module"):
        with_derivative(user, "bb", augment=rules.function("bb_aug"), gradient=other.function("g"))
    clash = ez.Module.from_c("double user(double x, double y) { return x; }"
                             "typedef struct { double a, b; } p; p f(double x, double d) { p r = {x, d}; return r; }")
    with pytest.raises(ValueError, match="defines"):
        with_derivative(user, "bb", forward=clash.function("f"))


# --------------------------------------------------------------------------- both input kinds
# The scalar rules on a C function and on its Python twin: a numba function calling the
# same external C function by name (numba's ExternalFunction), given the same rules.  The
# library is loaded RTLD_GLOBAL for the Python kind, so the JIT finds bb in the process.


@pytest.fixture(scope="module")
def global_external(tmp_path_factory: pytest.TempPathFactory) -> None:
    from enzyme_py._native.library import native
    from enzyme_py.module import find_clang

    d = tmp_path_factory.mktemp("extlib_global")
    (d / "ext.c").write_text(LIBRARY_C)
    so = d / "libextglobal.so"
    subprocess.run([str(find_clang(native().llvm_major)), "-O2", "-shared", "-fPIC", "-o", str(so),
                    str(d / "ext.c")], check=True, capture_output=True)
    _keep.append(ctypes.CDLL(str(so), mode=ctypes.RTLD_GLOBAL))


def _python_user():  # type: ignore[no-untyped-def]
    from numba import types

    bb = types.ExternalFunction("bb", types.float64(types.float64))

    def user(x, y):  # type: ignore[no-untyped-def]
        return bb(x) * y + x

    return user


def python_reference(x, y):  # type: ignore[no-untyped-def]
    return math.sin(x) * x * y + x


@pytest.fixture(params=["c", "python"])
def user_kinds(request, user, reference):  # type: ignore[no-untyped-def]
    """``(target to give rules to, its function, the same code with bb visible)``."""
    if request.param == "c":
        return user, (lambda m: m.function("user")), reference.function("user")
    request.getfixturevalue("global_external")
    f = _python_user()
    return f, (lambda g: g), python_reference


def _primal(f, *args):  # type: ignore[no-untyped-def]
    return f(*args) if isinstance(f, ez.Function) else ez.lower(f, *args)(*args)


@pytest.mark.parametrize("x", [1.3, -0.4])
def test_rules_on_both_kinds(user_kinds, rules, x) -> None:  # type: ignore[no-untyped-def]
    target, function_of, ref = user_kinds
    g = function_of(with_derivative(target, "bb", forward="bb_fwd", augment="bb_aug",
                                    gradient="bb_grad", rules=rules))
    y = 2.0
    want_x = (np.cos(x) * x + np.sin(x)) * y + 1.0
    want_y = np.sin(x) * x
    rev = ez.autodiff(ez.ReverseWithPrimal, g, ez.Active, ez.Active(x), ez.Active(y))
    assert rev[0] == pytest.approx((want_x, want_y), rel=1e-12)
    assert rev[1] == pytest.approx(np.sin(x) * x * y + x, rel=1e-12)
    ref_rev = ez.autodiff(ez.Reverse, ref, ez.Active, ez.Active(x), ez.Active(y))
    assert ref_rev[0] == pytest.approx(rev[0], rel=1e-12)
    (fwd,) = ez.autodiff(ez.Forward, g, ez.Duplicated, ez.Duplicated(x, 1.0), y)
    assert fwd == pytest.approx(want_x, rel=1e-12)
    eps = 1e-6
    assert (_primal(g, x + eps, y) - _primal(g, x - eps, y)) / (2 * eps) == pytest.approx(want_x, rel=1e-6)
    # a forward rule alone does not make reverse mode work: Enzyme says which is missing
    only_fwd = function_of(with_derivative(target, "bb", forward="bb_fwd", rules=rules))
    with pytest.raises(ez.NoDerivativeError, match="bb"):
        ez.autodiff(ez.Reverse, only_fwd, ez.Active, ez.Active(x), ez.Active(y))


def test_inactive_on_both_kinds(user_kinds) -> None:  # type: ignore[no-untyped-def]
    target, function_of, _ref = user_kinds
    g = function_of(inactive(target, "bb"))
    got = ez.autodiff(ez.Reverse, g, ez.Active, ez.Active(1.3), ez.Active(2.0))
    assert got[0] == pytest.approx((1.0, np.sin(1.3) * 1.3))  # bb(x) is a constant
    assert ez.autodiff(ez.Forward, g, ez.Duplicated, ez.Duplicated(1.3, 1.0), 2.0) == (pytest.approx(1.0),)
