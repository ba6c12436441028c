"""Pages that make claims about the code are checked against it: every environment variable of
the packages is in ``docs/environment.md`` (and only those), and every test that
``docs/guarantees.md`` names exists."""

from __future__ import annotations

import re

from tests.docs.examples import DOCS, REPO

PREFIXES = r"(?:ENZYME_PY|ENZYME_ARTIFACTS)_[A-Z0-9_]*[A-Z0-9]"


def variables_in_code() -> set[str]:
    names: set[str] = set()
    for package in ("enzyme_py", "enzyme_artifacts", "build_recipes", "benchmarks"):
        for path in (REPO / package).rglob("*.py"):
            names |= set(re.findall(rf"\b{PREFIXES}\b", path.read_text(encoding="utf-8")))
    return names


def test_the_environment_page_lists_every_variable_and_no_other() -> None:
    page = (DOCS / "environment.md").read_text(encoding="utf-8")
    in_tables = set(re.findall(rf"^\| `({PREFIXES})`", page, re.MULTILINE))
    code = variables_in_code()
    assert code - in_tables == set(), "variables the code reads but the page does not list"
    assert in_tables - code == set(), "variables the page lists but no code reads"
    for name in ("ENZYME_RECIPE", "SOURCE_DATE_EPOCH"):
        assert f"| `{name}`" in page


def test_the_tests_named_by_the_guarantees_page_exist() -> None:
    page = (DOCS / "guarantees.md").read_text(encoding="utf-8")
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", page)
    assert len(named) >= 25
    missing = []
    for path, test in named:
        source = REPO / path
        if not source.is_file() or not re.search(rf"^\s*(?:async )?def {test}\(",
                                                 source.read_text(encoding="utf-8"), re.MULTILINE):
            missing.append(f"{path}::{test}")
    assert not missing, "named on the guarantees page but not found: " + ", ".join(missing)
