"""The packages type-check: ``mypy`` (strict, configured in pyproject.toml) reports no
error on any of them.

mypy runs in a child process, as a developer runs it, with its incremental cache kept in
pytest's cache folder (``.pytest_cache/d/mypy``): a cold run takes about ten seconds, a
run after small changes one or two.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("enzyme_py", "enzyme_artifacts", "build_recipes", "benchmarks")


def _cache_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    return Path(cache.mkdir("mypy")) if cache is not None else tmp_path / "mypy-cache"


def test_mypy_strict_has_no_errors(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    cmd = [
        sys.executable, "-m", "mypy",
        "--config-file", str(ROOT / "pyproject.toml"),
        "--cache-dir", str(_cache_dir(request, tmp_path)),
        *PACKAGES,
    ]
    done = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (
        f"mypy reported errors (exit status {done.returncode}); run "
        f"`{' '.join(['python', '-m', 'mypy', *PACKAGES])}` to see them:\n{done.stdout}{done.stderr}"
    )
