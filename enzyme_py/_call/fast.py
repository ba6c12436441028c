"""Prepared calls, kept per function and request kind: what makes a repeated call cheap.

A :class:`Table` maps ``(route, mode, return activity, function, argument kinds)`` to the
:class:`~.request.Spec` built for it by the first such call; a table lives on its owner
(a :class:`~enzyme_py.Module` for its functions, a Python function object for its
lowerings, held weakly) and holds at most :data:`MAX_SPECS` entries (the oldest go
first).  The spec last used for a (route, mode object, return activity, function) sits in
a *recent* slot: its converters check the argument kinds themselves, so a repeated call
of one kind is served without computing the kind key.

Invariants: a spec is immutable once built (its loaded code is set once); a stale spec
(built under other :mod:`enzyme_py.config` options, or whose code was unloaded) is built
again; tables are cleared with the module's compiled code.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

from .. import config
from . import request
from .request import KindMismatch, Spec, kinds

__all__ = ["MAX_SPECS", "Table", "python_table"]

#: At most this many specs per table (a spec has up to two keys: by kinds and the
#: recent slot of its route, mode and function).
MAX_SPECS = 256


class Table:
    """The prepared calls of one owner (see the module docstring)."""

    __slots__ = ("__weakref__", "_lock", "specs")

    def __init__(self) -> None:
        self.specs: dict[Any, Spec] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self.specs.clear()

    def __len__(self) -> int:
        return len(self.specs)

    def _store(self, keys: Sequence[Any], spec: Spec) -> None:
        with self._lock:
            specs = self.specs
            while len(specs) > max(0, MAX_SPECS - len(keys)):
                try:
                    del specs[next(iter(specs))]
                except (StopIteration, KeyError, RuntimeError):
                    break
            for key in keys:
                specs[key] = spec

    def spec(self, route: str, mode: Any, ret: Any, name: str, args: Sequence[Any], target: Any) -> Spec:
        """The spec for these arguments' kinds (built when absent; see :meth:`call` for
        ``target``)."""
        key = (route, mode, ret, name, kinds(args))
        spec = self.specs.get(key)
        if spec is None or spec.stale():
            spec = _build(target, route, mode, ret, args)
            self._store((key,), spec)
        return spec

    def call(
        self,
        route: str,
        mode: Any,
        ret: Any,
        name: str,
        args: Sequence[Any],
        target: Any,
        seed: Any = None,
    ) -> Any:
        """Serve one call: the recent spec, else the spec of these kinds, else a new one.

        ``target``: the Function, or a callable that gives the Function for ``args`` (a
        Python function lowered for their layout); only called when a spec is built.
        """
        specs = self.specs
        recent_key = (route, id(mode), ret, name)
        spec = specs.get(recent_key)
        if spec is not None and spec.mode is mode and spec.options is config.current:
            try:
                return spec._run(args, seed)  # type: ignore[misc]
            except KindMismatch:
                pass
        key = (route, mode, ret, name, kinds(args))
        spec = specs.get(key)
        if spec is None or spec.stale():
            spec = _build(target, route, mode, ret, args)
            self._store((key, recent_key), spec)
        elif spec.mode is mode:
            specs[recent_key] = spec
        try:
            return spec.run(args, seed)
        except KindMismatch:
            # Arguments whose kind key matches but a converter disagrees (a subclass of a
            # kind, a mutated annotation): built for exactly these arguments.
            return _build(target, route, mode, ret, args).run(args, seed)


def _build(target: Any, route: str, mode: Any, ret: Any, args: Sequence[Any]) -> Spec:
    fn = target if hasattr(target, "layout") else target(args)
    return request.build(fn, route, mode, ret, args)


_python: weakref.WeakKeyDictionary[Any, Table] = weakref.WeakKeyDictionary()
_python_lock = threading.Lock()


def python_table(f: Any) -> Table:
    """The table of a Python function (or ``enzyme_py.jit`` object), held weakly; a
    function that cannot be weakly referenced gets a fresh table each time."""
    table = _python.get(f)
    if table is not None:
        return table
    with _python_lock:
        table = _python.get(f)
        if table is None:
            table = Table()
            try:
                _python[f] = table
            except TypeError:
                pass
        return table
