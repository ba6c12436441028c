"""The README is the front page: small, and every example in it runs with its shown result.

Its blocks follow the docs' convention (:mod:`tests.docs.examples`).
"""

from __future__ import annotations

import re

import pytest

from tests.docs.examples import REPO, RUN, Block, blocks_of, lint, run_block
from tests.docs.test_docs_examples import pending_xfail

README = REPO / "README.md"
BLOCKS = blocks_of(README)
EXAMPLES = [b for b in BLOCKS if b.lang in RUN]
COMMANDS = (
    "bash .ci/setup --no-fetch && .venv/bin/python examples/demo.py",
    "bash .ci/setup && .venv/bin/python -m pytest -q",
)


def test_the_readme_is_under_16_kib() -> None:
    assert README.stat().st_size < 16 * 1024


def test_the_readme_keeps_the_two_commands() -> None:
    bash = "".join(b.source for b in BLOCKS if b.lang == "bash")
    for command in COMMANDS:
        assert command in bash


def test_the_readme_shows_each_input_kind() -> None:
    sources = "".join(b.source for b in EXAMPLES)
    assert "Module.from_c(" in sources and "Module.from_ir(" in sources
    assert re.search(r"^>>> def \w+\(", sources, re.MULTILINE), "no Python function"


def test_the_readme_links_into_the_docs() -> None:
    text = README.read_text(encoding="utf-8")
    for target in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (REPO / target).is_file(), target
    assert len(re.findall(r"\]\(docs/", text)) >= 8


def test_the_readme_blocks_follow_the_convention() -> None:
    problems = [p for b in BLOCKS for p in lint(b)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("block", EXAMPLES, ids=lambda b: f"README.md:{b.line}")
def test_readme_example(block: Block, request: pytest.FixtureRequest) -> None:
    pending_xfail(request, block)
    outcome = run_block(block)
    assert outcome.ok, outcome.report
