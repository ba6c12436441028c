"""The examples of a Markdown page: how they are found, checked and run.

The convention (written for authors in ``docs/development.md``):

* a ```` ```pycon ```` block is an interactive session: ``>>>`` / ``...`` lines and the output
  they show.  The sessions of one page run in order in one fresh interpreter (later blocks see
  the names of earlier ones), through :mod:`doctest` with ``ELLIPSIS`` and
  ``NORMALIZE_WHITESPACE``; every shown output is compared;
* a ```` ```python ```` block is a complete program, run as a script (``__name__ ==
  "__main__"``) in a fresh interpreter of its own; it states its results with ``assert``, and
  a block without an ``assert`` is refused;
* a ```` ```console ```` block is ``$ command`` lines, each followed by the output it shows: the
  command runs with ``bash`` at the repository root, this interpreter's folder first on
  ``PATH`` (so ``python`` and ``enzyme-artifacts`` are the installed ones); it must exit 0 and
  its standard output must match the shown lines (``...`` matches anything);
* a ```` ```toml ```` block must parse;
* ```` ```bash ```` blocks are commands for the reader (installs, long runs) and ```` ```text ````
  blocks are pictures (trees, messages): neither is run.  No other language is accepted;
* ``<!-- pending: NAME -->`` on the line right above a ``pycon``/``python`` block marks an
  example of an API that is announced but not there yet: the tests expect it to fail (a strict
  expected failure, so that it is reported once it passes and the marker is removed).
"""

from __future__ import annotations

import doctest
import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.support.child import run_python

__all__ = [
    "DOCS",
    "LANGUAGES",
    "REPO",
    "Block",
    "Outcome",
    "blocks_of",
    "doc_pages",
    "lint",
    "run_block",
]

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
RUN = ("pycon", "python", "console", "toml")
"""Languages whose blocks the tests run or parse."""
LANGUAGES = (*RUN, "bash", "text")
"""Every fence language a page may use."""
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
SESSION = Path(__file__).with_name("session.py")
PAGE_TIMEOUT = 900.0

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})(?P<info>.*)$")
_MARKER = re.compile(r"^<!--\s*(?P<body>.*?)\s*-->\s*$")
_PENDING = re.compile(r"^pending:\s*(?P<name>[a-z0-9][a-z0-9-]*)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    index: int
    line: int
    """1-based line of the opening fence."""
    lang: str
    source: str
    indent: str
    marker: str | None
    """The HTML comment on the line right above the fence, if any (its text)."""

    @property
    def pending(self) -> str | None:
        """The name of the awaited feature when the block is marked pending."""
        m = _PENDING.match(self.marker or "")
        return m.group("name") if m else None

    @property
    def id(self) -> str:
        return f"{self.page.name}:{self.line}"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    report: str


def doc_pages() -> list[Path]:
    """Every Markdown page of the site, in file-name order."""
    return sorted(DOCS.rglob("*.md"))


@cache
def blocks_of(page: Path) -> tuple[Block, ...]:
    """The fenced blocks of ``page``, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        ticks, indent = m.group("ticks"), m.group("indent")
        info = m.group("info").strip()
        lang = info.split()[0] if info else ""
        prev = lines[i - 1] if i > 0 else ""
        marker = _MARKER.match(prev)
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != ticks:
            body.append(lines[j].removeprefix(indent))
            j += 1
        if j == len(lines):
            raise ValueError(f"{page}:{i + 1}: code block never closed")
        blocks.append(Block(page, len(blocks), i + 1, lang, "\n".join(body) + "\n", indent,
                            marker.group("body") if marker else None))
        i = j + 1
    return tuple(blocks)


def lint(block: Block) -> list[str]:
    """What is wrong with ``block`` as an example, before running it (empty when nothing)."""
    where = f"{block.page.name}:{block.line}"
    problems = []
    if block.indent:
        problems.append(f"{where}: indented code block; write examples at the top level")
    if block.lang not in LANGUAGES:
        problems.append(f"{where}: fence language {block.lang!r}; "
                        f"use one of {', '.join(LANGUAGES)}")
    if block.marker is not None and block.pending is None:
        problems.append(f"{where}: unknown marker <!-- {block.marker} -->; the only marker is "
                        "<!-- pending: NAME --> (lowercase, dashes)")
    if block.pending and block.lang not in ("pycon", "python"):
        problems.append(f"{where}: only pycon and python blocks can be pending")
    if block.lang == "python":
        if re.search(r"^\s*>>>", block.source, re.MULTILINE):
            problems.append(f"{where}: a python block with >>> prompts; make it a pycon block")
        if not re.search(r"^\s*assert\b", block.source, re.MULTILINE):
            problems.append(f"{where}: a python block shows no result; state it with assert")
    if block.lang == "pycon" and not block.source.lstrip().startswith(">>>"):
        problems.append(f"{where}: a pycon block must start with a >>> line")
    if block.lang == "console" and not block.source.lstrip().startswith("$ "):
        problems.append(f"{where}: a console block must start with a '$ command' line")
    return problems


def run_block(block: Block) -> Outcome:
    """Run or parse ``block`` as its language says; blocks that are not run are ``ok``."""
    if block.lang == "pycon":
        return _session(block.page)[block.index]
    if block.lang == "python":
        return _script(block)
    if block.lang == "console":
        return _console(block)
    if block.lang == "toml":
        try:
            tomllib.loads(block.source)
        except tomllib.TOMLDecodeError as e:
            return Outcome(False, f"{block.id}: TOML does not parse: {e}")
    return Outcome(True, "")


def _tail(text: str, n: int = 6000) -> str:
    return text if len(text) <= n else "...\n" + text[-n:]


@cache
def _session(page: Path) -> dict[int, Outcome]:
    """Run every pycon block of ``page`` in one fresh interpreter; outcomes by block index."""
    import tempfile

    sessions = [b for b in blocks_of(page) if b.lang == "pycon"]
    with tempfile.TemporaryDirectory(prefix="docs-session-") as tmp:
        spec = Path(tmp) / "blocks.json"
        results = Path(tmp) / "results.jsonl"
        spec.write_text(json.dumps([
            {"index": b.index, "line": b.line, "source": b.source, "file": str(b.page)}
            for b in sessions
        ]), encoding="utf-8")
        code = f"import runpy; runpy.run_path({str(SESSION)!r}, run_name='__main__')"
        try:
            proc = run_python(code, args=[str(spec), str(results)], cwd=tmp,
                              timeout=PAGE_TIMEOUT)
            ended = f"the session exited with status {proc.returncode}"
            stderr = proc.stderr
        except subprocess.TimeoutExpired as e:
            ended = f"the session timed out after {PAGE_TIMEOUT:.0f} s"
            stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else ""
        done: dict[int, Outcome] = {}
        if results.exists():
            for line in results.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                done[row["index"]] = Outcome(row["ok"], row["report"])
    for b in sessions:
        if b.index not in done:
            done[b.index] = Outcome(False, f"{b.id}: not run: {ended} before this block\n"
                                           f"--- stderr\n{_tail(stderr)}")
    return done


def _script(block: Block) -> Outcome:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="docs-script-") as tmp:
        script = Path(tmp) / f"{block.page.stem}_{block.line}.py"
        script.write_text(block.source, encoding="utf-8")
        code = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"
        proc = run_python(code, args=[str(script)], cwd=tmp, timeout=PAGE_TIMEOUT)
    if proc.returncode == 0:
        return Outcome(True, "")
    return Outcome(False, f"{block.id}: the program exited with status {proc.returncode}\n"
                          f"{block.source}\n--- stdout\n{_tail(proc.stdout)}\n"
                          f"--- stderr\n{_tail(proc.stderr)}")


def console_steps(source: str) -> list[tuple[str, str]]:
    """``(command, shown output)`` pairs of a console block."""
    steps: list[tuple[str, list[str]]] = []
    for line in source.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return [(cmd, "\n".join(out).strip() + "\n") for cmd, out in steps]


def _console(block: Block) -> Outcome:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("COLUMNS", None)
    env["COLUMNS"] = "80"  # argparse wraps help text to the terminal width
    checker = doctest.OutputChecker()
    for cmd, want in console_steps(block.source):
        proc = subprocess.run(["bash", "-c", cmd], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=PAGE_TIMEOUT, check=False)
        got = proc.stdout.strip() + "\n"
        if proc.returncode != 0:
            return Outcome(False, f"{block.id}: `{cmd}` exited with status {proc.returncode}\n"
                                  f"--- stdout\n{_tail(proc.stdout)}\n--- stderr\n"
                                  f"{_tail(proc.stderr)}")
        if want.strip() and not checker.check_output(want, got, FLAGS):
            return Outcome(False, f"{block.id}: `{cmd}` printed something else\n--- shown\n"
                                  f"{want}--- printed\n{got}")
    return Outcome(True, "")
