"""The ``python -m benchmarks`` command.

``python -m benchmarks [--quick] [--json FILE] [--problems P1,P2] [--tools hand,jax]
[--threads 1|default|both] [--size N] [--seed S] [--timeout SECONDS]`` runs the benchmark problems
(one child process per problem, tool and thread setting) and prints one table. Exit status: 0
when every row is ``ok``, ``not installed`` or ``unavailable`` and at least one is ``ok``; 1 when
any gradient disagreed with the hand-written adjoint, a tool failed or nothing was measured; 2 on
bad arguments.

``python -m benchmarks artifacts|compile|compile-stages|numba-first|isolation ARGS...`` hands
``ARGS`` to the ``main`` of the module named in :data:`SUBCOMMANDS` (imported only then).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["SUBCOMMANDS", "main", "plain_help", "run_main", "subcommand_parser"]

SUBCOMMANDS = {
    "artifacts": "benchmarks.artifacts",
    "compile": "benchmarks.compile",
    "numba-first": "benchmarks.numba_first",
    "isolation": "benchmarks.isolation",
    "compile-stages": "benchmarks.compile_stages",
}
"""First arguments dispatched to ``<module>.main(argv)``, imported only then."""

SUMMARIES = {
    "artifacts": "the loader: import, locate() on a warm cache, cold fetches",
    "compile": "compile and call costs of enzyme_py, against their targets",
    "numba-first": "time to the first derivative of a Numba function, in process vs opt/llc",
    "isolation": "costs of crash isolation and of the disk cache",
    "compile-stages": "where the time from IR to a callable derivative goes, stage by stage",
}
"""One line per subcommand, for ``--help``."""

_EPILOG = """\
subcommands (python -m benchmarks NAME --help for each):
{subcommands}

tools: hand, enzyme_opt, enzyme_py_c and enzyme_py_numba need this package, clang-15 and
opt-15; jax, torch and torch_compile need the bench extra (pip install -e ".[bench]"
installs jax[cpu] and torch==2.13.0). A tool whose package is missing is reported as
"not installed", not as a failure.

exit status: 0 when every row is ok, not installed or unavailable and one is ok; 1 when a
gradient disagreed with the hand-written adjoint, a tool failed or nothing was measured;
2 on bad arguments.
"""

_ROLE = re.compile(r":(?:mod|class|func|meth|data|attr|exc):`~?([^`]+)`")


def plain_help(doc: str) -> str:
    """A docstring as plain help text: no reStructuredText markup.

    >>> plain_help("Uses :mod:`enzyme_py._tuning` and ``x*x``, **stages**.")
    'Uses enzyme_py._tuning and x*x, stages.'
    """
    text = _ROLE.sub(r"\1", doc)
    text = text.replace("``", "")
    return re.sub(r"\*\*([^*]+)\*\*", r"\1", text).strip()


def subcommand_parser(name: str, doc: str) -> argparse.ArgumentParser:
    """The parser of ``python -m benchmarks NAME``: the module docstring ``doc`` as its
    description, in plain text with its paragraphs and lists kept."""
    return argparse.ArgumentParser(prog=f"python -m benchmarks {name}",
                                   description=plain_help(doc),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def _dispatch(name: str, argv: list[str]) -> int:
    module = importlib.import_module(SUBCOMMANDS[name])
    result = module.main(argv)
    return int(result or 0)


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _parser() -> argparse.ArgumentParser:
    from benchmarks.problems import PROBLEMS
    from benchmarks.tools import TOOLS

    subcommands = "\n".join(f"  {name:<15} {SUMMARIES[name]}" for name in SUBCOMMANDS)
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Gradient benchmarks: enzyme_py against JAX, PyTorch, Enzyme through\n"
                    "clang/opt and hand-written C adjoints, one child process per problem,\n"
                    "tool and thread setting, in one table.",
        epilog=_EPILOG.format(subcommands=subcommands),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true",
                   help="short timing budgets; leaves out tools marked slow (torch_compile) "
                        "unless --tools names them")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the rows to FILE")
    p.add_argument("--problems", type=_csv, default=list(PROBLEMS),
                   help=f"comma-separated subset of {','.join(PROBLEMS)}")
    p.add_argument("--tools", type=_csv, default=None,
                   help=f"comma-separated subset of {','.join(TOOLS)}")
    p.add_argument("--threads", choices=("1", "default", "both"), default=None,
                   help="thread settings: pinned to one CPU, the framework default, or both "
                        "(the default-thread run only for multi-threaded tools); default: "
                        "both, or 1 with --quick")
    p.add_argument("--size", type=int, default=None,
                   help="override every problem's size (vector length, batch or steps)")
    p.add_argument("--seed", type=int, default=0, help="input seed (default 0)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="time primal, gradient and latency by wall clock (default) or by the "
                        "child's CPU time (all its threads; steadier on a loaded machine)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="per-child limit (default 600, 120 with --quick)")
    return p


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}")


def run_main(argv: Sequence[str]) -> int:
    """Parse run options, run, print the table; the exit status."""
    from benchmarks.native import hand_compiler
    from benchmarks.problems import get_problem
    from benchmarks.report import FAILED, format_latency, format_table, format_targets, write_json
    from benchmarks.runner import RunConfig, run
    from benchmarks.tools import TOOLS, get_tool

    parser = _parser()
    args = parser.parse_args(list(argv))
    try:
        problems = tuple(get_problem(p) for p in args.problems)
        if args.tools is None:
            tools = tuple(t for t in TOOLS.values() if t.quick or not args.quick)
        else:
            tools = tuple(get_tool(t) for t in args.tools)
    except ValueError as e:
        parser.error(str(e))
    if not problems or not tools:
        parser.error("nothing to run: give at least one problem and one tool")
    if args.size is not None and args.size < 2:
        parser.error("--size must be at least 2")
    choice = args.threads or ("1" if args.quick else "both")
    threads = ("1", "default") if choice == "both" else (choice,)
    timeout = args.timeout or (120.0 if args.quick else 600.0)
    config = RunConfig(problems=problems, tools=tools, threads=threads, quick=args.quick,
                       size=args.size, seed=args.seed, timeout_s=timeout, clock=args.clock)
    start = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {msg}", file=sys.stderr, flush=True)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rows = run(config, progress)
    print(f"Machine: {_machine()}")
    if load is not None:
        print(f"Load average (1 min) at start: {load:.2f}")
    print(f"Hand-written adjoints: {hand_compiler()} -O2")
    print(f"Mode: {'quick' if args.quick else 'full'}; medians after warm-up "
          f"({args.clock} clock); "
          f"total {time.perf_counter() - start:.1f} s\n")
    print(format_table(rows))
    targets = format_targets(rows)
    if targets:
        print("\nTargets (one-thread rows of this run):\n")
        print(targets)
    summary = format_latency(rows)
    if summary:
        print("\nCalls from Python and the first gradient (one thread; hand = the hand-written "
              "adjoint through ctypes):")
        print(summary)
    if args.json:
        write_json(rows, args.json)
    if not any(r.status == "ok" for r in rows):
        print("\nnothing was measured: see the notes above", file=sys.stderr)
        return 1
    return 1 if any(r.status in FAILED for r in rows) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        return _dispatch(args[0], args[1:])
    return run_main(args)
