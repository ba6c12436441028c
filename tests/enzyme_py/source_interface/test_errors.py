"""Bad programs and bad inputs end in clear Python exceptions, never in the end of the
process: malformed registrations and unknown plugin attributes are refused before
Enzyme's pass runs; what Enzyme's pass reports becomes an ``EnzymeError``; ``exit()``,
``abort()`` and failed ``assert()`` in a program become ``ProgramExit``.  Whatever could
take the process down runs in a child."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import enzyme_py as ez

HEAD = "extern double __enzyme_autodiff(void *, ...);\n"


@pytest.mark.parametrize(
    ("source", "match"),
    [
        (HEAD + "double f(double x) { return x; }\nvoid *__enzyme_register_gradient_f[2] = {(void *)f, (void *)f};",
         r"__enzyme_register_gradient_f' holds 2 value\(s\); it must hold 3 functions"),
        (HEAD + "double f(double x) { return x; }\nint k;\nvoid *__enzyme_register_derivative_f[2] = {(void *)f, (void *)&k};",
         r"__enzyme_register_derivative_f' holds a value that is not a function at position 1"),
        (HEAD + "double f(double x) { return x; }\ndouble df(double x, double dx) { return dx; }\n"
         "void *__enzyme_register_derivative_f[2] = {(void *)f, (void *)df};",
         r"forward rule 'df', which returns double.*struct \{primal, tangent\}"),
        (HEAD + "double f(double x) { return x; }\nint k;\nvoid *__enzyme_inactivefn_k = (void *)&k;",
         r"__enzyme_inactivefn_k' must hold a function"),
        (HEAD + "double f(double x) { return x; }\nvoid *__enzyme_function_like_f[2] = {(void *)f, (void *)0};",
         r"__enzyme_function_like_f' must hold a non-empty function name"),
        (HEAD + "__attribute__((enzyme_sparkle)) double f(double x) { return x; }",
         r"line 2 uses the attribute enzyme_sparkle, which Enzyme's clang plugin does not define"),
    ],
)
def test_malformed_registrations_are_refused_before_the_pass(source: str, match: str) -> None:
    with pytest.raises(ez.UnsupportedError, match=match):
        ez.Module.from_c(source)


def test_the_pass_missing_names_the_construct(monkeypatch: pytest.MonkeyPatch) -> None:
    from enzyme_py._compile import pipeline

    monkeypatch.setattr(pipeline.native_enzyme, "source_pass_missing", lambda: "this Enzyme lacks AddEnzymePass")
    src = HEAD + "double sq(double x) { return x * x; }\ndouble d(double x) { return __enzyme_autodiff((void *)sq, x); }"
    with pytest.raises(ez.UnsupportedError, match=r"\(__enzyme_autodiff\).*this Enzyme lacks AddEnzymePass"):
        ez.Module.from_c(src, name="no_pass")


def test_python_api_refuses_openmp_and_points_at_the_source_interface() -> None:
    m = ez.Module.from_c(
        "void f(double *y, const double *x, int n) {\n#pragma omp parallel for\n"
        "for (int i = 0; i < n; i++) y[i] = x[i] * x[i]; }",
        flags=["-fopenmp"],
    )
    import numpy as np

    x, y = np.ones(4), np.zeros(4)
    with pytest.raises(ez.UnsupportedError, match=r"OpenMP.*__enzyme_autodiff"):
        ez.autodiff(ez.Reverse, m.function("f"), ez.Const, ez.Duplicated(y, np.ones(4)), ez.Duplicated(x, np.zeros(4)), 4)
    m.function("f")(y, x, 4)  # the primal runs in parallel
    assert y.tolist() == [1.0] * 4


def test_enzyme_errors_of_the_pass_raise(run_child: Callable[..., str]) -> None:
    out = run_child(
        '''
        src = """extern void __enzyme_autodiff(void*);
        void g(int size) { }
        void square() { __enzyme_autodiff((void*)g); }
        """
        expect_raises(ez.DiagnosticError, ez.Module.from_c, src, name="few",
                      contains=("Insufficient number of args passed to derivative call",))
        src = """extern double __enzyme_autodiff(void*, ...);
        double unknown(double);
        double g(double x) { return unknown(x); }
        double d(double x) { return __enzyme_autodiff((void*)g, x); }
        """
        expect_raises(ez.NoDerivativeError, ez.Module.from_c, src, name="unknown",
                      contains=("No reverse pass found for unknown",))
        src = """#include <math.h>
        extern void __enzyme_autodiff(void*, ...);
        extern int enzyme_dup, enzyme_const;
        double s(const double *x, int n) { double t = 0;
        #pragma omp parallel for reduction(+:t)
          for (int i = 0; i < n; i++) t += sin(x[i]);
          return t; }
        void d(double *x, double *dx, int n) { __enzyme_autodiff((void*)s, enzyme_dup, x, dx, enzyme_const, n); }
        """
        expect_raises(ez.NoDerivativeError, ez.Module.from_c, src, flags=["-fopenmp"], name="reduction",
                      contains=("unhandled openmp function", "__kmpc_reduce"))
        still_alive()
        '''
    )
    assert out.count("RAISED") == 3 and "ALIVE" in out


def test_exit_abort_and_assert_become_program_exit(run_child: Callable[..., str]) -> None:
    out = run_child(
        r'''
        src = """#include <stdio.h>
        #include <stdlib.h>
        #include <assert.h>
        extern double __enzyme_autodiff(void*, ...);
        double sq(double x) { return x * x; }
        int check(int how) {
          double d = __enzyme_autodiff((void*)sq, 3.0);
          printf("d=%g\\n", d);
          if (how == 1) exit(3);
          if (how == 2) abort();
          assert(how != 3 && "how must not be 3");
          return d == 6.0 ? 0 : 1;
        }
        int main(void) { return check(2); }
        """
        m = ez.Module.from_c(src)
        f = m.function("check")
        assert f(0) == 0
        e = expect_raises(ez.ProgramExit, f, 1, contains=("exit(3)",))
        assert e.kind == "exit" and e.status == 3
        e = expect_raises(ez.ProgramExit, f, 2, contains=("abort()",))
        assert e.kind == "abort" and e.status == 134
        e = expect_raises(ez.ProgramExit, f, 3, contains=("Assertion `how != 3", "failed"))
        assert e.kind == "assert"
        expect_raises(ez.ProgramExit, m.function("main"), contains=("abort()",))
        assert f(0) == 0  # the process and the module still work
        still_alive()
        '''
    )
    assert out.count("RAISED") == 4 and "d=6" in out and "ALIVE" in out


def test_the_pass_runs_in_the_isolation_worker(run_child: Callable[..., str]) -> None:
    out = run_child(
        '''
        src = """extern double __enzyme_autodiff(void*, ...);
        double sq(double x) { return x * x; }
        int main(void) { return __enzyme_autodiff((void*)sq, 3.0) == 6.0 ? 0 : 1; }
        """
        assert ez.Module.from_c(src).function("main")() == 0
        bad = """extern double __enzyme_autodiff(void*, ...);
        double unknown(double);
        double g(double x) { return unknown(x); }
        double d(double x) { return __enzyme_autodiff((void*)g, x); }
        """
        expect_raises(ez.NoDerivativeError, ez.Module.from_c, bad, contains=("unknown",))
        import os
        from enzyme_py._compile.client import worker
        assert worker().pid not in (None, os.getpid())
        print("WORKER")
        ''',
        env={"ENZYME_PY_ISOLATE": "1"},
    )
    assert "WORKER" in out and "RAISED NoDerivativeError" in out


def test_a_program_calling_an_undefined_function_fails_to_link() -> None:
    m = ez.Module.from_c(HEAD + "double nowhere(double);\ndouble sq(double x) { return x * x; }\n"
                         "double h(double x) { return nowhere(x); }\n"
                         "int main(void) { return __enzyme_autodiff((void *)sq, 2.0) > 0; }")
    with pytest.raises(ez.CompileError, match="nowhere"):
        m.function("h")(1.0)
    assert m.function("main")() == 1


def test_what_the_plugin_warns_about_is_a_warning_and_the_derivative_right() -> None:
    # optimisation turns the branch into a select between an inactive global and an
    # active pointer: the clang plugin warns about mixed activity and goes on (Enzyme's
    # default shadow), and so does enzyme_py, with an EnzymeWarning
    src = r"""
    extern double __enzyme_autodiff(void*, ...);
    extern int enzyme_const;
    __attribute__((enzyme_inactive)) double tmp = 5.5;
    __attribute__((noinline)) void f(int cond, double a, double *c) { if (cond) tmp *= a; else *c *= a; }
    double test(int cond, double a) { double dat = a; f(cond, a, &dat); return dat; }
    int main(void) {
      double out = __enzyme_autodiff((void*)test, enzyme_const, 0, 3.0);
      return (out == 6.0 && tmp == 5.5) ? 0 : 1;
    }
    """
    with pytest.warns(ez.EnzymeWarning, match="Mismatched activity"):
        m = ez.Module.from_c(src, name="mixed")
    assert m.function("main")() == 0
