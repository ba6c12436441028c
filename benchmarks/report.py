"""Result rows, the printed table and the JSON file.

A :class:`Row` is one (problem, tool, thread setting). Times are seconds per call (medians);
``None`` means not applicable or not measured. Ratios are filled in by :func:`add_ratios` once all
rows exist: ``gradient_over_hand`` divides by the ``hand`` row of the same problem measured with
one thread.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "FAILED",
    "STATUSES",
    "TARGETS",
    "Row",
    "Target",
    "add_ratios",
    "format_latency",
    "format_table",
    "format_targets",
    "write_json",
]

STATUSES = ("ok", "mismatch", "error", "crashed", "timeout", "not installed", "unavailable",
            "skipped")
"""``ok`` measured; ``mismatch`` gradient disagrees with the hand-written adjoint (not timed);
``error`` the tool raised; ``crashed`` the child died (e.g. a signal); ``timeout`` the child ran
too long; ``not installed`` a required package is missing; ``unavailable`` the tool's external
requirement (compiler, plugin) is missing; ``skipped`` the tool is known not to handle the problem
in reasonable time (the reason is in the message)."""

FAILED = frozenset({"mismatch", "error", "crashed", "timeout"})
"""Statuses that make the run fail (exit status 1)."""


@dataclass(frozen=True)
class Row:
    """One measurement. See the module docstring and docs/benchmarks.md for the meaning of each field."""

    problem: str
    tool: str
    threads: str  # "1" or "default"
    size: int
    status: str
    message: str | None = None
    primal_s: float | None = None
    gradient_s: float | None = None
    gradient_over_primal: float | None = None
    gradient_over_hand: float | None = None
    first_gradient_s: float | None = None
    call_latency_s: float | None = None
    import_s: float | None = None
    peak_rss_mib: float | None = None
    max_rel_error: float | None = None
    repeats: int | None = None
    #: other ways of calling a scalar gradient (``"autodiff"``, ``"prepared"``), s per call
    latencies: dict[str, float] | None = None
    #: the first gradient again, in a fresh process whose disk cache the first run filled
    first_gradient_warm_s: float | None = None
    #: the hand-written adjoint's ctypes call, timed in the same child as ``call_latency_s``
    hand_latency_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN and infinities become ``None``)."""
        out = dataclasses.asdict(self)
        for k, v in out.items():
            if isinstance(v, float) and not math.isfinite(v):
                out[k] = None
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Row:
        """The row back from :meth:`to_json` output (unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def add_ratios(rows: Iterable[Row]) -> list[Row]:
    """Fill ``gradient_over_primal`` and ``gradient_over_hand``."""
    rows = list(rows)
    hand = {
        r.problem: r.gradient_s
        for r in rows
        if r.tool == "hand" and r.threads == "1" and r.status == "ok"
    }
    out = []
    for r in rows:
        gp = r.gradient_s / r.primal_s if r.gradient_s and r.primal_s else None
        h = hand.get(r.problem)
        gh = r.gradient_s / h if r.gradient_s and h else None
        out.append(dataclasses.replace(r, gradient_over_primal=gp, gradient_over_hand=gh))
    return out


def _time(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-6:
        return f"{s * 1e9:.0f} ns"
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1.0:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _err(x: float | None) -> str:
    return "-" if x is None else f"{x:.1e}"


HEADER = ("problem", "tool", "threads", "primal", "gradient", "grad/primal", "grad/hand",
          "first grad", "latency", "import", "peak RSS", "rel err", "status")


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table; failed rows carry their message below the table."""
    lines = [HEADER]
    notes = []
    for r in rows:
        status = r.status if r.status == "ok" else f"**{r.status.upper()}**" if (
            r.status in FAILED) else r.status
        if r.message and r.status != "ok":
            notes.append(f"- {r.problem} {r.tool} ({r.threads} thr): {r.status}: {r.message}")
        lines.append((
            r.problem,
            r.tool,
            r.threads,
            _time(r.primal_s),
            _time(r.gradient_s),
            _ratio(r.gradient_over_primal),
            _ratio(r.gradient_over_hand),
            _time(r.first_gradient_s),
            _time(r.call_latency_s),
            _time(r.import_s),
            "-" if r.peak_rss_mib is None else f"{r.peak_rss_mib:.0f} MiB",
            _err(r.max_rel_error),
            status,
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    text = [fmt(lines[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    text += [fmt(line) for line in lines[1:]]
    if notes:
        text += ["", *notes]
    return "\n".join(text)


def write_json(rows: Sequence[Row], path: Path) -> None:
    """Write the rows as a JSON list of objects (see :class:`Row`)."""
    path.write_text(json.dumps([r.to_json() for r in rows], indent=2) + "\n", encoding="utf-8")


def format_latency(rows: Sequence[Row]) -> str:
    """Per-call latency from Python (scalar problems: every way a tool calls its gradient,
    as a ratio to the hand-written adjoint's ctypes call timed in the same child) and the
    time to the first gradient (cold, and with a warm disk cache), one line per tool
    measured with one thread; empty when no row has either."""
    lines = []
    for r in rows:
        if r.status != "ok" or r.threads != "1":
            continue
        maybe = {"call": r.call_latency_s, **(r.latencies or {})}
        calls = {k: v for k, v in maybe.items() if v is not None}
        if not calls and r.first_gradient_warm_s is None:
            continue
        hand = r.hand_latency_s or next((h.call_latency_s for h in rows if h.problem == r.problem
                                         and h.tool == "hand" and h.status == "ok"
                                         and h.threads == "1"), None)
        latency = ", ".join(f"{k} {_time(v)}" + (f" ({v / hand:.2f}x hand)" if hand else "")
                            for k, v in calls.items())
        first = f"first gradient {_time(r.first_gradient_s)}"
        if r.first_gradient_warm_s is not None:
            first += f", warm disk cache {_time(r.first_gradient_warm_s)}"
        lines.append(f"- {r.problem} {r.tool}: {latency + '; ' if latency else ''}{first}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    """A speed target of issue 14: the gradient of ``(problem, tool)`` at most ``bound``
    times that of ``(problem, against)``, one-thread rows of one run."""

    problem: str
    tool: str
    against: str
    bound: float

    def describe(self) -> str:
        times = "" if self.bound == 1.0 else f"{self.bound:g} × "
        return f"{self.problem} {self.tool} gradient ≤ {times}{self.against}"


TARGETS: tuple[Target, ...] = (
    Target("P2", "enzyme_py_numba", "enzyme_py_c", 1.2),
    Target("P3", "enzyme_py_c", "jax", 0.8),
    Target("P3", "enzyme_py_numba", "jax", 0.8),
    Target("P4N", "enzyme_py_numba", "jax", 1.0),
    Target("P5", "enzyme_py_numba", "enzyme_py_c", 1.2),
)
"""The gradient-time targets checked by :func:`format_targets` (P1 latency and the first
gradient have their own)."""


def format_targets(rows: Sequence[Row], targets: Sequence[Target] = TARGETS) -> str:
    """A Markdown table of the targets whose rows were measured: the ratio and whether it
    is met (one-thread rows); empty when none applies."""
    grad = {(r.problem, r.tool): r.gradient_s for r in rows
            if r.threads == "1" and r.status == "ok" and r.gradient_s}
    lines = ["| target | measured | ratio | met |", "|---|---|---|---|"]
    for t in targets:
        a, b = grad.get((t.problem, t.tool)), grad.get((t.problem, t.against))
        if a is None or b is None:
            continue
        ratio = a / b
        lines.append(f"| {t.describe()} | {_time(a)} vs {_time(b)} | {ratio:.2f} | "
                     f"{'yes' if ratio <= t.bound else '**no**'} |")
    return "\n".join(lines) if len(lines) > 2 else ""
