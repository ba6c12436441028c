"""Fixtures for the benchmark tests: the hand-written adjoints built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.native import build_hand
from benchmarks.problems import PROBLEMS


@pytest.fixture(scope="session")
def hand_libraries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Problem id -> the hand adjoint library (primal included), built at -O2 (native.hand_compiler)."""
    out = tmp_path_factory.mktemp("hand")
    return {pid: build_hand(p, out) for pid, p in PROBLEMS.items()}
