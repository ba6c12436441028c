"""Prepared calls, kept per function and request kind: what makes a repeated call cheap.

A :class:`Table` maps ``(route, mode, return activity, function, argument kinds)`` to the
:class:`~.request.Spec` built for it by the first such call; a table lives on its owner
(a :class:`~enzyme_py.Module` for its functions, a Python function object for its
lowerings, held weakly) and holds at most :data:`MAX_SPECS` entries (the oldest go
first).  The spec last used for a (route, mode object, return activity, function) sits in
a *recent* slot: its converters check the argument kinds themselves, so a repeated call
of one kind is served without computing the kind key.

A call made through one of the public forms (``autodiff(mode, f, ret, *args)``,
``gradient(f, *xs)``, ``gradient(mode, f, *xs)``) names a *holder* (the Function, or the table of a Python function)
and an attribute: after :data:`~.native.NATIVE_AFTER` such calls of one spec, its native
entry (:mod:`.native`) is stored there, and the public function calls it directly.

Invariants: a spec is immutable once built (its loaded code is set once); a stale spec
(built under other :mod:`enzyme_py.config` options, or whose code was unloaded) is built
again; tables are cleared with the module's compiled code, and clearing a table drops the
native entries stored on it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

from .. import config
from . import native, request
from .request import KindMismatch, Spec, kinds

__all__ = ["MAX_SPECS", "Install", "Table", "python_table", "python_table_of", "python_tables"]

#: Where a call's native entry goes: ``(holder, attribute, prefix, fallback)``.
Install = tuple[Any, str, tuple[Any, ...], Any]

#: At most this many specs per table (a spec has up to two keys: by kinds and the
#: recent slot of its route, mode and function).
MAX_SPECS = 256


class Table:
    """The prepared calls of one owner (see the module docstring)."""

    __slots__ = (
        "__weakref__", "_holders", "_lock", "fast_autodiff", "fast_gradient", "fast_gradient_mode", "specs",
    )

    def __init__(self) -> None:
        self.specs: dict[Any, Spec] = {}
        self._lock = threading.Lock()
        #: native entries of a Python function's ``autodiff``/``gradient`` forms
        self.fast_autodiff: Any = None
        self.fast_gradient: Any = None
        self.fast_gradient_mode: Any = None
        #: (holder, attribute) pairs this table stored native entries on
        self._holders: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()

    def clear(self) -> None:
        """Drop every spec and the native entries stored from them."""
        with self._lock:
            self.specs.clear()
            holders = list(self._holders.items())
            self._holders.clear()
        for holder, attrs in holders:
            for attr in attrs:
                setattr(holder, attr, None)

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
        install: Install | None = None,
    ) -> Any:
        """Serve one call: the recent spec, else the spec of these kinds, else a new one.

        ``target``: the Function, or a callable that gives the Function for ``args`` (a
        Python function lowered for their layout); only called when a spec is built.
        ``install``: where this call's native entry goes (see the module docstring).
        """
        specs = self.specs
        recent_key = (route, id(mode), ret, name)
        spec = specs.get(recent_key)
        if spec is not None and spec.mode is mode and spec.options is config.current:
            try:
                result = spec.run(args, seed)
            except KindMismatch:
                pass
            else:
                if install is not None and seed is None:
                    self._install(spec, install)
                return result
        key = (route, mode, ret, name, kinds(args))
        spec = specs.get(key)
        if spec is None or spec.stale():
            spec = _build(target, route, mode, ret, args)
            self._store((key, recent_key), spec)
        elif spec.mode is mode:
            specs[recent_key] = spec
        try:
            result = spec.run(args, seed)
        except KindMismatch:
            # Arguments whose kind key matches but a converter disagrees (a subclass of a
            # kind, a mutated annotation): built for exactly these arguments.
            return _build(target, route, mode, ret, args).run(args, seed)
        if install is not None and seed is None:
            self._install(spec, install)
        return result

    def _install(self, spec: Spec, install: Install) -> None:
        """Count a call of ``spec`` through a public form; from the
        :data:`~.native.NATIVE_AFTER`-th on, store its native entry on the holder."""
        spec.uses += 1
        if spec.uses < native.NATIVE_AFTER:
            return
        holder, attr, prefix, fallback = install
        try:
            fn = native.callable_for(spec, prefix, fallback)
        except Exception:  # noqa: BLE001 - the ctypes path keeps serving the call
            fn = None
        if fn is not None and getattr(holder, attr, None) is not fn:
            with self._lock:
                self._holders.setdefault(holder, set()).add(attr)
            setattr(holder, attr, fn)


def _build(target: Any, route: str, mode: Any, ret: Any, args: Sequence[Any]) -> Spec:
    fn = target if hasattr(target, "layout") else target(args)
    return request.build(fn, route, mode, ret, args)


#: id of a Python function -> (weak reference to it, its table); the entry goes with the
#: function.  (Read directly by the public functions' fast path: check ``ref() is f``.)
python_tables: dict[int, tuple[weakref.ref[Any], Table]] = {}
_python = python_tables
_python_lock = threading.Lock()


def python_table_of(f: Any) -> Table | None:
    """The table of ``f`` if it has one (a dictionary lookup, for the public functions'
    fast path)."""
    hit = _python.get(id(f))
    if hit is not None and hit[0]() is f:
        return hit[1]
    return None


def python_table(f: Any) -> Table:
    """The table of a Python function (or ``enzyme_py.jit`` object), held weakly; a
    function that cannot be weakly referenced gets a fresh table each time."""
    table = python_table_of(f)
    if table is not None:
        return table
    with _python_lock:
        table = python_table_of(f)
        if table is None:
            table = Table()
            key = id(f)

            def forget(r: weakref.ref[Any], key: int = key) -> None:
                _forget(key, r)

            try:
                ref = weakref.ref(f, forget)
            except TypeError:
                return table
            _python[key] = (ref, table)
        return table


def _forget(key: int, ref: weakref.ref[Any]) -> None:
    # A weak reference callback may run inside python_table (a collection): no lock.
    hit = _python.get(key)
    if hit is not None and hit[0] is ref:
        _python.pop(key, None)
