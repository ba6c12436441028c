"""Whole C/C++ programs written against Enzyme's source-level interface run as they are:
``Module.from_c(src).function("main")()`` (or ``from_cpp``), Enzyme's own pass having
replaced every ``__enzyme_*`` call; each ``main()`` checks its own derivatives and returns
the number of failed checks."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from .conftest import PROGRAMS

PROGRAM_NAMES = sorted(p.name for p in PROGRAMS.iterdir() if p.suffix in (".c", ".cpp"))


def test_every_construct_has_a_program() -> None:
    assert set(PROGRAM_NAMES) >= {
        "reverse.c", "forward.c", "vector.c", "split.c", "custom_rules.c", "inactive.c",
        "structs.c", "ptrptr.c", "memory.c", "openmp.c", "classes.cpp",
    }


@pytest.mark.parametrize("name", PROGRAM_NAMES)
def test_main_checks_its_derivatives(name: str, build: Callable[..., object], capfd: pytest.CaptureFixture[str]) -> None:
    m = build(name)
    # Enzyme's pass replaced every call of its interface
    assert not re.search(r"call [^\n]*@\S*__enzyme_(autodiff|fwddiff|augmentfwd|reverse|batch)", m.ir)  # type: ignore[attr-defined]
    failures = m.function("main")()  # type: ignore[attr-defined]
    err = capfd.readouterr().err
    assert failures == 0, f"{name}: {failures} check(s) failed:\n{err}"


def test_the_rules_registered_in_source_are_used(build: Callable[..., object]) -> None:
    # custom_rules.c's rules are 3x the true derivative: main() checks the rules' values,
    # and here the generated derivative is called from Python too
    import enzyme_py as ez

    m = build("custom_rules.c")
    assert ez.autodiff(ez.Forward, m.function("use_sq"), ez.Duplicated, ez.Duplicated(2.0, 1.0)) == (13.0,)  # type: ignore[attr-defined]


def test_functions_of_such_a_module_differentiate_through_the_python_api(build: Callable[..., object]) -> None:
    import enzyme_py as ez

    m = build("reverse.c")
    ((d,),) = ez.autodiff(ez.Reverse, m.function("cube"), ez.Active, ez.Active(2.0))  # type: ignore[attr-defined]
    assert d == 12.0


def test_cpp_functions_are_found_by_their_cpp_names(build: Callable[..., object]) -> None:
    import enzyme_py as ez

    m = build("classes.cpp")
    f = m.function("spring_energy(double)")  # type: ignore[attr-defined]
    assert f is m.function("spring_energy") and f.name == "_Z13spring_energyd"  # type: ignore[attr-defined]
    assert repr(f) == "<Function spring_energy(double): double (double)>"
    assert f(2.0) == 8.0
    assert m.function("phys::poly<double>(double)")(2.0) == 4.0  # type: ignore[attr-defined]
    assert m.function("phys::poly")(3.0) == 21.0  # type: ignore[attr-defined]
    ((d,),) = ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(1.5))
    assert d == 6.0
    assert m.function("safe_parse")(-1) == -1  # a C++ exception thrown and caught in JIT code  # type: ignore[attr-defined]


def test_a_cpp_name_shared_by_overloads_is_ambiguous() -> None:
    import enzyme_py as ez

    m = ez.Module.from_cpp("namespace ns { double f(double x) { return x; } float f(float x) { return x; } }")
    with pytest.raises(KeyError, match=r"'ns::f' names 2 functions.*ns::f\(double\).*ns::f\(float\)"):
        m.function("ns::f")
    assert m.function("ns::f(float)")(1.5) == 1.5
    with pytest.raises(KeyError, match=r"defines no function 'g'.*ns::f\(double\) \[_ZN2ns1fEd\]"):
        m.function("g")


def test_from_cpp_takes_the_standard_and_extern_c_keeps_names() -> None:
    import enzyme_py as ez

    src = 'extern "C" double twice(double x) { auto f = [](auto v) { return 2 * v; }; return f(x); }'
    m = ez.Module.from_cpp(src, std="c++14")
    assert m.functions == ("twice",) or "twice" in m.functions
    assert m.function("twice")(2.0) == 4.0
    with pytest.raises(ez.CompileError, match="clang failed"):
        ez.Module.from_cpp("int f() { return requires { true; }; }", std="c++17")
    with pytest.raises(TypeError, match="std must name"):
        ez.Module.from_cpp("int f();", std="")


def test_static_constructors_run_once_per_module_instance() -> None:
    import enzyme_py as ez

    src = r"""
    #include <vector>
    static int built = 0;
    struct Count { Count() { built++; } };
    static Count c1, c2;
    static std::vector<double> table = {1.0, 2.0, 3.0};
    int constructed() { return built; }
    double third() { return table[2]; }
    """
    m = ez.Module.from_cpp(src)
    assert m.function("constructed")() == 2
    assert m.function("third")() == 3.0
    assert m.function("constructed")() == 2  # not run again for the second function
    other = ez.Module.from_cpp(src)
    assert other.function("constructed")() == 2  # an instance has its own state
