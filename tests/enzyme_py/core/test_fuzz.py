"""Property-based fuzzing of the public API, in a child process (see ``fuzz_child.py``):
every outcome is a checked result or an exception from the documented tree, and the
child is never killed by a signal."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.support.child import run_python

CHILD = Path(__file__).with_name("fuzz_child.py")


def test_fuzzed_requests_give_checked_results_or_documented_errors(tmp_path: Path) -> None:
    proc = run_python(
        CHILD.read_text(),
        args=["900"],
        extra_env={"ENZYME_PY_CACHE_DIR": str(tmp_path / "cache")},
        timeout=900,
        script_dir=tmp_path,
    )
    assert proc.returncode == 0, (
        f"the fuzz child exited with {proc.returncode} (a negative number is a signal)\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["failures"] == [], "\n\n".join(report["failures"])
    counts = report["counts"]
    assert counts["error"] > 100 and counts["result"] > 50 and counts["checked"] > 50, counts
    assert sys.executable  # the child ran with this interpreter
