"""``python -m benchmarks --help`` and its subcommands' help: plain text, and it says where
jax and torch come from."""

from __future__ import annotations

import re
import tomllib

import pytest

from benchmarks.cli import SUBCOMMANDS
from tests.docs.examples import REPO
from tests.support.child import run_python

MARKUP = re.compile(r"``|:(?:mod|class|func|meth|data|attr|exc):`|\*\*\w")


def help_text(*args: str) -> str:
    proc = run_python("import runpy; runpy.run_module('benchmarks', run_name='__main__')",
                      args=[*args, "--help"], cwd=REPO, extra_env={"COLUMNS": "100"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_main_help_names_the_bench_extra_and_every_subcommand() -> None:
    text = help_text()
    assert 'pip install -e ".[bench]"' in text
    extra = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"][
        "optional-dependencies"]["bench"]
    for requirement in extra:  # the help names exactly what the extra installs
        assert requirement in text, requirement
    for name in SUBCOMMANDS:
        assert re.search(rf"^  {re.escape(name)}\s+\S", text, re.MULTILINE), name


@pytest.mark.parametrize("args", [(), *((name,) for name in SUBCOMMANDS)],
                         ids=lambda a: " ".join(a) or "main")
def test_help_has_no_restructuredtext_markup(args: tuple[str, ...]) -> None:
    text = help_text(*args)
    assert not MARKUP.search(text), MARKUP.search(text).group(0)
    assert f"python -m benchmarks {' '.join(args)}".strip() in text
