"""The README's demo runs to the end and prints correct derivatives."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_demo_runs_and_its_derivatives_are_right() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "demo.py")],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    rel = float(re.search(r"relative error vs hand-derived ([0-9.e+-]+)", out).group(1))
    assert rel < 1e-12
    assert "autodiff(Reverse, sq, Active, Active(3.0)) = ((6.0,),)" in out
    m = re.search(r"at 0\.5 = ([0-9.e+-]+) \(exact ([0-9.e+-]+)\)", out)
    assert abs(float(m.group(1)) - float(m.group(2))) < 1e-14
    jit_err = float(re.search(r"max error of \.grad vs analytic ([0-9.e+-]+)", out).group(1))
    assert jit_err < 1e-12
