"""Native entries: a prepared call as a built-in function (see :mod:`enzyme_py._native.pycall`).

:func:`callable_for` turns a :class:`~.request.Spec` into a function with CPython's fast
calling convention that checks and converts each argument exactly as the spec's
converters do, calls the compiled entry point and returns what the public function
returns.  Its leading arguments can be fixed objects (the *prefix*: ``(f,)`` for
``gradient(f, x)``, ``(mode, f, ret)`` for ``autodiff``), compared by identity.
Everything it does not take (another kind, a value the converters would reject, a
keyword, changed options, unloaded code) goes to the *fallback* with the very same
arguments: the validating path, which answers exactly as before.

A spec has a native entry when every argument kind has a native conversion (floats,
integers, ``Active``, ``Const``, scalar ``Duplicated`` in forward mode, NumPy arrays bare,
``Const``, ``Duplicated`` or given a fresh shadow by ``gradient``) and it returns scalars
(primal, ``autodiff`` without vector mode, ``gradient``); a Python function returning an
array or a tuple, vector mode, split mode and ``hvp`` keep the ctypes path.
``ENZYME_PY_NATIVE_CALLS=0`` turns native entries off.

Invariants: a native entry is cached per spec, prefix and fallback, and rebuilt when the
spec's code was reloaded.  It holds the modes and classes of its prefix, so that their
addresses cannot be reused by other objects while it lives (a new mode object with other
flags must never pass for a dead one); it never holds the function of its prefix (a Python
function's table is held weakly by that function) — its holder, which that function owns,
holds it.  Calls whose arguments are all
floats keep the GIL (they are short, and releasing it would cost more than the call);
every other call releases it around the compiled code, as ctypes does.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import config
from .._native import pycall, traps
from .._numba.status import raise_from_status
from ..modes import Mode
from .layout import ScalarResult
from .request import AUTODIFF, GRADIENT, PRIMAL_ROUTE, Spec
from .run import raise_program_exit

__all__ = ["NATIVE_AFTER", "callable_for", "enabled"]

#: Calls of one spec through one form before its native entry is built (building one
#: takes about 2 ms; one-off calls should not pay it).
NATIVE_AFTER = 2

_SCALARS = frozenset({"f64", "f32", "i1", "i8", "i16", "i32", "i64"})
_lock = threading.Lock()


def enabled() -> bool:
    """Native entries are on (``ENZYME_PY_NATIVE_CALLS``) and this interpreter supports
    them."""
    return config.native_calls() and pycall.supported()


def _fresh(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The fresh zero shadow of a ``gradient`` array argument (as the converter makes it)."""
    return np.zeros(x.shape, dtype=x.dtype)


def _raiser(qualname: str, exceptions: tuple[bytes, ...], words: int) -> Callable[[int], None]:
    def raise_it(address: int) -> None:
        raise_from_status(qualname, exceptions, list((ctypes.c_int64 * words).from_address(address)))

    return raise_it


def _trap_raiser(function: str) -> Callable[[int], None]:
    def raise_it(address: int) -> None:
        raise_program_exit(function, (ctypes.c_int64 * traps.STATUS_WORDS).from_address(address))

    return raise_it


def _results(spec: Spec) -> Any:
    """The result tree of ``spec`` (see :class:`~enzyme_py._native.pycall.CallShape`),
    the same as :meth:`Spec.shape` builds in Python."""
    outputs = spec.outputs
    mode = spec.mode

    def value(name: str) -> Any:
        return ("raw", outputs.index(name)) if name in outputs else ("none",)

    primal = value("primal")
    if spec.route == PRIMAL_ROUTE:
        r = spec.target.layout.result
        if isinstance(r, ScalarResult) and r.dtype == "bool" and primal[0] == "raw":
            return ("bool", primal[1])
        return primal
    assert mode is not None
    fresh = iter(range(len(spec.convs)))
    derivs = tuple(
        ("fresh", next(fresh)) if c.fresh else (value(f"d{c.deriv}") if c.deriv >= 0 else ("none",))
        for c in spec.convs
    )
    if spec.route == GRADIENT:
        return (derivs, primal) if mode.with_primal else derivs
    if mode.reverse:
        return (derivs, primal) if mode.with_primal else (derivs,)
    out: tuple[Any, ...] = (value("dret"),) if "dret" in outputs or "dret@0" in outputs else ()
    return out + (primal,) if mode.with_primal else out


def _shape(spec: Spec, prefix: tuple[Any, ...], name: str) -> pycall.CallShape | None:
    if spec.out is not None or spec.width != 1 or spec.batched:
        return None
    if spec.route not in (PRIMAL_ROUTE, AUTODIFF, GRADIENT) or (spec.mode is not None and spec.mode.split):
        return None
    args = tuple(c.native for c in spec.convs)
    if any(a is None for a in args):
        return None
    arrays = any(isinstance(a.value, pycall.ArrayIn) for a in args)  # type: ignore[union-attr]
    if arrays and not pycall.arrays_supported():
        return None
    entry = spec.entry()
    compiled = entry.code.compiled
    if (compiled.result != "void" and compiled.result not in _SCALARS) or not set(compiled.out_fields) <= _SCALARS:
        return None
    if "dret@0" in spec.outputs:
        return None
    status = spec.target.layout.status
    floats_only = all(
        isinstance(a.value, pycall.ScalarIn) and a.value.kind in ("f64", "f32") for a in args  # type: ignore[union-attr]
    )
    return pycall.CallShape(
        traps=traps.STATUS_WORDS if compiled.traps else 0,
        name=name,
        entry=entry.code.address,
        params=compiled.params,
        result=compiled.result,
        out_fields=compiled.out_fields,
        status=status.words if status is not None else 0,
        prefix=prefix,
        args=args,  # type: ignore[arg-type]
        results=_results(spec),
        release_gil=not floats_only,
    )


def callable_for(
    spec: Spec, prefix: Sequence[Any], fallback: Callable[..., Any], name: str = ""
) -> Any | None:
    """The native entry of ``spec`` taking ``(*prefix, *args)`` (see the module
    docstring), or None when ``spec`` cannot have one."""
    if not enabled():
        return None
    prefix = tuple(prefix)
    key = (tuple(map(id, prefix)), id(fallback))
    entry = spec.entry()
    hit = spec.natives.get(key)
    if hit is not None and hit[0] is entry:
        return hit[1]
    with _lock:
        hit = spec.natives.get(key)
        if hit is not None and hit[0] is entry:
            return hit[1]
        label = name or f"{spec.route} of {spec.target.layout.name}"
        shape = _shape(spec, prefix, label)
        fn = None
        if shape is not None:
            status = spec.target.layout.status
            raiser = _raiser(status.qualname, status.exceptions, status.words) if status is not None else None
            fn = pycall.make_callable(
                shape,
                fallback=fallback,
                alive=(entry.code.alive, spec.target.program.alive),
                raiser=raiser,
                fresh=_fresh,
                guard=(vars(config), sys.intern("current"), spec.options),
                trap_raiser=_trap_raiser(entry.code.compiled.plan.function) if shape.traps else None,
                keep=tuple(p for p in prefix if isinstance(p, (Mode, type))),
                doc=f"{label}: a native entry of enzyme_py (see enzyme_py._call.native)",
            )
        spec.natives[key] = (entry, fn)
        return fn
