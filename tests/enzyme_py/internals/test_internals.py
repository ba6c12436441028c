"""Internals of enzyme_py: handle ownership, the C-API profile check against the real
binary, the C-ABI entry point generator, memory over many compile/free cycles, threads."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading

import pytest

import enzyme_py as ez
from enzyme_py._compile import memcache as _cache
from enzyme_py._native import library as _library
from enzyme_py._native import transforms
from enzyme_py._native.handles import ContextRef, TypeTreeRef
from enzyme_py._native.transforms import _struct_offsets

SQ = """
define double @sq(double %x) {
entry:
  %y = fmul double %x, %x
  ret double %y
}
"""

THREE = """
define double @h(double %a, double %b, double %c) {
entry:
  %ab = fmul double %a, %b
  %abc = fmul double %ab, %c
  %s = fadd double %abc, %a
  ret double %s
}
"""


def test_use_after_close_raises_and_no_garbage() -> None:
    gc.collect()
    ctx = ContextRef.create()
    tree = TypeTreeRef.concrete(5, ctx).only_eq(-1)
    assert "Float@double" in str(tree)
    tree.close()
    tree.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        tree.only_eq(-1)
    m = ez.Module.from_ir(SQ, name="own")
    f = m.function("sq")
    assert f(3.0) == 9.0
    m.close()
    with pytest.raises(ValueError, match="closed"):
        f(3.0)
    with pytest.raises(ValueError, match="closed"):
        m.function("sq")
    ctx.close()
    gc.collect()
    assert gc.garbage == []




def test_profile_check_against_the_real_binary() -> None:
    nat = _library.native()
    assert nat.capi == "v0.0.289"
    _library._check_profile(nat.enzyme, nat.enzyme_path, nat.capi)
    from enzyme_artifacts.capi import signature_markers

    data = nat.enzyme_path.read_bytes()
    assert all(m.encode() in data for m in signature_markers(nat.capi))


def test_profile_mismatch_is_reported(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    nat = _library.native()
    fake = tmp_path / "LLVMEnzyme-15.so"
    data = nat.enzyme_path.read_bytes().replace(
        b"EnzymeCreateForwardDiff(EnzymeLogicRef, LLVMValueRef",
        b"EnzymeCreateForwardDiff(EnzymeLogicRef, LLVMValueRXf",
    )
    fake.write_bytes(data)
    with pytest.raises(ez.LibraryError, match="EnzymeCreateForwardDiff"):
        _library._check_profile(nat.enzyme, fake, nat.capi)


def test_struct_offsets() -> None:
    assert _struct_offsets(("f64", "f64", "f64")) == (0, 8, 16)
    assert _struct_offsets(("f32", "f64", "i8", "i32")) == (0, 8, 16, 20)


def test_entry_point_for_three_active_results() -> None:
    m = ez.Module.from_ir(THREE)
    h = m.function("h")
    (d,) = ez.autodiff(ez.Reverse, h, ez.Active, ez.Active(2.0), ez.Active(3.0), ez.Active(5.0))
    assert d == (16.0, 10.0, 6.0)
    (plan,) = m.program.plans()
    code = m.program.code(plan).compiled
    assert code.out_fields == ("f64", "f64", "f64") and code.result == "void"
    assert code.params[-1] == "ptr"
    d, p = ez.autodiff(ez.ReverseWithPrimal, h, ez.Active, ez.Active(2.0), ez.Active(3.0), 5.0)
    assert d == (16.0, 10.0, None) and p == 32.0


def test_cache_reuses_compiled_code() -> None:
    m = ez.Module.from_ir(SQ)
    f = m.function("sq")
    ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(1.0))
    ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(2.0))
    ez.autodiff(ez.Forward, f, ez.Duplicated, ez.Duplicated(2.0, 1.0))
    assert len(m.program.plans()) == 2
    m.close()
    assert m.program.plans() == () if not m.closed else m._program.plans() == ()


def test_threads_compile_and_call_concurrently() -> None:
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(5):
                m = ez.Module.from_ir(SQ, name=f"t{k}")
                f = m.function("sq")
                x = float(k + i)
                assert ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(x)) == ((2 * x,),)
                for _ in range(200):
                    assert ez.autodiff(ez.Forward, f, ez.Duplicated, ez.Duplicated(x, 1.0)) == (2 * x,)
                m.close()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_compile_free_cycles_keep_rss_flat() -> None:
    code = textwrap.dedent(
        """
        import numpy as np, enzyme_py as ez
        from enzyme_py._compile import memcache as _cache
        IR = '''%s'''
        def rss():
            with open('/proc/self/statm') as f:
                return int(f.read().split()[1]) * 4096
        x = np.arange(8.0)
        def cycle():
            m = ez.Module.from_ir(IR)
            f = m.function('sq')
            assert ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(3.0)) == ((6.0,),)
            assert f(3.0) == 9.0
            m.close()
            assert _cache.clear() == 2  # really unload: the next cycle compiles again
        for _ in range(60):
            cycle()
        base = rss()
        for _ in range(300):
            cycle()
        grown = rss() - base
        print('GROWTH', grown)
        assert grown < 8 * 2**20, grown
        """
    ) % SQ
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "GROWTH" in proc.stdout


def test_modules_with_equal_content_share_compiled_code() -> None:
    _cache.clear()
    before = _cache.stats()["entries"]
    a = ez.Module.from_ir(SQ, name="same")  # the name is part of the module's content
    b = ez.Module.from_ir(SQ, name="same")
    assert ez.gradient(a.function("sq"), 2.0) == (4.0,)
    assert ez.gradient(b.function("sq"), 3.0) == (6.0,)
    (pa,), (pb,) = a.program.plans(), b.program.plans()
    assert a.program.code(pa) is b.program.code(pb)
    assert _cache.stats()["entries"] == before + 1
    a.close()
    assert ez.gradient(b.function("sq"), 5.0) == (10.0,)  # still loaded for b
    b.close()
    assert _cache.stats()["idle"] >= 1
    assert _cache.clear() >= 1
    assert _cache.stats()["entries"] == before


def test_symbols_given_to_the_jit() -> None:
    import ctypes

    proto = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)
    plus = proto(lambda x: x + 100.0)
    addr = ctypes.cast(plus, ctypes.c_void_p).value
    ir = (
        "declare double @enzpy_test_ext(double)\n"
        "define double @f(double %x) {\n"
        "  %y = call double @enzpy_test_ext(double %x)\n"
        "  ret double %y\n}\n"
    )
    m = ez.Module.from_ir(ir, symbols={"enzpy_test_ext": addr})
    assert m.function("f")(1.0) == 101.0
    with pytest.raises(ez.CompileError, match="already defined"):
        ez.Module.from_ir(SQ, symbols={"enzpy_test_ext": addr + 16}).function("sq")(1.0)
    with pytest.raises(ValueError):
        ez.Module.from_ir(SQ, symbols={"x": 0})
    m.close()


LOOP_IR = """
define void @f(ptr %p, i64 %n) {
entry:
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %j, %loop ]
  %q = getelementptr double, ptr %p, i64 %i
  store double 1.0, ptr %q, align 1024
  %v = load double, ptr %q, align 64
  %j = add i64 %i, 1
  %c = icmp slt i64 %j, %n
  br i1 %c, label %loop, label %exit, !llvm.loop !0
exit:
  ret void
}
!0 = distinct !{!0, !1, !2}
!1 = !{!"llvm.loop.mustprogress"}
!2 = !{!"llvm.loop.unroll.disable"}
"""


def test_finish_module_clamps_alignment_and_drops_unroll_disable() -> None:
    m = ez.Module.from_ir(LOOP_IR)
    transforms.finish(m._module, ["f"], 16)
    text = m._module.text()
    assert "align 1024" not in text and "align 64" not in text
    assert text.count("align 16") == 2
    assert "!llvm.loop" not in text.split("exit:")[0]
    m.close()


def test_variadic_function_is_refused() -> None:
    m = ez.Module.from_ir("define double @v(double %x, ...) {\n  ret double %x\n}\n")
    f = m.function("v")
    assert f.signature == "double (double, ...)"
    with pytest.raises(TypeError, match="variadic"):
        f(1.0)
    with pytest.raises(TypeError, match="variadic"):
        ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(1.0))


def test_missing_external_symbol_names_it() -> None:
    ir = (
        "declare double @enzpy_no_such_function(double)\n"
        "define double @f(double %x) {\n"
        "  %y = call double @enzpy_no_such_function(double %x)\n"
        "  ret double %y\n}\n"
    )
    f = ez.Module.from_ir(ir).function("f")
    for _ in range(2):  # the JIT stays usable after a failed link
        with pytest.raises(ez.CompileError, match="enzpy_no_such_function"):
            f(1.0)
    assert ez.Module.from_ir(SQ).function("sq")(4.0) == 16.0
