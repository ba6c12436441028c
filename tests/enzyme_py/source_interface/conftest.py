"""Fixtures for the source-interface tests: the C/C++ programs under ``programs/``
(whole programs in the style of Enzyme's integration tests, each ``main()`` counting its
failed checks) and how to build them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

PROGRAMS = Path(__file__).resolve().parent / "programs"


def flags_for(path: Path) -> list[str]:
    """The clang flags a program is built with."""
    flags = ["-I", str(PROGRAMS)]
    if "openmp" in path.name:
        flags.append("-fopenmp")
    return flags


@pytest.fixture(scope="session")
def build() -> Callable[..., object]:
    """``build(name)``: the Module of ``programs/<name>`` (C or C++ by its suffix)."""
    import enzyme_py as ez

    def make(name: str, **kw: object) -> object:
        path = PROGRAMS / name
        ctor = ez.Module.from_cpp if path.suffix == ".cpp" else ez.Module.from_c
        return ctor(path.read_text(), flags=flags_for(path), name=name, **kw)

    return make
