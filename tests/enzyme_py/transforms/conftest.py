"""Fixtures for the transform tests (vector mode, Jacobians, hvp, split mode, flags, rules).

``mod`` is parametrised over both input kinds: a module compiled from C, and the Python twins
of its functions (:mod:`.python_twins`), so every test runs the same calls on both.  The
native libraries come from ``enzyme_artifacts`` as for a user; compiled derivatives are
cached by enzyme_py.
"""

from __future__ import annotations

from typing import Any

import pytest

KINDS = ("c", "python")


class PythonFunctions:
    """The Python twins, looked up as ``module.function(name)`` looks up C functions."""

    name = "python-twins"

    def function(self, name: str) -> Any:
        from .python_twins import TWINS

        return TWINS[name]


@pytest.fixture(scope="session")
def c_module():  # type: ignore[no-untyped-def]
    import enzyme_py

    from ._support import C_SOURCE

    return enzyme_py.Module.from_c(C_SOURCE, name="parity")


@pytest.fixture(params=KINDS)
def mod(request: pytest.FixtureRequest, c_module: Any) -> Any:
    """The functions of ``_support.C_SOURCE``: the C module, or their Python twins."""
    return c_module if request.param == "c" else PythonFunctions()


@pytest.fixture
def kind(mod: Any) -> str:
    return "python" if isinstance(mod, PythonFunctions) else "c"
