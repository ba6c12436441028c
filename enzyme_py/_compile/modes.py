"""Compile-stage pieces of the derivative kinds beyond plain forward and reverse mode.

Hessian-vector products (:func:`differentiate_hvp`) are forward mode over the reverse-mode
gradient, both produced by Enzyme in the same LLVM module:

1. the combined reverse-mode gradient of ``f`` (array arguments ``Duplicated``, the float
   return ``Active``), ``void grad(x, dx, ..., double seed)``;
2. that gradient renamed, made external and simplified (``default<O2>`` without loop
   transforms: it folds selects that forward mode would reject as mixed activity), then
   forward mode on it with ``x`` and ``dx`` ``Duplicated`` and everything else ``Const``:
   ``void hvp(x, v, dx, hv, ..., double seed)``; called with ``seed = 1`` it accumulates
   the gradient into ``dx`` and the Hessian-vector product ``H v`` into ``hv``.

Split reverse mode (:func:`differentiate_split`): the augmented forward pass and the
reverse pass from one Enzyme logic; the reverse pass gets its own C entry point
``<symbol>_reverse`` (see :func:`~.plan.split_reverse_layout`), taking the anonymous tape
as a pointer it frees.  A tape is therefore consumed by exactly one reverse call.
"""

from __future__ import annotations

from dataclasses import replace

from .._native import enzyme as native_enzyme
from .._native import transforms
from .._native.ffi.enzyme import DiffeType
from .._native.handles import ModuleRef
from .._native.target import host_target_machine
from ..errors import CompileError
from .plan import ArgPlan, Plan, split_reverse_layout

__all__ = ["differentiate_hvp", "differentiate_split"]

#: Run on the gradient before forward mode differentiates it (see the module docstring).
_SIMPLIFY = "default<O2>"


def differentiate_hvp(
    mod: ModuleRef, fn: int, plan: Plan, request: native_enzyme.Request
) -> tuple[bool, int]:
    """Forward-over-reverse for an ``hvp`` plan: ``(completed, function)``."""
    ctx = mod.context
    rev = replace(request, return_primal=False, width=1, overwritten=None)
    completed, grad = native_enzyme.differentiate(ctx, fn, rev, forward=False)
    if not completed or not grad:
        return completed, grad
    transforms.rename(grad, f"enzpy_gradient_of_{plan.function}")
    transforms.make_external(grad)
    mod.run_passes(_SIMPLIFY, host_target_machine(), loop_transforms=False)
    args: list[ArgPlan] = []
    for a in plan.args:
        if a.duplicated:
            # the primal array and its gradient shadow both carry a tangent
            args += [ArgPlan("ptr", a.elem, DiffeType.DUP_ARG)] * 2
        else:
            args.append(ArgPlan(a.kind, a.elem, DiffeType.CONSTANT))
    args.append(ArgPlan(plan.ret_kind, None, DiffeType.CONSTANT))  # the seed
    fwd = native_enzyme.Request(
        args=tuple(args),
        ret_kind="void",
        ret_activity=DiffeType.CONSTANT,
        width=plan.width,
        runtime_activity=plan.runtime_activity,
        strong_zero=plan.strong_zero,
        fast_math=plan.fast_math,
    )
    return native_enzyme.differentiate(ctx, grad, fwd, forward=True)


def differentiate_split(
    mod: ModuleRef, fn: int, plan: Plan, symbol: str, request: native_enzyme.Request
) -> tuple[bool, int]:
    """Split reverse mode: ``(completed, augmented forward function)``; the reverse pass
    is built as ``<symbol>_reverse`` in the same module."""
    completed, made = native_enzyme.differentiate_split(mod.context, fn, request)
    if not completed or made is None:
        return completed, 0
    transforms.rename(made.gradient, f"{symbol}_gradient")
    unboxed = transforms.unbox_tape(mod, made.gradient, made.tape_type, f"{symbol}_unboxed")
    got = transforms.build_entry(mod, unboxed, f"{symbol}_reverse", seeded=False)
    want = split_reverse_layout(plan)[:3]
    if got != want:
        raise CompileError(
            f"Enzyme's reverse pass of {plan.function!r} has the C signature {got}, where "
            f"{want} was expected; this Enzyme build does not behave like its profile"
        )
    return True, made.augmented
