"""Run Python code in a fresh interpreter: the one child-process runner of the tests.

A crash in native code (an Enzyme assertion aborts the process) must fail one test, not the
suite, and concurrency is tested with real processes.  :func:`run_python` runs a snippet
(dedented) with this interpreter, inherits the environment unless told otherwise (the
repository root is put on ``PYTHONPATH``, so children can import ``tests.*`` helpers), and
returns the completed process; :func:`check_python` also asserts that it exited 0 and shows
its output when it did not.  With ``script_dir`` the snippet is written to a file there
first, so a child's traceback shows its lines.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["ROOT", "check_python", "run_python", "spawn_python"]

#: The repository root (on every child's PYTHONPATH).
ROOT = Path(__file__).resolve().parents[2]
_scripts = itertools.count()


def _env(env: Mapping[str, str] | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    base = dict(os.environ if env is None else env)
    base.update(extra or {})
    base["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), base.get("PYTHONPATH", "")) if p)
    return base


def _command(code: str, script_dir: Path | str | None) -> list[str]:
    text = textwrap.dedent(code)
    if script_dir is None:
        return [sys.executable, "-c", text]
    script = Path(script_dir) / f"child_{os.getpid()}_{next(_scripts)}.py"
    script.write_text(text)
    return [sys.executable, str(script)]


def run_python(
    code: str,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = 240.0,
    input: str | None = None,
    script_dir: Path | str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``sys.executable`` and return the completed process (text mode)."""
    return subprocess.run(
        [*_command(code, script_dir), *args],
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
    script_dir: Path | str | None = None,
) -> subprocess.Popen[str]:
    """Start ``code`` without waiting (for tests that run several processes at once or
    kill one half-way)."""
    return subprocess.Popen(
        _command(code, script_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(env, extra_env),
        cwd=cwd,
    )
