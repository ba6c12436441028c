"""Fixtures for the isolation, disk-cache and pickling tests.

Every test gets its own disk-cache folder (``ENZYME_PY_CACHE_DIR`` under ``tmp_path``) and
fresh disk-cache counters, and runs with isolation off unless it turns it on.  Modules are
built from IR text here; child processes are real interpreters (``run_python``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

#: f(x) = x*x; g(x, y) = x*y + sin(x); ssq(x, n) = sum x[i]^2 (opaque pointers).
IR_SCALAR = r"""
declare double @llvm.sin.f64(double)

define double @sq(double %x) {
  %y = fmul double %x, %x
  ret double %y
}

define double @g(double %x, double %y) {
  %p = fmul double %x, %y
  %s = call double @llvm.sin.f64(double %x)
  %r = fadd double %p, %s
  ret double %r
}

define void @nothing(double %x) {
  ret void
}
"""

IR_ARRAY = r"""
define double @ssq(ptr nocapture readonly %x, i64 %n) {
entry:
  %empty = icmp sle i64 %n, 0
  br i1 %empty, label %done, label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %acc = phi double [ 0.0, %entry ], [ %acc1, %loop ]
  %p = getelementptr inbounds double, ptr %x, i64 %i
  %v = load double, ptr %p
  %sq = fmul double %v, %v
  %acc1 = fadd double %acc, %sq
  %i1 = add nuw nsw i64 %i, 1
  %more = icmp slt i64 %i1, %n
  br i1 %more, label %loop, label %done
done:
  %r = phi double [ 0.0, %entry ], [ %acc1, %loop ]
  ret double %r
}
"""


def scaled_ir(k: int) -> str:
    """A distinct module per ``k``: f(x) = k * x * x (to fill the cache with entries)."""
    return (
        f"define double @f(double %x) {{\n  %a = fmul double %x, %x\n"
        f"  %b = fmul double %a, {float(k)!r}\n  ret double %b\n}}\n"
    )


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private disk cache, fresh counters, isolation off."""
    import enzyme_py
    from enzyme_py import diskcache
    from enzyme_py._compile import memcache as _cache

    folder = tmp_path / "cache"
    monkeypatch.setenv("ENZYME_PY_CACHE_DIR", str(folder))
    monkeypatch.delenv("ENZYME_PY_DISK_CACHE", raising=False)
    monkeypatch.delenv("ENZYME_PY_CACHE_MAX_BYTES", raising=False)
    old = enzyme_py.config.set_options(isolate=False)
    diskcache.reset_stats()
    _cache.clear()
    yield folder
    enzyme_py.config.set_options(**vars(old))


@pytest.fixture
def scalar_module() -> Iterator[Any]:
    import enzyme_py

    m = enzyme_py.Module.from_ir(IR_SCALAR, name="scalar")
    yield m
    m.close()


@pytest.fixture
def array_module() -> Iterator[Any]:
    import enzyme_py

    m = enzyme_py.Module.from_ir(IR_ARRAY, name="array")
    yield m
    m.close()


def run_python(
    code: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with this environment plus ``env``."""
    full = dict(os.environ)
    full.update(env or {})
    root = str(Path(__file__).resolve().parents[3])  # the repository root
    full["PYTHONPATH"] = os.pathsep.join(p for p in (root, full.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full,
        check=False,
    )


def last_json(proc: subprocess.CompletedProcess[str]) -> Any:
    """The JSON document on the last line of a child's stdout (fails with its stderr)."""
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def python() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_python
