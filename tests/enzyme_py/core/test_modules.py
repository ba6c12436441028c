"""Module construction (IR text, bitcode from clang-15, C) and the primal call ``f(*args)``."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import enzyme_py
from enzyme_py import Active, Const, Duplicated, Forward, Module, Reverse, autodiff, gradient

from ._sources import C_DOUBLE
from ._support import assert_close

CLANG = "clang-15"


def _bitcode(tmp_path: Path, source: str, *flags: str) -> bytes:
    clang = shutil.which(CLANG)
    assert clang is not None, "clang-15 is required (CI installs it)"
    src = tmp_path / "funcs.c"
    out = tmp_path / "funcs.bc"
    src.write_text(source)
    subprocess.run(
        [clang, "-c", "-emit-llvm", "-O2", "-fno-math-errno", "-fno-unroll-loops", *flags,
         "-o", str(out), str(src)],
        check=True, capture_output=True,
    )
    data = out.read_bytes()
    assert data[:4] == b"BC\xc0\xde"
    return data


def test_bitcode_from_clang(tmp_path: Path) -> None:
    m = Module.from_bitcode(_bitcode(tmp_path, C_DOUBLE), name="bitcode")
    sq = m.function("sq")
    assert sq.signature == "double (double)"
    assert sq(3.0) == 9.0
    assert autodiff(Reverse, sq, Active, Active(3.0)) == ((6.0,),)
    assert autodiff(Forward, sq, Duplicated, Duplicated(3.0, 1.0)) == (6.0,)

    x = 0.7
    sinexp = m.function("sinexp")
    ((d,),) = autodiff(Reverse, sinexp, Active, Active(x))
    assert_close(d, math.cos(x) * x + math.sin(x) + math.exp(x), rtol=1e-12)

    rosen = m.function("rosen")
    xs = np.array([0.5, -1.0, 1.5, 2.0])
    (g, none) = gradient(rosen, xs, Const(4))
    assert none is None
    a = xs[1:] - xs[:-1] ** 2
    expect = np.zeros(4)
    expect[:-1] += -400.0 * xs[:-1] * a - 2.0 * (1.0 - xs[:-1])
    expect[1:] += 200.0 * a
    assert_close(g, expect, rtol=1e-12)


def test_bad_bitcode_is_a_parse_error() -> None:
    with pytest.raises(enzyme_py.IRParseError) as info:
        Module.from_bitcode(b"BC\xc0\xde" + b"\x00garbage" * 8)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ValueError):
        Module.from_bitcode(b"")


def test_primal_calls(dmod) -> None:  # type: ignore[no-untyped-def]
    assert dmod.function("sq")(-4.0) == 16.0
    assert dmod.function("prod3")(2.0, 3.0, 0.5) == 2.0 * 9.0 * 0.125
    assert_close(dmod.function("mix4")(1.5, 3, -2.0, 0.5), 1.5 * -2.0 + 3 * math.sin(0.5) + 0.375,
                 rtol=1e-14)
    x = np.array([1.0, 2.0, 3.0])
    y = np.array([4.0, 5.0, 6.0])
    assert dmod.function("sumsq")(x, 3) == 14.0
    assert dmod.function("dot")(x, y, 3) == 32.0
    assert dmod.function("sumsq")(x, 2) == 5.0  # n is honoured, not the array size
    out = np.zeros(3)
    assert dmod.function("sqsin_into")(x, out, 3) is None
    assert_close(out, x * x + np.sin(x), rtol=1e-14)
    assert isinstance(dmod.function("sq")(1.5), float)


def test_function_lookup_errors_list_defined_functions(dmod) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(KeyError) as info:
        dmod.function("no_such_function")
    msg = str(info.value)
    assert "no_such_function" in msg
    assert "sumsq" in msg and "quad4" in msg
    # A declaration is not a definition.
    with pytest.raises(KeyError):
        Module.from_ir(
            "declare double @ext(double)\ndefine double @g(double %x) {\n"
            "  %r = call double @ext(double %x)\n  ret double %r\n}\n"
        ).function("ext")


def test_ir_parse_error_carries_line() -> None:
    text = (
        "define double @f(double %x) {\n"  # line 1
        "entry:\n"  # line 2
        "  %a = fmul double %x, %x\n"  # line 3
        "  %b = fadd double %a, %undefined_value\n"  # line 4
        "  ret double %b\n"  # line 5
        "}\n"
    )
    with pytest.raises(enzyme_py.IRParseError) as info:
        Module.from_ir(text)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, enzyme_py.EnzymePyError)
    msg = str(err)
    assert "undefined_value" in msg
    assert ":4:" in msg or "line 4" in msg, msg


def test_c_compile_error_carries_clang_output() -> None:
    with pytest.raises(enzyme_py.CompileError) as info:
        Module.from_c("double f(double x) { return x * ; }\n")
    assert isinstance(info.value, RuntimeError)
    assert "error" in str(info.value) and "expected expression" in str(info.value)


def test_same_source_twice_gives_independent_modules() -> None:
    ir = "define double @h(double %x) {\n  %r = fmul double %x, 3.0\n  ret double %r\n}\n"
    a = Module.from_ir(ir, name="a").function("h")
    b = Module.from_ir(ir, name="b").function("h")
    assert autodiff(Reverse, a, Active, Active(1.0)) == ((3.0,),)
    assert autodiff(Reverse, b, Active, Active(1.0)) == ((3.0,),)
    assert a(2.0) == b(2.0) == 6.0
