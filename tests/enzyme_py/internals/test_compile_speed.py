"""Compile-speed choices (enzyme_py._native.tuning): the ``tune_cpu`` option, the ``tune-cpu``
attribute it sets, the code generator's level for straight-line code and the cached target
machines.  Derivatives are checked against analytic values under every setting; nothing
here times anything (speed belongs in ``python -m benchmarks compile``)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import numpy as np
import pytest

import enzyme_py as ez
from benchmarks.compile import ARRAY_IR as SUMSQ
from benchmarks.compile import SCALAR_IR as SQ
from enzyme_py import config
from enzyme_py._call import request
from enzyme_py._compile import diskcache, pipeline
from enzyme_py._native import tuning as _tuning
from enzyme_py._native.ffi import LOCK
from enzyme_py._native.handles import ModuleRef
from enzyme_py._native.library import native
from enzyme_py._native.target import host_target_machine


def prepare(mode, f, ret, args):  # type: ignore[no-untyped-def]
    """The validated request (its plan) for these arguments."""
    return request.build(f, request.AUTODIFF, mode, ret, args)

CALLS = """
declare double @llvm.sin.f64(double)

define double @s(double %x) {
entry:
  %y = call double @llvm.sin.f64(double %x)
  ret double %y
}
"""

TUNED = """
define double @keep(double %x) #0 {
entry:
  ret double %x
}

define double @plain(double %x) {
entry:
  ret double %x
}

declare double @ext(double)

attributes #0 = { "tune-cpu"="x86-64-v3" }
"""

ROSENBROCK_C = """
double rosen(const double *x, long n) {
    double f = 0.0;
    for (long i = 0; i < n - 1; i++) {
        double t = x[i + 1] - x[i] * x[i];
        double u = 1.0 - x[i];
        f += 100.0 * t * t + u * u;
    }
    return f;
}
"""


@pytest.fixture
def restore_options() -> Iterator[None]:
    old = config.options()
    yield
    config.set_options(**{k: getattr(old, k) for k in old.__dataclass_fields__})


def _rosenbrock_grad(x: np.ndarray) -> np.ndarray:
    g = np.zeros_like(x)
    t = x[1:] - x[:-1] ** 2
    g[:-1] += -400.0 * x[:-1] * t - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * t
    return g


def _with_parsed(text: str) -> tuple[ModuleRef, int, ez.Module]:
    """A module whose handle the tuning helpers may change (a fresh Module's own)."""
    m = ez.Module.from_ir(text, name="tuning")
    mod = m._handle()
    return mod, mod.handle, m


# ----------------------------------------------------------------------- the option


def test_tune_cpu_default_and_validation(restore_options: None) -> None:
    assert config.Options().tune_cpu == "generic"
    old = config.set_options(tune_cpu="HOST ")
    assert config.options().tune_cpu == "host"
    assert old.tune_cpu in config.TUNE_CHOICES
    for bad in ("znver3", "", 1, None):
        with pytest.raises(ValueError, match="tune_cpu must be one of"):
            config.set_options(tune_cpu=bad)
    assert config.options().tune_cpu == "host"  # a rejected change changes nothing


def test_tune_cpu_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENZYME_PY_TUNE_CPU", "host")
    assert config.Options.from_environment().tune_cpu == "host"
    monkeypatch.delenv("ENZYME_PY_TUNE_CPU")
    assert config.Options.from_environment().tune_cpu == "generic"
    monkeypatch.setenv("ENZYME_PY_TUNE_CPU", "fastest")
    with pytest.raises(ValueError, match="ENZYME_PY_TUNE_CPU"):
        config.Options.from_environment()


def test_tune_cpu_is_part_of_the_disk_cache_key() -> None:
    m = ez.Module.from_ir(SQ, name="key")
    plan = prepare(ez.Reverse, m.function("sq"), ez.Active, (ez.Active(1.0),)).plan
    generic = config.Options(tune_cpu="generic")
    host = config.Options(tune_cpu="host")
    assert diskcache.cache_key(m.content_hash, plan, generic) != diskcache.cache_key(
        m.content_hash, plan, host
    )
    m.close()


# ----------------------------------------------------------------------- the attribute


def test_apply_tuning_marks_definitions_and_keeps_existing() -> None:
    ctx, handle, m = _with_parsed(TUNED)
    lib = native().llvm
    with LOCK:
        assert _tuning.apply_tuning(ctx, "host") == 0
        assert _tuning.apply_tuning(ctx, "generic") == 1  # only @plain
        assert _tuning.apply_tuning(ctx, "generic") == 0  # idempotent
        text = ctypes.string_at(lib.LLVMPrintModuleToString(handle)).decode()
    assert '"tune-cpu"="x86-64-v3"' in text  # @keep's own tuning survives
    assert '"tune-cpu"="generic"' in text
    assert "declare double @ext(double)\n" in text  # declarations are left alone
    m.close()


def test_compiled_code_is_tuned_per_option(restore_options: None) -> None:
    """The attribute reaches the optimiser: compile the same request under both settings
    and look at the optimised IR the code generator receives."""
    seen: list[str] = []
    real = pipeline.emit_level

    def spy(module: ModuleRef, level: int) -> int:
        seen.append(module.text())
        return real(module, level)

    m = ez.Module.from_ir(SUMSQ, name="tuned")
    plan = prepare(
        ez.Reverse, m.function("sumsq"), ez.Active, (ez.Duplicated(np.ones(4), np.zeros(4)), 4)
    ).plan
    try:
        pipeline.emit_level = spy  # type: ignore[assignment]
        for tune in ("generic", "host"):
            config.set_options(tune_cpu=tune)
            pipeline.compile_plan(m.bitcode, m.content_hash, plan)
    finally:
        pipeline.emit_level = real  # type: ignore[assignment]
        m.close()
    assert '"tune-cpu"="generic"' in seen[0]
    assert '"tune-cpu"' not in seen[1]


@pytest.mark.parametrize("tune", ["generic", "host"])
@pytest.mark.parametrize("host_cpu", [True, False])
def test_gradients_are_right_under_every_tuning(
    restore_options: None, tune: str, host_cpu: bool
) -> None:
    config.set_options(tune_cpu=tune, host_cpu=host_cpu)
    rng = np.random.default_rng(7)
    with ez.Module.from_ir(SUMSQ, name=f"sumsq_{tune}_{host_cpu}") as m:
        for n in (1, 3, 17, 1000):  # remainders of the vectorised, unrolled loops
            x = rng.standard_normal(n)
            (g, none) = ez.gradient(m.function("sumsq"), x, n)
            assert none is None
            np.testing.assert_allclose(g, 2 * x, rtol=1e-14)
    with ez.Module.from_c(ROSENBROCK_C, name=f"rosen_{tune}_{host_cpu}") as m:
        for n in (2, 5, 33, 1001):
            x = rng.uniform(-1.5, 1.5, n)
            (g, _) = ez.gradient(m.function("rosen"), x, n)
            np.testing.assert_allclose(g, _rosenbrock_grad(x), rtol=1e-11, atol=1e-11)
            h = 1e-6
            e = np.zeros(n)
            e[n // 2] = h
            fd = (m.function("rosen")(x + e, n) - m.function("rosen")(x - e, n)) / (2 * h)
            assert abs(fd - g[n // 2]) <= 1e-5 * max(1.0, abs(fd))


# ----------------------------------------------------------------------- codegen level


@pytest.mark.parametrize(
    ("text", "expected"),
    [(SQ, 0), (SUMSQ, 2), (CALLS, 2)],
    ids=["straight-line", "loop", "call"],
)
def test_emit_level_picks_level_zero_for_straight_line_code_only(text: str, expected: int) -> None:
    _ctx, _handle, m = _with_parsed(text)
    with LOCK:
        assert _tuning.emit_level(_ctx, 2) == expected
        assert _tuning.emit_level(_ctx, 3) == (0 if expected == 0 else 3)
        assert _tuning.emit_level(_ctx, 0) == 0
    m.close()


def test_emit_level_limit_on_instructions() -> None:
    n = _tuning.STRAIGHT_LINE_LIMIT
    body = "\n".join(f"  %v{i + 1} = fadd double %v{i}, 1.0" for i in range(n))
    text = f"define double @long(double %v0) {{\nentry:\n{body}\n  ret double %v{n}\n}}\n"
    _ctx, _handle, m = _with_parsed(text)
    with LOCK:
        assert _tuning.emit_level(_ctx, 2) == 2  # n + 1 instructions
    m.close()


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_scalar_derivatives_at_every_codegen_level(restore_options: None, level: int) -> None:
    config.set_options(codegen_level=level)
    with ez.Module.from_ir(SQ, name=f"sq{level}") as m:
        sq = m.function("sq")
        for x in (-2.5, 0.0, 3.0, 1e150):
            assert ez.autodiff(ez.Reverse, sq, ez.Active, ez.Active(x)) == ((2 * x,),)
            assert ez.autodiff(ez.ForwardWithPrimal, sq, ez.Duplicated, ez.Duplicated(x, 1.0)) == (
                2 * x,
                x * x,
            )


def test_target_machines_are_created_once_per_setting(restore_options: None) -> None:
    with LOCK:
        a = host_target_machine()
        assert host_target_machine() is a
        zero = host_target_machine(0)
        assert zero is not a and host_target_machine(0) is zero
        config.set_options(host_cpu=not config.options().host_cpu)
        b = host_target_machine()
        assert b is not a
        config.set_options(host_cpu=not config.options().host_cpu)
        assert host_target_machine() is a
        assert not a.closed and not zero.closed and not b.closed


def test_tuning_from_the_environment_in_a_child() -> None:
    """ENZYME_PY_TUNE_CPU=host is read at first use, and gives the same gradient."""
    code = textwrap.dedent(
        f"""
        import numpy as np, enzyme_py as ez
        assert ez.config.options().tune_cpu == "host"
        m = ez.Module.from_ir({SUMSQ!r})
        x = np.linspace(-1, 1, 101)
        (g, _) = ez.gradient(m.function("sumsq"), x, 101)
        assert np.allclose(g, 2 * x, rtol=1e-14), g
        print("ok")
        """
    )
    env = dict(os.environ, ENZYME_PY_TUNE_CPU="host", ENZYME_PY_DISK_CACHE="0")
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


# ----------------------------------------------------------------------- target attributes

PINNED = """
define double @base(double %x) #0 {
entry:
  ret double %x
}

define double @wide(double %x) #1 {
entry:
  ret double %x
}

attributes #0 = { "target-cpu"="x86-64" "target-features"="+cx8,+sse,+sse2,+x87" }
attributes #1 = { "target-cpu"="x86-64" "target-features"="+sse2,+avx512f" }
"""

HELPER_C = """
__attribute__((noinline)) double dot(const double *x, long n) {
    double s = 0.0;
    for (long i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}
double twice(const double *x, long n) { return dot(x, n) + 3.0 * dot(x, n / 2); }
"""


def _fn_attr(lib: ctypes.CDLL, module: int, fn_name: str, key: bytes) -> str | None:
    fn = lib.LLVMGetNamedFunction(module, fn_name.encode())
    attr = lib.LLVMGetStringAttributeAtIndex(fn, 0xFFFFFFFF, key, len(key))
    if not attr:
        return None
    size = ctypes.c_uint()
    return ctypes.string_at(lib.LLVMGetStringAttributeValue(attr, ctypes.byref(size)), size.value).decode()


def test_target_attributes_dropped_unless_the_host_lacks_a_feature() -> None:
    ctx, handle, m = _with_parsed(PINNED)
    lib = native().llvm
    with LOCK:
        changed = _tuning.apply_tuning(ctx, "host", host_features="+sse2,+avx2,-avx512f")
        # @base needs nothing the host list disables (x87 is not in it at all): unpinned.
        assert _fn_attr(lib, handle, "base", b"target-cpu") is None
        assert _fn_attr(lib, handle, "base", b"target-features") is None
        # @wide asks for avx512f, which the host list disables: left as it was.
        assert _fn_attr(lib, handle, "wide", b"target-cpu") == "x86-64"
        assert _fn_attr(lib, handle, "wide", b"target-features") == "+sse2,+avx512f"
        assert _fn_attr(lib, handle, "wide", b"tune-cpu") is None  # tune_cpu="host"
    assert changed == 1
    m.close()


@pytest.mark.parametrize("host_cpu", [True, False])
def test_c_helper_not_inlined_gives_right_gradient(restore_options: None, host_cpu: bool) -> None:
    config.set_options(host_cpu=host_cpu)
    rng = np.random.default_rng(3)
    with ez.Module.from_c(HELPER_C, name=f"helper_{host_cpu}") as m:
        for n in (1, 2, 7, 64, 1001):
            x = rng.standard_normal(n)
            (g, _) = ez.gradient(m.function("twice"), x, n)
            expect = 2 * x
            expect[: n // 2] += 6 * x[: n // 2]
            np.testing.assert_allclose(g, expect, rtol=1e-13)
