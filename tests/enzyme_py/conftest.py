"""Fixtures shared by every enzyme_py test folder.

The native libraries come from ``enzyme_artifacts`` exactly as for a user: nothing here sets
``ENZYME_ARTIFACTS_LIBRARY`` (CI fetches the real LLVM 15 Enzyme before the tests run).

``run_child`` runs a Python snippet (after :data:`CHILD_PRELUDE`) in a fresh interpreter,
through the one child runner of :mod:`tests.support.child`, so that a crash inside LLVM or
Enzyme (an assertion aborts the whole process) shows up as one failed test rather than a
dead suite.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.child import check_python

CHILD_PRELUDE = '''
import sys
import numpy as np
import enzyme_py
import enzyme_py as ez
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
    """Run a snippet (after ``CHILD_PRELUDE``) in a new interpreter; assert exit 0; return
    stdout.  The child inherits the environment (plus ``env``)."""

    def run(code: str, *, timeout: float = 240.0, env: dict[str, str] | None = None) -> str:
        import textwrap

        return check_python(
            CHILD_PRELUDE + "\n" + textwrap.dedent(code),
            extra_env=env,
            timeout=timeout,
            cwd=tmp_path,
            script_dir=tmp_path,
        )

    return run
