"""Gradient benchmarks for enzyme-py, run as ``python -m benchmarks``.

The problems (P1-P5) live in :mod:`benchmarks.problems`, the compared tools in
:mod:`benchmarks.tools`; :mod:`benchmarks.runner` runs each case in its own child process
(:mod:`benchmarks.child`) and :mod:`benchmarks.report` prints the table and writes the JSON rows.
``python -m benchmarks artifacts ...`` and ``python -m benchmarks compile ...`` dispatch to
``benchmarks.artifacts`` and ``benchmarks.compile``. Importing this package imports nothing else.
"""

from __future__ import annotations

__all__: list[str] = []
