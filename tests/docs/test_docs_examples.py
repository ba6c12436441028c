"""Every example of the docs site runs, and its shown result is what it produces.

The convention is in :mod:`tests.docs.examples` and, for authors, in ``docs/development.md``:
``pycon`` sessions (one interpreter per page, doctest), ``python`` programs (one interpreter
each, ``assert``), ``console`` commands (output compared), ``toml`` (parsed).  A block marked
``<!-- pending: NAME -->`` is a strict expected failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.examples import DOCS, RUN, Block, blocks_of, doc_pages, lint, run_block

PAGES = doc_pages()
EXAMPLES = [b for page in PAGES for b in blocks_of(page) if b.lang in RUN]


def test_the_docs_have_pages_and_examples() -> None:
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"index.md", "getting-started.md", "python-functions.md", "c-and-ir.md",
            "transforms.md", "guarantees.md", "development.md"} <= names
    assert len([b for b in EXAMPLES if b.lang in ("pycon", "python")]) >= 30


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_blocks_follow_the_convention(page: Path) -> None:
    problems = [p for b in blocks_of(page) for p in lint(b)]
    assert not problems, "\n".join(problems)


def pending_xfail(request: pytest.FixtureRequest, block: Block) -> None:
    """A pending block must fail today; once it passes the strict xfail reports it."""
    if block.pending:
        request.applymarker(pytest.mark.xfail(
            strict=True,
            reason=f"pending: {block.pending} (remove the marker above {block.id} once it passes)",
        ))


@pytest.mark.parametrize("block", EXAMPLES, ids=lambda b: f"{b.page.relative_to(DOCS)}:{b.line}")
def test_example(block: Block, request: pytest.FixtureRequest) -> None:
    pending_xfail(request, block)
    outcome = run_block(block)
    assert outcome.ok, outcome.report
