"""Compile-stage pieces of the derivative kinds beyond plain forward and reverse mode.

``differentiate_hvp``: Hessian-vector products as forward mode over the reverse-mode
gradient, both produced by Enzyme in the same LLVM module:

1. the combined reverse-mode gradient of ``f`` (array arguments ``Duplicated``, the
   float return ``Active``), ``void grad(x, dx, ..., double seed)``;
2. that gradient renamed, made external and simplified (``default<O2>`` without loop
   transforms: it folds selects that forward mode would reject as mixed activity), then
   forward mode on it with ``x`` and ``dx`` ``Duplicated`` and everything else
   ``Const``: ``void hvp(x, v, dx, hv, ..., double seed)``; called with ``seed = 1`` it
   accumulates the gradient into ``dx`` and the Hessian-vector product ``H v`` into ``hv``.

Both calls run under the LLVM lock inside :func:`enzyme_py.compiler.compile_plan`, which
then builds the C entry point, optimises and emits the module as for any other plan.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ._ffi.enzyme import DiffeType
from ._ffi.llvm import Linkage
from ._llvm_extra import bind_extra

__all__ = ["differentiate_hvp", "differentiate_split", "split_reverse_layout"]

_DUP = (DiffeType.DUP_ARG, DiffeType.DUP_NONEED)
#: Run on the gradient before forward mode differentiates it: Enzyme's raw gradient has
#: selects between a constant 0 and an active value that forward mode rejects as mixed
#: activity; simplification folds them (no unrolling, as before any differentiation).
_SIMPLIFY = "default<O2>"


def differentiate_hvp(
    nat: Any, ctx: Any, fn: int, plan: Any, differentiate: Callable[..., tuple[bool, int]]
) -> tuple[bool, int]:
    """Forward-over-reverse for an ``hvp`` plan: ``(completed, function)`` as
    ``differentiate`` returns it (see the module docstring)."""
    from .compiler import FORWARD, REVERSE, ArgPlan, host_target_machine, run_pipeline

    lib = nat.llvm
    rev = replace(plan, mode=REVERSE, with_primal=False, width=1, extra=())
    completed, grad = differentiate(nat, ctx, fn, rev)
    if not completed or not grad:
        return completed, grad
    name = f"enzpy_gradient_of_{plan.function}".encode()
    lib.LLVMSetValueName2(grad, name, len(name))
    lib.LLVMSetLinkage(grad, Linkage.EXTERNAL)
    module = bind_extra(lib).LLVMGetGlobalParent(grad)
    run_pipeline(nat, module, _SIMPLIFY, host_target_machine(), loop_transforms=False)
    args: list[Any] = []
    for a in plan.args:
        if a.activity in _DUP:
            # the primal array and its gradient shadow both carry a tangent
            args += [ArgPlan("ptr", a.elem, DiffeType.DUP_ARG)] * 2
        else:
            args.append(ArgPlan(a.kind, a.elem, DiffeType.CONSTANT))
    args.append(ArgPlan(plan.ret_kind, None, DiffeType.CONSTANT))  # the seed
    fwd = replace(
        plan,
        mode=FORWARD,
        with_primal=False,
        args=tuple(args),
        ret_kind="void",
        ret_activity=DiffeType.CONSTANT,
        extra=(),
    )
    return differentiate(nat, ctx, grad, fwd)


def split_reverse_layout(plan: Any) -> tuple[tuple[str, ...], str, tuple[str, ...], tuple[str, ...]]:
    """The C signature of a split plan's reverse entry point ``<symbol>_reverse``:
    ``(params, result, out_fields, outputs)`` as in :class:`~enzyme_py.compiler.CompiledCode`.

    Parameters: each argument (its primal, then its shadow for ``Duplicated``), the seed of
    an ``Active`` return, then the tape (a pointer).  Results: the derivative of each
    ``Active`` argument, returned directly when there is one, else through an out-pointer.
    """
    params: list[str] = []
    for a in plan.args:
        params.append(a.kind)
        if a.activity in _DUP:
            params.append(a.kind)
    if plan.ret_activity == DiffeType.OUT_DIFF:
        params.append(plan.ret_kind)
    params.append("ptr")
    active = [(i, a.kind) for i, a in enumerate(plan.args) if a.activity == DiffeType.OUT_DIFF]
    outputs = tuple(f"d{i}" for i, _ in active)
    if not active:
        return tuple(params), "void", (), outputs
    if len(active) == 1:
        return tuple(params), active[0][1], (), outputs
    return tuple(params) + ("ptr",), "void", tuple(k for _, k in active), outputs


def _unbox_tape(lib: Any, ctx: Any, module: int, grad: int, tape_type: int, name: str) -> int:
    """A function like ``grad`` whose last parameter is the anonymous tape (a pointer to
    Enzyme's box holding the tape value, or NULL when nothing was recorded) instead of the
    tape value: it loads the value, frees the box and calls ``grad``.  When Enzyme made no
    tape type (``tape_type`` NULL, ``grad`` takes no tape), the pointer is only freed."""
    from ._ffi.llvm import TypeKind
    from ._refs import BuilderRef

    fty = lib.LLVMGlobalGetValueType(grad)
    n = lib.LLVMCountParamTypes(fty)
    ptys = (ctypes.c_void_p * (n + 1))()
    lib.LLVMGetParamTypes(fty, ptys)
    i8 = lib.LLVMInt8TypeInContext(ctx.handle)
    ptr = lib.LLVMPointerType(i8, 0)
    n_prefix = n - 1 if tape_type else n  # grad's parameters before its tape
    tape_param = ptys[n - 1] if tape_type else None
    ptys[n_prefix] = ptr
    new_ty = lib.LLVMFunctionType(lib.LLVMGetReturnType(fty), ptys, n_prefix + 1, 0)
    fn = lib.LLVMAddFunction(module, name.encode(), new_ty)
    free = lib.LLVMGetNamedFunction(module, b"free")
    free_ty = lib.LLVMFunctionType(
        lib.LLVMVoidTypeInContext(ctx.handle), (ctypes.c_void_p * 1)(ptr), 1, 0
    )
    if not free:
        free = lib.LLVMAddFunction(module, b"free", free_ty)
    with BuilderRef(lib.LLVMCreateBuilderInContext(ctx.handle)) as b:
        block = lib.LLVMAppendBasicBlockInContext(ctx.handle, fn, b"entry")
        lib.LLVMPositionBuilderAtEnd(b.handle, block)
        box = lib.LLVMGetParam(fn, n_prefix)
        values = [lib.LLVMGetParam(fn, i) for i in range(n_prefix)]
        if tape_param is not None:
            empty = (
                lib.LLVMGetTypeKind(tape_param) == TypeKind.STRUCT
                and lib.LLVMCountStructElementTypes(tape_param) == 0
            )
            if empty:  # nothing recorded: the box is NULL
                values.append(lib.LLVMConstNull(tape_param))
            else:
                values.append(lib.LLVMBuildLoad2(b.handle, tape_param, box, b"tape"))
        lib.LLVMBuildCall2(b.handle, free_ty, free, (ctypes.c_void_p * 1)(box), 1, b"")
        argv = (ctypes.c_void_p * max(n, 1))(*values)
        call = lib.LLVMBuildCall2(b.handle, fty, grad, argv, n, b"")
        if lib.LLVMGetTypeKind(lib.LLVMGetReturnType(fty)) == TypeKind.VOID:
            lib.LLVMBuildRetVoid(b.handle)
        else:
            lib.LLVMBuildRet(b.handle, call)
    return int(fn)


def differentiate_split(
    nat: Any,
    ctx: Any,
    module: int,
    fn: int,
    plan: Any,
    symbol: str,
    differentiate: Callable[..., tuple[bool, int]],
    entry_point: Callable[..., tuple[tuple[str, ...], str, tuple[str, ...]]],
) -> tuple[bool, int]:
    """Split reverse mode: the augmented forward pass and the reverse pass of ``fn``, both
    from one Enzyme logic, in this module.  Returns ``(completed, augmented forward)``;
    the reverse pass gets its own C entry point ``<symbol>_reverse`` (see
    :func:`split_reverse_layout`).

    The tape is anonymous (``forceAnonymousTape``): the augmented forward returns a
    pointer to memory Enzyme allocated, and the reverse pass, compiled with the tape's
    underlying type, reads and frees it (``freeMemory``).  A tape is therefore consumed
    by exactly one reverse call.
    """
    from .errors import CompileError

    lib = bind_extra(nat.llvm)
    made: dict[str, int] = {}

    def create(call: Any, request: Any) -> tuple[bool, Any]:
        prof = nat.profile
        ok, aug = prof.create_augmented(
            call,
            request,
            shadow_return_used=False,
            anonymous_tape=True,
        )
        if not ok or not aug:
            return ok, None
        aug_fn = nat.enzyme.EnzymeExtractFunctionFromAugmentation(aug)
        tape = nat.enzyme.EnzymeExtractUnderlyingTapeTypeFromAugmentation(aug)
        ok, grad = prof.create_gradient(
            call, replace(request, return_primal=False), tape_type=tape, augmented=aug
        )
        if not ok:
            return ok, None
        made["gradient"] = int(grad or 0)
        made["tape"] = int(tape or 0)
        return True, aug_fn

    completed, aug_fn = differentiate(nat, ctx, fn, plan, create)
    if not completed or not aug_fn:
        return completed, aug_fn
    grad = made.get("gradient", 0)
    if not grad:
        raise CompileError(f"Enzyme returned no reverse pass for {plan.function!r}")
    name = f"{symbol}_gradient".encode()
    lib.LLVMSetValueName2(grad, name, len(name))
    unboxed = _unbox_tape(lib, ctx, module, grad, made["tape"], f"{symbol}_unboxed")
    got = entry_point(nat, ctx, module, unboxed, f"{symbol}_reverse", seeded=False)
    want = split_reverse_layout(plan)[:3]
    if got != want:
        raise CompileError(
            f"Enzyme's reverse pass of {plan.function!r} has the C signature {got}, where "
            f"{want} was expected; this Enzyme build does not behave like its profile"
        )
    return True, aug_fn
