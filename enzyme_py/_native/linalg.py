"""BLAS calls in the IR: numba's matrix helpers become CBLAS calls Enzyme knows, and the
LAPACK-style helpers Enzyme's BLAS derivatives call get definitions.

* :func:`map_numba_blas` (before Enzyme): numba lowers ``np.dot``, ``@``/``np.matmul``
  and ``np.vdot`` of float arrays to calls of its own helpers ``numba_xxgemm``,
  ``numba_xxgemv`` and ``numba_xxdot`` (which call SciPy's BLAS through
  ``scipy.linalg.cython_blas`` pointers).  Enzyme cannot see through them.  Each call
  whose element kind is a constant ``'d'`` or ``'s'`` becomes the equivalent column-major
  ``cblas_?gemm`` / ``cblas_?gemv`` / ``cblas_?dot`` call (numba passes column-major
  arguments: it computes ``C^T = B^T A^T``), sizes narrowed to ``int`` as numba's helper
  does (numba checks they fit before the call), ``alpha``/``beta`` read from the
  constants numba stores for them; the helper's status (0: done) becomes the constant 0.
  Enzyme then differentiates the calls with its BLAS rules, and the JIT runs them in the
  optimised BLAS (:mod:`.blas`).
* :func:`column_major` (before Enzyme): a row-major ``cblas_?gemm``/``cblas_?gemv`` call
  becomes the equivalent column-major one (``C = A B`` row-major is ``C^T = B^T A^T``
  column-major: the operands and their sizes swap; a row-major ``gemv`` is the transposed
  column-major one).  This Enzyme (v0.0.289) caches the operands of a row-major call
  with rows and columns swapped, reading past the matrix, and computes wrong derivatives
  (seen on ``cblas_dgemm``); its column-major derivatives are right.  A layout that is not
  a constant is rewritten with ``select`` instructions (Enzyme then sees a select of the
  operands; a constant one, the usual case, swaps them outright).
* :func:`define_lapack_helpers` (after Enzyme): the derivatives of ``cblas_*`` calls use
  ``cblas_?lascl`` (scale a matrix: Enzyme zeroes the shadow of a ``beta = 0`` output
  with it) and ``cblas_?lacpy`` (copy a matrix into its cache), which no CBLAS defines:
  Enzyme names them after the call it differentiates.  They are defined here, in the
  module, as loops over the matrix, with the same arguments as LAPACKE's
  ``(layout, ..., m, n, a, lda, ...)`` plus the trailing ``info`` pointer Enzyme passes.

Invariant: nothing is changed in a module without such calls.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import Any

from .ffi.llvm import Linkage, Opcode, TypeKind
from .handles import BuilderRef, ModuleRef, value_name
from .library import native

__all__ = ["NUMBA_HELPERS", "column_major", "define_lapack_helpers", "map_numba_blas"]

#: numba's BLAS helpers that :func:`map_numba_blas` replaces.
NUMBA_HELPERS = frozenset({"numba_xxgemm", "numba_xxgemv", "numba_xxdot"})

_COL_MAJOR = 102
_ROW_MAJOR = 101
_NO_TRANS = 111
_TRANS = 112
_INT_SLT = 40
_INT_EQ = 32


def _lib() -> Any:
    return native().llvm


def _calls_of(module: ModuleRef, names: frozenset[str]) -> Iterator[tuple[int, str]]:
    lib = _lib()
    found = []
    fn = lib.LLVMGetFirstFunction(module.handle)
    while fn:
        if not lib.LLVMIsDeclaration(fn):
            bb = lib.LLVMGetFirstBasicBlock(fn)
            while bb:
                inst = lib.LLVMGetFirstInstruction(bb)
                while inst:
                    if lib.LLVMGetInstructionOpcode(inst) == Opcode.CALL:
                        callee = lib.LLVMGetCalledValue(inst)
                        if callee and lib.LLVMIsAFunction(callee):
                            name = value_name(callee)
                            if name in names:
                                found.append((int(inst), name))
                    inst = lib.LLVMGetNextInstruction(inst)
                bb = lib.LLVMGetNextBasicBlock(bb)
        fn = lib.LLVMGetNextFunction(fn)
    return iter(found)


def _const_int(value: int) -> int | None:
    lib = _lib()
    if not lib.LLVMIsAConstantInt(value):
        return None
    return int(lib.LLVMConstIntGetSExtValue(value))


def _strip_casts(value: int) -> int:
    lib = _lib()
    for _ in range(8):
        cast = (
            lib.LLVMIsAInstruction(value)
            and lib.LLVMGetInstructionOpcode(value) in (Opcode.BITCAST, Opcode.ADDRSPACE_CAST)
        ) or (lib.LLVMIsAConstantExpr(value) and lib.LLVMGetConstOpcode(value) == Opcode.BITCAST)
        if not cast:
            break
        value = lib.LLVMGetOperand(value, 0)
    return int(value)


def _stored_constant(pointer: int) -> int | None:
    """The constant stored into the alloca behind ``pointer`` when that is the only store
    (numba's ``alpha``/``beta`` slots), else None."""
    lib = _lib()
    slot = _strip_casts(pointer)
    if not lib.LLVMIsAAllocaInst(slot):
        return None
    stored = None
    todo = [slot]
    seen: set[int] = set()
    while todo:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        use = lib.LLVMGetFirstUse(v)
        while use:
            user = lib.LLVMGetUser(use)
            op = lib.LLVMGetInstructionOpcode(user) if lib.LLVMIsAInstruction(user) else None
            if op == Opcode.STORE:
                if lib.LLVMGetOperand(user, 1) != v:
                    return None  # the slot's address itself is stored
                value = lib.LLVMGetOperand(user, 0)
                if stored is not None or not lib.LLVMIsAConstantFP(value):
                    return None
                stored = int(value)
            elif op == Opcode.BITCAST:
                todo.append(int(user))
            elif op not in (Opcode.CALL, Opcode.LOAD):
                return None
            use = lib.LLVMGetNextUse(use)
    return stored


class _Builder:
    """An IR builder positioned before one instruction, with the types it needs."""

    def __init__(self, module: ModuleRef, b: BuilderRef) -> None:
        lib = _lib()
        ctx = module.context.handle
        self.lib = lib
        self.b = b.handle
        self.module = module
        self.i8 = lib.LLVMInt8TypeInContext(ctx)
        self.i32 = lib.LLVMInt32TypeInContext(ctx)
        self.i64 = lib.LLVMInt64TypeInContext(ctx)
        self.f64 = lib.LLVMDoubleTypeInContext(ctx)
        self.f32 = lib.LLVMFloatTypeInContext(ctx)
        self.void = lib.LLVMVoidTypeInContext(ctx)

    def int32(self, v: int) -> int:
        return int(self.lib.LLVMConstInt(self.i32, v & 0xFFFFFFFF, 1))

    def narrow(self, value: int) -> int:
        ty = self.lib.LLVMTypeOf(value)
        if self.lib.LLVMGetIntTypeWidth(ty) == 32:
            return value
        return int(self.lib.LLVMBuildTrunc(self.b, value, self.i32, b""))

    def ptr(self, value: int, elem: int) -> int:
        return int(self.lib.LLVMBuildPointerCast(self.b, value, self.lib.LLVMPointerType(elem, 0), b""))

    def scalar(self, pointer: int, elem: int) -> int:
        const = _stored_constant(pointer)
        if const is not None and self.lib.LLVMTypeOf(const) == elem:
            return const
        return int(self.lib.LLVMBuildLoad2(self.b, elem, self.ptr(pointer, elem), b""))

    def function(self, name: str, ret: int, params: list[int]) -> tuple[int, int]:
        lib = self.lib
        arr = (ctypes.c_void_p * len(params))(*params)
        fty = lib.LLVMFunctionType(ret, arr, len(params), 0)
        fn = lib.LLVMGetNamedFunction(self.module.handle, name.encode())
        if not fn:
            fn = lib.LLVMAddFunction(self.module.handle, name.encode(), fty)
        return int(fty), int(fn)

    def call(self, name: str, ret: int, args: list[tuple[int, int]]) -> int:
        fty, fn = self.function(name, ret, [t for t, _ in args])
        argv = (ctypes.c_void_p * len(args))(*[v for _, v in args])
        return int(self.lib.LLVMBuildCall2(self.b, fty, fn, argv, len(args), b""))


def _transpose(value: int) -> int | None:
    c = _const_int(value)
    if c is None:
        return None
    ch = chr(c & 0xFF).lower()
    return {"n": _NO_TRANS, "t": _TRANS}.get(ch)


def _map_one(module: ModuleRef, call: int, helper: str) -> bool:
    lib = _lib()
    arg = [int(lib.LLVMGetOperand(call, i)) for i in range(lib.LLVMGetNumArgOperands(call))]
    kind = _const_int(arg[0])
    if kind is None or chr(kind & 0xFF) not in "ds":
        return False  # complex (or unknown) kinds stay numba's
    t = chr(kind & 0xFF)
    with BuilderRef.create(module.context) as bref:
        lib.LLVMPositionBuilderBefore(bref.handle, call)
        b = _Builder(module, bref)
        elem = b.f64 if t == "d" else b.f32
        eptr = lib.LLVMPointerType(elem, 0)
        i32 = b.i32
        if helper == "numba_xxgemm":
            # (kind, transa, transb, m, n, k, alpha*, a, lda, b, ldb, beta*, c, ldc)
            ta, tb = _transpose(arg[1]), _transpose(arg[2])
            if ta is None or tb is None:
                return False
            b.call(f"cblas_{t}gemm", b.void, [
                (i32, b.int32(_COL_MAJOR)), (i32, b.int32(ta)), (i32, b.int32(tb)),
                (i32, b.narrow(arg[3])), (i32, b.narrow(arg[4])), (i32, b.narrow(arg[5])),
                (elem, b.scalar(arg[6], elem)), (eptr, b.ptr(arg[7], elem)), (i32, b.narrow(arg[8])),
                (eptr, b.ptr(arg[9], elem)), (i32, b.narrow(arg[10])),
                (elem, b.scalar(arg[11], elem)), (eptr, b.ptr(arg[12], elem)), (i32, b.narrow(arg[13])),
            ])
        elif helper == "numba_xxgemv":
            # (kind, trans, m, n, alpha*, a, lda, x, beta*, y)
            tr = _transpose(arg[1])
            if tr is None:
                return False
            b.call(f"cblas_{t}gemv", b.void, [
                (i32, b.int32(_COL_MAJOR)), (i32, b.int32(tr)),
                (i32, b.narrow(arg[2])), (i32, b.narrow(arg[3])),
                (elem, b.scalar(arg[4], elem)), (eptr, b.ptr(arg[5], elem)), (i32, b.narrow(arg[6])),
                (eptr, b.ptr(arg[7], elem)), (i32, b.int32(1)),
                (elem, b.scalar(arg[8], elem)), (eptr, b.ptr(arg[9], elem)), (i32, b.int32(1)),
            ])
        else:
            # (kind, conjugate, n, x, y, result*): conjugation is nothing for real kinds
            dot = b.call(f"cblas_{t}dot", elem, [
                (i32, b.narrow(arg[2])), (eptr, b.ptr(arg[3], elem)), (i32, b.int32(1)),
                (eptr, b.ptr(arg[4], elem)), (i32, b.int32(1)),
            ])
            lib.LLVMBuildStore(bref.handle, dot, b.ptr(arg[5], elem))
    rty = lib.LLVMTypeOf(call)
    if lib.LLVMGetTypeKind(rty) != TypeKind.VOID:
        lib.LLVMReplaceAllUsesWith(call, lib.LLVMConstInt(rty, 0, 0))
    lib.LLVMInstructionEraseFromParent(call)
    return True


def map_numba_blas(module: ModuleRef) -> int:
    """Replace numba's BLAS helper calls by CBLAS calls (see the module docstring); the
    number replaced.  Calls of other element kinds (complex) are left as they are."""
    lib = _lib()
    if not any(lib.LLVMGetNamedFunction(module.handle, n.encode()) for n in NUMBA_HELPERS):
        return 0
    done = 0
    for call, helper in list(_calls_of(module, NUMBA_HELPERS)):
        done += _map_one(module, call, helper)
    for name in NUMBA_HELPERS:
        fn = lib.LLVMGetNamedFunction(module.handle, name.encode())
        if fn and not lib.LLVMGetFirstUse(fn):
            lib.LLVMDeleteFunction(fn)
    return done


def _layout_calls(module: ModuleRef) -> Iterator[tuple[int, str]]:
    names = frozenset(f"cblas_{t}{r}" for t in "sd" for r in ("gemm", "gemv"))
    return _calls_of(module, names)


def _swap_to_column_major(module: ModuleRef, call: int, name: str, arg: list[int], layout: int | None) -> None:
    lib = _lib()
    with BuilderRef.create(module.context) as bref:
        lib.LLVMPositionBuilderBefore(bref.handle, call)
        b = _Builder(module, bref)
        bh = bref.handle
        row = None if layout == _ROW_MAJOR else lib.LLVMBuildICmp(
            bh, _INT_EQ, arg[0], b.int32(_ROW_MAJOR), b"rowmajor"
        )

        def pick(swapped: int, original: int) -> int:
            # a constant row-major layout swaps outright: a select of an active and an
            # inactive pointer would be a mixed activity for Enzyme
            if row is None:
                return swapped
            return int(lib.LLVMBuildSelect(bh, row, swapped, original, b""))

        def flip(t: int) -> int:
            known = _const_int(t)
            if known is not None:
                return b.int32(_TRANS if known == _NO_TRANS else _NO_TRANS)
            no = lib.LLVMBuildICmp(bh, _INT_EQ, t, b.int32(_NO_TRANS), b"")
            return int(lib.LLVMBuildSelect(bh, no, b.int32(_TRANS), b.int32(_NO_TRANS), b""))

        new = list(arg)
        new[0] = b.int32(_COL_MAJOR)
        if name.endswith("gemm"):
            # (layout, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
            for i, j in ((1, 2), (3, 4), (7, 9), (8, 10)):
                new[i], new[j] = pick(arg[j], arg[i]), pick(arg[i], arg[j])
        else:
            # (layout, trans, M, N, alpha, A, lda, x, incx, beta, y, incy)
            new[1] = pick(flip(arg[1]), arg[1])
            new[2], new[3] = pick(arg[3], arg[2]), pick(arg[2], arg[3])
    for i, v in enumerate(new):
        if v != arg[i]:
            lib.LLVMSetOperand(call, i, v)


def column_major(module: ModuleRef) -> int:
    """Rewrite row-major ``cblas_?gemm``/``cblas_?gemv`` calls as column-major ones (see
    the module docstring); the number of calls rewritten."""
    lib = _lib()
    done = 0
    for call, name in list(_layout_calls(module)):
        n = lib.LLVMGetNumArgOperands(call)
        if n != (14 if name.endswith("gemm") else 12):
            continue
        arg = [int(lib.LLVMGetOperand(call, i)) for i in range(n)]
        layout = _const_int(arg[0])
        if layout == _COL_MAJOR:
            continue
        _swap_to_column_major(module, call, name, arg, layout)
        done += 1
    return done


# --------------------------------------------------------------------------- helpers


def _define_matrix_loop(module: ModuleRef, fn: int, kind: str) -> None:
    """Body of ``cblas_?lascl(layout, type, kl, ku, cfrom, cto, m, n, a, lda, info)`` or
    ``cblas_?lacpy(layout, uplo, m, n, a, lda, b, ldb)``: a loop over the matrix's
    columns (rows for row-major) scaling ``a`` by ``cto / cfrom`` or copying ``a`` to
    ``b`` (the whole matrix; Enzyme asks for general matrices only)."""
    lib = _lib()
    ctx = module.context.handle
    p = [int(lib.LLVMGetParam(fn, i)) for i in range(lib.LLVMCountParams(fn))]
    with BuilderRef.create(module.context) as bref:
        b = _Builder(module, bref)
        bh = bref.handle
        elem = b.f64 if kind == "d" else b.f32
        entry = lib.LLVMAppendBasicBlockInContext(ctx, fn, b"entry")
        outer = lib.LLVMAppendBasicBlockInContext(ctx, fn, b"outer")
        inner = lib.LLVMAppendBasicBlockInContext(ctx, fn, b"inner")
        latch = lib.LLVMAppendBasicBlockInContext(ctx, fn, b"latch")
        done = lib.LLVMAppendBasicBlockInContext(ctx, fn, b"done")
        lib.LLVMPositionBuilderAtEnd(bh, entry)
        scale = fn_kind = None
        if len(p) == 11:  # lascl
            layout, m, n, a, lda = p[0], p[6], p[7], p[8], p[9]
            scale = lib.LLVMBuildFDiv(bh, p[5], p[4], b"mul")
            dst, ldd = a, lda
            info = p[10]
            fn_kind = "lascl"
        else:  # lacpy
            layout, m, n, a, lda, dst, ldd = p[0], p[2], p[3], p[4], p[5], p[6], p[7]
            info = None
            fn_kind = "lacpy"
        row_major = lib.LLVMBuildICmp(bh, _INT_EQ, layout, b.int32(_ROW_MAJOR), b"")
        # contiguous extent (inner) and the number of leading-dimension strides (outer)
        rows = lib.LLVMBuildSelect(bh, row_major, n, m, b"rows")
        cols = lib.LLVMBuildSelect(bh, row_major, m, n, b"cols")
        rows64 = lib.LLVMBuildSExt(bh, rows, b.i64, b"")
        cols64 = lib.LLVMBuildSExt(bh, cols, b.i64, b"")
        lda64 = lib.LLVMBuildSExt(bh, lda, b.i64, b"")
        ldd64 = lib.LLVMBuildSExt(bh, ldd, b.i64, b"")
        if info is not None:
            lib.LLVMBuildStore(bh, b.int32(0), b.ptr(info, b.i32))
        zero64 = lib.LLVMConstInt(b.i64, 0, 0)
        one64 = lib.LLVMConstInt(b.i64, 1, 0)
        lib.LLVMBuildBr(bh, outer)
        # outer: j over columns
        lib.LLVMPositionBuilderAtEnd(bh, outer)
        j = lib.LLVMBuildPhi(bh, b.i64, b"j")
        more_j = lib.LLVMBuildICmp(bh, _INT_SLT, j, cols64, b"")
        start_inner = lib.LLVMAppendBasicBlockInContext(ctx, fn, b"start")
        lib.LLVMBuildCondBr(bh, more_j, start_inner, done)
        lib.LLVMPositionBuilderAtEnd(bh, start_inner)
        lib.LLVMBuildBr(bh, inner)
        # inner: i over rows
        lib.LLVMPositionBuilderAtEnd(bh, inner)
        i = lib.LLVMBuildPhi(bh, b.i64, b"i")
        more_i = lib.LLVMBuildICmp(bh, _INT_SLT, i, rows64, b"")
        body = lib.LLVMAppendBasicBlockInContext(ctx, fn, b"body")
        lib.LLVMBuildCondBr(bh, more_i, body, latch)
        lib.LLVMPositionBuilderAtEnd(bh, body)
        src_off = lib.LLVMBuildAdd(bh, lib.LLVMBuildMul(bh, j, lda64, b""), i, b"")
        src = lib.LLVMBuildGEP2(bh, elem, b.ptr(a, elem), (ctypes.c_void_p * 1)(src_off), 1, b"")
        value = lib.LLVMBuildLoad2(bh, elem, src, b"")
        if fn_kind == "lascl":
            value = lib.LLVMBuildFMul(bh, value, scale, b"")
            lib.LLVMBuildStore(bh, value, src)
        else:
            dst_off = lib.LLVMBuildAdd(bh, lib.LLVMBuildMul(bh, j, ldd64, b""), i, b"")
            d = lib.LLVMBuildGEP2(bh, elem, b.ptr(dst, elem), (ctypes.c_void_p * 1)(dst_off), 1, b"")
            lib.LLVMBuildStore(bh, value, d)
        i_next = lib.LLVMBuildAdd(bh, i, one64, b"")
        lib.LLVMBuildBr(bh, inner)
        lib.LLVMAddIncoming(i, (ctypes.c_void_p * 2)(zero64, i_next), (ctypes.c_void_p * 2)(start_inner, body), 2)
        lib.LLVMPositionBuilderAtEnd(bh, latch)
        j_next = lib.LLVMBuildAdd(bh, j, one64, b"")
        lib.LLVMBuildBr(bh, outer)
        lib.LLVMAddIncoming(j, (ctypes.c_void_p * 2)(zero64, j_next), (ctypes.c_void_p * 2)(entry, latch), 2)
        lib.LLVMPositionBuilderAtEnd(bh, done)
        lib.LLVMBuildRetVoid(bh)
    lib.LLVMSetLinkage(fn, Linkage.INTERNAL)


def define_lapack_helpers(module: ModuleRef) -> list[str]:
    """Define the ``cblas_?lascl`` / ``cblas_?lacpy`` the module declares (see the module
    docstring); the names defined."""
    lib = _lib()
    done = []
    for kind in "ds":
        for routine, nparams in (("lascl", 11), ("lacpy", 8)):
            name = f"cblas_{kind}{routine}"
            fn = lib.LLVMGetNamedFunction(module.handle, name.encode())
            if not fn or not lib.LLVMIsDeclaration(fn) or lib.LLVMCountParams(fn) != nparams:
                continue
            _define_matrix_loop(module, fn, kind)
            done.append(name)
    return done
