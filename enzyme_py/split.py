"""Split reverse mode, as in Enzyme.jl: :func:`autodiff_thunk` returns a forward and a
reverse callable that pass a :class:`Tape`.

>>> fwd, rev = autodiff_thunk(ReverseSplitWithPrimal, f, Active, Duplicated, Const)  # doctest: +SKIP
>>> tape, primal, _ = fwd(Duplicated(x, dx), n)             # doctest: +SKIP
>>> (derivs,) = rev(Duplicated(x, dx), n, 1.0, tape)       # doctest: +SKIP

The forward callable runs Enzyme's *augmented primal*: the function itself, recording
what the reverse pass needs into a tape.  The reverse callable takes the same arguments,
then the seed of an ``Active`` return (omitted for a ``Const`` return), then the tape,
and returns ``(derivs,)`` as :func:`~enzyme_py.autodiff` does in reverse mode.

Invariants:

* A tape is consumed by exactly one reverse call; a second reverse on it raises
  :class:`TapeError` (in Enzyme it would read freed memory).  Tapes belong to the thunk
  and argument dtypes that made them.
* A tape whose reverse pass is never called is released when the :class:`Tape` object
  is garbage-collected: its reverse pass is run once with zero seeds into scratch
  shadows, which frees every cache Enzyme recorded and changes none of the caller's
  arrays.  (If the module was closed in between, the caches cannot be freed and leak.)
* Arguments may change between the passes: by default every argument is declared
  *overwritten* to Enzyme (Enzyme.jl's default), so the tape keeps copies of what the
  reverse pass reads and the gradient is that of the inputs of the forward call.
  ``overwritten=(False, ...)`` per argument promises that an argument is unchanged
  until the reverse call (smaller tapes); breaking that promise gives wrong gradients.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import weakref
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ._call import request
from ._call.run import Entry
from ._compile.loader import function_type, out_struct_type
from ._compile.plan import split_reverse_layout
from .activity import Active, Annotation, Const, Duplicated, DuplicatedNoNeed
from .api import resolve
from .errors import TapeError
from .modes import Mode
from .module import Function
from .python_functions import arity, target_of

__all__ = ["ForwardThunk", "ReverseThunk", "Tape", "TapeError", "autodiff_thunk"]

_ARG_CLASSES = (Const, Active, Duplicated, DuplicatedNoNeed)


class Tape:
    """What the forward pass recorded for one reverse pass (an owning handle; single use).

    ``consumed``: the reverse pass ran (or the tape was released).
    """

    __slots__ = ("__weakref__", "_address", "_consumed", "_finalizer", "_lock", "_owner")

    def __init__(self, owner: _Compiled, address: int, release_args: tuple[Any, ...], keep: Any) -> None:
        self._owner = owner
        self._address = address
        self._consumed = False
        self._lock = threading.Lock()
        # ``keep`` (the arrays the releasing call reads and writes) lives as long as the
        # finalizer does.
        self._finalizer = weakref.finalize(self, _release, owner, address, release_args, keep)
        self._finalizer.atexit = False

    @property
    def consumed(self) -> bool:
        return self._consumed

    def _take(self, owner: _Compiled) -> int:
        if self._owner is not owner:
            raise TapeError(
                "this tape was recorded by another thunk (or for other argument dtypes); "
                "pass it to the reverse callable returned with its forward callable"
            )
        with self._lock:
            if self._consumed:
                raise TapeError(
                    "this tape was already consumed by a reverse call; run the forward "
                    "callable again for a new tape"
                )
            self._consumed = True
        self._finalizer.detach()
        return self._address

    def __repr__(self) -> str:
        state = "consumed" if self._consumed else "pending"
        return f"<Tape of {self._owner.name}: {state}>"


def _release(owner: _Compiled, address: int, args: tuple[Any, ...], keep: Any) -> None:
    """Finalizer of an unconsumed tape: run its reverse pass with zero seeds into scratch
    shadows, which frees what Enzyme recorded."""
    if sys.is_finalizing() or owner.entry.code.closed:
        return
    try:
        owner.reverse(list(args), address)
    except Exception:  # noqa: BLE001 - a finalizer must not raise
        return


class _Compiled:
    """The loaded split-mode code for one plan (argument kinds): the forward entry and
    the reverse entry ``<symbol>_reverse``."""

    def __init__(self, name: str, spec: request.Spec, plan: Any) -> None:
        self.name = name
        self.spec = spec
        self.plan = plan
        code = spec.target.program.code(plan)
        self.entry = Entry(code, spec.target.layout.status)
        params, result, out_fields, outputs = split_reverse_layout(code.compiled.plan)
        self.outputs = outputs
        self.out_type = out_struct_type(out_fields) if out_fields else None
        self.reverse_fn = function_type(params, result)(code.reverse_address)
        self.status = (ctypes.c_int64 * 8)() if spec.target.layout.status is not None else None

    def reverse(self, values: list[Any], tape: int) -> dict[str, Any]:
        if self.entry.code.closed:
            raise TapeError(
                f"the code of {self.name} was unloaded (its module was closed); the tape "
                "cannot be used"
            )
        if self.out_type is not None:
            out = self.out_type()
            self.reverse_fn(*values, tape, ctypes.addressof(out))
            got = [getattr(out, f"f{i}") for i in range(len(self.outputs))]
        else:
            r = self.reverse_fn(*values, tape)
            got = [] if not self.outputs else [r]
        return dict(zip(self.outputs, got))


class _Thunk:
    def __init__(
        self, mode: Mode, f: Any, ret: Any, argtypes: tuple[Any, ...], overwritten: tuple[bool, ...] | None
    ) -> None:
        self.mode = mode
        self.f = f
        self.ret = ret
        self.argtypes = argtypes
        self.overwritten = overwritten
        self.table, self.name, self.target = resolve(f, "autodiff_thunk")
        self._compiled: dict[Any, _Compiled] = {}
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        name = getattr(self.f, "name", None)
        if name:
            return str(name)
        return str(getattr(self.f, "__qualname__", repr(self.f)))

    def _prepare(self, args: Sequence[Any], who: str) -> tuple[request.Spec, _Compiled]:
        if len(args) != len(self.argtypes):
            raise TypeError(
                f"the {who} callable of {self.label} takes {len(self.argtypes)} argument(s) "
                f"(declared {', '.join(t.__name__ for t in self.argtypes)}), {len(args)} given"
            )
        for i, (a, t) in enumerate(zip(args, self.argtypes)):
            got = type(a) if isinstance(a, Annotation) else Const
            if got is not t:
                raise TypeError(
                    f"argument {i} was declared {t.__name__} in autodiff_thunk, got "
                    f"{got.__name__}" + ("" if isinstance(a, Annotation) else " (a bare value)")
                )
        spec = self.table.spec(request.SPLIT_ROUTE, self.mode, self.ret, self.name, args, self.target)
        layout = spec.target.layout
        if layout.out_param:
            raise TypeError(
                f"{layout.name} returns a {layout.result.text}; split mode takes functions "
                "returning a float or nothing (write the result into a Duplicated argument)"
            )
        flags = self.overwritten if self.overwritten is not None else (True,) * len(args)
        per_entry = [flag for flag, conv in zip(flags, spec.convs) for _ in conv.plans]
        per_entry += [True] * (len(spec.plan.args) - len(per_entry))  # the status array
        plan = replace(spec.plan, overwritten=tuple(per_entry))
        with self._lock:
            comp = self._compiled.get((id(spec), plan))
            if comp is None or comp.entry.code.closed:
                comp = _Compiled(self.label, spec, plan)
                self._compiled[(id(spec), plan)] = comp
        return spec, comp


def _scratch(args: Sequence[Any]) -> tuple[Any, ...]:
    """The arguments of a releasing reverse pass: the same primals, zeroed scratch
    shadows (seeds are zero, so nothing is accumulated anywhere that matters)."""
    out = []
    for a in args:
        if isinstance(a, Duplicated) and isinstance(a.val, np.ndarray):
            out.append(type(a)(a.val, np.zeros_like(a.dval)))
        elif isinstance(a, Duplicated):
            out.append(type(a)(a.val, 0.0))
        else:
            out.append(a)
    return tuple(out)


def _status_values(comp: _Compiled) -> list[Any]:
    return [ctypes.addressof(comp.status)] if comp.status is not None else []


class ForwardThunk:
    """The augmented forward pass: ``fwd(*args) -> (tape, primal, None)`` (``primal`` is
    None in ``ReverseSplitNoPrimal``; the last entry, the shadow of the return, is always
    None: split mode here differentiates float returns, which are ``Active``)."""

    def __init__(self, thunk: _Thunk) -> None:
        self._thunk = thunk

    def __call__(self, *args: Any) -> tuple[Tape, Any, None]:
        t = self._thunk
        spec, comp = t._prepare(args, "forward")
        vals, keep, _ = spec.convert(args)
        raw = comp.entry.call(vals)
        got = dict(zip(comp.entry.outputs, raw))
        scratch_args = _scratch(args)
        release_vals, release_keep, _ = spec.convert(scratch_args)
        release = tuple(release_vals) + tuple(_status_values(comp)) + ((0.0,) if t.ret is Active else ())
        tape = Tape(comp, int(got.get("tape") or 0), release, (release_keep, keep, args))
        primal = got.get("primal") if t.mode.with_primal else None
        return tape, primal, None

    def __repr__(self) -> str:
        return f"<forward pass of {self._thunk.label} ({self._thunk.mode!r})>"


class ReverseThunk:
    """The reverse pass: ``rev(*args, [dret,] tape) -> (derivs,)``; ``dret`` (the seed of
    an ``Active`` return) is omitted for a ``Const`` return."""

    def __init__(self, thunk: _Thunk) -> None:
        self._thunk = thunk

    def __call__(self, *args_and_tape: Any) -> tuple[tuple[Any, ...]]:
        t = self._thunk
        n_extra = 2 if t.ret is Active else 1
        if len(args_and_tape) != len(t.argtypes) + n_extra:
            what = "the arguments, the return seed dret and the tape" if t.ret is Active else "the arguments and the tape"
            raise TypeError(
                f"the reverse callable of {t.label} takes {what}: "
                f"{len(t.argtypes) + n_extra} value(s), {len(args_and_tape)} given"
            )
        tape = args_and_tape[-1]
        if not isinstance(tape, Tape):
            raise TypeError(f"the last argument must be the Tape from the forward callable, got {type(tape).__name__}")
        args = args_and_tape[: len(t.argtypes)]
        spec, comp = t._prepare(args, "reverse")
        vals, _keep, _ = spec.convert(args)
        vals += _status_values(comp)
        if t.ret is Active:
            vals.append(request.real_value(args_and_tape[-2], "the return seed dret"))
        address = tape._take(comp)
        got = comp.reverse(vals, address)
        index = spec.target.layout.entry_index()
        return (tuple(got.get(f"d{index[i]}") for i in range(len(args))),)

    def __repr__(self) -> str:
        return f"<reverse pass of {self._thunk.label} ({self._thunk.mode!r})>"


def autodiff_thunk(
    mode: Mode,
    f: Any,
    ret: Any,
    *argtypes: Any,
    overwritten: Sequence[bool] | None = None,
) -> tuple[ForwardThunk, ReverseThunk]:
    """``(forward, reverse)`` callables of split reverse mode (see the module docstring).

    ``mode``: ``ReverseSplitWithPrimal`` or ``ReverseSplitNoPrimal`` (flags such as
    :func:`set_runtime_activity` apply).  ``ret``: ``Active`` or ``Const``.
    ``argtypes``: one activity class per argument (``Const``, ``Active``, ``Duplicated``,
    ``DuplicatedNoNeed``); a bare value at call time is ``Const``.  Code is compiled on
    the first call for each combination of argument types (a Python function is lowered
    then, for the layout of those arguments).
    """
    if not isinstance(mode, Mode) or not mode.split:
        raise TypeError(f"autodiff_thunk takes ReverseSplitWithPrimal or ReverseSplitNoPrimal, got {mode!r}")
    _, _, target = resolve(f, "autodiff_thunk")
    if ret not in (Active, Const):
        raise TypeError(f"the return activity of split mode must be Active or Const (the class), got {ret!r}")
    n: int | None
    if isinstance(target, Function):
        n, name, sig = len(target.layout.params), target.layout.name, f" ({target.layout.signature})"
    else:
        n, name, sig = arity(f), getattr(target_of(f), "__qualname__", repr(f)), ""
    if n is not None and len(argtypes) != n:
        raise TypeError(f"{name} takes {n} argument(s){sig}; {len(argtypes)} activity class(es) given")
    for i, a in enumerate(argtypes):
        if a not in _ARG_CLASSES:
            raise TypeError(
                f"argtypes[{i}] must be one of the classes Const, Active, Duplicated, "
                f"DuplicatedNoNeed, got {a!r}"
            )
    flags: tuple[bool, ...] | None = None
    if overwritten is not None:
        flags = tuple(bool(o) for o in overwritten)
        if len(flags) != len(argtypes):
            raise ValueError(
                f"overwritten has {len(flags)} flag(s); the function takes {len(argtypes)} argument(s)"
            )
    thunk = _Thunk(mode, f, ret, tuple(argtypes), flags)
    return ForwardThunk(thunk), ReverseThunk(thunk)
