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

from ..errors import LibraryError
from . import library
from .ffi import LOCK
from .ffi.enzyme import CFnTypeInfo, ConcreteType, DiffRequest, ErrorType, IntList
from .handles import (
    ContextRef,
    EnzymeLogicRef,
    ModuleRef,
    PassManagerRef,
    TypeAnalysisRef,
    TypeTreeRef,
)
from .library import native
from .trampolines import guard

__all__ = [
    "ArgType",
    "Request",
    "SplitResult",
    "differentiate",
    "differentiate_split",
    "preserve_rules",
    "run_source_pass",
    "set_option",
    "source_pass_missing",
]

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


def _parse_layout(desc: str, at: int = 0) -> tuple[Any, int]:
    """Parse a memory-layout description (see :func:`_layout_tree`) from ``at``:
    ``(tree, end)`` with ``tree`` a scalar kind, ``("ptr", inner | None)`` or
    ``("struct", ((offset, inner), ...))``."""
    if desc.startswith("ptr", at):
        at += 3
        if at < len(desc) and desc[at] == ">":
            inner, at = _parse_layout(desc, at + 1)
            return ("ptr", inner), at
        return ("ptr", None), at
    if desc.startswith("{", at):
        at += 1
        fields = []
        while at < len(desc) and desc[at] != "}":
            colon = desc.index(":", at)
            offset = int(desc[at:colon])
            inner, at = _parse_layout(desc, colon + 1)
            fields.append((offset, inner))
            if at < len(desc) and desc[at] == ";":
                at += 1
        if at >= len(desc):
            raise ValueError(f"unterminated struct layout in {desc!r}")
        return ("struct", tuple(fields)), at + 1
    end = at
    while end < len(desc) and (desc[end].isalnum()):
        end += 1
    kind = desc[at:end]
    if kind not in _ELEMENT_CT:
        raise ValueError(f"unknown element kind {kind!r} in layout {desc!r}")
    return kind, end


def _layout_tree(node: Any, ctx: ContextRef, trees: list[TypeTreeRef]) -> TypeTreeRef:
    """The type tree of a value of layout ``node`` at offset ``[]``: a scalar
    ``{[]:T}``; a pointer ``{[]:Pointer}`` plus what it points to under ``[-1]`` (any
    offset: an array of it); a struct each field's tree under its byte offset."""
    if isinstance(node, str):
        tree = TypeTreeRef.concrete(_ELEMENT_CT[node], ctx)
        trees.append(tree)
        return tree
    tag, body = node
    tree = TypeTreeRef.concrete(ConcreteType.POINTER, ctx) if tag == "ptr" else TypeTreeRef.empty()
    trees.append(tree)
    if tag == "ptr":
        if body is not None:
            tree.merge(_layout_tree(body, ctx, trees).only_eq(-1))
    else:  # a struct is flat memory: nested structs' fields at their summed offsets
        for offset, leaf in _flatten(body, 0):
            tree.merge(_layout_tree(leaf, ctx, trees).only_eq(offset))
    return tree


def _flatten(fields: Any, base: int) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    for offset, inner in fields:
        if isinstance(inner, tuple) and inner[0] == "struct":
            out += _flatten(inner[1], base + offset)
        else:
            out.append((base + offset, inner))
    return out


def _type_tree(kind: str, elem: str | None, ctx: ContextRef, trees: list[TypeTreeRef]) -> int:
    if kind == "ptr" and elem is not None and (">" in elem or "{" in elem):
        # a pointer to pointers or to structs (``ptr>f64``, ``{0:ptr>f64;8:f64}``)
        node, end = _parse_layout(elem)
        if end != len(elem):
            raise ValueError(f"trailing text in layout {elem!r}")
        if isinstance(node, tuple) and node[0] == "struct":
            # a struct (or the first of an array of them) at the pointer's target
            tree = TypeTreeRef.concrete(ConcreteType.POINTER, ctx)
            trees.append(tree)
            tree.merge(_layout_tree(node, ctx, trees))
        else:  # an array of pointers (or scalars) from the pointer on
            tree = _layout_tree(("ptr", node), ctx, trees)
        return tree.only_eq(-1).handle
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


# --------------------------------------------------------------------------- Enzyme's own pass
# A module written against Enzyme's source-level interface (``__enzyme_autodiff`` calls,
# registration globals) is differentiated by Enzyme's own pass, as the clang plugin does,
# in the legacy pass manager (``AddEnzymePass``: the plugin's only in-process entry to its
# pass; its new-pass-manager registration needs a C++ ``PassBuilder``).


def source_pass_missing() -> str | None:
    """Why Enzyme's own pass cannot run in this process (the loaded Enzyme does not
    export it), or None when it can."""
    nat = native()
    table = getattr(nat.profile, "SOURCE_PASSES", None)
    if not table:
        return f"Enzyme C-API profile {nat.capi!r} has no entry for Enzyme's own pass"
    missing = [n for n in table if not nat.enzyme.has(n)]
    if missing:
        return f"{nat.enzyme_path} does not export {', '.join(missing)}"
    if not hasattr(nat.enzyme, "AddEnzymePass"):
        nat.enzyme.declare(table)
    return None


def _source_binding() -> Any:
    why = source_pass_missing()
    if why is not None:
        raise LibraryError(f"Enzyme's own pass cannot run: {why}")
    return native()


def preserve_rules(module: ModuleRef) -> None:
    """Enzyme's ``PreserveNVVM`` pass at the start of the pipeline: registration globals
    (``__enzyme_register_gradient_*``, ``__enzyme_inactivefn*``, ...) and
    ``llvm.global.annotations`` entries (``enzyme_inactive``, ...) become the attributes
    and metadata Enzyme reads, and the functions they name are kept from being inlined
    away.  The caller validates the registrations first (a malformed one aborts)."""
    nat = _source_binding()
    with LOCK, PassManagerRef.create() as pm:
        nat.enzyme.AddPreserveNVVMPass(pm.handle, 1)
        nat.llvm.LLVMRunPassManager(pm.handle, module.handle)


def run_source_pass(module: ModuleRef, warnings: list[str] | None = None) -> bool:
    """Enzyme's pass over ``module``, then ``PreserveNVVM`` at the end (linkage restored),
    through the setjmp trampoline: False when an error handler jumped out of it (the
    module, its context and the pass manager are then abandoned by the caller; the pass
    manager is leaked here).

    What the clang plugin reports as warnings (it installs no error handler) are
    warnings here too, appended to ``warnings``: a type tree deeper than
    ``EnzymeMaxTypeDepth`` (truncated) and mixed activity (Enzyme's default shadow)."""
    nat = _source_binding()
    g = guard()
    call = g.call
    with LOCK:
        pm = PassManagerRef.create()
        lapack = nat.enzyme.global_address("EnzymeLapackCopy")
        completed = False
        try:
            nat.enzyme.AddEnzymePass(pm.handle)
            nat.enzyme.AddPreserveNVVMPass(pm.handle, 0)
            if lapack is not None:  # BLAS/LAPACK calls: cache matrices with copies
                nat.enzyme.EnzymeSetCLBool(lapack, 1)
            library.warnings_only = frozenset({ErrorType.TYPE_DEPTH_EXCEEDED, ErrorType.MIXED_ACTIVITY})
            library.warning_flag = g.warning_flag_address
            library.warned = []
            completed, _ = call("LLVMRunPassManager", pm.handle, module.handle)
        finally:
            library.warnings_only = frozenset()
            if warnings is not None:
                warnings.extend(library.warned)
            library.warned = []
            if lapack is not None:
                nat.enzyme.EnzymeSetCLBool(lapack, 0)
            if completed:
                pm.close()
            else:
                pm.detach()
    return completed
