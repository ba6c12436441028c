"""The example runner itself: a wrong shown result, a crash, a bad block or a pending block that
passes must each be reported, or the docs tests would pass whatever the pages say."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.examples import Block, blocks_of, console_steps, lint, run_block


def page(tmp_path: Path, text: str) -> tuple[Block, ...]:
    path = tmp_path / "page.md"
    path.write_text(text, encoding="utf-8")
    return blocks_of(path)


def test_sessions_share_one_namespace_and_compare_every_output(tmp_path: Path) -> None:
    first, second, wrong = page(tmp_path, """
```pycon
>>> x = 2.0
>>> x * 3
6.0
```

```pycon
>>> x + 1
3.0
>>> [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
[1, 2, ..., 10]
```

```pycon
>>> x
5.0
```
""")
    assert run_block(first).ok and run_block(second).ok
    outcome = run_block(wrong)
    assert not outcome.ok
    assert "Expected:\n    5.0\nGot:\n    2.0" in outcome.report
    assert "page.md\", line 16" in outcome.report


def test_a_crash_fails_the_block_and_every_later_one(tmp_path: Path) -> None:
    before, crash, after = page(tmp_path, """
```pycon
>>> 1 + 1
2
```

```pycon
>>> import os
>>> os.abort()
```

```pycon
>>> 2 + 2
4
```
""")
    assert run_block(before).ok
    for block in (crash, after):
        outcome = run_block(block)
        assert not outcome.ok and "not run: the session exited with status" in outcome.report


def test_programs_must_assert_and_their_failures_are_reported(tmp_path: Path) -> None:
    good, failing, silent = page(tmp_path, """
```python
import sys
assert __name__ == "__main__" and sys.version_info >= (3, 11)
```

```python
assert 1 + 1 == 3, "arithmetic"
```

```python
print("no result stated")
```
""")
    assert run_block(good).ok and not lint(good)
    outcome = run_block(failing)
    assert not outcome.ok and "AssertionError: arithmetic" in outcome.report
    assert any("shows no result" in p for p in lint(silent))


def test_console_output_is_compared(tmp_path: Path) -> None:
    good, wrong, failing = page(tmp_path, """
```console
$ echo hello world
hello ...
$ python -c "print(6 * 7)"
42
```

```console
$ echo 41
42
```

```console
$ false
```
""")
    assert console_steps(good.source) == [("echo hello world", "hello ...\n"),
                                          ('python -c "print(6 * 7)"', "42\n")]
    assert run_block(good).ok
    assert "printed something else" in run_block(wrong).report
    assert "exited with status 1" in run_block(failing).report


@pytest.mark.parametrize(("text", "problem"), [
    ("```py\nx = 1\n```\n", "fence language 'py'"),
    ("```\nplain\n```\n", "fence language ''"),
    ("- item\n\n  ```pycon\n  >>> 1\n  1\n  ```\n", "indented code block"),
    ("```python\n>>> 1\n1\n```\n", "make it a pycon block"),
    ("<!-- pending: Some Feature -->\n```pycon\n>>> 1\n1\n```\n", "unknown marker"),
    ("<!-- pending: x -->\n```console\n$ true\n```\n", "only pycon and python blocks"),
    ("```toml\nkey = \n```\n", None),
])
def test_malformed_blocks_are_refused(tmp_path: Path, text: str, problem: str | None) -> None:
    (block,) = page(tmp_path, text)
    if problem is None:
        assert not run_block(block).ok  # TOML that does not parse
    else:
        assert any(problem in p for p in lint(block)), lint(block)


def test_a_pending_block_is_known_by_its_marker(tmp_path: Path) -> None:
    plain, pending = page(tmp_path, """
```pycon
>>> 1
1
```

<!-- pending: python-function-transforms -->
```pycon
>>> undefined_name
1
```
""")
    assert plain.pending is None and pending.pending == "python-function-transforms"
    assert not lint(pending) and not run_block(pending).ok
