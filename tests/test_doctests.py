"""Run the doctests of the pure helper modules (no native code, no network)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "enzyme_artifacts.platforms",
    "enzyme_artifacts.capi",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no doctests"
    assert result.failed == 0
