"""The ``python -m benchmarks`` command: a tiny real run of the ``hand`` tool, its JSON rows, the
table, the subcommand dispatcher and argument errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from benchmarks import cli
from benchmarks.child import relative_error
from benchmarks.report import Row, add_ratios, format_latency, format_table
from benchmarks.runner import XLA_SINGLE_THREAD, child_environment
from benchmarks.timing import Budget, measure

REPO = Path(__file__).resolve().parents[2]

NUMBER_OR_NULL = {"type": ["number", "null"]}
ROW_SCHEMA = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["problem", "tool", "threads", "status", "primal_s", "gradient_s",
                     "first_gradient_s", "call_latency_s", "gradient_over_primal",
                     "gradient_over_hand", "peak_rss_mib", "max_rel_error"],
        "properties": {
            "problem": {"enum": ["P1", "P2", "P3", "P4", "P4N", "P5"]},
            "tool": {"type": "string"},
            "threads": {"enum": ["1", "default"]},
            "status": {"enum": ["ok", "mismatch", "error", "crashed", "timeout",
                                "not installed", "unavailable", "skipped"]},
            "size": {"type": "integer", "minimum": 1},
            "primal_s": NUMBER_OR_NULL,
            "gradient_s": NUMBER_OR_NULL,
            "first_gradient_s": NUMBER_OR_NULL,
            "call_latency_s": NUMBER_OR_NULL,
            "gradient_over_primal": NUMBER_OR_NULL,
            "gradient_over_hand": NUMBER_OR_NULL,
            "peak_rss_mib": NUMBER_OR_NULL,
            "max_rel_error": NUMBER_OR_NULL,
        },
    },
}


def run_benchmarks(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.slow
def test_tiny_hand_run_writes_valid_rows(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    proc = run_benchmarks("--quick", "--tools", "hand", "--size", "16", "--threads", "1",
                          "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())
    jsonschema.validate(rows, ROW_SCHEMA)
    assert [r["problem"] for r in rows] == ["P1", "P2", "P3", "P4", "P4N", "P5"]
    for r in rows:
        assert r["tool"] == "hand" and r["status"] == "ok", r
        assert r["size"] == 16
        assert r["primal_s"] > 0 and r["gradient_s"] > 0 and r["first_gradient_s"] > 0
        assert r["gradient_over_hand"] == 1.0
        assert r["gradient_over_primal"] == pytest.approx(r["gradient_s"] / r["primal_s"])
        assert r["max_rel_error"] < 1e-5
        assert r["peak_rss_mib"] > 1
        assert (r["call_latency_s"] is not None) == (r["problem"] == "P1")
    table = proc.stdout
    assert "| problem | tool" in table and "grad/hand" in table
    assert table.count("| hand ") == 6


def test_dispatches_subcommands_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, list[str]]] = []
    for name, module_name in cli.SUBCOMMANDS.items():
        module = types.ModuleType(module_name)

        def main(argv: list[str], _name: str = name) -> int:
            seen.append((_name, argv))
            return 3

        module.main = main  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, module_name, module)
    assert cli.main(["artifacts", "fetch", "--x"]) == 3
    assert cli.main(["compile", "a.c"]) == 3
    assert cli.main(["numba-first", "--json", "f"]) == 3
    assert seen == [
        ("artifacts", ["fetch", "--x"]), ("compile", ["a.c"]), ("numba-first", ["--json", "f"]),
    ]


@pytest.mark.parametrize("argv, message", [
    (["--problems", "P9"], "unknown problem 'P9'"),
    (["--tools", "nope"], "unknown tool 'nope'"),
    (["--size", "1"], "--size must be at least 2"),
])
def test_bad_arguments_exit_2(argv: list[str], message: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_child_environment_pins_or_frees_threads(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "1024")
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    one = child_environment("1", tmp_path)
    free = child_environment("default", tmp_path)
    for env in (one, free):
        assert "OPENBLAS_CORETYPE" not in env and "OPENBLAS_L2_SIZE" not in env
        assert env["JAX_PLATFORMS"] == "cpu"
        assert env["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path)
        assert env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO)
    assert one["OMP_NUM_THREADS"] == one["MKL_NUM_THREADS"] == one["OPENBLAS_NUM_THREADS"] == "1"
    assert XLA_SINGLE_THREAD in one["XLA_FLAGS"]
    assert "OMP_NUM_THREADS" not in free
    assert XLA_SINGLE_THREAD not in free.get("XLA_FLAGS", "")


def test_relative_error_flags_wrong_shapes_and_nan() -> None:
    ref = (np.array([1.0, -2.0]),)
    assert relative_error((np.array([1.0, -2.0]),), ref) == 0.0
    assert relative_error((np.array([1.0, -1.0]),), ref) == pytest.approx(0.5)
    assert relative_error((np.array([1.0]),), ref) == float("inf")
    assert relative_error((np.array([np.nan, -2.0]),), ref) == float("inf")
    assert relative_error((), ref) == float("inf")


def test_ratios_use_the_single_thread_hand_row() -> None:
    rows = add_ratios([
        Row("P2", "hand", "1", 10, "ok", primal_s=2.0, gradient_s=1.0),
        Row("P2", "jax", "1", 10, "ok", primal_s=1.0, gradient_s=3.0),
        Row("P2", "jax", "default", 10, "ok", primal_s=1.0, gradient_s=1.5),
        Row("P3", "jax", "1", 10, "ok", primal_s=1.0, gradient_s=3.0),
        Row("P2", "torch", "1", 10, "not installed", message="missing: torch"),
    ])
    assert [r.gradient_over_hand for r in rows] == [1.0, 3.0, 1.5, None, None]
    assert [r.gradient_over_primal for r in rows] == [0.5, 3.0, 1.5, 3.0, None]
    text = format_table(rows)
    assert "not installed" in text and "missing: torch" in text
    mismatch = format_table([Row("P1", "jax", "1", 1, "mismatch", message="relative error 1")])
    assert "**MISMATCH**" in mismatch
    assert json.loads(json.dumps(rows[0].to_json()))["gradient_over_hand"] == 1.0
    assert Row.from_json(rows[1].to_json()) == rows[1]


def test_latency_summary_names_every_call_and_both_first_gradients() -> None:
    rows = [
        Row(problem="P1", tool="hand", threads="1", size=1, status="ok", call_latency_s=4e-7,
            first_gradient_s=0.3),
        Row(problem="P1", tool="enzyme_py_c", threads="1", size=1, status="ok",
            call_latency_s=3e-7, hand_latency_s=3e-7, latencies={"prepared": 1.5e-7},
            first_gradient_s=0.5, first_gradient_warm_s=0.04),
        Row(problem="P2", tool="enzyme_py_numba", threads="1", size=10, status="ok",
            first_gradient_s=1.2, first_gradient_warm_s=0.06),
        Row(problem="P2", tool="jax", threads="default", size=10, status="ok", first_gradient_s=0.4),
    ]
    text = format_latency(rows)
    assert "P1 enzyme_py_c: call 300 ns (1.00x hand), prepared 150 ns (0.50x hand); first gradient 500 ms, warm disk cache 40 ms" in text
    assert "P1 hand: call 400 ns (1.00x hand); first gradient 300 ms" in text
    assert "P2 enzyme_py_numba: first gradient 1.2 s, warm disk cache 60 ms" in text
    assert "jax" not in text  # default-thread rows are left out
    assert format_latency([]) == ""


def test_measure_respects_repeat_bounds() -> None:
    calls = []
    timing = measure(lambda: calls.append(1), Budget(total_s=0.01, min_sample_s=0.0,
                                                     min_repeats=4, max_repeats=6, warmup=2))
    assert 4 <= timing.repeats <= 6 and timing.inner == 1
    assert len(calls) == 2 + timing.repeats  # warm-up, then the calibration call is a sample
    assert timing.median_s >= 0.0


def test_missing_compiler_makes_rows_unavailable_and_the_run_fail(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    env = dict(os.environ, CC=str(tmp_path / "no-such-cc"))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--tools", "hand,jax", "--problems", "P1",
         "--threads", "1", "--json", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 1
    rows = json.loads(out.read_text())
    assert [(r["tool"], r["status"]) for r in rows] == [("hand", "unavailable"),
                                                       ("jax", "unavailable")]
    assert "reference adjoint did not build" in rows[0]["message"]
    assert "nothing was measured" in proc.stderr
