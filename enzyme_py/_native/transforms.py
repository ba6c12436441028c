"""Operations on the IR of a module being compiled: what the compile stage asks of LLVM
besides parsing, Enzyme and the pass pipeline.

* :func:`build_entry` — the C-ABI entry point around a (derivative) function;
* :func:`finish` — internalise, clamp alignments, drop pre-AD loop metadata;
* :func:`unbox_tape` — split mode's reverse pass taking Enzyme's boxed tape;
* :func:`typed_memsets` — zeroing ``llvm.memset`` calls of float buffers become typed
  zeroing loops Enzyme can type;
* :func:`rename`, :func:`make_external`, :func:`add_function_attribute`,
  :func:`set_rule_metadata` — small edits;
* :func:`inspect` — what a function reaches before Enzyme sees it (inline assembly,
  OpenMP, Enzyme's source-level interface, globals and how they are used), so that what
  Enzyme cannot handle is refused with a message instead of an abort;
* :func:`isolate_state` / :func:`state_module` — a module's mutable globals shared by all
  its compiled code objects, with shadows for the derivatives.

Every function works on handles of one module, with the LLVM lock taken inside the
binding; the caller holds :data:`~enzyme_py._native.ffi.LOCK` for the whole compilation.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import CompileError, UnsupportedError
from .ffi.llvm import Linkage, Opcode, TypeKind
from .handles import BuilderRef, ContextRef, ModuleRef, value_name
from .library import native
from .traps import FRAME_BYTES, TRAPPED
from .types import read_type

__all__ = [
    "GlobalUse",
    "ModuleFacts",
    "add_function_attribute",
    "build_entry",
    "check_registrations",
    "collect_constructors",
    "differentiated_functions",
    "enzyme_annotations",
    "fatal_calls",
    "finish",
    "infer_pointees",
    "inspect",
    "interface_calls",
    "interface_uses",
    "is_builtin_math",
    "isolate_state",
    "make_external",
    "redirect_exits",
    "rename",
    "scan_globals",
    "set_rule_metadata",
    "state_module",
    "typed_memsets",
    "unbox_tape",
    "uses_cxx_runtime",
    "uses_openmp",
    "uses_source_interface",
]

_FUNCTION_INDEX = 0xFFFFFFFF  # LLVMAttributeFunctionIndex
_SIZE = {"f64": 8, "f32": 4, "i1": 1, "i8": 1, "i16": 2, "i32": 4, "i64": 8, "ptr": 8}


def _lib() -> Any:
    return native().llvm


# --------------------------------------------------------------------------- small edits


def rename(fn: int, name: str) -> None:
    """Give the value ``fn`` the name ``name``."""
    data = name.encode()
    _lib().LLVMSetValueName2(fn, data, len(data))


def make_external(fn: int) -> None:
    _lib().LLVMSetLinkage(fn, Linkage.EXTERNAL)


def add_function_attribute(fn: int, context: ContextRef, key: str, value: str = "") -> None:
    """Add the string attribute ``key`` (``="value"``) to the function ``fn``."""
    lib = _lib()
    k, v = key.encode(), value.encode()
    attr = lib.LLVMCreateStringAttribute(context.handle, k, len(k), v, len(v))
    lib.LLVMAddAttributeAtIndex(fn, _FUNCTION_INDEX, attr)


def set_rule_metadata(target: int, context: ContextRef, key: str, rule: int) -> None:
    """Attach ``!key !{ptr @rule}`` to the function ``target`` (Enzyme's custom-rule
    metadata: ``enzyme_derivative``, ``enzyme_augment``, ``enzyme_gradient``)."""
    lib = _lib()
    md = (ctypes.c_void_p * 1)(lib.LLVMValueAsMetadata(rule))
    node = lib.LLVMMDNodeInContext2(context.handle, md, 1)
    kind_id = lib.LLVMGetMDKindIDInContext(context.handle, key.encode(), len(key))
    lib.LLVMGlobalSetMetadata(target, kind_id, node)


# --------------------------------------------------------------------------- entry point


def _kind_of(ty: int) -> str:
    vt = read_type(ty)
    if vt.kind == "unsupported":
        raise CompileError(f"cannot pass LLVM type {vt.text} through the C entry point")
    return vt.kind


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


def _leaves(ty: int, path: tuple[int, ...] = ()) -> list[tuple[tuple[int, ...], int]]:
    """The scalar leaves of a (possibly nested struct/array) type: (index path, type)."""
    lib = _lib()
    kind = lib.LLVMGetTypeKind(ty)
    if kind == TypeKind.STRUCT:
        out: list[tuple[tuple[int, ...], int]] = []
        for i in range(lib.LLVMCountStructElementTypes(ty)):
            out += _leaves(lib.LLVMStructGetTypeAtIndex(ty, i), path + (i,))
        return out
    if kind == TypeKind.ARRAY:
        elem = lib.LLVMGetElementType(ty)
        out = []
        for i in range(lib.LLVMGetArrayLength(ty)):
            out += _leaves(elem, path + (i,))
        return out
    return [(path, ty)]


def _extract(b: int, value: int, path: tuple[int, ...]) -> int:
    lib = _lib()
    for i in path:
        value = lib.LLVMBuildExtractValue(b, value, i, b"")
    return value


def _param_types(fn: int) -> tuple[int, int, Any]:
    """``(function type, parameter count, a ctypes array of the parameter types)``."""
    lib = _lib()
    fty = lib.LLVMGlobalGetValueType(fn)
    n = lib.LLVMCountParamTypes(fty)
    ptys = (ctypes.c_void_p * (n + 1))()
    lib.LLVMGetParamTypes(fty, ptys)
    return fty, n, ptys


def build_entry(
    module: ModuleRef,
    target: int,
    symbol: str,
    *,
    seeded: bool = False,
    zero_first: Sequence[int] = (),
    trap: bool = False,
) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    """Build ``symbol``, a C-ABI function calling ``target``: ``(params, result, out_fields)``.

    Same scalar parameters; an array parameter (a vector-mode shadow ``[w x T]``) is taken
    by pointer and loaded; a scalar return is returned as is; any aggregate is flattened to
    its scalar leaves and written through a trailing out-pointer (``out_fields``).
    ``seeded``: ``target``'s last parameter is the seed of an Active return; the entry does
    not take it and passes 1.0 (in every lane in vector mode).  ``zero_first``: globals
    (shadow globals) stored zero before the call.  ``trap``: the entry takes a last
    parameter, the status block of :mod:`enzyme_py._native.traps`, and sets up the frame
    an ``exit()``/``abort()`` of the code jumps back to (it then returns zero).
    """
    lib = _lib()
    ctx = module.context
    fty, n_target, ptys = _param_types(target)
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
            params.append(_kind_of(ptys[i]))
    rty = lib.LLVMGetReturnType(fty)
    rkind = lib.LLVMGetTypeKind(rty)
    leaves = [] if rkind == TypeKind.VOID else _leaves(rty)
    i8 = lib.LLVMInt8TypeInContext(ctx.handle)
    out_kinds: tuple[str, ...] = ()
    if rkind == TypeKind.VOID or not leaves:
        result, wrapper_ret = "void", lib.LLVMVoidTypeInContext(ctx.handle)
    elif len(leaves) == 1:
        result, wrapper_ret = _kind_of(leaves[0][1]), leaves[0][1]
    else:
        out_kinds = tuple(_kind_of(t) for _, t in leaves)
        result, wrapper_ret = "void", lib.LLVMVoidTypeInContext(ctx.handle)
    ptr = lib.LLVMPointerType(i8, 0)
    wparams = [ptys[i] for i in range(n)] + ([ptr] if out_kinds else []) + ([ptr] if trap else [])
    wty = lib.LLVMFunctionType(wrapper_ret, (ctypes.c_void_p * max(len(wparams), 1))(*wparams), len(wparams), 0)
    wrapper = lib.LLVMAddFunction(module.handle, symbol.encode(), wty)
    with BuilderRef.create(ctx) as b:
        block = lib.LLVMAppendBasicBlockInContext(ctx.handle, wrapper, b"entry")
        lib.LLVMPositionBuilderAtEnd(b.handle, block)
        frame = _trap_frame(module, b.handle, wrapper, wrapper_ret, len(wparams) - 1) if trap else None
        for g in zero_first:
            lib.LLVMBuildStore(b.handle, lib.LLVMConstNull(lib.LLVMGlobalGetValueType(g)), g)
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
        if frame is not None:
            _trap_leave(module, b.handle, frame)
        if result == "void" and not out_kinds:
            lib.LLVMBuildRetVoid(b.handle)
        elif not out_kinds:
            lib.LLVMBuildRet(b.handle, _extract(b.handle, call, leaves[0][0]))
        else:
            out = lib.LLVMGetParam(wrapper, n)
            i64 = lib.LLVMInt64TypeInContext(ctx.handle)
            for (path, leaf_ty), off in zip(leaves, _struct_offsets(out_kinds)):
                value = _extract(b.handle, call, path)
                idx = (ctypes.c_void_p * 1)(lib.LLVMConstInt(i64, off, 0))
                slot = lib.LLVMBuildGEP2(b.handle, i8, out, idx, 1, b"")
                slot = lib.LLVMBuildBitCast(b.handle, slot, lib.LLVMPointerType(leaf_ty, 0), b"")
                lib.LLVMBuildStore(b.handle, value, slot)
            lib.LLVMBuildRetVoid(b.handle)
    return tuple(params) + (("ptr",) if out_kinds else ()) + (("ptr",) if trap else ()), result, out_kinds


def _declare(module: ModuleRef, name: str, ret: int, params: Sequence[int]) -> tuple[int, int]:
    """``(function, its type)``: the declaration of ``name`` (added when missing)."""
    lib = _lib()
    fty = lib.LLVMFunctionType(ret, (ctypes.c_void_p * max(len(params), 1))(*params), len(params), 0)
    fn = lib.LLVMGetNamedFunction(module.handle, name.encode())
    if not fn:
        fn = lib.LLVMAddFunction(module.handle, name.encode(), fty)
    return int(fn), int(fty)


def _trap_frame(module: ModuleRef, b: int, wrapper: int, ret: int, status_index: int) -> int:
    """At the start of an entry: the frame an ``exit()``/``abort()`` jumps back to (see
    :mod:`enzyme_py._native.traps`); the builder is left in the block that runs the
    function; the jump lands in a block that returns zero."""
    lib = _lib()
    ctx = module.context.handle
    i8 = lib.LLVMInt8TypeInContext(ctx)
    i32 = lib.LLVMInt32TypeInContext(ctx)
    i64 = lib.LLVMInt64TypeInContext(ctx)
    ptr = lib.LLVMPointerType(i8, 0)
    frame = lib.LLVMBuildAlloca(b, lib.LLVMArrayType(i64, FRAME_BYTES // 8), b"enzpy.frame")
    lib.LLVMSetAlignment(frame, 16)
    slot = lib.LLVMBuildGEP2(b, i8, frame, (ctypes.c_void_p * 1)(lib.LLVMConstInt(i64, 512, 0)), 1, b"")
    lib.LLVMBuildStore(b, lib.LLVMGetParam(wrapper, status_index), slot)
    enter, enter_ty = _declare(module, "enzpy_trap_enter", ptr, [ptr])
    lib.LLVMBuildCall2(b, enter_ty, enter, (ctypes.c_void_p * 1)(frame), 1, b"")
    setjmp, setjmp_ty = _declare(module, "_setjmp", i32, [ptr])
    twice = lib.LLVMGetEnumAttributeKindForName(b"returns_twice", 13)
    attr = lib.LLVMCreateEnumAttribute(ctx, twice, 0)
    lib.LLVMAddAttributeAtIndex(setjmp, _FUNCTION_INDEX, attr)
    jumped = lib.LLVMBuildCall2(b, setjmp_ty, setjmp, (ctypes.c_void_p * 1)(frame), 1, b"enzpy.jumped")
    lib.LLVMAddCallSiteAttribute(jumped, _FUNCTION_INDEX, attr)
    run = lib.LLVMAppendBasicBlockInContext(ctx, wrapper, b"run")
    back = lib.LLVMAppendBasicBlockInContext(ctx, wrapper, b"trapped")
    zero = lib.LLVMBuildICmp(b, 32, jumped, lib.LLVMConstInt(i32, 0, 0), b"")  # LLVMIntEQ
    lib.LLVMBuildCondBr(b, zero, run, back)
    lib.LLVMPositionBuilderAtEnd(b, back)
    _trap_leave(module, b, frame)
    if lib.LLVMGetTypeKind(ret) == TypeKind.VOID:
        lib.LLVMBuildRetVoid(b)
    else:
        lib.LLVMBuildRet(b, lib.LLVMConstNull(ret))
    lib.LLVMPositionBuilderAtEnd(b, run)
    return int(frame)


def _trap_leave(module: ModuleRef, b: int, frame: int) -> None:
    lib = _lib()
    ctx = module.context.handle
    ptr = lib.LLVMPointerType(lib.LLVMInt8TypeInContext(ctx), 0)
    leave, leave_ty = _declare(module, "enzpy_trap_leave", lib.LLVMVoidTypeInContext(ctx), [ptr])
    lib.LLVMBuildCall2(b, leave_ty, leave, (ctypes.c_void_p * 1)(frame), 1, b"")


def collect_constructors(module: ModuleRef, name: str) -> bool:
    """Turn the module's static constructors (``llvm.global_ctors``, what C++ globals
    with constructors need) into one external function ``name`` that calls them in
    priority order, to be called once when the code loads; whether there were any.

    Registrations of destructors (``__cxa_atexit``, ``atexit``) become no-ops: they would
    call into JIT memory at process exit, after the code may have been unloaded, so
    destructors of static objects do not run; ``__dso_handle`` gets a local definition.
    """
    lib = _lib()
    g = lib.LLVMGetNamedGlobal(module.handle, b"llvm.global_ctors")
    init = lib.LLVMGetInitializer(g) if g else None
    ctors: list[tuple[int, int, int]] = []
    if init and lib.LLVMIsAConstantArray(init):
        for i in range(lib.LLVMGetNumOperands(init)):
            entry = lib.LLVMGetOperand(init, i)
            if not lib.LLVMIsAConstantStruct(entry) or lib.LLVMGetNumOperands(entry) < 2:
                continue
            prio = int(lib.LLVMConstIntGetSExtValue(lib.LLVMGetOperand(entry, 0)))
            fn = _strip(lib.LLVMGetOperand(entry, 1), aggregates=False)
            if lib.LLVMIsAFunction(fn):
                ctors.append((prio, i, fn))
    if g:
        lib.LLVMDeleteGlobal(g)
    if not ctors:
        return False
    ctx = module.context.handle
    void = lib.LLVMVoidTypeInContext(ctx)
    for stub, ret in (("__cxa_atexit", "i32"), ("atexit", "i32")):
        fn = lib.LLVMGetNamedFunction(module.handle, stub.encode())
        if fn and lib.LLVMIsDeclaration(fn):
            rty = lib.LLVMGetReturnType(lib.LLVMGlobalGetValueType(fn))
            with BuilderRef.create(module.context) as b:
                lib.LLVMPositionBuilderAtEnd(b.handle, lib.LLVMAppendBasicBlockInContext(ctx, fn, b"entry"))
                if lib.LLVMGetTypeKind(rty) == TypeKind.VOID:
                    lib.LLVMBuildRetVoid(b.handle)
                else:
                    lib.LLVMBuildRet(b.handle, lib.LLVMConstNull(rty))
            lib.LLVMSetLinkage(fn, Linkage.INTERNAL)
    dso = lib.LLVMGetNamedGlobal(module.handle, b"__dso_handle")
    if dso and lib.LLVMIsDeclaration(dso):
        lib.LLVMSetInitializer(dso, lib.LLVMConstNull(lib.LLVMGlobalGetValueType(dso)))
        lib.LLVMSetLinkage(dso, Linkage.INTERNAL)
    fty = lib.LLVMFunctionType(void, None, 0, 0)
    runner = lib.LLVMAddFunction(module.handle, name.encode(), fty)
    with BuilderRef.create(module.context) as b:
        lib.LLVMPositionBuilderAtEnd(b.handle, lib.LLVMAppendBasicBlockInContext(ctx, runner, b"entry"))
        for _prio, _i, fn in sorted(ctors):
            cty = lib.LLVMGlobalGetValueType(fn)
            lib.LLVMBuildCall2(b.handle, cty, fn, None, 0, b"")
        lib.LLVMBuildRetVoid(b.handle)
    return True


def redirect_exits(module: ModuleRef) -> bool:
    """Rename the declarations of the process-ending functions the code calls
    (:data:`enzyme_py._native.traps.TRAPPED`) to the trap helpers; whether any was (the
    entry point must then be built with ``trap=True``)."""
    lib = _lib()
    found = False
    for name, helper in TRAPPED.items():
        fn = lib.LLVMGetNamedFunction(module.handle, name.encode())
        if not fn or not lib.LLVMIsDeclaration(fn) or not lib.LLVMGetFirstUse(fn):
            continue
        found = True
        existing = lib.LLVMGetNamedFunction(module.handle, helper.encode())
        if existing:
            lib.LLVMReplaceAllUsesWith(fn, existing)
            lib.LLVMDeleteFunction(fn)
        else:
            rename(fn, helper)
    return found


# --------------------------------------------------------------------------- finishing


def _functions(module: ModuleRef) -> Iterator[int]:
    lib = _lib()
    fn = lib.LLVMGetFirstFunction(module.handle)
    while fn:
        yield fn
        fn = lib.LLVMGetNextFunction(fn)


def _instructions(fn: int) -> Iterator[int]:
    lib = _lib()
    bb = lib.LLVMGetFirstBasicBlock(fn)
    while bb:
        inst = lib.LLVMGetFirstInstruction(bb)
        while inst:
            yield inst
            inst = lib.LLVMGetNextInstruction(inst)
        bb = lib.LLVMGetNextBasicBlock(bb)


def _globals(module: ModuleRef) -> Iterator[int]:
    lib = _lib()
    g = lib.LLVMGetFirstGlobal(module.handle)
    while g:
        yield g
        g = lib.LLVMGetNextGlobal(g)


def _forbids_unrolling(md: int) -> bool:
    lib = _lib()
    n = lib.LLVMGetMDNodeNumOperands(md)
    ops = (ctypes.c_void_p * max(n, 1))()
    lib.LLVMGetMDNodeOperands(md, ops)
    length = ctypes.c_uint()
    for i in range(n):
        op = ops[i]
        if not op or op == md or not lib.LLVMIsAMDNode(op):
            continue
        count = lib.LLVMGetMDNodeNumOperands(op)
        if count < 1:
            continue
        inner = (ctypes.c_void_p * count)()
        lib.LLVMGetMDNodeOperands(op, inner)
        if inner[0]:
            s = lib.LLVMGetMDString(inner[0], ctypes.byref(length))
            if s and ctypes.string_at(s, length.value) == b"llvm.loop.unroll.disable":
                return True
    return False


def finish(module: ModuleRef, keep: Iterable[str], max_align: int) -> None:
    """Internalise every function definition but those named in ``keep``; clamp load and
    store alignments to ``max_align``; drop the loop metadata that forbids unrolling (it
    was only wanted before differentiation)."""
    lib = _lib()
    kept = {k.encode() for k in keep}
    loop_kind = lib.LLVMGetMDKindIDInContext(module.context.handle, b"llvm.loop", 9)
    size = ctypes.c_size_t()
    for fn in _functions(module):
        if lib.LLVMIsDeclaration(fn):
            continue
        name = ctypes.string_at(lib.LLVMGetValueName2(fn, ctypes.byref(size)), size.value)
        if name not in kept:
            lib.LLVMSetLinkage(fn, Linkage.INTERNAL)
        for inst in _instructions(fn):
            op = lib.LLVMGetInstructionOpcode(inst)
            if op == Opcode.LOAD or op == Opcode.STORE:
                if lib.LLVMGetAlignment(inst) > max_align:
                    lib.LLVMSetAlignment(inst, max_align)
            elif op == Opcode.BR:
                md = lib.LLVMGetMetadata(inst, loop_kind)
                if md and _forbids_unrolling(md):
                    lib.LLVMSetMetadata(inst, loop_kind, None)


def straight_line_size(module: ModuleRef, limit: int) -> int | None:
    """The number of instructions of a module whose defined functions are each one basic
    block without calls, or None when it is not such a module or exceeds ``limit``."""
    lib = _lib()
    count = 0
    for fn in _functions(module):
        if lib.LLVMIsDeclaration(fn):
            continue
        bb = lib.LLVMGetFirstBasicBlock(fn)
        if not bb or lib.LLVMGetNextBasicBlock(bb):
            return None
        inst = lib.LLVMGetFirstInstruction(bb)
        while inst:
            count += 1
            if count > limit or lib.LLVMGetInstructionOpcode(inst) == Opcode.CALL:
                return None
            inst = lib.LLVMGetNextInstruction(inst)
    return count


# --------------------------------------------------------------------------- split mode


def unbox_tape(module: ModuleRef, grad: int, tape_type: int, name: str) -> int:
    """A function like ``grad`` whose last parameter is the anonymous tape (a pointer to
    Enzyme's box holding the tape value, or NULL when nothing was recorded) instead of the
    tape value: it loads the value, frees the box and calls ``grad``.  When Enzyme made no
    tape type (``tape_type`` 0, ``grad`` takes no tape), the pointer is only freed."""
    lib = _lib()
    ctx = module.context
    fty, n, ptys = _param_types(grad)
    i8 = lib.LLVMInt8TypeInContext(ctx.handle)
    ptr = lib.LLVMPointerType(i8, 0)
    n_prefix = n - 1 if tape_type else n  # grad's parameters before its tape
    tape_param = ptys[n - 1] if tape_type else None
    ptys[n_prefix] = ptr
    new_ty = lib.LLVMFunctionType(lib.LLVMGetReturnType(fty), ptys, n_prefix + 1, 0)
    fn = lib.LLVMAddFunction(module.handle, name.encode(), new_ty)
    free = lib.LLVMGetNamedFunction(module.handle, b"free")
    free_ty = lib.LLVMFunctionType(lib.LLVMVoidTypeInContext(ctx.handle), (ctypes.c_void_p * 1)(ptr), 1, 0)
    if not free:
        free = lib.LLVMAddFunction(module.handle, b"free", free_ty)
    with BuilderRef.create(ctx) as b:
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


# --------------------------------------------------------------------------- inspection

#: Calls that mean "Enzyme's source-level interface" (handled by Enzyme's own pass).
SOURCE_INTERFACE_PREFIXES = ("__enzyme_",)


def is_interface_name(name: str) -> bool:
    """Whether ``name`` is one of Enzyme's source-level entry points (``__enzyme_autodiff``
    and its kin; C++ templates of them are mangled, so the key is contained, as Enzyme's
    pass matches it)."""
    return any(p in name for p in SOURCE_INTERFACE_PREFIXES)
#: Globals that register custom rules in C source.
REGISTRATION_PREFIXES = (
    "__enzyme_register_gradient",
    "__enzyme_register_derivative",
    "__enzyme_register_splitderivative",
    "__enzyme_inactivefn",
    "__enzyme_inactive_global",
    "__enzyme_function_like",
    "__enzyme_allocation_like",
    "__enzyme_nofree",
    "__enzyme_sparse_accumulate",
    "__enzyme_shouldrecompute",
)
#: OpenMP's runtime entry that forks a parallel region.
OPENMP_FORK = ("__kmpc_fork_call", "__kmpc_fork_teams", "__kmpc_fork_call_if")
#: C math functions Enzyme differentiates by its own built-in rules (its list of libm
#: functions; each also with the ``f`` and ``l`` suffixes).  A rule registered for one of
#: them is silently not used (measured with this Enzyme on 22 of them), so it is refused.
BUILTIN_MATH = frozenset(
    ["sinc", "sincn", "cos", "sin", "tan", "acos", "asin", "atan", "atan2", "cosh", "sinh", "tanh", "acosh", "asinh", "atanh", "exp", "exp2", "exp10", "log", "log10", "expm1", "log1p", "log2", "logb", "pow", "sqrt", "cbrt", "hypot", "erf", "erfi", "erfc", "erfinv", "j0", "j1", "jn", "y0", "y1", "yn", "tgamma", "lgamma", "logabsgamma", "ceil", "floor", "fmod", "trunc", "round", "rint", "nearbyint", "remainder", "copysign", "nextafter", "nexttoward", "fdim", "fmax", "fmin", "fabs", "fma", "ilogb", "scalbn", "scalbln", "powi", "cabs", "ldexp", "lround", "llround", "lrint", "llrint"]
)


def is_builtin_math(name: str) -> bool:
    """Whether Enzyme has a built-in rule for the C function ``name`` (see :data:`BUILTIN_MATH`)."""
    return name in BUILTIN_MATH or (name[-1:] in ("f", "l") and name[:-1] in BUILTIN_MATH)


#: C functions whose derivative this Enzyme cannot build and, instead of reporting it,
#: stops the process on (``llvm_unreachable`` in its type utilities: it reads the result of
#: ``lgamma`` as the pair ``lgamma_r`` returns).  Refused before Enzyme runs.
FATAL_CALLS: dict[str, str] = {
    name: "this Enzyme ends the process on lgamma's derivative instead of reporting an error"
    for name in ("lgamma", "lgammaf", "lgammal")
}


@dataclass
class GlobalUse:
    """How one global variable defined in the module is used."""

    name: str
    handle: int
    constant: bool
    written: bool = False
    has_pointers: bool = False
    value_type: int = 0
    text_type: str = ""
    #: its initial value holds the address of a function or another global
    refers: bool = False


@dataclass
class ModuleFacts:
    """What :func:`inspect` found, for the functions reachable from the root."""

    reachable: set[str] = field(default_factory=set)
    inline_asm: list[str] = field(default_factory=list)  # functions using inline assembly
    openmp: list[str] = field(default_factory=list)  # functions forking OpenMP regions
    source_interface: list[tuple[str, str]] = field(default_factory=list)  # (function, callee)
    registrations: list[str] = field(default_factory=list)  # registration globals
    globals: dict[str, GlobalUse] = field(default_factory=dict)  # defined globals
    used_globals: set[str] = field(default_factory=set)  # referenced from reachable code


def _type_has_pointers(ty: int) -> bool:
    lib = _lib()
    kind = lib.LLVMGetTypeKind(ty)
    if kind == TypeKind.POINTER:
        return True
    if kind == TypeKind.STRUCT:
        return any(_type_has_pointers(lib.LLVMStructGetTypeAtIndex(ty, i)) for i in range(lib.LLVMCountStructElementTypes(ty)))
    if kind in (TypeKind.ARRAY, TypeKind.VECTOR):
        return _type_has_pointers(lib.LLVMGetElementType(ty))
    return False


def _is_written(value: int, depth: int = 0) -> bool:
    """Whether memory reached through the pointer ``value`` may be written: any use
    other than loading from it (through GEPs and casts, constant or not) counts."""
    lib = _lib()
    if depth > 64:
        return True
    use = lib.LLVMGetFirstUse(value)
    while use:
        user = lib.LLVMGetUser(use)
        if lib.LLVMIsAInstruction(user):
            op = lib.LLVMGetInstructionOpcode(user)
        elif lib.LLVMIsAConstantExpr(user):
            op = lib.LLVMGetConstOpcode(user)
        else:
            return True  # a constant initializer holding the address: it escapes
        if op == Opcode.LOAD:
            pass
        elif op in (Opcode.GEP, Opcode.BITCAST, Opcode.ADDRSPACE_CAST):
            if lib.LLVMIsAInstruction(user) and op == Opcode.GEP and lib.LLVMGetOperand(user, 0) != value:
                return True  # the address used as an index: escapes
            if _is_written(user, depth + 1):
                return True
        else:
            return True  # a store (of or into it), a call argument, a ptrtoint, ...
        use = lib.LLVMGetNextUse(use)
    return False


def _operands_globals(inst: int, seen: set[int], out: set[int], lib: Any, depth: int = 0) -> None:
    n = lib.LLVMGetNumOperands(inst)
    for i in range(n):
        op = lib.LLVMGetOperand(inst, i)
        if not op or op in seen:
            continue
        if lib.LLVMIsAGlobalVariable(op) or lib.LLVMIsAFunction(op):
            out.add(int(op))
        elif lib.LLVMIsAConstant(op) and depth < 32 and lib.LLVMGetNumOperands(op) > 0:
            seen.add(int(op))
            _operands_globals(op, seen, out, lib, depth + 1)


def scan_globals(module: ModuleRef) -> dict[str, GlobalUse]:
    """The global variables the module defines and how they are used."""
    lib = _lib()
    out: dict[str, GlobalUse] = {}
    for g in _globals(module):
        name = value_name(g)
        if lib.LLVMIsDeclaration(g) or name.startswith("llvm."):
            continue
        vt = lib.LLVMGlobalGetValueType(g)
        use = GlobalUse(name, int(g), bool(lib.LLVMIsGlobalConstant(g)), value_type=int(vt))
        if not use.constant:
            use.written = _is_written(g)
            use.has_pointers = _type_has_pointers(vt)
            use.text_type = read_type(vt).text
            init = lib.LLVMGetInitializer(g)
            if init and use.has_pointers:
                refs: set[int] = set()
                _operands_globals(init, set(), refs, lib)
                use.refers = bool(refs) or bool(lib.LLVMIsAGlobalVariable(init) or lib.LLVMIsAFunction(init))
        out[name] = use
    return out


def interface_uses(module: ModuleRef) -> tuple[list[str], list[str]]:
    """``(functions, globals)`` of Enzyme's source-level interface the module uses:
    ``__enzyme_*`` functions it declares (``__enzyme_autodiff``, ...) and the globals
    that register rules or inactive functions (``__enzyme_register_gradient_*``, ...)."""
    lib = _lib()
    calls = [
        value_name(fn)
        for fn in _functions(module)
        if lib.LLVMIsDeclaration(fn) and is_interface_name(value_name(fn))
    ]
    regs = [
        name
        for name in map(value_name, _globals(module))
        if any(key in name for key in REGISTRATION_PREFIXES)  # mangled in C++: contained
    ]
    return calls, regs


def enzyme_annotations(module: ModuleRef) -> list[str]:
    """The ``enzyme_*`` annotations in ``llvm.global.annotations`` (what
    ``__attribute__((annotate("enzyme_inactive")))`` and enzyme_py's rewriting of
    Enzyme's clang attributes leave), which Enzyme's pass reads."""
    lib = _lib()
    g = lib.LLVMGetNamedGlobal(module.handle, b"llvm.global.annotations")
    init = lib.LLVMGetInitializer(g) if g else None
    if not init or not lib.LLVMIsAConstantArray(init):
        return []
    out = []
    for i in range(lib.LLVMGetNumOperands(init)):
        entry = lib.LLVMGetOperand(init, i)
        if not lib.LLVMIsAConstantStruct(entry) or lib.LLVMGetNumOperands(entry) < 2:
            continue
        text = _c_string(lib.LLVMGetOperand(entry, 1))
        if text and text.startswith("enzyme_"):
            out.append(text)
    return out


def uses_source_interface(module: ModuleRef) -> bool:
    """Whether Enzyme's own pass has work in ``module``: ``__enzyme_*`` calls,
    registration globals or ``enzyme_*`` annotations."""
    regs = interface_uses(module)[1]
    return bool(interface_calls(module) or regs or enzyme_annotations(module))


def uses_openmp(module: ModuleRef) -> bool:
    """Whether the module calls OpenMP's runtime (``__kmpc_*``, ``omp_*``)."""
    lib = _lib()
    for fn in _functions(module):
        if lib.LLVMIsDeclaration(fn):
            name = value_name(fn)
            if name.startswith(("__kmpc_", "omp_")):
                return True
    return False


def uses_cxx_runtime(module: ModuleRef) -> bool:
    """Whether the module declares functions of a C++ runtime (mangled names, the
    exception and allocation ABI), which the JIT resolves from libstdc++."""
    lib = _lib()
    for fn in _functions(module):
        if lib.LLVMIsDeclaration(fn):
            name = value_name(fn)
            if name.startswith(("_Z", "__cxa_", "__gxx_personality")):
                return True
    return False


def fatal_calls(module: ModuleRef, root: str, names: Iterable[str]) -> list[tuple[str, str]]:
    """``(function, callee)`` for each call of a function of ``names`` (such as
    :data:`FATAL_CALLS`) in the code Enzyme would differentiate from ``root``: callees and
    functions passed as arguments (an OpenMP region's body) followed, except into functions
    it does not differentiate (``enzyme_inactive``) or differentiates by a registered rule
    (``enzyme_derivative``/``enzyme_gradient`` metadata)."""
    lib = _lib()
    start = module.function(root)
    if start is None:
        return []
    ctx = module.context.handle
    rule_kinds = [lib.LLVMGetMDKindIDInContext(ctx, k, len(k)) for k in (b"enzyme_derivative", b"enzyme_gradient")]
    wanted = set(names)
    found: list[tuple[str, str]] = []
    todo, seen = [start], set()
    while todo:
        fn = todo.pop()
        if fn in seen or lib.LLVMIsDeclaration(fn):
            continue
        seen.add(fn)
        fname = value_name(fn)
        for inst in _instructions(fn):
            if lib.LLVMGetInstructionOpcode(inst) not in (Opcode.CALL, Opcode.INVOKE):
                continue
            for k in range(lib.LLVMGetNumOperands(inst)):  # the callee is the last operand
                callee = _strip(lib.LLVMGetOperand(inst, k), aggregates=False)
                if not callee or not lib.LLVMIsAFunction(callee):
                    continue
                cname = value_name(callee)
                if cname in wanted:
                    if (fname, cname) not in found:
                        found.append((fname, cname))
                elif not (
                    lib.LLVMGetStringAttributeAtIndex(callee, _FUNCTION_INDEX, b"enzyme_inactive", 15)
                    or any(lib.LLVMGetMetadata(callee, k2) for k2 in rule_kinds)
                ):
                    todo.append(int(callee))
    return found


def differentiated_functions(module: ModuleRef) -> list[str]:
    """The functions the module's ``__enzyme_autodiff``-style calls differentiate (the
    first argument of each call, casts removed), in order, each once."""
    lib = _lib()
    out: list[str] = []
    for fn in _functions(module):
        if not lib.LLVMIsDeclaration(fn) or not is_interface_name(value_name(fn)):
            continue
        use = lib.LLVMGetFirstUse(fn)
        while use:
            call = lib.LLVMGetUser(use)
            if lib.LLVMIsACallInst(call) and lib.LLVMGetNumArgOperands(call) > 0:
                target = _strip(lib.LLVMGetOperand(call, 0), aggregates=False)
                if lib.LLVMIsAFunction(target) and value_name(target) not in out:
                    out.append(value_name(target))
            use = lib.LLVMGetNextUse(use)
    return out


def interface_calls(module: ModuleRef) -> list[str]:
    """The ``__enzyme_*`` functions the module declares and still uses (after Enzyme's
    own pass, none of those it implements is left)."""
    lib = _lib()
    return [
        value_name(fn)
        for fn in _functions(module)
        if lib.LLVMIsDeclaration(fn)
        and lib.LLVMGetFirstUse(fn)
        and is_interface_name(value_name(fn))
    ]


#: Registration globals (matched as Enzyme matches them: the name *contains* the key) and
#: how many leading functions each must hold.
_RULE_REGISTRATIONS = (
    ("__enzyme_register_gradient", 3),
    ("__enzyme_register_derivative", 2),
    ("__enzyme_register_splitderivative", 3),
)
_ONE_FUNCTION = ("__enzyme_inactivefn", "__enzyme_nofree", "__enzyme_sparse_accumulate")


def _strip(value: int, *, aggregates: bool) -> int:
    """``value`` without constant expressions (casts, GEPs) and, with ``aggregates``,
    without the aggregates around its first element, as Enzyme's pass reads it."""
    lib = _lib()
    for _ in range(64):
        if lib.LLVMIsAConstantExpr(value) or aggregates and _aggregate(value):
            value = lib.LLVMGetOperand(value, 0)
        else:
            break
    return int(value)


def _aggregate(value: int) -> bool:
    lib = _lib()
    return bool(lib.LLVMIsAConstantStruct(value) or lib.LLVMIsAConstantArray(value) or lib.LLVMIsAConstantVector(value))


def _c_string(value: int) -> str | None:
    """The text of a constant global holding a C string, else None."""
    lib = _lib()
    value = _strip(value, aggregates=False)
    if not lib.LLVMIsAGlobalVariable(value) or not lib.LLVMIsGlobalConstant(value):
        return None
    init = lib.LLVMGetInitializer(value)
    if not init or not lib.LLVMIsAConstantDataArray(init) or not lib.LLVMIsConstantString(init):
        return None
    size = ctypes.c_size_t()
    raw = ctypes.string_at(lib.LLVMGetAsString(init, ctypes.byref(size)), size.value)
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _check_forward_rule(primal: int, rule: int, refuse: Any) -> None:
    """A forward rule of a function returning a value returns ``{primal, tangent}``
    (Enzyme extracts the tangent as element 1 and asserts on anything else)."""
    lib = _lib()
    pret = lib.LLVMGetReturnType(lib.LLVMGlobalGetValueType(primal))
    rret = lib.LLVMGetReturnType(lib.LLVMGlobalGetValueType(rule))
    if lib.LLVMGetTypeKind(pret) == TypeKind.VOID:
        return
    ok = lib.LLVMGetTypeKind(rret) in (TypeKind.STRUCT, TypeKind.ARRAY) and (
        lib.LLVMCountStructElementTypes(rret) == 2
        if lib.LLVMGetTypeKind(rret) == TypeKind.STRUCT
        else lib.LLVMGetArrayLength(rret) == 2
    )
    if not ok:
        refuse(
            f"names the forward rule {value_name(rule)!r}, which returns "
            f"{read_type(rret).text}; a rule for a function returning {read_type(pret).text} "
            "returns a struct {primal, tangent} (two values)"
        )


#: C math functions whose calls clang may emit as an LLVM intrinsic (``-fno-math-errno``
#: turns ``sqrt(x)`` into ``llvm.sqrt.f64``; clang 19 does it for ``tanh`` and its kin
#: too): the libm name of the ``double`` form -> the intrinsic's base name.
LIBM_INTRINSICS = {
    **{n: n for n in (
        "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh", "asin", "acos", "atan", "atan2",
        "exp", "exp2", "exp10", "log", "log2", "log10", "pow", "fabs", "floor", "ceil", "trunc",
        "round", "rint", "nearbyint", "fma", "copysign", "ldexp",
    )},
    "fmin": "minnum",
    "fmax": "maxnum",
}  # fmt: skip
_FLOAT_SUFFIX = {TypeKind.DOUBLE: ("", "f64"), TypeKind.FLOAT: ("f", "f32"), TypeKind.X86_FP80: ("l", "f80")}


def registered_libm_calls(module: ModuleRef) -> list[str]:
    """Calls of an LLVM math intrinsic become calls of the C function a registration
    global names (``__enzyme_inactivefn``, a custom derivative, ``enzyme_inactive`` on an
    external declaration, ...), when clang emitted ``sqrt(x)`` as ``llvm.sqrt.f64``: the
    registration would otherwise name a function nothing calls, and the derivative would
    silently ignore it.  Only where the intrinsic has the function's exact type.  Every
    function defined in the module gets ``"no-builtin-<name>"`` for such a function, so
    that the optimisation before Enzyme does not make an intrinsic of it again (LLVM
    turns ``fmax`` calls into ``llvm.maxnum``).  Returns the names of the functions."""
    lib = _lib()
    done: list[str] = []
    for g in _globals(module):
        if not any(key in value_name(g) for key in REGISTRATION_PREFIXES):
            continue
        init = lib.LLVMGetInitializer(g)
        if not init:
            continue
        fn = _strip(init, aggregates=True)
        if not lib.LLVMIsAFunction(fn) or not lib.LLVMIsDeclaration(fn):
            continue
        name = value_name(fn)
        fty = lib.LLVMGlobalGetValueType(fn)
        kind = lib.LLVMGetTypeKind(lib.LLVMGetReturnType(fty))
        if kind not in _FLOAT_SUFFIX:
            continue
        letter, suffix = _FLOAT_SUFFIX[kind]
        if letter:
            base = name[:-1] if name.endswith(letter) else ""
        else:
            base = name
        if base not in LIBM_INTRINSICS:
            continue
        intrinsic = lib.LLVMGetNamedFunction(module.handle, f"llvm.{LIBM_INTRINSICS[base]}.{suffix}".encode())
        if intrinsic and lib.LLVMGlobalGetValueType(intrinsic) == fty:
            lib.LLVMReplaceAllUsesWith(intrinsic, fn)
        done.append(name)
    if done:
        for defined in _functions(module):
            if not lib.LLVMIsDeclaration(defined):
                for name in done:
                    add_function_attribute(defined, module.context, f"no-builtin-{name}")
    return done


def check_registrations(module: ModuleRef, name: str) -> None:
    """Refuse registration globals Enzyme's pass would stop the process on (it checks
    them with ``llvm_unreachable``) or silently ignore, with :class:`UnsupportedError`
    naming the global and what it must hold."""
    lib = _lib()
    for g in _globals(module):
        gname = value_name(g)
        if "__enzyme_" not in gname:
            continue
        init = lib.LLVMGetInitializer(g)
        opaque = bool(lib.LLVMPointerTypeIsOpaque(lib.LLVMTypeOf(g)))

        def refuse(what: str, gname: str = gname) -> None:
            raise UnsupportedError(
                f"module {name!r}: the registration global {gname!r} {what}; Enzyme's pass "
                "would stop the process on it (or ignore it)"
            )

        for key, count in _RULE_REGISTRATIONS:
            if key not in gname:
                continue
            if not init:
                refuse(f"has no initialiser; it must hold {count} functions")
            if not _aggregate(init):
                refuse(f"must be an array or struct of {count} functions (it is empty or zero)")
            n = lib.LLVMGetNumOperands(init)
            if n < count:
                refuse(f"holds {n} value(s); it must hold {count} functions")
            for i in range(count):
                if not lib.LLVMIsAFunction(_strip(lib.LLVMGetOperand(init, i), aggregates=True)):
                    refuse(f"holds a value that is not a function at position {i}")
            primal = value_name(_strip(lib.LLVMGetOperand(init, 0), aggregates=True))
            if is_builtin_math(primal):
                refuse(
                    f"registers a rule for {primal}, which Enzyme differentiates by its own "
                    f"rule whatever is registered; register the rule for a function of your "
                    f"own that calls {primal} (kept from inlining: __attribute__((noinline)))"
                )
            if key == "__enzyme_register_derivative":
                _check_forward_rule(
                    _strip(lib.LLVMGetOperand(init, 0), aggregates=True),
                    _strip(lib.LLVMGetOperand(init, 1), aggregates=True),
                    refuse,
                )
            for i in range(count, n):
                extra = _c_string(_strip(lib.LLVMGetOperand(init, i), aggregates=True))
                if extra is None or not extra.startswith("byref_") or not extra[6:].isdigit():
                    refuse(f"holds an extra value at position {i}; only \"byref_<n>\" strings may follow")
                if opaque and key == "__enzyme_register_gradient":
                    refuse(
                        f"asks for {extra!r}, which Enzyme cannot apply to opaque-pointer IR "
                        "(clang 15's); pass that argument by value in the rules instead"
                    )
            break
        else:
            if not init:
                continue  # Enzyme's pass skips declarations of these
            if "__enzyme_inactive_global" in gname:
                if not lib.LLVMIsAGlobalVariable(_strip(init, aggregates=True)):
                    refuse("must hold the address of a global variable")
            elif any(k in gname for k in _ONE_FUNCTION):
                if not lib.LLVMIsAFunction(_strip(init, aggregates=True)):
                    refuse("must hold a function")
            elif "__enzyme_function_like" in gname:
                if not _aggregate(init) or lib.LLVMGetNumOperands(init) < 2:
                    refuse("must hold a function and the name of the function it behaves like")
                if not lib.LLVMIsAFunction(_strip(lib.LLVMGetOperand(init, 0), aggregates=False)):
                    refuse("must hold a function first")
                if not _c_string(lib.LLVMGetOperand(init, 1)):
                    refuse("must hold a non-empty function name (a string) second")
            elif "__enzyme_allocation_like" in gname:
                if not _aggregate(init) or lib.LLVMGetNumOperands(init) != 4:
                    refuse("must hold 4 values: the allocator, the size argument's index, the "
                           "deallocation index string and the deallocator")
                ops = [lib.LLVMGetOperand(init, i) for i in range(4)]
                if not lib.LLVMIsAFunction(_strip(ops[0], aggregates=False)):
                    refuse("must hold the allocating function first")
                idx = _strip(ops[1], aggregates=False)
                if not (lib.LLVMIsAConstantPointerNull(idx) or lib.LLVMIsAConstantInt(idx)):
                    refuse("must hold an integer index second")
                if _c_string(ops[2]) is None:
                    refuse("must hold the deallocation index as a string third")
                if not lib.LLVMIsAFunction(_strip(ops[3], aggregates=False)):
                    refuse("must hold the freeing function fourth")


def infer_pointees(fn: int, depth: int = 0) -> tuple[str | None, ...]:
    """For each parameter of ``fn``: the element kind (``f64``, ``i32``, ...) the function
    loads and stores through it when it is a pointer and that kind is the only one (through
    GEPs, casts and calls to functions defined in the module), else None.  A vector load
    or store (``<8 x float>``, what a vectorised loop reads) counts as its element kind."""
    lib = _lib()
    n = lib.LLVMCountParams(fn)
    out: list[str | None] = []
    for i in range(n):
        param = lib.LLVMGetParam(fn, i)
        if lib.LLVMGetTypeKind(lib.LLVMTypeOf(param)) != TypeKind.POINTER:
            out.append(None)
            continue
        found: set[str] = set()
        if not _pointee_kinds(param, found, depth) or len(found) != 1:
            out.append(None)
        else:
            out.append(found.pop())
    return tuple(out)


def _element_kind(ty: int) -> str:
    """The kind of a loaded or stored type; a vector's is its element's."""
    lib = _lib()
    if lib.LLVMGetTypeKind(ty) == TypeKind.VECTOR:
        ty = lib.LLVMGetElementType(ty)
    return read_type(ty).kind


def _pointee_kinds(value: int, found: set[str], depth: int) -> bool:
    """Collect the kinds loaded/stored through ``value``; False when a use is one this
    analysis does not follow (the pointee is then unknown)."""
    lib = _lib()
    if depth > 8:
        return False
    use = lib.LLVMGetFirstUse(value)
    while use:
        user = lib.LLVMGetUser(use)
        if not lib.LLVMIsAInstruction(user):
            return False
        op = lib.LLVMGetInstructionOpcode(user)
        if op == Opcode.LOAD:
            found.add(_element_kind(lib.LLVMTypeOf(user)))
        elif op == Opcode.STORE:
            if lib.LLVMGetOperand(user, 1) != value:
                return False  # the pointer itself is stored: it escapes
            found.add(_element_kind(lib.LLVMTypeOf(lib.LLVMGetOperand(user, 0))))
        elif op in (Opcode.GEP, Opcode.BITCAST, Opcode.ADDRSPACE_CAST):
            if lib.LLVMGetOperand(user, 0) != value or not _pointee_kinds(user, found, depth + 1):
                return False
        elif op in (Opcode.CALL, Opcode.INVOKE):
            callee = lib.LLVMGetCalledValue(user)
            if not callee or not lib.LLVMIsAFunction(callee) or lib.LLVMIsDeclaration(callee):
                return False
            for k in range(lib.LLVMGetNumArgOperands(user)):
                if lib.LLVMGetOperand(user, k) == value:
                    if k >= lib.LLVMCountParams(callee):
                        return False
                    if not _pointee_kinds(lib.LLVMGetParam(callee, k), found, depth + 1):
                        return False
        else:
            return False
        use = lib.LLVMGetNextUse(use)
    return True


def inspect(module: ModuleRef, root: str) -> ModuleFacts:
    """Walk the functions reachable from ``root`` (direct calls and any function whose
    address the reachable code takes) and the module's globals."""
    lib = _lib()
    facts = ModuleFacts()
    facts.globals = scan_globals(module)
    facts.registrations = interface_uses(module)[1]
    start = module.function(root)
    if start is None:
        return facts
    todo = [start]
    seen_fn: set[int] = set()
    while todo:
        fn = todo.pop()
        if fn in seen_fn:
            continue
        seen_fn.add(fn)
        fname = value_name(fn)
        facts.reachable.add(fname)
        if lib.LLVMIsDeclaration(fn):
            if is_interface_name(fname):
                facts.source_interface.append(("?", fname))
            continue
        refs: set[int] = set()
        cexprs: set[int] = set()
        for inst in _instructions(fn):
            op = lib.LLVMGetInstructionOpcode(inst)
            if op in (Opcode.CALL, Opcode.INVOKE):
                callee = lib.LLVMGetCalledValue(inst)
                if callee and lib.LLVMIsAInlineAsm(callee):
                    if fname not in facts.inline_asm:
                        facts.inline_asm.append(fname)
                elif callee and lib.LLVMIsAFunction(callee):
                    cname = value_name(callee)
                    if is_interface_name(cname):
                        facts.source_interface.append((fname, cname))
                    if cname in OPENMP_FORK and fname not in facts.openmp:
                        facts.openmp.append(fname)
            _operands_globals(inst, cexprs, refs, lib)
        for r in refs:
            if lib.LLVMIsAFunction(r):
                todo.append(r)
            else:
                facts.used_globals.add(value_name(r))
    return facts


# --------------------------------------------------------------------------- state


def isolate_state(
    module: ModuleRef, facts: ModuleFacts, names: dict[str, str], *, shadows: bool
) -> list[int]:
    """Prepare the globals of a module about to be compiled into one code object.

    * constant globals and mutable globals nothing writes become internal constants of
      this object (each object has its own copy; nothing can change them);
    * the mutable globals in ``names`` (their state names) become external declarations
      of the module's state object (:func:`state_module`), so every code object of the
      module shares one definition;
    * with ``shadows``, each state global whose value holds no pointers gets a zeroed
      shadow global Enzyme uses for its derivative (``!enzyme_shadow``); the shadows are
      returned, to be zeroed by the entry point before each call.
    """
    lib = _lib()
    ctx = module.context
    zeroed: list[int] = []
    shadow_kind = lib.LLVMGetMDKindIDInContext(ctx.handle, b"enzyme_shadow", 13)
    for use in facts.globals.values():
        g = use.handle
        if use.name in names:
            if shadows and not use.has_pointers:
                sh = lib.LLVMAddGlobal(module.handle, use.value_type, f"{names[use.name]}.shadow".encode())
                lib.LLVMSetInitializer(sh, lib.LLVMConstNull(use.value_type))
                lib.LLVMSetLinkage(sh, Linkage.INTERNAL)
                md = (ctypes.c_void_p * 1)(lib.LLVMValueAsMetadata(sh))
                lib.LLVMGlobalSetMetadata(g, shadow_kind, lib.LLVMMDNodeInContext2(ctx.handle, md, 1))
                zeroed.append(int(sh))
            lib.LLVMSetInitializer(g, None)
            lib.LLVMSetLinkage(g, Linkage.EXTERNAL)
            rename(g, names[use.name])
        else:
            if not use.constant and not use.written:
                lib.LLVMSetGlobalConstant(g, 1)
            lib.LLVMSetLinkage(g, Linkage.INTERNAL)
    return zeroed


def state_module(module: ModuleRef, names: dict[str, str]) -> ModuleRef:
    """The state object of ``module`` (a fresh parse of the module's bitcode), as a new
    module in its context: only the globals in ``names``, renamed to their state names,
    with their initial values; :class:`CompileError` when an initial value refers to a
    function or another global (such state cannot be separated from the code).  Nothing
    is deleted from ``module`` (its functions may refer to each other, or be named by
    ``llvm.global_ctors``)."""
    lib = _lib()
    out = ModuleRef(
        lib.LLVMModuleCreateWithNameInContext(b"state", module.context.handle), keep=module.context
    )
    try:
        for g in list(_globals(module)):
            name = value_name(g)
            if name not in names:
                continue
            init = lib.LLVMGetInitializer(g)
            refs: set[int] = set()
            if init:
                _operands_globals(init, set(), refs, lib)
                if lib.LLVMIsAGlobalVariable(init) or lib.LLVMIsAFunction(init):
                    refs.add(int(init))
            if refs:
                raise CompileError(
                    f"the initial value of the global {name!r} refers to "
                    f"{', '.join(sorted(value_name(r) for r in refs))}; enzyme_py keeps a "
                    "module's mutable globals apart from its code and cannot do so for this "
                    "one. Initialise it at run time instead"
                )
            vt = lib.LLVMGlobalGetValueType(g)
            ng = lib.LLVMAddGlobal(out.handle, vt, names[name].encode())
            lib.LLVMSetInitializer(ng, init if init else lib.LLVMConstNull(vt))
            lib.LLVMSetAlignment(ng, lib.LLVMGetAlignment(g))
            lib.LLVMSetThreadLocal(ng, lib.LLVMIsThreadLocal(g))
            lib.LLVMSetLinkage(ng, Linkage.EXTERNAL)
    except BaseException:
        out.close()
        raise
    return out


# --------------------------------------------------------------------------- typed memsets

_MEMSET_PREFIX = b"llvm.memset."
_ZERO_HELPER = {"f64": "enzyme_py.zero.f64", "f32": "enzyme_py.zero.f32"}


def _float_pointee(ptr: int) -> str | None:
    """``f64``/``f32`` when the typed-pointer value ``ptr`` (an ``i8*``) is also used as a
    pointer to that one float type (through a bitcast), else None."""
    lib = _lib()
    kinds = set()
    use = lib.LLVMGetFirstUse(ptr)
    while use:
        user = lib.LLVMGetUser(use)
        if lib.LLVMIsAInstruction(user) and lib.LLVMGetInstructionOpcode(user) == Opcode.BITCAST:
            ty = lib.LLVMTypeOf(user)
            if lib.LLVMGetTypeKind(ty) == TypeKind.POINTER and not lib.LLVMPointerTypeIsOpaque(ty):
                elem = lib.LLVMGetTypeKind(lib.LLVMGetElementType(ty))
                kinds.add({TypeKind.DOUBLE: "f64", TypeKind.FLOAT: "f32"}.get(elem, "other"))
        use = lib.LLVMGetNextUse(use)
    return kinds.pop() if len(kinds) == 1 and kinds != {"other"} else None


def _zero_helper(module: ModuleRef, kind: str) -> tuple[int, int]:
    """``void enzyme_py.zero.<kind>(T* p, i64 bytes)``: stores ``bytes / sizeof(T)`` zeros."""
    lib = _lib()
    ctx = module.context.handle
    name = _ZERO_HELPER[kind].encode()
    elem = lib.LLVMDoubleTypeInContext(ctx) if kind == "f64" else lib.LLVMFloatTypeInContext(ctx)
    i64 = lib.LLVMInt64TypeInContext(ctx)
    ptr = lib.LLVMPointerType(elem, 0)
    fty = lib.LLVMFunctionType(lib.LLVMVoidTypeInContext(ctx), (ctypes.c_void_p * 2)(ptr, i64), 2, 0)
    fn = lib.LLVMGetNamedFunction(module.handle, name)
    if fn:
        return int(fty), int(fn)
    fn = lib.LLVMAddFunction(module.handle, name, fty)
    lib.LLVMSetLinkage(fn, Linkage.INTERNAL)
    p, nbytes = lib.LLVMGetParam(fn, 0), lib.LLVMGetParam(fn, 1)
    with BuilderRef.create(module.context) as bref:
        b = bref.handle
        entry = lib.LLVMAppendBasicBlockInContext(ctx, fn, b"entry")
        loop = lib.LLVMAppendBasicBlockInContext(ctx, fn, b"loop")
        body = lib.LLVMAppendBasicBlockInContext(ctx, fn, b"body")
        done = lib.LLVMAppendBasicBlockInContext(ctx, fn, b"done")
        lib.LLVMPositionBuilderAtEnd(b, entry)
        count = lib.LLVMBuildLShr(b, nbytes, lib.LLVMConstInt(i64, 3 if kind == "f64" else 2, 0), b"n")
        lib.LLVMBuildBr(b, loop)
        lib.LLVMPositionBuilderAtEnd(b, loop)
        i = lib.LLVMBuildPhi(b, i64, b"i")
        more = lib.LLVMBuildICmp(b, 36, i, count, b"")  # ult
        lib.LLVMBuildCondBr(b, more, body, done)
        lib.LLVMPositionBuilderAtEnd(b, body)
        slot = lib.LLVMBuildGEP2(b, elem, p, (ctypes.c_void_p * 1)(i), 1, b"")
        lib.LLVMBuildStore(b, lib.LLVMConstReal(elem, 0.0), slot)
        nxt = lib.LLVMBuildAdd(b, i, lib.LLVMConstInt(i64, 1, 0), b"")
        lib.LLVMBuildBr(b, loop)
        lib.LLVMAddIncoming(i, (ctypes.c_void_p * 2)(lib.LLVMConstInt(i64, 0, 0), nxt),
                            (ctypes.c_void_p * 2)(entry, body), 2)
        lib.LLVMPositionBuilderAtEnd(b, done)
        lib.LLVMBuildRetVoid(b)
    return int(fty), int(fn)


def typed_memsets(module: ModuleRef) -> int:
    """Replace each ``llvm.memset(p, 0, n)`` whose ``i8*`` destination is elsewhere used as
    a ``double*`` (or ``float*``) by a call of a zeroing loop over that type: in typed-pointer
    IR (numba's) Enzyme cannot deduce the type of a memset of an ``i8*`` (numba zeroes
    ``np.zeros`` and empty matrix products that way).  Returns the number replaced."""
    lib = _lib()
    done = 0
    todo = []
    for fn in _functions(module):
        if lib.LLVMIsDeclaration(fn):
            continue
        for inst in _instructions(fn):
            if lib.LLVMGetInstructionOpcode(inst) != Opcode.CALL:
                continue
            callee = lib.LLVMGetCalledValue(inst)
            if not callee or not lib.LLVMIsAFunction(callee):
                continue
            size = ctypes.c_size_t()
            name = ctypes.string_at(lib.LLVMGetValueName2(callee, ctypes.byref(size)), size.value)
            if not name.startswith(_MEMSET_PREFIX):
                continue
            value = lib.LLVMGetOperand(inst, 1)
            if not lib.LLVMIsAConstantInt(value) or lib.LLVMConstIntGetSExtValue(value) != 0:
                continue
            dest = lib.LLVMGetOperand(inst, 0)
            kind = _float_pointee(dest)
            if kind is not None:
                todo.append((int(inst), int(dest), kind))
    for inst, dest, kind in todo:
        fty, helper = _zero_helper(module, kind)
        nbytes = lib.LLVMGetOperand(inst, 2)
        with BuilderRef.create(module.context) as bref:
            b = bref.handle
            lib.LLVMPositionBuilderBefore(b, inst)
            fty_params = (ctypes.c_void_p * 2)()
            lib.LLVMGetParamTypes(fty, fty_params)
            cast = lib.LLVMBuildPointerCast(b, dest, fty_params[0], b"")
            if lib.LLVMGetIntTypeWidth(lib.LLVMTypeOf(nbytes)) != 64:
                nbytes = lib.LLVMBuildZExt(b, nbytes, lib.LLVMInt64TypeInContext(module.context.handle), b"")
            lib.LLVMBuildCall2(b, fty, helper, (ctypes.c_void_p * 2)(cast, nbytes), 2, b"")
        lib.LLVMInstructionEraseFromParent(inst)
        done += 1
    return done
