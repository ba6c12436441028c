"""Fixtures for the enzyme_py public-API tests.

The native libraries come from ``enzyme_artifacts`` exactly as for a user: nothing here sets
``ENZYME_ARTIFACTS_LIBRARY`` (CI fetches the real LLVM 15 Enzyme before the tests run; a developer
may export that variable in the shell). Modules are compiled once per session and their compiled
derivatives are reused by every example (enzyme_py caches them in memory).

``run_child`` runs a Python snippet in a fresh interpreter, so that a crash inside LLVM or Enzyme
(an assertion aborts the whole process) shows up as one failed test rather than a dead suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from ._sources import C_DOUBLE, C_FLOAT, ir_double, ir_float

KINDS = ("c", "ir-typed", "ir-opaque")


def _build(kind: str, c_source: str, ir: Callable[..., str], name: str):  # type: ignore[no-untyped-def]
    import enzyme_py

    if kind == "c":
        return enzyme_py.Module.from_c(c_source, name=f"{name}-c")
    return enzyme_py.Module.from_ir(ir(typed=kind == "ir-typed"), name=f"{name}-{kind}")


@pytest.fixture(scope="session", params=KINDS)
def dmod(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The float64 test functions, from C, typed-pointer IR and opaque-pointer IR."""
    return _build(request.param, C_DOUBLE, ir_double, "double")


@pytest.fixture(scope="session")
def cmod():  # type: ignore[no-untyped-def]
    """The float64 test functions compiled from C only (for functions written only in C)."""
    import enzyme_py

    return enzyme_py.Module.from_c(C_DOUBLE, name="double-c-only")


@pytest.fixture(scope="session", params=KINDS)
def fmod(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The float32 test functions, from C, typed-pointer IR and opaque-pointer IR."""
    return _build(request.param, C_FLOAT, ir_float, "float")


CHILD_PRELUDE = '''
import sys
import numpy as np
import enzyme_py
from enzyme_py import (Active, Const, Duplicated, DuplicatedNoNeed, Forward, ForwardWithPrimal,
                       Module, Reverse, ReverseWithPrimal, autodiff, gradient, make_zero)


def expect_raises(exc, fn, *args, contains=(), **kwargs):
    """Call fn; it must raise exc (a type or tuple) whose message holds every string of contains."""
    try:
        fn(*args, **kwargs)
    except exc as e:  # noqa: BLE001
        msg = str(e)
        missing = [c for c in contains if c not in msg]
        if missing:
            print(f"MESSAGE-LACKS {missing!r} in {type(e).__name__}: {msg!r}")
            sys.exit(4)
        print(f"RAISED {type(e).__name__}: {msg!r}")
        return e
    except BaseException as e:  # noqa: BLE001
        print(f"WRONG-EXCEPTION {type(e).__module__}.{type(e).__name__}: {e!r}")
        sys.exit(3)
    print("NO-EXCEPTION")
    sys.exit(2)


SQ_IR = """
define double @sq(double %x) {
entry:
  %r = fmul double %x, %x
  ret double %r
}
"""


def still_alive():
    """A correct derivative after the failures: the process and the library still work."""
    f = Module.from_ir(SQ_IR, name="alive").function("sq")
    got = autodiff(Reverse, f, Active, Active(3.0))
    assert got == ((6.0,),), got
    print("ALIVE")
'''


@pytest.fixture
def run_child(tmp_path: Path) -> Callable[..., str]:
    """Run a snippet (after ``CHILD_PRELUDE``) in a new interpreter; assert exit 0; return stdout.

    The child inherits the environment (plus *env*), so it finds the Enzyme library the same way
    this process does. A crash (signal) or a non-zero exit fails the calling test with the child's output.
    """
    counter = iter(range(1_000_000))

    def run(code: str, *, timeout: float = 180.0, env: dict[str, str] | None = None) -> str:
        script = tmp_path / f"child_{next(counter)}.py"
        script.write_text(CHILD_PRELUDE + "\n" + textwrap.dedent(code))
        proc = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            check=False,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            cwd=tmp_path,
        )
        report = (
            f"child exited with {proc.returncode}\n--- stdout ---\n{proc.stdout}\n"
            f"--- stderr ---\n{proc.stderr[-6000:]}"
        )
        assert proc.returncode == 0, report
        return proc.stdout

    return run
