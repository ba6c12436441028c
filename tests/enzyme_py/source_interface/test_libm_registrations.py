"""A C math function named by a registration (``enzyme_inactive`` on its declaration,
``__enzyme_inactivefn``, a custom derivative) is honoured though clang emits its calls as
LLVM intrinsics (``-fno-math-errno`` makes ``sqrt(x)`` ``llvm.sqrt.f64``; clang 19 does
the same for ``tanh``): the registration would otherwise name a function nothing calls."""

from __future__ import annotations

import math
import uuid

import numpy as np
import pytest

import enzyme_py as ez
from tests.support.fd import central_difference


def _module(src: str) -> ez.Module:
    return ez.Module.from_c(src, name=f"libm_{uuid.uuid4().hex[:8]}")


def test_inactive_math_declarations_are_constants_for_the_derivative() -> None:
    m = _module("""
#include <math.h>
__attribute__((enzyme_inactive)) extern double sqrt(double x);
__attribute__((enzyme_inactive)) extern float sqrtf(float x);
__attribute__((enzyme_inactive)) extern double fmax(double x, double y);
extern double __enzyme_autodiff(void *, ...);
double f(double x) { return x * x + sqrt(x) + fmax(x, 0.5); }
float g(float x) { return x * x + sqrtf(x); }
double through_the_pass(double x) { return __enzyme_autodiff((void *)f, x); }
""")
    assert "llvm.sqrt" not in m.ir and "llvm.maxnum" not in m.ir
    f = m.function("f")
    assert f(4.0) == 16.0 + 2.0 + 4.0  # the primal still calls them
    assert ez.gradient(f, 4.0) == (8.0,)  # only x * x is active
    assert m.function("through_the_pass")(4.0) == 8.0
    assert ez.gradient(m.function("g"), np.float32(4.0))[0] == pytest.approx(8.0)


def test_without_the_registration_the_intrinsic_is_differentiated() -> None:
    f = _module("#include <math.h>\ndouble f(double x) { return x * x + sqrt(x); }").function("f")
    (g,) = ez.gradient(f, 4.0)
    assert g == pytest.approx(8.0 + 0.25)
    assert g == pytest.approx(central_difference(lambda x: x * x + math.sqrt(x), 4.0), rel=1e-7)


def test_a_rule_for_a_math_function_enzyme_knows_is_refused() -> None:
    """Enzyme's own rule for sqrt wins over a registered one, which would be ignored."""
    src = """
#include <math.h>
typedef struct { double primal, tangent; } Dual;
Dual sqrt_fwd(double x, double dx) { Dual d = {sqrt(x), 3 * dx / (2 * sqrt(x))}; return d; }
void *__enzyme_register_derivative_sqrt[2] = {(void *)sqrt, (void *)sqrt_fwd};
extern double __enzyme_fwddiff(void *, ...);
double f(double x) { return 2 * sqrt(x); }
double tangent(double x) { return __enzyme_fwddiff((void *)f, x, 1.0); }
"""
    with pytest.raises(ez.UnsupportedError, match="registers a rule for sqrt, which Enzyme differentiates by its own"):
        _module(src)
    rules = _module("double fwd(double x, double dx) { return dx; }")
    m = _module("#include <math.h>\ndouble f(double x) { return sqrt(x); }")
    with pytest.raises(ez.UnsupportedError, match="'sqrt' by its own built-in rule"):
        ez.with_derivative(m, "sqrt", forward=rules.function("fwd"))


def test_a_rule_for_a_wrapper_of_sqrt_is_used() -> None:
    m = _module("""
#include <math.h>
typedef struct { double primal, tangent; } Dual;
__attribute__((noinline)) double root(double x) { return sqrt(x); }
Dual root_fwd(double x, double dx) { Dual d = {sqrt(x), 3 * dx / (2 * sqrt(x))}; return d; }
void *__enzyme_register_derivative_root[2] = {(void *)root, (void *)root_fwd};
extern double __enzyme_fwddiff(void *, ...);
double f(double x) { return 2 * root(x); }
double tangent(double x) { return __enzyme_fwddiff((void *)f, x, 1.0); }
""")
    # the rule is 3x the true derivative (1/(2 sqrt x)), so its use shows
    assert m.function("tangent")(4.0) == pytest.approx(2 * 3 / 4)


LGAMMA = "#include <math.h>\ndouble f(double x) { return lgamma(x) * x; }\n"


def test_lgamma_is_refused_before_enzyme_would_end_the_process() -> None:
    """This Enzyme stops the process (llvm_unreachable) on lgamma's derivative."""
    f = _module(LGAMMA).function("f")
    assert f(3.0) == pytest.approx(math.lgamma(3.0) * 3.0)  # the primal runs
    for call in (
        lambda: ez.gradient(f, 3.0),
        lambda: ez.autodiff(ez.Forward, f, ez.Duplicated, ez.Duplicated(3.0, 1.0)),
    ):
        with pytest.raises(ez.UnsupportedError, match=r"calls lgamma \(in f\)"):
            call()
    src = LGAMMA + "extern double __enzyme_autodiff(void *, ...);\ndouble g(double x) { return __enzyme_autodiff((void *)f, x); }\n"
    with pytest.raises(ez.UnsupportedError, match=r"'f' \(differentiated in .*\) calls lgamma"):
        _module(src)

    def py(x):  # type: ignore[no-untyped-def]
        return math.lgamma(x) * x

    with pytest.raises(ez.UnsupportedError, match="calls lgamma"):
        ez.gradient(py, 3.0)


def test_lgamma_in_an_inactive_function_is_not_differentiated() -> None:
    m = _module("""
#include <math.h>
__attribute__((noinline, enzyme_inactive)) double log_norm(double x) { return lgamma(x); }
extern double __enzyme_autodiff(void *, ...);
double f(double x) { return x * x - log_norm(x); }
double g(double x) { return __enzyme_autodiff((void *)f, x); }
""")
    assert m.function("g")(3.0) == 6.0
    assert ez.gradient(m.function("f"), 3.0) == (6.0,)
