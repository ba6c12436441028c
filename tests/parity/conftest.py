"""Fixtures for the Enzyme.jl-parity tests (vector mode, jacobians, hvp, split mode, rules).

The native libraries come from ``enzyme_artifacts`` as for a user.  The modules are compiled
once per session; compiled derivatives are cached by enzyme_py.  ``run_child`` runs a snippet
in a fresh interpreter so that a crash in native code fails one test, not the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mod():  # type: ignore[no-untyped-def]
    import enzyme_py

    from ._support import C_SOURCE

    return enzyme_py.Module.from_c(C_SOURCE, name="parity")


CHILD_PRELUDE = '''
import sys
import numpy as np
import enzyme_py as ez


def expect_raises(exc, fn, *args, contains=(), **kwargs):
    try:
        fn(*args, **kwargs)
    except exc as e:  # noqa: BLE001
        missing = [c for c in contains if c not in str(e)]
        if missing:
            print(f"MESSAGE-LACKS {missing!r}: {e}")
            sys.exit(4)
        print(f"RAISED {type(e).__name__}")
        return e
    except BaseException as e:  # noqa: BLE001
        print(f"WRONG-EXCEPTION {type(e).__name__}: {e!r}")
        sys.exit(3)
    print("NO-EXCEPTION")
    sys.exit(2)
'''


@pytest.fixture
def run_child(tmp_path: Path) -> Callable[..., str]:
    """Run a snippet (after ``CHILD_PRELUDE``) in a new interpreter; it must exit 0."""
    counter = iter(range(1_000_000))

    def run(code: str, *, timeout: float = 240.0) -> str:
        script = tmp_path / f"child_{next(counter)}.py"
        script.write_text(CHILD_PRELUDE + "\n" + textwrap.dedent(code))
        proc = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            check=False,
            text=True,
            timeout=timeout,
            env=dict(os.environ),
            cwd=tmp_path,
        )
        assert proc.returncode == 0, (
            f"child exited with {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n"
            f"{proc.stderr[-4000:]}"
        )
        return proc.stdout

    return run
