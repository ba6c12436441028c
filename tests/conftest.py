"""Suite-wide pytest configuration.

Every test folder owns its fixtures.  This file keeps the run from writing compiled
derivatives into the user's cache (``ENZYME_PY_CACHE_DIR`` points at a folder of this
session, inherited by child processes; tests that need their own cache set their own), and
reports in the session header which ``ENZYME_*`` variables are in effect, so a failing CI
log says what was loaded from where.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_made_cache_dir: str | None = None


def pytest_configure(config: object) -> None:
    global _made_cache_dir
    if "ENZYME_PY_CACHE_DIR" not in os.environ:
        _made_cache_dir = tempfile.mkdtemp(prefix="enzyme-py-test-cache-")
        os.environ["ENZYME_PY_CACHE_DIR"] = _made_cache_dir


def pytest_unconfigure(config: object) -> None:
    if _made_cache_dir is not None:
        shutil.rmtree(_made_cache_dir, ignore_errors=True)


def pytest_report_header(config: object) -> list[str]:
    lines = []
    for name in sorted(os.environ):
        if name.startswith(("ENZYME_ARTIFACTS_", "ENZYME_PY_")):
            lines.append(f"{name}={os.environ[name]}")
    return lines or ["no ENZYME_* environment variables set"]
