"""Suite-wide pytest configuration.

Every test folder owns its fixtures; this file only reports, in the session header, which
native libraries the run will use, so a failing CI log says what was loaded from where.
"""

from __future__ import annotations

import os


def pytest_report_header(config: object) -> list[str]:
    lines = []
    for name in sorted(os.environ):
        if name.startswith(("ENZYME_ARTIFACTS_", "ENZYME_PY_")):
            lines.append(f"{name}={os.environ[name]}")
    return lines or ["no ENZYME_* environment variables set"]
