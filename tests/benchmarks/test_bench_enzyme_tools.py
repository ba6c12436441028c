"""Smoke tests of the two Enzyme tools on P1 and P2 at a tiny size, through the real command.

``enzyme_opt`` runs clang-15 + opt-15 with the plugin from ``enzyme_artifacts.locate(15)``;
``enzyme_py_c`` runs enzyme_py in-process on the C primal. Each case runs in its own child, so a
crash in either becomes a ``crashed`` row here rather than killing the test process. Both
gradients are cross-checked by the child against the hand-written adjoints.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.problems import PROBLEMS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_enzyme_tools_match_the_hand_adjoints(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--tools", "enzyme_opt,enzyme_py_c",
         "--problems", "P1,P2", "--size", "100", "--threads", "1", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    assert out.exists(), proc.stdout + proc.stderr
    rows = json.loads(out.read_text())
    got = {(r["problem"], r["tool"]): r for r in rows}
    assert set(got) == {(p, t) for p in ("P1", "P2") for t in ("enzyme_opt", "enzyme_py_c")}
    for (pid, _), r in got.items():
        assert r["status"] == "ok", r
        assert r["max_rel_error"] <= PROBLEMS[pid].tolerance
        assert r["gradient_s"] > 0 and r["first_gradient_s"] > 0
    assert got[("P1", "enzyme_py_c")]["call_latency_s"] > 0
    assert proc.returncode == 0, proc.stdout + proc.stderr
