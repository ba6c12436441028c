"""Calls into Enzyme that can be abandoned: setjmp/longjmp trampolines built in LLVM IR.

Some Enzyme errors are not meant to return: after calling ``CustomErrorHandler`` for an
illegal type analysis, Enzyme prints and exits the process; after an internal error it
goes on with a null value.  Its Julia frontend therefore throws out of the handler.  We
do the same at C level: each Enzyme entry point is called through a small JIT-compiled
trampoline that does ``_setjmp`` first, and the handlers (also JIT-compiled) report to
Python and then ``longjmp`` back to the trampoline, which returns NULL and sets a flag.

The trampoline for a C function is generated from its ctypes declaration: Python fills a
C struct with the arguments (:meth:`Guard.call`), the trampoline loads each field and calls
the function with the C calling convention (structs larger than 16 bytes passed by
value are ``byval`` on x86-64).

Invariants: the jump buffer is process-wide, so guarded calls happen only under the
LLVM lock (one at a time; :meth:`Guard.call` takes it); the handlers jump only while a guarded call is running
(``armed``), otherwise they return like plain handlers.  Objects Enzyme was building
when the jump happened are abandoned (leaked), never freed: their state is unknown.
"""

from __future__ import annotations

import ctypes
import platform
from collections.abc import Sequence
from typing import Any

from ..errors import CompileError, LibraryError
from .ffi import LOCK
from .ffi.llvm import DIAGNOSTIC_HANDLER
from .ffi.llvm import FUNCTIONS as LLVM_FUNCTIONS
from .jit import load_helper, lookup
from .library import native

__all__ = ["Guard", "guard"]

_IR_SCALAR = {
    ctypes.c_void_p: "ptr",
    ctypes.c_char_p: "ptr",
    ctypes.c_int: "i32",
    ctypes.c_uint: "i32",
    ctypes.c_int64: "i64",
    ctypes.c_uint64: "i64",
    ctypes.c_size_t: "i64",
    ctypes.c_uint8: "i8",
}
_EXT = {ctypes.c_uint8: " zeroext"}


def _ir_type(t: Any) -> str:
    if t in _IR_SCALAR:
        return _IR_SCALAR[t]
    if isinstance(t, type) and issubclass(t, ctypes._Pointer):
        return "ptr"
    if isinstance(t, type) and issubclass(t, ctypes.Structure):
        return "{ " + ", ".join(_ir_type(f[1]) for f in t._fields_) + " }"
    raise TypeError(f"no IR type for {t!r}")


def _trampoline(name: str, restype: Any, argtypes: Sequence[Any], x86_64: bool) -> str:
    fields = ", ".join(_ir_type(t) for t in argtypes)
    ret = "void" if restype is None else _ir_type(restype)
    params = []
    for t in argtypes:
        if isinstance(t, type) and issubclass(t, ctypes.Structure):
            size = ctypes.sizeof(t)
            if size > 16:
                params.append(f"ptr byval({_ir_type(t)}) align 8" if x86_64 else "ptr")
            else:
                raise TypeError(f"{name}: small structs by value are not supported")
        else:
            params.append(_ir_type(t) + _EXT.get(t, ""))
    lines = [
        f"declare {ret} @{name}({', '.join(params)})",
        f"define {ret if ret != 'void' else 'void'} @enzpy_guarded_{name}(ptr %blk, ptr %jumped) {{",
        "entry:",
        "  %s = call i32 @_setjmp(ptr @enzpy_jmpbuf) #0",
        "  %ok = icmp eq i32 %s, 0",
        "  br i1 %ok, label %go, label %fail",
        "fail:",
        "  store i32 1, ptr %jumped",
        f"  ret {ret} {'null' if ret == 'ptr' else ('undef' if ret != 'void' else '')}".rstrip(),
        "go:",
        "  store i32 1, ptr @enzpy_armed",
    ]
    args = []
    for i, t in enumerate(argtypes):
        lines.append(f"  %p{i} = getelementptr inbounds {{ {fields} }}, ptr %blk, i32 0, i32 {i}")
        if isinstance(t, type) and issubclass(t, ctypes.Structure):
            if x86_64:
                args.append(f"ptr byval({_ir_type(t)}) align 8 %p{i}")
            else:
                lines.append(f"  %c{i} = alloca {_ir_type(t)}, align 8")
                lines.append(f"  %v{i} = load {_ir_type(t)}, ptr %p{i}")
                lines.append(f"  store {_ir_type(t)} %v{i}, ptr %c{i}")
                args.append(f"ptr %c{i}")
        else:
            ty = _ir_type(t)
            lines.append(f"  %v{i} = load {ty}, ptr %p{i}")
            args.append(f"{ty}{_EXT.get(t, '')} %v{i}")
    if ret == "void":
        lines.append(f"  call void @{name}({', '.join(args)})")
        lines += ["  store i32 0, ptr @enzpy_armed", "  ret void", "}"]
    else:
        lines.append(f"  %r = call {ret} @{name}({', '.join(args)})")
        lines += ["  store i32 0, ptr @enzpy_armed", f"  ret {ret} %r", "}"]
    return "\n".join(lines)


_PRELUDE = """
@enzpy_jmpbuf = global [64 x i64] zeroinitializer, align 16
@enzpy_armed = global i32 0
@enzpy_py_error = global ptr null
@enzpy_warning = global i32 0
@enzpy_py_diag = global ptr null

declare i32 @_setjmp(ptr) #0
declare void @longjmp(ptr, i32) #1
declare i32 @LLVMGetDiagInfoSeverity(ptr)

define ptr @enzpy_error_handler(ptr %msg, ptr %val, i32 %type, ptr %data, ptr %val2, ptr %b) {
entry:
  %cb = load ptr, ptr @enzpy_py_error
  %r = call ptr %cb(ptr %msg, ptr %val, i32 %type, ptr %data, ptr %val2, ptr %b)
  %warn = load i32, ptr @enzpy_warning
  store i32 0, ptr @enzpy_warning
  %armed = load i32, ptr @enzpy_armed
  %isarmed = icmp ne i32 %armed, 0
  %iserror = icmp eq i32 %warn, 0
  %jump = and i1 %isarmed, %iserror
  br i1 %jump, label %away, label %back
away:
  store i32 0, ptr @enzpy_armed
  call void @longjmp(ptr @enzpy_jmpbuf, i32 1) #1
  unreachable
back:
  ret ptr %r
}

define void @enzpy_diag_handler(ptr %info, ptr %ctx) {
entry:
  %cb = load ptr, ptr @enzpy_py_diag
  call void %cb(ptr %info, ptr %ctx)
  %sev = call i32 @LLVMGetDiagInfoSeverity(ptr %info)
  %err = icmp eq i32 %sev, 0
  %armed = load i32, ptr @enzpy_armed
  %isarmed = icmp ne i32 %armed, 0
  %jump = and i1 %err, %isarmed
  br i1 %jump, label %away, label %back
away:
  store i32 0, ptr @enzpy_armed
  call void @longjmp(ptr @enzpy_jmpbuf, i32 1) #1
  unreachable
back:
  ret void
}
"""

_EPILOGUE = """
attributes #0 = { returns_twice }
attributes #1 = { noreturn }
"""


class Guard:
    """The loaded trampolines and handlers (one per process)."""

    def __init__(self, code: Any, functions: dict[str, tuple[Any, tuple[Any, ...]]]) -> None:
        self._code = code  # LoadedCode-like owner of the JIT memory (kept alive)
        self.error_handler_address = 0
        self.diag_handler_address = 0
        #: ``int32`` the Python error handler sets to 1 for a report that is only a
        #: warning (the handler then lets Enzyme go on instead of jumping)
        self.warning_flag_address = 0
        self._calls: dict[str, tuple[Any, type[ctypes.Structure], bool]] = {}
        self._functions = functions

    def call(self, name: str, *args: Any) -> tuple[bool, Any]:
        """Call ``name`` through its trampoline: ``(completed, result)``; ``completed`` is
        False when a handler jumped out of it (the result is then None)."""
        proto, block_type, _ = self._calls[name]
        block = block_type(*args)
        jumped = ctypes.c_int(0)
        with LOCK:
            result = proto(ctypes.addressof(block), ctypes.addressof(jumped))
        if jumped.value:
            return False, None
        return True, result


_guard: Guard | None = None


def guard() -> Guard:
    """The process's trampolines and handlers, built on first use; installs Enzyme's
    ``CustomErrorHandler`` and makes every new context use the jumping diagnostic
    handler."""
    global _guard
    g = _guard
    if g is not None:
        return g
    with LOCK:
        if _guard is None:
            nat = native()
            guarded = {n: nat.profile.FUNCTIONS[n] for n in nat.profile.GUARDED}
            # Enzyme's own pass runs inside the legacy pass manager: the same protection.
            guarded["LLVMRunPassManager"] = LLVM_FUNCTIONS["LLVMRunPassManager"]
            g = _build(nat, guarded)
            nat.context_diagnostic_handler = DIAGNOSTIC_HANDLER(g.diag_handler_address)
            slot = nat.enzyme.global_address("CustomErrorHandler")
            if slot is None:
                raise LibraryError(
                    f"{nat.enzyme_path} does not export CustomErrorHandler; enzyme_py cannot "
                    "turn Enzyme's errors into exceptions with it"
                )
            ctypes.c_void_p.from_address(slot).value = g.error_handler_address
            _guard = g
        return _guard


def _build(nat: Any, functions: dict[str, tuple[Any, tuple[Any, ...]]]) -> Guard:
    """Compile and load the trampolines for ``functions`` (name -> (restype, argtypes)) and
    the two handlers, wired to the Python recorders of :mod:`enzyme_py._native.library`."""
    x86_64 = platform.machine().lower() in ("x86_64", "amd64")
    text = "\n".join(
        [_PRELUDE]
        + [_trampoline(n, r, a, x86_64) for n, (r, a) in functions.items()]
        + [_EPILOGUE]
    )
    code = load_helper(text, "enzpy_guard", "the Enzyme call trampolines")

    def find(sym: str) -> int:
        try:
            return lookup(sym)
        except CompileError as e:
            raise LibraryError(f"internal error: trampoline symbol {sym} not found: {e}") from None

    g = Guard(code, functions)
    ctypes.c_void_p.from_address(find("enzpy_py_error")).value = ctypes.cast(
        nat.error_handler, ctypes.c_void_p
    ).value
    ctypes.c_void_p.from_address(find("enzpy_py_diag")).value = ctypes.cast(
        nat.diagnostic_handler, ctypes.c_void_p
    ).value
    g.error_handler_address = find("enzpy_error_handler")
    g.warning_flag_address = find("enzpy_warning")
    g.diag_handler_address = find("enzpy_diag_handler")
    for name, (restype, argtypes) in functions.items():
        fields = [(f"a{i}", t) for i, t in enumerate(argtypes)]
        block = type(f"{name}_args", (ctypes.Structure,), {"_fields_": fields})
        proto = ctypes.CFUNCTYPE(restype, ctypes.c_void_p, ctypes.c_void_p)(find(f"enzpy_guarded_{name}"))
        g._calls[name] = (proto, block, restype is not None)
    return g
