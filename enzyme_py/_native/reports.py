"""Problems reported by Enzyme and LLVM while a request runs, collected per thread.

Enzyme's ``CustomErrorHandler`` and every context's diagnostic handler call
:func:`record`; the report goes to the innermost :func:`collecting` block of the calling
thread (outside any block a report concerns nobody and is dropped).  The compile stage
turns the reports of a request into the matching :class:`~enzyme_py.errors.EnzymeError`
with :func:`raise_for_reports`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import error_class_for

__all__ = ["Report", "collecting", "raise_for_reports", "record"]


@dataclass(frozen=True)
class Report:
    """One problem reported by Enzyme (``error_type`` 0-6) or LLVM (``error_type`` None)."""

    error_type: int | None
    message: str
    instruction: str | None


_local = threading.local()


@contextmanager
def collecting() -> Iterator[list[Report]]:
    """Collect every Enzyme/LLVM report made by this thread inside the block."""
    stack: list[list[Report]] = getattr(_local, "stack", None) or []
    _local.stack = stack
    reports: list[Report] = []
    stack.append(reports)
    try:
        yield reports
    finally:
        stack.pop()


def record(report: Report) -> None:
    """Give ``report`` to the innermost :func:`collecting` block of this thread."""
    stack = getattr(_local, "stack", None)
    if stack:
        stack[-1].append(report)


def raise_for_reports(reports: list[Report], function: str | None) -> None:
    """Raise the :class:`~enzyme_py.errors.EnzymeError` subclass of the first report
    that names an Enzyme error type (else of the first report), if there is any."""
    if not reports:
        return
    first = next((r for r in reports if r.error_type is not None), reports[0])
    cls = error_class_for(first.error_type)
    raise cls(
        first.message,
        first.instruction,
        function=function,
        reports=tuple((r.error_type, r.message, r.instruction) for r in reports),
    )
