"""The one version source of the project's distribution (``enzyme-py``).

:func:`distribution_version` reads the installed distribution's metadata
(:mod:`importlib.metadata`); when the packages run from a source tree that was never
installed, it reads ``version`` from the ``pyproject.toml`` beside them.  Both
``enzyme_artifacts.__version__``, ``enzyme_py.__version__`` and ``enzyme-artifacts
--version`` come from here, so they never disagree.

>>> distribution_version() == distribution_version()
True
"""

from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["DISTRIBUTION", "UNKNOWN_VERSION", "distribution_version"]

DISTRIBUTION = "enzyme-py"
UNKNOWN_VERSION = "0+unknown"


def _from_pyproject(dist: str) -> str | None:
    import tomllib

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    project = data.get("project")
    if not isinstance(project, dict) or project.get("name") != dist:
        return None
    version = project.get("version")
    return version if isinstance(version, str) and version else None


@functools.cache
def distribution_version(dist: str = DISTRIBUTION) -> str:
    """The version of ``dist``: its installed metadata, else the source tree's
    ``pyproject.toml``, else ``"0+unknown"``.  Cached per process."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        pass
    return _from_pyproject(dist) or UNKNOWN_VERSION
