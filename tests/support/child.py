"""Run Python code in a fresh interpreter: the one child-process runner of the tests.

A crash in native code (an Enzyme assertion aborts the process) must fail one test, not the
suite, and concurrency is tested with real processes.  :func:`run_python` runs a snippet
(dedented) with this interpreter, inherits the environment unless told otherwise, and
returns the completed process; :func:`check_python` also asserts that it exited 0 and shows
its output when it did not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["check_python", "run_python", "spawn_python"]


def _env(env: Mapping[str, str] | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    base = dict(os.environ if env is None else env)
    base.update(extra or {})
    return base


def run_python(
    code: str,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = 240.0,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``sys.executable`` and return the completed process (text mode)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=_env(env, extra_env),
        cwd=cwd,
        input=input,
    )


def check_python(code: str, **kwargs: object) -> str:
    """:func:`run_python`, asserting exit status 0; returns stdout."""
    proc = run_python(code, **kwargs)  # type: ignore[arg-type]
    assert proc.returncode == 0, (
        f"child exited with {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n"
        f"--- stderr\n{proc.stderr[-4000:]}"
    )
    return proc.stdout


def spawn_python(
    code: str,
    *,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
) -> subprocess.Popen[str]:
    """Start ``code`` without waiting (for tests that run several processes at once or
    kill one half-way)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(env, extra_env),
        cwd=cwd,
    )
