"""Every doctest of the packages runs: the modules are found by walking the sources for ``>>>``.

Each module's doctests run in a fresh interpreter (``doctest.testmod``, ``ELLIPSIS``).  An
example marked ``# doctest: +SKIP`` (it needs native code, the network or a cache) is allowed
only when the public names it calls appear in a runnable example of the docs, where its result
is checked.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.docs.examples import REPO, blocks_of, doc_pages
from tests.support.child import check_python

PACKAGES = ("enzyme_py", "enzyme_artifacts", "build_recipes", "benchmarks")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules_with_doctests() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if re.search(r"^\s*>>> ", path.read_text(encoding="utf-8"), re.MULTILINE):
                found.append(module_name(path))
    return found


MODULES = modules_with_doctests()

RUN_DOCTESTS = """
import doctest, importlib, json, sys
module = importlib.import_module(sys.argv[1])
finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
report, skipped = [], []
for test in finder.find(module):
    skipped += [e.source for e in test.examples if e.options.get(doctest.SKIP)]
    runner.run(test, out=report.append)
result = runner.summarize(verbose=False)
print(json.dumps({"attempted": result.attempted, "failed": result.failed,
                  "report": "".join(report), "skipped": skipped}))
"""


def test_the_walk_finds_the_known_doctests() -> None:
    for name in ("enzyme_artifacts.platforms", "enzyme_artifacts.capi", "enzyme_py.activity",
                 "enzyme_py.modes", "build_recipes.checks"):
        assert name in MODULES
    assert len(MODULES) >= 10


def public_names() -> set[str]:
    import enzyme_artifacts
    import enzyme_py

    return set(enzyme_py.__all__) | set(enzyme_artifacts.__all__)


def docs_example_sources() -> str:
    pages = [*doc_pages(), REPO / "README.md"]
    return "".join(b.source for p in pages for b in blocks_of(p) if b.lang in ("pycon", "python")
                   and not b.pending)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    out = check_python(RUN_DOCTESTS, args=[name], cwd=REPO)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["failed"] == 0, result["report"]
    assert result["attempted"] > 0 or result["skipped"], f"{name} has no doctest"
    called = {n for src in result["skipped"] for n in re.findall(r"(\w+)\(", src)}
    missing = sorted(n for n in called & public_names()
                     if not re.search(rf"\b{n}\(", docs_example_sources()))
    assert not missing, (f"{name}: skipped doctests call {missing}, which no docs example "
                         "runs; show them in a pycon block of docs/")
