"""Child side of :mod:`tests.docs.examples`: run a page's pycon blocks as one session.

``python session.py BLOCKS.json RESULTS.jsonl``: the blocks run in order through
:mod:`doctest` in one namespace; after each, one JSON line ``{"index", "ok", "report"}`` is
appended to ``RESULTS.jsonl`` and flushed, so that a crash keeps the outcomes of the blocks
before it.  Run by path (not imported from ``tests``), so that the session's namespace holds
nothing but what the page's examples define.
"""

from __future__ import annotations

import doctest
import json
import sys

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def main(spec: str, results: str) -> int:
    with open(spec, encoding="utf-8") as f:
        blocks = json.loads(f.read())
    globs: dict[str, object] = {"__name__": "__main__"}
    parser = doctest.DocTestParser()
    with open(results, "a", encoding="utf-8") as out:
        for block in blocks:
            name = f"{block['file']}:{block['line']}"
            test = parser.get_doctest(block["source"], globs, name, block["file"], block["line"])
            runner = doctest.DocTestRunner(optionflags=FLAGS)
            report: list[str] = []
            result = runner.run(test, out=report.append, clear_globs=False)
            globs.update(test.globs)  # DocTest works on a copy of the namespace it is given
            ok = result.failed == 0 and result.attempted > 0
            if result.attempted == 0:
                report.append(f"{name}: the block has no example\n")
            out.write(json.dumps({"index": block["index"], "ok": ok,
                                  "report": "".join(report)}) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
