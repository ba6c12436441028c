"""Process-wide compilation options.

Defaults come from the environment when first read:

``ENZYME_PY_PIPELINE``   the LLVM pass pipeline run after Enzyme (default ``default<O2>``;
                         ``default<O0>`` or an empty string skips optimisation)
``ENZYME_PY_HOST_CPU``   ``1`` (default): generate code for this machine's CPU name and
                         features, as ``-march=native`` does; ``0``: generic code for the
                         target triple
``ENZYME_PY_TUNE_CPU``   ``generic`` (default): tune optimisation and code generation with
                         LLVM's generic model while using the host's instructions; ``host``:
                         tune for this CPU too (slower to compile on some CPUs, e.g. Zen 3;
                         see :mod:`enzyme_py._tuning`)
``ENZYME_PY_CLANG``      the clang used by :meth:`enzyme_py.Module.from_c`
``ENZYME_PY_ISOLATE``    ``1``: run every compilation in a child worker process, so that an
                         Enzyme assertion, ``exit()`` or crash fails one request instead of
                         the process (default ``0``; see :mod:`enzyme_py.isolation`)

Change them with :func:`set_options`; compiled derivatives are cached per options, so a
change takes effect for the next compilation.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, fields, replace
from typing import Any

from ._tuning import check_tune_cpu

__all__ = ["Options", "options", "set_options"]


@dataclass(frozen=True)
class Options:
    """Compilation options (see the module docstring for the environment variables).

    ``pipeline``: new-pass-manager pipeline run after Enzyme.
    ``host_cpu``: target this CPU's name and features.
    ``max_alignment``: loads and stores with a larger alignment are clamped to it after
    differentiation (Enzyme's caches can claim an alignment ``malloc`` does not give).
    ``codegen_level``: the code generator's optimisation level, 0-3 (as ``llc -O``).
    ``isolate``: compile in a child worker process (:mod:`enzyme_py.isolation`); it does
    not change the code produced.
    ``tune_cpu``: ``"generic"`` or ``"host"``, the CPU model the optimiser and code
    generator tune for (:mod:`enzyme_py._tuning`).
    """

    pipeline: str = "default<O2>"
    host_cpu: bool = True
    max_alignment: int = 16
    codegen_level: int = 2
    isolate: bool = False
    tune_cpu: str = "generic"

    @classmethod
    def from_environment(cls) -> Options:
        pipeline = os.environ.get("ENZYME_PY_PIPELINE")
        host = os.environ.get("ENZYME_PY_HOST_CPU", "1").strip().lower()
        isolate = os.environ.get("ENZYME_PY_ISOLATE", "0").strip().lower()
        return cls(
            pipeline=cls.pipeline if pipeline is None else pipeline.strip(),
            host_cpu=host not in ("0", "false", "no", "off"),
            isolate=isolate in ("1", "true", "yes", "on"),
            tune_cpu=check_tune_cpu(os.environ.get("ENZYME_PY_TUNE_CPU", cls.tune_cpu)),
        )


_lock = threading.Lock()
_current: Options | None = None


def options() -> Options:
    """The options in force."""
    global _current
    with _lock:
        if _current is None:
            _current = Options.from_environment()
        return _current


def set_options(**changes: Any) -> Options:
    """Replace some options (``pipeline=``, ``host_cpu=``, ``tune_cpu=``, ``max_alignment=``,
    ...; see :class:`Options`); returns the
    previous options, so that ``set_options(**vars(old))`` restores them."""
    names = {f.name for f in fields(Options)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    if "codegen_level" in changes and changes["codegen_level"] not in (0, 1, 2, 3):
        raise ValueError(f"codegen_level must be 0, 1, 2 or 3, got {changes['codegen_level']!r}")
    if "max_alignment" in changes:
        m = changes["max_alignment"]
        if not isinstance(m, int) or m < 1 or m & (m - 1):
            raise ValueError(f"max_alignment must be a power of two >= 1, got {m!r}")
    if "tune_cpu" in changes:
        changes["tune_cpu"] = check_tune_cpu(changes["tune_cpu"])
    global _current
    old = options()
    with _lock:
        _current = replace(old, **changes)
    return old
