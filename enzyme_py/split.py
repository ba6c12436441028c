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

from ._irtypes import CTYPES
from .activity import Active, Annotation, Const, Duplicated, DuplicatedNoNeed
from .errors import TapeError
from .modes import Mode

__all__ = ["ForwardThunk", "ReverseThunk", "Tape", "TapeError", "autodiff_thunk"]

_ARG_CLASSES = (Const, Active, Duplicated, DuplicatedNoNeed)


class Tape:
    """What the forward pass recorded for one reverse pass (an owning handle; single use).

    ``consumed``: the reverse pass ran (or the tape was released).
    """

    __slots__ = ("__weakref__", "_address", "_consumed", "_finalizer", "_lock", "_owner")

    def __init__(
        self, owner: _Compiled, address: int, release_args: tuple[Any, ...], keep: Any
    ) -> None:
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
    if sys.is_finalizing() or owner.code.closed:
        return
    try:
        owner.reverse(args, address)
    except Exception:  # noqa: BLE001 - a finalizer must not raise
        return


class _Compiled:
    """The loaded split-mode code for one plan (argument dtypes)."""

    def __init__(self, name: str, code: Any, plan: Any) -> None:
        from ._parity_compile import split_reverse_layout

        self.name = name
        self.code = code
        self.plan = plan
        params, result, out_fields, outputs = split_reverse_layout(plan)
        self.outputs = outputs
        self.out_type = None
        if out_fields:
            from .loader import out_struct_type

            self.out_type = out_struct_type(out_fields)
        restype = None if result == "void" else CTYPES[result]
        proto = ctypes.CFUNCTYPE(restype, *(CTYPES[k] for k in params))
        self.reverse_fn = proto(_lookup(code.compiled.symbol + "_reverse"))

    def reverse(self, values: Sequence[Any], tape: int) -> dict[str, Any]:
        if self.code.closed:
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


def _lookup(symbol: str) -> int:
    from ._library import LOCK, error_message, native
    from .errors import CompileError
    from .loader import _get_jit

    lib = native().llvm
    with LOCK:
        jit, _ = _get_jit()
        addr = ctypes.c_uint64()
        msg = error_message(lib, lib.LLVMOrcLLJITLookup(jit.handle, ctypes.byref(addr), symbol.encode()))
    if msg is not None:
        raise CompileError(f"the reverse pass {symbol} is not in the JIT: {msg}")
    return int(addr.value)


class _Thunk:
    def __init__(self, mode: Mode, f: Any, ret: Any, argtypes: tuple[Any, ...], overwritten: tuple[bool, ...]) -> None:
        self.mode = mode
        self.f = f
        self.ret = ret
        self.argtypes = argtypes
        self.overwritten = overwritten
        self._compiled: dict[Any, _Compiled] = {}
        self._lock = threading.Lock()

    def _prepare(self, args: Sequence[Any], who: str) -> tuple[Any, _Compiled]:
        from .api import prepare
        from .compiler import SPLIT

        if len(args) != len(self.argtypes):
            raise TypeError(
                f"the {who} callable of {self.f.name} takes {len(self.argtypes)} argument(s) "
                f"(declared {', '.join(t.__name__ for t in self.argtypes)}), {len(args)} given"
            )
        for i, (a, t) in enumerate(zip(args, self.argtypes)):
            got = type(a) if isinstance(a, Annotation) else Const
            if got is not t:
                raise TypeError(
                    f"argument {i} was declared {t.__name__} in autodiff_thunk, got "
                    f"{got.__name__}" + ("" if isinstance(a, Annotation) else " (a bare value)")
                )
        base = replace(self.mode, name="Reverse", split=False, with_primal=True)
        prep = prepare(base, self.f, self.ret, args)
        plan = replace(
            prep.plan,
            mode=SPLIT,
            with_primal=self.mode.with_primal,
            extra=(("overwritten", self.overwritten),),
        )
        with self._lock:
            comp = self._compiled.get(plan)
            if comp is None:
                code = self.f.module._compiled(plan)
                comp = _Compiled(self.f.name, code, plan)
                self._compiled[plan] = comp
        return prep, comp


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


class ForwardThunk:
    """The augmented forward pass: ``fwd(*args) -> (tape, primal, None)`` (``primal`` is
    None in ``ReverseSplitNoPrimal``; the last entry, the shadow of the return, is always
    None: split mode here differentiates float returns, which are ``Active``)."""

    def __init__(self, thunk: _Thunk) -> None:
        self._thunk = thunk

    def __call__(self, *args: Any) -> tuple[Tape, Any, None]:
        from .api import _run, prepare

        t = self._thunk
        prep, comp = t._prepare(args, "forward")
        got = _run(comp.code, prep.values)
        scratch_args = _scratch(args)
        release_prep = prepare(
            replace(t.mode, name="Reverse", split=False, with_primal=True), t.f, t.ret, scratch_args
        )
        release = tuple(release_prep.values) + ((0.0,) if t.ret is Active else ())
        tape = Tape(comp, int(got["tape"] or 0), release, (release_prep.keep, args))
        primal = got.get("primal") if t.mode.with_primal else None
        return tape, primal, None

    def __repr__(self) -> str:
        return f"<forward pass of {self._thunk.f.name} ({self._thunk.mode!r})>"


class ReverseThunk:
    """The reverse pass: ``rev(*args, [dret,] tape) -> (derivs,)``; ``dret`` (the seed of
    an ``Active`` return) is omitted for a ``Const`` return."""

    def __init__(self, thunk: _Thunk) -> None:
        self._thunk = thunk

    def __call__(self, *args_and_tape: Any) -> tuple[tuple[Any, ...]]:
        from .api import _scalar

        t = self._thunk
        n_extra = 2 if t.ret is Active else 1
        if len(args_and_tape) != len(t.argtypes) + n_extra:
            what = "the arguments, the return seed dret and the tape" if t.ret is Active else "the arguments and the tape"
            raise TypeError(
                f"the reverse callable of {t.f.name} takes {what}: "
                f"{len(t.argtypes) + n_extra} value(s), {len(args_and_tape)} given"
            )
        tape = args_and_tape[-1]
        if not isinstance(tape, Tape):
            raise TypeError(f"the last argument must be the Tape from the forward callable, got {type(tape).__name__}")
        args = args_and_tape[: len(t.argtypes)]
        prep, comp = t._prepare(args, "reverse")
        values = list(prep.values)
        if t.ret is Active:
            values.append(_scalar(args_and_tape[-2], t.f.llvm_signature.ret, "the return seed dret"))
        address = tape._take(comp)
        got = comp.reverse(values, address)
        return (tuple(got.get(f"d{i}") for i in range(len(args))),)

    def __repr__(self) -> str:
        return f"<reverse pass of {self._thunk.f.name} ({self._thunk.mode!r})>"


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
    the first call for each combination of argument dtypes.
    """
    from .api import _check_function

    if not isinstance(mode, Mode) or not mode.split:
        raise TypeError(
            f"autodiff_thunk takes ReverseSplitWithPrimal or ReverseSplitNoPrimal, got {mode!r}"
        )
    f = _check_function(f)
    if ret not in (Active, Const):
        raise TypeError(
            "the return activity of split mode must be Active or Const (the class), "
            f"got {ret!r}"
        )
    sig = f.llvm_signature
    if len(argtypes) != len(sig.params):
        raise TypeError(
            f"{f.name} takes {len(sig.params)} argument(s) ({f.signature}); "
            f"{len(argtypes)} activity class(es) given"
        )
    for i, a in enumerate(argtypes):
        if a not in _ARG_CLASSES:
            raise TypeError(
                f"argtypes[{i}] must be one of the classes Const, Active, Duplicated, "
                f"DuplicatedNoNeed, got {a!r}"
            )
    if overwritten is None:
        flags = (True,) * len(argtypes)
    else:
        flags = tuple(bool(o) for o in overwritten)
        if len(flags) != len(argtypes):
            raise ValueError(
                f"overwritten has {len(flags)} flag(s); {f.name} takes {len(argtypes)} argument(s)"
            )
    thunk = _Thunk(mode, f, ret, tuple(argtypes), flags)
    return ForwardThunk(thunk), ReverseThunk(thunk)
