"""Asking Enzyme for derivatives: one logic and type analysis per request, type trees from
the request, the call through the profile and its trampoline.

:func:`differentiate` serves forward and combined reverse mode; :func:`differentiate_split`
the augmented forward pass and the reverse pass of split mode, from one logic.  Both
return ``completed=False`` when an error handler jumped out of Enzyme; the logic, type
analysis and the module being built are then abandoned (leaked: their state is unknown)
and the caller must abandon the context too.

Enzyme's process-global options a request depends on (``EnzymeFastMath``, global
activity) are set right before the call, under the LLVM lock held for the whole request.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ..errors import LibraryError, UnsupportedError
from .ffi import LOCK
from .ffi.enzyme import CFnTypeInfo, ConcreteType, DiffRequest, IntList
from .handles import ContextRef, EnzymeLogicRef, TypeAnalysisRef, TypeTreeRef
from .library import native
from .trampolines import guard

__all__ = ["ArgType", "Request", "SplitResult", "differentiate", "differentiate_split", "set_option"]

_ELEMENT_CT = {
    "f64": ConcreteType.DOUBLE,
    "f32": ConcreteType.FLOAT,
    "i1": ConcreteType.INTEGER,
    "i8": ConcreteType.INTEGER,
    "i16": ConcreteType.INTEGER,
    "i32": ConcreteType.INTEGER,
    "i64": ConcreteType.INTEGER,
}


class ArgType(Protocol):
    """What Enzyme is told about one parameter: its LLVM kind (``f64``, ``ptr``, ...),
    the element kind behind a pointer (or None), and its ``DiffeType``."""

    @property
    def kind(self) -> str: ...
    @property
    def elem(self) -> str | None: ...
    @property
    def activity(self) -> int: ...


@dataclass(frozen=True)
class Request:
    """One derivative to build (see :func:`differentiate`)."""

    args: tuple[ArgType, ...]
    ret_kind: str
    ret_activity: int
    return_primal: bool = False
    width: int = 1
    runtime_activity: bool = False
    strong_zero: bool = False
    fast_math: bool = True
    overwritten: tuple[bool, ...] | None = None


def set_option(name: str, value: bool) -> None:
    """Set one of Enzyme's boolean ``cl::opt`` globals (e.g. ``EnzymeFastMath``).

    :class:`~enzyme_py.errors.LibraryError` when the build does not export it and the
    value asked for is not its default."""
    nat = native()
    addr = nat.enzyme.global_address(name)
    if addr is None:
        raise LibraryError(
            f"this Enzyme build does not export the option {name}; the mode or flag that "
            "needs it is not available with it"
        )
    nat.enzyme.EnzymeSetCLBool(addr, 1 if value else 0)


def _type_tree(kind: str, elem: str | None, ctx: ContextRef, trees: list[TypeTreeRef]) -> int:
    if kind == "ptr":
        inner = TypeTreeRef.concrete(_ELEMENT_CT.get(elem or "", ConcreteType.ANYTHING), ctx)
        trees.append(inner)
        inner.only_eq(-1)
        tree = TypeTreeRef.concrete(ConcreteType.POINTER, ctx)
        tree.merge(inner)
        tree.only_eq(-1)
    elif kind in _ELEMENT_CT:
        tree = TypeTreeRef.concrete(_ELEMENT_CT[kind], ctx).only_eq(-1)
    else:
        tree = TypeTreeRef.empty()
    trees.append(tree)
    return tree.handle


def _session(
    ctx: ContextRef, fn: int, req: Request, create: Callable[[Any, DiffRequest], tuple[bool, Any]]
) -> tuple[bool, Any]:
    """Run ``create(call, request)`` with a fresh logic and type analysis; see the module
    docstring for what ``completed=False`` means."""
    nat = native()
    for flag, why in getattr(nat.profile, "LACKS", {}).items():
        if getattr(req, flag, False):  # before any Enzyme object exists
            raise UnsupportedError(f"{why} (the library {nat.enzyme_path})")
    call = guard().call
    trees: list[TypeTreeRef] = []
    n = len(req.args)
    with LOCK:
        logic = EnzymeLogicRef.create(False)
        ta = TypeAnalysisRef.create(logic)
        completed = False
        try:
            args = (ctypes.c_void_p * max(n, 1))(*(_type_tree(a.kind, a.elem, ctx, trees) for a in req.args))
            known = (IntList * max(n, 1))()
            info = CFnTypeInfo(
                ctypes.cast(args, ctypes.POINTER(ctypes.c_void_p)),
                _type_tree(req.ret_kind, None, ctx, trees),
                ctypes.cast(known, ctypes.POINTER(IntList)),
            )
            request = DiffRequest(
                logic=logic.handle,
                function=fn,
                ret_activity=req.ret_activity,
                arg_activities=tuple(a.activity for a in req.args),
                type_analysis=ta.handle,
                return_primal=req.return_primal and req.ret_kind != "void",
                type_info=info,
                overwritten=req.overwritten if req.overwritten is not None else (False,) * n,
                runtime_activity=req.runtime_activity,
                strong_zero=req.strong_zero,
                width=req.width,
            )
            if nat.enzyme.global_address("EnzymeFastMath") is not None or not req.fast_math:
                set_option("EnzymeFastMath", req.fast_math)
            completed, result = create(call, request)
            if completed:
                logic.erase_preprocessed()
        finally:
            for t in trees:
                t.close()
            if completed:
                ta.close()
                logic.close()
            else:
                ta.detach()
                logic.detach()
    return completed, result


def differentiate(ctx: ContextRef, fn: int, req: Request, *, forward: bool) -> tuple[bool, int]:
    """Forward mode (``forward=True``) or combined reverse mode of the function ``fn``:
    ``(completed, new function handle)``."""
    profile = native().profile
    create = profile.create_forward if forward else profile.create_reverse
    completed, result = _session(ctx, fn, req, create)
    return completed, int(result or 0)


@dataclass(frozen=True)
class SplitResult:
    """The two passes of split mode: the augmented forward function, the reverse
    function (its last parameter is the tape), and the tape's LLVM type (0: no tape)."""

    augmented: int
    gradient: int
    tape_type: int


def differentiate_split(ctx: ContextRef, fn: int, req: Request) -> tuple[bool, SplitResult | None]:
    """Split reverse mode with an anonymous tape: the augmented forward pass returns a
    pointer to memory Enzyme allocated; the reverse pass, built with the tape's
    underlying type, reads and frees it.  ``(completed, result)``; the result is None when
    Enzyme returned no function."""
    nat = native()
    prof = nat.profile
    made: dict[str, int] = {}

    def create(call: Any, request: DiffRequest) -> tuple[bool, Any]:
        ok, aug = prof.create_augmented(call, request, shadow_return_used=False, anonymous_tape=True)
        if not ok or not aug:
            return ok, None
        aug_fn = nat.enzyme.EnzymeExtractFunctionFromAugmentation(aug)
        tape = nat.enzyme.EnzymeExtractUnderlyingTapeTypeFromAugmentation(aug)
        ok, grad = prof.create_gradient(call, replace(request, return_primal=False), tape_type=tape, augmented=aug)
        if not ok:
            return ok, None
        made["gradient"] = int(grad or 0)
        made["tape"] = int(tape or 0)
        return True, aug_fn

    completed, aug_fn = _session(ctx, fn, req, create)
    if not completed or not aug_fn or not made.get("gradient"):
        return completed, None
    return True, SplitResult(int(aug_fn), made["gradient"], made["tape"])
