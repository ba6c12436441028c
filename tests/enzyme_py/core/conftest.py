"""Fixtures for the enzyme_py public-API tests.

The native libraries come from ``enzyme_artifacts`` exactly as for a user: nothing here sets
``ENZYME_ARTIFACTS_LIBRARY`` (CI fetches the real LLVM 15 Enzyme before the tests run; a developer
may export that variable in the shell). Modules are compiled once per session and their compiled
derivatives are reused by every example (enzyme_py caches them in memory).

``run_child`` runs a Python snippet in a fresh interpreter, so that a crash inside LLVM or Enzyme
(an assertion aborts the whole process) shows up as one failed test rather than a dead suite.
"""

from __future__ import annotations

from collections.abc import Callable

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
