"""The README's demo runs to the end and prints correct derivatives."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.child import run_python

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_and_its_derivatives_are_right() -> None:
    proc = run_python("import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')",
                      args=[str(REPO / "examples" / "demo.py")], timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    rel = float(re.search(r"relative error vs hand-derived ([0-9.e+-]+)", out).group(1))
    assert rel < 1e-12
    assert "autodiff(Reverse, sq, Active, Active(3.0)) = ((6.0,),)" in out
    m = re.search(r"at 0\.5 = ([0-9.e+-]+) \(exact ([0-9.e+-]+)\)", out)
    assert abs(float(m.group(1)) - float(m.group(2))) < 1e-14
    jit_err = float(re.search(r"max error of \.grad vs analytic ([0-9.e+-]+)", out).group(1))
    assert jit_err < 1e-12
