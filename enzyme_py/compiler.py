"""The compile stage: a validated :class:`Plan` and a module's bitcode in, object code out.

Pipeline (all under the LLVM lock, in a fresh LLVM context that is discarded after)::

    bitcode -> module (host triple and data layout)
            -> Enzyme (reverse or forward mode; type trees from the plan), called
               through a setjmp trampoline (:mod:`enzyme_py._guard`)
            -> derivative renamed, internal; C-ABI entry point generated, external
               (Active return seeded with 1.0 inside; aggregates via an out-pointer)
            -> Enzyme's preprocessed clones erased, type analysis and logic freed
            -> every other definition internal; load/store alignment clamped to
               ``options().max_alignment``; ``llvm.loop.unroll.disable`` dropped
            -> verifier -> ``globaldce,`` + ``options().pipeline`` (``default<O2>``)
               for the host CPU (tuned per ``options().tune_cpu``) -> object code
               (code generator level 0 for small straight-line code; see
               :mod:`enzyme_py._tuning`)  => :class:`CompiledCode`

Any Enzyme ``CustomErrorHandler`` call or LLVM error diagnostic during a request makes it
fail with the matching :class:`~enzyme_py.errors.EnzymeError`; nothing is returned.
:class:`CompiledCode` is plain data (bytes and strings), so it can be cached on disk or
produced in another process; :mod:`enzyme_py.loader` loads it.
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import os
import secrets
from dataclasses import dataclass
from typing import Any

from . import config
from ._ffi.enzyme import CFnTypeInfo, ConcreteType, DiffeType, DiffRequest, IntList
from ._ffi.llvm import Linkage, Opcode, TypeKind
from ._irtypes import read_type
from ._library import LOCK, Native, Report, collecting, error_message, native, take_message
from ._llvm_extra import bind_extra, set_fast_math
from ._refs import (
    BuilderRef,
    ContextRef,
    EnzymeLogicRef,
    MemoryBufferRef,
    ModuleRef,
    PassBuilderOptionsRef,
    TargetDataRef,
    TargetMachineRef,
    TypeAnalysisRef,
    TypeTreeRef,
)
from ._tuning import apply_tuning, emit_level
from .errors import CompileError, IRParseError, error_class_for

__all__ = [
    "ArgPlan",
    "CompiledCode",
    "Plan",
    "compile_plan",
    "host_target_machine",
    "parse_bitcode",
    "prepare_module",
    "raise_for_reports",
    "run_pipeline",
    "verify",
    "write_bitcode",
]

PRIMAL = "primal"
REVERSE = "reverse"
FORWARD = "forward"
#: Hessian-vector product: forward mode over the reverse-mode gradient, in one module.
HVP = "hvp"
#: Split reverse mode: an augmented forward entry point (returns the tape) and a reverse
#: entry point ``<symbol>_reverse`` (consumes it), in one object.
SPLIT = "split"

_ELEMENT_CT = {
    "f64": ConcreteType.DOUBLE,
    "f32": ConcreteType.FLOAT,
    "i1": ConcreteType.INTEGER,
    "i8": ConcreteType.INTEGER,
    "i16": ConcreteType.INTEGER,
    "i32": ConcreteType.INTEGER,
    "i64": ConcreteType.INTEGER,
}


@dataclass(frozen=True)
class ArgPlan:
    """One parameter of a request: its LLVM kind, the element kind of the array passed
    for a pointer (``None`` otherwise) and its :class:`DiffeType` (CONSTANT for primal)."""

    kind: str
    elem: str | None
    activity: int


@dataclass(frozen=True)
class Plan:
    """A validated request: ``mode`` is ``primal``, ``reverse`` or ``forward``.

    ``ret_activity`` is a :class:`DiffeType` (Active return = OUT_DIFF, reverse only);
    ``with_primal`` asks for the primal return value too.

    ``width``: Enzyme's vector width (batched shadows are ``[width x T]`` arrays, passed
    to the entry point by pointer); ``runtime_activity``, ``strong_zero``, ``fast_math``:
    the mode flags (see :class:`enzyme_py.Mode`).  ``extra`` carries what the modes of
    :mod:`enzyme_py._parity_compile` need (``hvp``, ``split``); empty otherwise.
    """

    function: str
    mode: str
    with_primal: bool
    args: tuple[ArgPlan, ...]
    ret_kind: str
    ret_activity: int
    width: int = 1
    runtime_activity: bool = False
    strong_zero: bool = False
    fast_math: bool = True
    extra: tuple[tuple[str, object], ...] = ()

    def key(self) -> str:
        return repr(self)


@dataclass(frozen=True)
class CompiledCode:
    """Object code of one entry point and how to call it (plain data).

    The entry point ``symbol`` takes ``params`` (ctypes kinds, see
    :data:`enzyme_py._irtypes.CTYPES`) and returns ``result`` (a kind or ``void``).  When
    ``out_fields`` is not empty, the last parameter is a pointer to a C struct of those
    kinds that the entry point fills.  ``outputs`` names each result value in order
    (``result`` first, then the out fields): ``primal``, ``dret`` (tangent of the
    return) or ``d<i>`` (derivative of argument ``i``).
    """

    object_code: bytes
    symbol: str
    params: tuple[str, ...]
    result: str
    out_fields: tuple[str, ...]
    outputs: tuple[str, ...]
    plan: Plan


_counter = itertools.count()
#: Random per process: entry-point symbols stay unique when object code compiled by
#: another process (an isolation worker, the disk cache) is loaded here.
_PROCESS_TOKEN = secrets.token_hex(4)


# --------------------------------------------------------------------------- target


#: (host_cpu, codegen level) -> target machine; created once each, kept for the process.
_tms: dict[tuple[bool, int], TargetMachineRef] = {}


def host_target_machine(codegen_level: int | None = None) -> TargetMachineRef:
    """The process's target machine (host triple; host CPU and features unless
    ``options().host_cpu`` is false) for ``codegen_level`` (default
    ``options().codegen_level``).  Call under the LLVM lock."""
    opts = config.options()
    host = opts.host_cpu
    level = opts.codegen_level if codegen_level is None else codegen_level
    cached = _tms.get((host, level))
    if cached is not None:
        return cached
    nat = native()
    lib = nat.llvm
    target = ctypes.c_void_p()
    err = ctypes.c_void_p()
    triple = nat.triple.encode()
    if lib.LLVMGetTargetFromTriple(triple, ctypes.byref(target), ctypes.byref(err)):
        msg = take_message(lib, err.value)
        raise CompileError(f"LLVM has no target for {nat.triple}: {msg}")
    cpu = nat.cpu.encode() if host else b"generic"
    features = nat.features.encode() if host else b""
    tm = TargetMachineRef(lib.LLVMCreateTargetMachine(target, triple, cpu, features, level, 2, 0))
    _tms[(host, level)] = tm
    return tm


def prepare_module(nat: Native, module: int, tm: TargetMachineRef) -> None:
    """Give ``module`` the host triple and the target machine's data layout."""
    lib = nat.llvm
    lib.LLVMSetTarget(module, nat.triple.encode())
    with TargetDataRef(lib.LLVMCreateTargetDataLayout(tm.handle)) as td:
        lib.LLVMSetModuleDataLayout(module, td.handle)


def run_pipeline(
    nat: Native, module: int, pipeline: str, tm: TargetMachineRef, *, loop_transforms: bool
) -> None:
    """Run a new-pass-manager pipeline; ``loop_transforms=False`` keeps unrolling and
    vectorisation out (the pre-differentiation pipeline)."""
    if not pipeline:
        return
    lib = nat.llvm
    with PassBuilderOptionsRef(lib.LLVMCreatePassBuilderOptions()) as opts:
        flag = 1 if loop_transforms else 0
        lib.LLVMPassBuilderOptionsSetLoopUnrolling(opts.handle, flag)
        lib.LLVMPassBuilderOptionsSetLoopVectorization(opts.handle, flag)
        lib.LLVMPassBuilderOptionsSetSLPVectorization(opts.handle, flag)
        msg = error_message(
            lib, lib.LLVMRunPasses(module, pipeline.encode(), tm.handle, opts.handle)
        )
    if msg is not None:
        raise CompileError(f"LLVM pass pipeline {pipeline!r} failed: {msg}")


def parse_bitcode(nat: Native, context: ContextRef, data: bytes, name: str) -> ModuleRef:
    """Parse bitcode into ``context``; :class:`IRParseError` when it does not parse."""
    lib = nat.llvm
    mod = ctypes.c_void_p()
    with collecting() as reports, MemoryBufferRef.from_bytes(data, name) as buf:
        failed = lib.LLVMParseBitcodeInContext2(context.handle, buf.handle, ctypes.byref(mod))
    if failed or not mod.value:
        detail = "; ".join(r.message for r in reports) or "invalid bitcode"
        raise IRParseError(detail)
    return ModuleRef(mod.value, keep=context)


def write_bitcode(nat: Native, module: int) -> bytes:
    """The bitcode of ``module``."""
    with MemoryBufferRef(nat.llvm.LLVMWriteBitcodeToMemoryBuffer(module)) as buf:
        return buf.to_bytes()


def verify(nat: Native, module: int, what: str) -> None:
    """Run the IR verifier; :class:`CompileError` with its report on failure."""
    out = ctypes.c_void_p()
    failed = nat.llvm.LLVMVerifyModule(module, 2, ctypes.byref(out))  # LLVMReturnStatusAction
    msg = take_message(nat.llvm, out.value) or ""
    if failed:
        raise CompileError(f"the {what} failed LLVM's verifier", msg)


def raise_for_reports(reports: list[Report], function: str | None) -> None:
    """Raise the :class:`EnzymeError` subclass for the first report, if any."""
    if not reports:
        return
    first = next((r for r in reports if r.error_type is not None), reports[0])
    cls = error_class_for(first.error_type)
    raise cls(
        first.message,
        first.instruction,
        function=function,
        reports=tuple((r.error_type, r.message, r.instruction) for r in reports),
    )


# --------------------------------------------------------------------------- Enzyme


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


def _differentiate(
    nat: Native, ctx: ContextRef, fn: int, plan: Plan, create: Any = None
) -> tuple[bool, int]:
    """Ask Enzyme for the derivative of ``fn``: ``(completed, new function)``.

    ``create(call, request) -> (completed, function)`` replaces the profile's
    ``create_reverse``/``create_forward`` (split mode calls two entry points with the same
    logic and type analysis).  ``plan.extra`` may carry ``("overwritten", flags)``.

    ``completed`` is False when an error handler jumped out of Enzyme; the logic and
    type analysis are then abandoned (leaked) and the caller must abandon the context.
    """
    trees: list[TypeTreeRef] = []
    n = len(plan.args)
    over = dict(plan.extra).get("overwritten")  # split mode: one flag per argument
    logic = EnzymeLogicRef.create(False)
    ta = TypeAnalysisRef.create(logic)
    completed = False
    try:
        args = (ctypes.c_void_p * max(n, 1))(
            *(_type_tree(a.kind, a.elem, ctx, trees) for a in plan.args)
        )
        known = (IntList * max(n, 1))()
        info = CFnTypeInfo(
            ctypes.cast(args, ctypes.POINTER(ctypes.c_void_p)),
            _type_tree(plan.ret_kind, None, ctx, trees),
            ctypes.cast(known, ctypes.POINTER(IntList)),
        )
        request = DiffRequest(
            logic=logic.handle,
            function=fn,
            ret_activity=plan.ret_activity,
            arg_activities=tuple(a.activity for a in plan.args),
            type_analysis=ta.handle,
            return_primal=plan.with_primal and plan.ret_kind != "void",
            type_info=info,
            overwritten=tuple(over) if isinstance(over, tuple) else (False,) * n,
            runtime_activity=plan.runtime_activity,
            strong_zero=plan.strong_zero,
            width=plan.width,
        )
        set_fast_math(nat, plan.fast_math)
        if create is None:
            create = (
                nat.profile.create_reverse if plan.mode == REVERSE else nat.profile.create_forward
            )
        completed, result = create(nat.call_enzyme, request)
        if completed:
            nat.enzyme.EnzymeLogicErasePreprocessedFunctions(logic.handle)
    finally:
        for t in trees:
            t.close()
        if completed:
            ta.close()
            logic.close()
        else:
            ta.detach()
            logic.detach()
    return completed, int(result or 0)


# --------------------------------------------------------------------------- entry point


def _kind_of(nat: Native, ty: int) -> str:
    vt = read_type(nat.llvm, ty)
    if vt.kind == "unsupported":
        raise CompileError(f"cannot pass LLVM type {vt.text} through the C entry point")
    return vt.kind


_SIZE = {"f64": 8, "f32": 4, "i1": 1, "i8": 1, "i16": 2, "i32": 4, "i64": 8, "ptr": 8}


def _struct_offsets(kinds: tuple[str, ...]) -> tuple[int, ...]:
    """Byte offsets of a C struct of scalar ``kinds`` (natural alignment)."""
    offsets = []
    pos = 0
    for k in kinds:
        size = _SIZE[k]
        pos = (pos + size - 1) // size * size
        offsets.append(pos)
        pos += size
    return tuple(offsets)


def _leaves(lib: ctypes.CDLL, ty: int, path: tuple[int, ...] = ()) -> list[tuple[tuple[int, ...], int]]:
    """The scalar leaves of a (possibly nested struct/array) type: (index path, type)."""
    kind = lib.LLVMGetTypeKind(ty)
    if kind == TypeKind.STRUCT:
        out: list[tuple[tuple[int, ...], int]] = []
        for i in range(lib.LLVMCountStructElementTypes(ty)):
            out += _leaves(lib, lib.LLVMStructGetTypeAtIndex(ty, i), path + (i,))
        return out
    if kind == TypeKind.ARRAY:
        elem = lib.LLVMGetElementType(ty)
        out = []
        for i in range(lib.LLVMGetArrayLength(ty)):
            out += _leaves(lib, elem, path + (i,))
        return out
    return [(path, ty)]


def _extract(lib: ctypes.CDLL, b: int, value: int, path: tuple[int, ...]) -> int:
    for i in path:
        value = lib.LLVMBuildExtractValue(b, value, i, b"")
    return value


def _entry_point(
    nat: Native, ctx: ContextRef, module: int, target: int, symbol: str, *, seeded: bool = False
) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    """Build ``symbol``, a C-ABI function calling ``target``: same scalar parameters; an
    array parameter (a vector-mode shadow ``[w x T]``) is taken by pointer and loaded; a
    scalar return is returned as is, any aggregate is flattened to its scalar leaves and
    written through a trailing out-pointer.

    ``seeded``: ``target``'s last parameter is the seed of an Active return; the entry
    point does not take it and passes 1.0 (in every lane in vector mode).
    """
    lib = bind_extra(nat.llvm)
    fty = lib.LLVMGlobalGetValueType(target)
    n_target = lib.LLVMCountParamTypes(fty)
    ptys = (ctypes.c_void_p * (n_target + 1))()
    lib.LLVMGetParamTypes(fty, ptys)
    n = n_target - 1 if seeded else n_target
    seed_type = ptys[n] if seeded else None
    arrays: dict[int, int] = {}
    params: list[str] = []
    for i in range(n):
        if lib.LLVMGetTypeKind(ptys[i]) == TypeKind.ARRAY:
            arrays[i] = ptys[i]
            ptys[i] = lib.LLVMPointerType(ptys[i], 0)
            params.append("ptr")
        else:
            params.append(_kind_of(nat, ptys[i]))
    rty = lib.LLVMGetReturnType(fty)
    rkind = lib.LLVMGetTypeKind(rty)
    leaves = [] if rkind == TypeKind.VOID else _leaves(lib, rty)
    i8 = lib.LLVMInt8TypeInContext(ctx.handle)
    out_kinds: tuple[str, ...] = ()
    if rkind == TypeKind.VOID or not leaves:
        result, wrapper_ret = "void", lib.LLVMVoidTypeInContext(ctx.handle)
    elif len(leaves) == 1:
        result, wrapper_ret = _kind_of(nat, leaves[0][1]), leaves[0][1]
    else:
        out_kinds = tuple(_kind_of(nat, t) for _, t in leaves)
        result, wrapper_ret = "void", lib.LLVMVoidTypeInContext(ctx.handle)
        ptys[n] = lib.LLVMPointerType(i8, 0)
    nparams = n + (1 if out_kinds else 0)
    wty = lib.LLVMFunctionType(wrapper_ret, ptys, nparams, 0)
    wrapper = lib.LLVMAddFunction(module, symbol.encode(), wty)
    with BuilderRef(lib.LLVMCreateBuilderInContext(ctx.handle)) as b:
        block = lib.LLVMAppendBasicBlockInContext(ctx.handle, wrapper, b"entry")
        lib.LLVMPositionBuilderAtEnd(b.handle, block)
        values = []
        for i in range(n):
            v = lib.LLVMGetParam(wrapper, i)
            if i in arrays:
                v = lib.LLVMBuildLoad2(b.handle, arrays[i], v, b"")
            values.append(v)
        if seeded:
            if lib.LLVMGetTypeKind(seed_type) == TypeKind.ARRAY:
                elem = lib.LLVMGetElementType(seed_type)
                w = lib.LLVMGetArrayLength(seed_type)
                ones = (ctypes.c_void_p * w)(*[lib.LLVMConstReal(elem, 1.0)] * w)
                values.append(lib.LLVMConstArray(elem, ones, w))
            else:
                values.append(lib.LLVMConstReal(seed_type, 1.0))
        argv = (ctypes.c_void_p * max(n_target, 1))(*values)
        call = lib.LLVMBuildCall2(b.handle, fty, target, argv, n_target, b"")
        if result == "void" and not out_kinds:
            lib.LLVMBuildRetVoid(b.handle)
        elif not out_kinds:
            lib.LLVMBuildRet(b.handle, _extract(lib, b.handle, call, leaves[0][0]))
        else:
            out = lib.LLVMGetParam(wrapper, n)
            i64 = lib.LLVMInt64TypeInContext(ctx.handle)
            for (path, fty_i), off in zip(leaves, _struct_offsets(out_kinds)):
                value = _extract(lib, b.handle, call, path)
                idx = (ctypes.c_void_p * 1)(lib.LLVMConstInt(i64, off, 0))
                slot = lib.LLVMBuildGEP2(b.handle, i8, out, idx, 1, b"")
                slot = lib.LLVMBuildBitCast(b.handle, slot, lib.LLVMPointerType(fty_i, 0), b"")
                lib.LLVMBuildStore(b.handle, value, slot)
            lib.LLVMBuildRetVoid(b.handle)
    return tuple(params) + (("ptr",) if out_kinds else ()), result, out_kinds


def _finish_module(nat: Native, ctx: ContextRef, module: int, entry: str, max_align: int) -> None:
    """Internalise every definition but ``entry``; clamp alignments; drop the loop
    metadata that forbids unrolling (it was only wanted before differentiation)."""
    lib = nat.llvm
    loop_kind = lib.LLVMGetMDKindIDInContext(ctx.handle, b"llvm.loop", 9)
    fn = lib.LLVMGetFirstFunction(module)
    entry_b = entry.encode()
    size = ctypes.c_size_t()
    while fn:
        if not lib.LLVMIsDeclaration(fn):
            name = ctypes.string_at(lib.LLVMGetValueName2(fn, ctypes.byref(size)), size.value)
            if name != entry_b and name != entry_b + b"_reverse":  # split mode's 2nd entry
                lib.LLVMSetLinkage(fn, Linkage.INTERNAL)
            bb = lib.LLVMGetFirstBasicBlock(fn)
            while bb:
                inst = lib.LLVMGetFirstInstruction(bb)
                while inst:
                    op = lib.LLVMGetInstructionOpcode(inst)
                    if op == Opcode.LOAD or op == Opcode.STORE:
                        if lib.LLVMGetAlignment(inst) > max_align:
                            lib.LLVMSetAlignment(inst, max_align)
                    elif op == Opcode.BR:
                        md = lib.LLVMGetMetadata(inst, loop_kind)
                        if md and _forbids_unrolling(lib, md):
                            lib.LLVMSetMetadata(inst, loop_kind, None)
                    inst = lib.LLVMGetNextInstruction(inst)
                bb = lib.LLVMGetNextBasicBlock(bb)
        fn = lib.LLVMGetNextFunction(fn)


def _forbids_unrolling(lib: ctypes.CDLL, md: int) -> bool:
    n = lib.LLVMGetMDNodeNumOperands(md)
    ops = (ctypes.c_void_p * max(n, 1))()
    lib.LLVMGetMDNodeOperands(md, ops)
    length = ctypes.c_uint()
    for i in range(n):
        op = ops[i]
        if not op or op == md or not lib.LLVMIsAMDNode(op):
            continue
        if lib.LLVMGetMDNodeNumOperands(op) < 1:
            continue
        inner = (ctypes.c_void_p * lib.LLVMGetMDNodeNumOperands(op))()
        lib.LLVMGetMDNodeOperands(op, inner)
        if inner[0]:
            s = lib.LLVMGetMDString(inner[0], ctypes.byref(length))
            if s and ctypes.string_at(s, length.value) == b"llvm.loop.unroll.disable":
                return True
    return False


def _outputs(plan: Plan, result: str, out_fields: tuple[str, ...]) -> tuple[str, ...]:
    """Name the entry point's result values in Enzyme's order."""
    names: list[str] = []
    if plan.mode == PRIMAL:
        if plan.ret_kind != "void":
            names.append("primal")
    elif plan.mode == SPLIT:  # the augmented forward pass: tape, then the primal
        names.append("tape")
        if plan.with_primal and plan.ret_kind != "void":
            names.append("primal")
    elif plan.mode == FORWARD:
        if plan.with_primal and plan.ret_kind != "void":
            names.append("primal")
        if plan.ret_activity in (DiffeType.DUP_ARG, DiffeType.DUP_NONEED):
            names.append("dret")
    else:
        if plan.with_primal and plan.ret_kind != "void":
            names.append("primal")
        names.extend(
            f"d{i}" for i, a in enumerate(plan.args) if a.activity == DiffeType.OUT_DIFF
        )
    if plan.width > 1:  # vector mode: every derivative is [width x T], one name per lane
        names = [
            n if n == "primal" else f"{n}@{k}"
            for n in names
            for k in (range(1) if n == "primal" else range(plan.width))
        ]
    count = (0 if result == "void" else 1) + len(out_fields)
    if count != len(names):
        raise CompileError(
            f"Enzyme produced {count} result value(s) for {plan.function!r} where "
            f"{len(names)} ({', '.join(names) or 'none'}) were expected; this Enzyme "
            "build's C API does not behave like its profile"
        )
    return tuple(names)


def compile_plan(bitcode: bytes, content_hash: str, plan: Plan) -> CompiledCode:
    """Compile one request to object code (see the module docstring)."""
    nat = native()
    lib = nat.llvm
    opts = config.options()
    tag = hashlib.sha256(f"{content_hash}|{plan.key()}".encode()).hexdigest()[:16]
    # Unique across processes too (code may come from a worker or the disk cache).
    symbol = f"enzpy_{tag}_{_PROCESS_TOKEN}{os.getpid():x}_{next(_counter)}"
    with LOCK:
        tm = host_target_machine()
        ctx = ContextRef.create()
        try:
            with collecting() as reports:
                mod_ref = parse_bitcode(nat, ctx, bitcode, plan.function)
                try:
                    module = mod_ref.handle
                    prepare_module(nat, module, tm)
                    fn = lib.LLVMGetNamedFunction(module, plan.function.encode())
                    if not fn or lib.LLVMIsDeclaration(fn):
                        raise CompileError(f"function {plan.function!r} is not defined")
                    if plan.mode == PRIMAL:
                        target = fn
                    else:
                        if plan.mode == HVP:
                            from ._parity_compile import differentiate_hvp

                            completed, target = differentiate_hvp(nat, ctx, fn, plan, _differentiate)
                        elif plan.mode == SPLIT:
                            from ._parity_compile import differentiate_split

                            completed, target = differentiate_split(
                                nat, ctx, module, fn, plan, symbol, _differentiate, _entry_point
                            )
                        else:
                            completed, target = _differentiate(nat, ctx, fn, plan)
                        if not completed:
                            # Enzyme was abandoned mid-way: its objects may point into
                            # this module and context, so both are abandoned too.
                            mod_ref.detach()
                            ctx.detach()
                            if not reports:
                                reports.append(Report(None, "Enzyme stopped", None))
                        raise_for_reports(reports, plan.function)
                        if not target:
                            raise CompileError(
                                f"Enzyme returned no derivative for {plan.function!r}"
                            )
                        dname = f"{symbol}_impl".encode()
                        lib.LLVMSetValueName2(target, dname, len(dname))
                    seeded = plan.mode in (REVERSE, HVP) and plan.ret_activity == DiffeType.OUT_DIFF
                    params, result, out_fields = _entry_point(
                        nat, ctx, module, target, symbol, seeded=seeded
                    )
                    outputs = _outputs(plan, result, out_fields)
                    _finish_module(nat, ctx, module, symbol, opts.max_alignment)
                    if opts.host_cpu:  # host instructions, generic tuning (see _tuning)
                        apply_tuning(lib, ctx.handle, module, opts.tune_cpu)
                    verify(nat, module, f"derivative of {plan.function!r}")
                    # Drop what the entry point does not reach, then optimise.
                    pipeline = f"globaldce,{opts.pipeline}" if opts.pipeline else "globaldce"
                    run_pipeline(nat, module, pipeline, tm, loop_transforms=True)
                    raise_for_reports(reports, plan.function)
                    # Straight-line code: the fast code generator, same speed (see _tuning).
                    level = emit_level(lib, module, opts.codegen_level)
                    code = _emit(nat, module, host_target_machine(level))
                    raise_for_reports(reports, plan.function)
                finally:
                    mod_ref.close()
        finally:
            ctx.close()
    return CompiledCode(code, symbol, params, result, out_fields, outputs, plan)


def _emit(nat: Native, module: int, tm: TargetMachineRef) -> bytes:
    lib = nat.llvm
    err = ctypes.c_void_p()
    buf = ctypes.c_void_p()
    if lib.LLVMTargetMachineEmitToMemoryBuffer(
        tm.handle, module, 1, ctypes.byref(err), ctypes.byref(buf)
    ):
        raise CompileError("LLVM code generation failed", take_message(lib, err.value) or "")
    with MemoryBufferRef(buf.value) as mb:
        return mb.to_bytes()
