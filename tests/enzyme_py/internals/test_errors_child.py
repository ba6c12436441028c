"""A type conflict (Enzyme exits the process without a handler) becomes a Python
exception, repeatedly, in a child process that then still differentiates correctly."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_type_conflict_three_times_then_success() -> None:
    code = textwrap.dedent(
        '''
        import enzyme_py as ez
        BAD = """
        define double @f(double %x) {
        entry:
          %a = alloca double, align 8
          store double %x, ptr %a, align 8
          %i = load i64, ptr %a, align 8
          %k = sitofp i64 %i to double
          %r = fmul double %k, %x
          ret double %r
        }
        """
        for _ in range(3):
            f = ez.Module.from_ir(BAD).function("f")
            try:
                ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(2.0))
            except ez.IllegalTypeAnalysisError as e:
                assert e.instruction and "bitcast" in e.instruction
            else:
                raise SystemExit("no error")
        g = ez.Module.from_ir("define double @g(double %x) {\\n  %y = fmul double %x, %x\\n  ret double %y\\n}").function("g")
        assert ez.gradient(g, 4.0) == (8.0,)
        print("OK")
        '''
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr[-3000:]
