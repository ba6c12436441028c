"""``exit()``, ``abort()`` and failed ``assert()`` in compiled code become Python
exceptions instead of ending the process.

Code that reaches one of :data:`TRAPPED` is compiled with those calls renamed to the
functions of a small helper object (built in LLVM IR and loaded into the JIT once per
process, like the trampolines of :mod:`.trampolines`), and its entry point does
``_setjmp`` on a frame of its own before calling the function
(:func:`enzyme_py._native.transforms.build_entry`, ``trap=True``).  The frame's address
is kept per thread with ``pthread_setspecific`` (no thread-local storage in JIT code);
a trapped call writes what happened into the entry's hidden status block and
``longjmp``\\ s back to the entry, which returns to Python; Python raises
:class:`~enzyme_py.errors.ProgramExit`.

Invariants: the jump goes only to an entry frame of the calling thread that is still
running (entries save and restore the previous frame, so nesting through callbacks
works); with no frame (code called some other way) the real function runs.  Frames
between the trapped call and the entry are abandoned as ``longjmp`` abandons them: C++
destructors do not run, memory they allocated is leaked.

Status block (``int64[6]``): kind (0 none, 1 ``exit``, 2 ``abort``, 3 ``assert``),
exit status or assert line, then for an assert the addresses of its message, file and
function strings (valid while the code is loaded).
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

from ..errors import CompileError, LibraryError
from .ffi import LOCK
from .jit import load_helper, lookup
from .library import native

__all__ = ["FRAME_BYTES", "STATUS_WORDS", "TRAPPED", "ensure_traps", "read_status"]

#: C library functions that end the process, and the helper each is renamed to.
TRAPPED = {
    "exit": "enzpy_trap_exit",
    "_exit": "enzpy_trap_exit",
    "_Exit": "enzpy_trap_exit",
    "quick_exit": "enzpy_trap_exit",
    "abort": "enzpy_trap_abort",
    "__assert_fail": "enzpy_trap_assert_fail",
}
#: Words of the status block an entry point with traps takes as its last parameter.
STATUS_WORDS = 6
#: Bytes of an entry's frame: the jump buffer (512, more than glibc's 200), the status
#: block's address, the previous frame.
FRAME_BYTES = 528

_HELPER = """
@enzpy_trap_key = global i32 0

declare i32 @pthread_setspecific(i32, ptr)
declare ptr @pthread_getspecific(i32)
declare void @longjmp(ptr, i32) #1
declare i32 @fflush(ptr)
declare void @exit(i32) #1
declare void @abort() #1
declare void @__assert_fail(ptr, ptr, i32, ptr) #1

define ptr @enzpy_trap_enter(ptr %frame) {
  %k = load i32, ptr @enzpy_trap_key
  %prev = call ptr @pthread_getspecific(i32 %k)
  %slot = getelementptr inbounds i8, ptr %frame, i64 520
  store ptr %prev, ptr %slot
  %r = call i32 @pthread_setspecific(i32 %k, ptr %frame)
  ret ptr %prev
}

define void @enzpy_trap_leave(ptr %frame) {
  %k = load i32, ptr @enzpy_trap_key
  %slot = getelementptr inbounds i8, ptr %frame, i64 520
  %prev = load volatile ptr, ptr %slot
  %r = call i32 @pthread_setspecific(i32 %k, ptr %prev)
  ret void
}

define internal ptr @enzpy_trap_frame() {
  %k = load i32, ptr @enzpy_trap_key
  %f = call ptr @pthread_getspecific(i32 %k)
  ret ptr %f
}

define internal void @enzpy_trap_jump(ptr %frame, i64 %kind, i64 %code, ptr %a, ptr %b, ptr %c) #1 {
  %r = call i32 @fflush(ptr null)
  %sp = getelementptr inbounds i8, ptr %frame, i64 512
  %status = load ptr, ptr %sp
  store i64 %kind, ptr %status
  %s1 = getelementptr inbounds i64, ptr %status, i64 1
  store i64 %code, ptr %s1
  %s2 = getelementptr inbounds i64, ptr %status, i64 2
  store ptr %a, ptr %s2
  %s3 = getelementptr inbounds i64, ptr %status, i64 3
  store ptr %b, ptr %s3
  %s4 = getelementptr inbounds i64, ptr %status, i64 4
  store ptr %c, ptr %s4
  call void @longjmp(ptr %frame, i32 1) #1
  unreachable
}

define void @enzpy_trap_exit(i32 %code) #1 {
  %f = call ptr @enzpy_trap_frame()
  %none = icmp eq ptr %f, null
  br i1 %none, label %real, label %jump
real:
  call void @exit(i32 %code) #1
  unreachable
jump:
  %c = sext i32 %code to i64
  call void @enzpy_trap_jump(ptr %f, i64 1, i64 %c, ptr null, ptr null, ptr null) #1
  unreachable
}

define void @enzpy_trap_abort() #1 {
  %f = call ptr @enzpy_trap_frame()
  %none = icmp eq ptr %f, null
  br i1 %none, label %real, label %jump
real:
  call void @abort() #1
  unreachable
jump:
  call void @enzpy_trap_jump(ptr %f, i64 2, i64 0, ptr null, ptr null, ptr null) #1
  unreachable
}

define void @enzpy_trap_assert_fail(ptr %msg, ptr %file, i32 %line, ptr %fn) #1 {
  %f = call ptr @enzpy_trap_frame()
  %none = icmp eq ptr %f, null
  br i1 %none, label %real, label %jump
real:
  call void @__assert_fail(ptr %msg, ptr %file, i32 %line, ptr %fn) #1
  unreachable
jump:
  %l = sext i32 %line to i64
  call void @enzpy_trap_jump(ptr %f, i64 3, i64 %l, ptr %msg, ptr %file, ptr %fn) #1
  unreachable
}

attributes #1 = { noreturn }
"""

_loaded: Any = None
_lock = threading.Lock()


def ensure_traps() -> None:
    """Build and load the helper object once per process (its pthread key created)."""
    global _loaded
    if _loaded is not None:
        return
    with _lock, LOCK:
        if _loaded is not None:
            return
        native()  # the libraries first: the helper is compiled with their LLVM
        libc = ctypes.CDLL(None)
        key = ctypes.c_uint(0)
        if libc.pthread_key_create(ctypes.byref(key), None) != 0:
            raise LibraryError("pthread_key_create failed: no key for enzyme_py's exit traps")
        code = load_helper(_HELPER, "enzpy_traps", "the exit traps")
        try:
            ctypes.c_uint.from_address(lookup("enzpy_trap_key")).value = key.value
        except CompileError as e:
            raise LibraryError(f"internal error: the exit traps did not load: {e}") from None
        _loaded = code


def read_status(words: Any) -> tuple[str, int, str] | None:
    """``(kind, code, message)`` of a status block after a call, or None when the call
    returned normally."""
    kind = int(words[0])
    if kind == 0:
        return None
    code = int(words[1])
    if kind == 1:
        return "exit", code, f"the program called exit({code})"
    if kind == 2:
        return "abort", 134, "the program called abort()"

    def text(addr: int) -> str:
        return ctypes.string_at(addr).decode("utf-8", "replace") if addr else "?"

    msg, file, fn = (text(int(words[i]) & 0xFFFFFFFFFFFFFFFF) for i in (2, 3, 4))
    return "assert", 134, f"{file}:{code}: {fn}: Assertion `{msg}' failed"
