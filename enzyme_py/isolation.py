"""Crash isolation: compile in a child worker process, load the object code here.

Enzyme ends the process on some requests it cannot handle: a failed assertion
(``SIGABRT``), ``exit(1)`` after printing an error, now and then a segmentation fault.
In-process, :mod:`enzyme_py._native.reports` turns Enzyme's *reported* errors into exceptions,
but nothing can survive those.  In isolation mode the compile stage (Enzyme, the
optimiser, code generation) runs in a persistent worker, ``python -m
enzyme_py._compile.worker``, started on first use with the very libraries this process
loaded (no lookup, no download).  It sends back :class:`~enzyme_py._compile.plan.CompiledCode`,
which this process's JIT loads.  When the worker dies, that one request raises
:class:`~enzyme_py.errors.EnzymeCrashError` (exit status or signal, tail of the
worker's stderr) and the next request starts a new worker.  Whatever Enzyme leaks
while failing stays in the worker, which is replaced by a fresh one after
``ENZYME_PY_WORKER_MAX_FAILURES`` failed requests (default 50) or once it is larger than
``ENZYME_PY_WORKER_MAX_RSS`` (default 1G).

Turn it on:

* for the process: ``enzyme_py.config.set_options(isolate=True)`` or ``ENZYME_PY_ISOLATE=1``;
* for a block of code (this thread / async task only): ``with enzyme_py.isolated(): ...``;
  ``with enzyme_py.isolated(False):`` compiles in-process inside a globally isolated program.

Only compilation moves: calling derivatives, which cannot crash Enzyme, stays in
process at full speed, and compiled derivatives are cached in memory and on disk
(:mod:`enzyme_py.diskcache`) exactly as without isolation.

Environment: ``ENZYME_PY_ISOLATE`` (see :mod:`enzyme_py.config`),
``ENZYME_PY_ISOLATE_TIMEOUT`` seconds one request may take before the worker is killed
and the request fails (default 600), ``ENZYME_PY_WORKER_MAX_FAILURES``,
``ENZYME_PY_WORKER_MAX_RSS``.

Parsing happens in the calling process (a module must exist before it is compiled):
IR text nested deeper than LLVM's parser can take is refused before parsing.
"""

from __future__ import annotations

from ._compile.client import WorkerClient, shutdown, worker
from .config import isolated, isolation_active

__all__ = ["WorkerClient", "active", "isolated", "shutdown", "worker"]


def active() -> bool:
    """Whether compilations of this thread/task go to the worker now."""
    return isolation_active()
