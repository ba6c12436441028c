"""Scratch memory: large blocks that compiled code frees are kept for its next call.

A derivative allocates its temporaries, their shadows and Enzyme's caches with
``malloc``/``calloc`` and frees them all before it returns.  Blocks of a few hundred
kilobytes sit at the top of glibc's heap, so that freeing them shrinks the heap
(``brk``) on every call and the next call faults every page in again, zeroed by the
kernel: measured on P4N (``tanh(X @ W1) @ w2``, 1 MiB of temporaries per gradient) the
kernel's page faults took 47% of the gradient's time.

Compiled code whose module calls ``malloc`` or ``calloc`` therefore has its calls of
``malloc``, ``calloc`` and ``free`` renamed (after optimisation, :func:`redirect`) to
the functions of a small helper object, built in LLVM IR and loaded into the JIT once
per process (like the exit traps of :mod:`.traps`):

* ``enzpy_scratch_free(p)``: a block of :data:`MIN_BLOCK` to :data:`MAX_BLOCK` usable
  bytes (``malloc_usable_size``) goes into one of :data:`SLOTS` free slots while the
  blocks held stay within :data:`MAX_HELD` bytes; anything else is freed;
* ``enzpy_scratch_malloc(n)`` (``n`` in the same range): a held block of ``n`` to ``2n``
  usable bytes if there is one, else ``malloc(n)``;
* ``enzpy_scratch_calloc(k, n)``: the same, zeroed with ``memset``, else ``calloc``.

The blocks are ordinary ``malloc`` blocks and nothing is added to them: a block may be
freed with ``free`` or resized with ``realloc`` by any code, and ``enzpy_scratch_free``
accepts any block ``malloc`` gave.  Slots are taken and filled with atomic exchanges,
so that threads calling compiled code at once share them safely.  The blocks held are
memory a call used at its peak: they do not raise the peak, and :func:`release` returns
them to the C library.

Only on Linux with glibc or musl (``malloc_usable_size``); elsewhere, or with
``ENZYME_PY_SCRATCH_MEMORY=0`` (``set_options(scratch_memory=False)``), code calls the C
library directly.
"""

from __future__ import annotations

import ctypes
import functools
import sys
import threading
from typing import Any

from ..errors import CompileError, LibraryError
from .ffi import LOCK
from .ffi.llvm import TypeKind
from .handles import ModuleRef
from .jit import load_helper, lookup
from .library import native

__all__ = [
    "MAX_BLOCK",
    "MAX_HELD",
    "MIN_BLOCK",
    "REDIRECTED",
    "SLOTS",
    "ensure_scratch",
    "held_bytes",
    "redirect",
    "release",
    "supported",
]

#: Blocks of fewer usable bytes are freed at once (the heap reuses them well).
MIN_BLOCK = 16 * 1024
#: Blocks of more usable bytes are freed at once.
MAX_BLOCK = 32 * 1024**2
#: At most this many bytes are held in all.
MAX_HELD = 64 * 1024**2
#: Blocks held at most.
SLOTS = 16

#: C library function -> (helper it becomes, its parameter count).
REDIRECTED = {
    "malloc": ("enzpy_scratch_malloc", 1),
    "calloc": ("enzpy_scratch_calloc", 2),
    "free": ("enzpy_scratch_free", 1),
}

_HELPER = f"""
@enzpy_scratch_slots = global [{SLOTS} x ptr] zeroinitializer, align 8
@enzpy_scratch_held = global i64 0, align 8

declare ptr @malloc(i64)
declare ptr @calloc(i64, i64)
declare void @free(ptr)
declare i64 @malloc_usable_size(ptr)
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)

; A held block of n to 2n usable bytes, or null.
define internal ptr @enzpy_scratch_take(i64 %n) {{
entry:
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %next, %skip ]
  %slot = getelementptr inbounds [{SLOTS} x ptr], ptr @enzpy_scratch_slots, i64 0, i64 %i
  %p = atomicrmw xchg ptr %slot, ptr null acq_rel, align 8
  %empty = icmp eq ptr %p, null
  br i1 %empty, label %skip, label %check
check:
  %cap = call i64 @malloc_usable_size(ptr %p)
  %big = icmp uge i64 %cap, %n
  %twice = shl i64 %n, 1
  %small = icmp ule i64 %cap, %twice
  %fits = and i1 %big, %small
  br i1 %fits, label %found, label %putback
found:
  %h = atomicrmw sub ptr @enzpy_scratch_held, i64 %cap monotonic, align 8
  ret ptr %p
putback:
  %pair = cmpxchg ptr %slot, ptr null, ptr %p acq_rel monotonic, align 8
  %ok = extractvalue {{ ptr, i1 }} %pair, 1
  br i1 %ok, label %skip, label %drop
drop:
  %h2 = atomicrmw sub ptr @enzpy_scratch_held, i64 %cap monotonic, align 8
  call void @free(ptr %p)
  br label %skip
skip:
  %next = add nuw nsw i64 %i, 1
  %done = icmp eq i64 %next, {SLOTS}
  br i1 %done, label %none, label %loop
none:
  ret ptr null
}}

define internal i1 @enzpy_scratch_wanted(i64 %n) {{
  %lo = icmp uge i64 %n, {MIN_BLOCK}
  %hi = icmp ule i64 %n, {MAX_BLOCK}
  %r = and i1 %lo, %hi
  ret i1 %r
}}

define ptr @enzpy_scratch_malloc(i64 %n) {{
entry:
  %w = call i1 @enzpy_scratch_wanted(i64 %n)
  br i1 %w, label %try, label %plain
try:
  %p = call ptr @enzpy_scratch_take(i64 %n)
  %none = icmp eq ptr %p, null
  br i1 %none, label %plain, label %done
done:
  ret ptr %p
plain:
  %q = call ptr @malloc(i64 %n)
  ret ptr %q
}}

define ptr @enzpy_scratch_calloc(i64 %k, i64 %size) {{
entry:
  %m = call {{ i64, i1 }} @llvm.umul.with.overflow.i64(i64 %k, i64 %size)
  %n = extractvalue {{ i64, i1 }} %m, 0
  %ovf = extractvalue {{ i64, i1 }} %m, 1
  br i1 %ovf, label %plain, label %sized
sized:
  %w = call i1 @enzpy_scratch_wanted(i64 %n)
  br i1 %w, label %try, label %plain
try:
  %p = call ptr @enzpy_scratch_take(i64 %n)
  %none = icmp eq ptr %p, null
  br i1 %none, label %plain, label %zero
zero:
  call void @llvm.memset.p0.i64(ptr align 16 %p, i8 0, i64 %n, i1 false)
  ret ptr %p
plain:
  %q = call ptr @calloc(i64 %k, i64 %size)
  ret ptr %q
}}

declare {{ i64, i1 }} @llvm.umul.with.overflow.i64(i64, i64)

define void @enzpy_scratch_free(ptr %p) {{
entry:
  %null = icmp eq ptr %p, null
  br i1 %null, label %out, label %sized
sized:
  %cap = call i64 @malloc_usable_size(ptr %p)
  %w = call i1 @enzpy_scratch_wanted(i64 %cap)
  br i1 %w, label %count, label %plain
count:
  %old = atomicrmw add ptr @enzpy_scratch_held, i64 %cap monotonic, align 8
  %new = add i64 %old, %cap
  %over = icmp ugt i64 %new, {MAX_HELD}
  br i1 %over, label %uncount, label %loop
loop:
  %i = phi i64 [ 0, %count ], [ %next, %busy ]
  %slot = getelementptr inbounds [{SLOTS} x ptr], ptr @enzpy_scratch_slots, i64 0, i64 %i
  %pair = cmpxchg ptr %slot, ptr null, ptr %p acq_rel monotonic, align 8
  %ok = extractvalue {{ ptr, i1 }} %pair, 1
  br i1 %ok, label %out, label %busy
busy:
  %next = add nuw nsw i64 %i, 1
  %done = icmp eq i64 %next, {SLOTS}
  br i1 %done, label %uncount, label %loop
uncount:
  %h = atomicrmw sub ptr @enzpy_scratch_held, i64 %cap monotonic, align 8
  br label %plain
plain:
  call void @free(ptr %p)
  br label %out
out:
  ret void
}}

; Free every held block.
define void @enzpy_scratch_release() {{
entry:
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %next, %skip ]
  %slot = getelementptr inbounds [{SLOTS} x ptr], ptr @enzpy_scratch_slots, i64 0, i64 %i
  %p = atomicrmw xchg ptr %slot, ptr null acq_rel, align 8
  %empty = icmp eq ptr %p, null
  br i1 %empty, label %skip, label %drop
drop:
  %cap = call i64 @malloc_usable_size(ptr %p)
  %h = atomicrmw sub ptr @enzpy_scratch_held, i64 %cap monotonic, align 8
  call void @free(ptr %p)
  br label %skip
skip:
  %next = add nuw nsw i64 %i, 1
  %done = icmp eq i64 %next, {SLOTS}
  br i1 %done, label %out, label %loop
out:
  ret void
}}
"""

_loaded: Any = None
_release: Any = None
_lock = threading.Lock()


@functools.cache
def supported() -> bool:
    """Whether this process's C library has ``malloc_usable_size`` (Linux: glibc, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(getattr(ctypes.CDLL(None), "malloc_usable_size", None))
    except OSError:
        return False


def redirect(module: ModuleRef) -> bool:
    """Rename the declarations of ``malloc``, ``calloc`` and ``free`` the module's code
    calls to the scratch helpers (see the module docstring); whether it did (the code
    then needs :func:`ensure_scratch` before it loads).  Nothing changes when the module
    allocates nothing, defines one of them itself or declares one with another type."""
    lib = native().llvm
    found: dict[str, int] = {}
    for name, (helper, arity) in REDIRECTED.items():
        fn = lib.LLVMGetNamedFunction(module.handle, name.encode())
        if not fn or not lib.LLVMGetFirstUse(fn):
            continue
        if not lib.LLVMIsDeclaration(fn) or lib.LLVMGetNamedFunction(module.handle, helper.encode()):
            return False
        if not _plain_signature(lib, fn, name, arity):
            return False
        found[name] = fn
    if "malloc" not in found and "calloc" not in found:
        return False
    for name, fn in found.items():
        data = REDIRECTED[name][0].encode()
        lib.LLVMSetValueName2(fn, data, len(data))
    return True


def _plain_signature(lib: Any, fn: int, name: str, arity: int) -> bool:
    """``fn`` is declared as the C library declares ``name`` on a 64-bit target."""
    ty = lib.LLVMGlobalGetValueType(fn)
    if lib.LLVMCountParamTypes(ty) != arity or lib.LLVMIsFunctionVarArg(ty):
        return False
    params = (ctypes.c_void_p * arity)()
    lib.LLVMGetParamTypes(ty, params)
    ret = lib.LLVMGetReturnType(ty)
    if name == "free":
        return bool(
            lib.LLVMGetTypeKind(ret) == TypeKind.VOID and lib.LLVMGetTypeKind(params[0]) == TypeKind.POINTER
        )
    if lib.LLVMGetTypeKind(ret) != TypeKind.POINTER:
        return False
    return all(
        lib.LLVMGetTypeKind(p) == TypeKind.INTEGER and lib.LLVMGetIntTypeWidth(p) == 64 for p in params
    )


def ensure_scratch() -> None:
    """Build and load the helper object once per process."""
    global _loaded, _release
    if _loaded is not None:
        return
    with _lock, LOCK:
        if _loaded is not None:
            return
        code = load_helper(_HELPER, "enzpy_scratch", "the scratch memory helper")
        try:
            release_fn = ctypes.CFUNCTYPE(None)(lookup("enzpy_scratch_release"))
            held = lookup("enzpy_scratch_held")
        except CompileError as e:
            code.close()
            raise LibraryError(f"internal error: the scratch memory helper did not load: {e}") from None
        _release = (release_fn, held)
        _loaded = code


def release() -> None:
    """Return every held block to the C library (nothing when the helper is not loaded).
    Code running in other threads at the same time may keep using blocks of its own."""
    if _release is not None:
        _release[0]()


def held_bytes() -> int:
    """The usable bytes of the blocks held now (0 when the helper is not loaded)."""
    if _release is None:
        return 0
    return ctypes.c_int64.from_address(_release[1]).value
