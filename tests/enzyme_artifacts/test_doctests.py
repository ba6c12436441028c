"""The doctests of enzyme_artifacts' pure helpers (no network, no native code)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "enzyme_artifacts._env",
    "enzyme_artifacts._extract",
    "enzyme_artifacts._version",
    "enzyme_artifacts.capi",
    "enzyme_artifacts.download",
    "enzyme_artifacts.elf",
    "enzyme_artifacts.hashes",
    "enzyme_artifacts.llvm._probe",
    "enzyme_artifacts.platforms",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no doctests"
    assert result.failed == 0
