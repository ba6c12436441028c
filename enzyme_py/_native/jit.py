"""The one ORC LLJIT of the process: object code in, symbol addresses out.

Created on first use, with two definition generators: first :func:`_generate`, which
resolves the names of the libraries enzyme_py provides itself (BLAS names to the loaded
BLAS, :mod:`.blas`; vector math names to glibc's libmvec, :mod:`.vecmath`), loading them on
the first lookup of such a name; then one that resolves symbols from the process (libm,
libc, ...).  :func:`define_symbols` adds absolute addresses for names the process does not
export (runtime functions of a library loaded ``RTLD_LOCAL``); :func:`load_object` adds one
object file under its own resource tracker (closing the :class:`JITObject` removes that
code); :func:`lookup` is the one symbol lookup.  Calling JIT-compiled code does not take
the LLVM lock.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Mapping
from typing import Any

from ..errors import CompileError, IRParseError, LibraryError
from . import blas, vecmath
from .ffi.llvm import (
    ORC_DEFINITION_GENERATOR,
    ORC_ERROR_REPORTER,
    CLookupSetElement,
    CSymbolMapPair,
    JITEvaluatedSymbol,
    JITSymbolFlags,
)
from .handles import Closing, ContextRef, LLJITRef, MemoryBufferRef, ResourceTrackerRef
from .library import error_message, native
from .target import host_target_machine

__all__ = ["JITObject", "define_symbols", "load_object", "lookup"]

_jit: LLJITRef | None = None
_main_dylib: int | None = None
_reporter: Any = None
_generator_callback: Any = None
#: name -> address (or None) of the libraries enzyme_py provides, in lookup order
_RESOLVERS = (blas.resolve, vecmath.resolve)
_session_errors = threading.local()
_jit_lock = threading.Lock()
_defined: dict[str, int] = {}


def _on_session_error(_ctx: object, err: int | None) -> None:
    """ORC's error reporter: keep the message for the load that caused it (instead of
    ORC printing it to stderr)."""
    try:
        msg = error_message(native().llvm, err)
        if msg:
            pending: list[str] = getattr(_session_errors, "messages", [])
            pending.append(msg)
            _session_errors.messages = pending[-20:]
    except BaseException:  # noqa: BLE001 - never unwind through C frames
        return


def _take_session_errors() -> list[str]:
    msgs: list[str] = getattr(_session_errors, "messages", [])
    _session_errors.messages = []
    return msgs


def _provided(name: str) -> int | None:
    """The address of ``name`` in a library enzyme_py provides (BLAS, libmvec), or None."""
    for resolve in _RESOLVERS:
        addr = resolve(name)
        if addr:
            return addr
    return None


def _generate(
    _gen: object, _ctx: object, _state: object, _kind: int, dylib: int | None, _flags: int,
    lookup_set: int | None, count: int,
) -> int | None:
    """ORC's callback for names no definition matches: define those :func:`_provided`
    knows as absolute symbols in ``dylib``; the rest is left to the next generator."""
    try:
        if not count:
            return None
        if lookup_set is None:
            raise ValueError(f"the definition generator was given no lookup set for {count} name(s)")
        lib = native().llvm
        elems = ctypes.cast(lookup_set, ctypes.POINTER(CLookupSetElement))
        found: dict[str, int] = {}
        for i in range(count):
            raw = lib.LLVMOrcSymbolStringPoolEntryStr(elems[i].Name)
            name = ctypes.string_at(raw).decode() if raw else ""
            addr = _provided(name)
            if addr:
                found[name] = addr
        if found:
            define_symbols(found)
        return None
    except BaseException as e:  # noqa: BLE001 - never unwind through C frames
        try:
            return int(native().llvm.LLVMCreateStringError(str(e).encode()))
        except BaseException:  # noqa: BLE001
            return None


def _get() -> tuple[LLJITRef, int]:
    global _jit, _main_dylib, _reporter, _generator_callback
    if _jit is not None and _main_dylib is not None:
        return _jit, _main_dylib
    with _jit_lock:
        if _jit is not None and _main_dylib is not None:
            return _jit, _main_dylib
        lib = native().llvm
        handle = ctypes.c_void_p()
        msg = error_message(lib, lib.LLVMOrcCreateLLJIT(ctypes.byref(handle), None))
        if msg is not None:
            raise CompileError(f"could not create the ORC JIT: {msg}")
        jit = LLJITRef(handle.value)
        dylib = lib.LLVMOrcLLJITGetMainJITDylib(jit.handle)
        _generator_callback = ORC_DEFINITION_GENERATOR(_generate)  # kept alive: C holds it
        lib.LLVMOrcJITDylibAddGenerator(
            dylib, lib.LLVMOrcCreateCustomCAPIDefinitionGenerator(_generator_callback, None, None)
        )
        gen = ctypes.c_void_p()
        prefix = lib.LLVMOrcLLJITGetGlobalPrefix(jit.handle)
        msg = error_message(
            lib,
            lib.LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(ctypes.byref(gen), prefix, None, None),
        )
        if msg is not None:
            raise CompileError(f"could not create the JIT's process symbol generator: {msg}")
        lib.LLVMOrcJITDylibAddGenerator(dylib, gen)
        _reporter = ORC_ERROR_REPORTER(_on_session_error)  # kept alive: C holds it
        lib.LLVMOrcExecutionSessionSetErrorReporter(
            lib.LLVMOrcLLJITGetExecutionSession(jit.handle), _reporter, None
        )
        _jit, _main_dylib = jit, dylib
        return jit, dylib


def define_symbols(symbols: Mapping[str, int]) -> None:
    """Make ``name -> address`` known to the JIT (process-wide, for the life of the
    process).  Defining a name again with the same address does nothing; with another
    address it raises :class:`CompileError`."""
    new = {}
    for name, addr in symbols.items():
        addr = int(addr)
        if not addr:
            raise ValueError(f"symbol {name!r} has a NULL address")
        old = _defined.get(name)
        if old is None:
            new[name] = addr
        elif old != addr:
            raise CompileError(
                f"symbol {name!r} is already defined in the JIT at {old:#x}; it cannot also be {addr:#x}"
            )
    if not new:
        return
    lib = native().llvm
    jit, dylib = _get()
    pairs = (CSymbolMapPair * len(new))()
    for i, (name, addr) in enumerate(new.items()):
        pairs[i].Name = lib.LLVMOrcLLJITMangleAndIntern(jit.handle, name.encode())
        pairs[i].Sym = JITEvaluatedSymbol(addr, JITSymbolFlags(1 | 2, 0))  # exported, callable
    mu = lib.LLVMOrcAbsoluteSymbols(pairs, len(new))
    msg = error_message(lib, lib.LLVMOrcJITDylibDefine(dylib, mu))
    if msg is not None:
        lib.LLVMOrcDisposeMaterializationUnit(mu)
        raise CompileError(f"could not define symbols {', '.join(new)} in the JIT: {msg}")
    _defined.update(new)


def defined_address(name: str) -> int | None:
    """The address :func:`define_symbols` gave ``name``, if any."""
    return _defined.get(name)


def lookup(symbol: str) -> int:
    """The address of ``symbol`` in the JIT; :class:`CompileError` (with ORC's session
    errors, e.g. an unresolved external) when it cannot be materialised."""
    lib = native().llvm
    jit, _ = _get()
    addr = ctypes.c_uint64()
    _take_session_errors()
    msg = error_message(lib, lib.LLVMOrcLLJITLookup(jit.handle, ctypes.byref(addr), symbol.encode()))
    if msg is not None:
        raise CompileError("; ".join(_take_session_errors() + [msg]))
    return int(addr.value)


class JITObject(Closing):
    """One object file loaded into the JIT; :meth:`close` removes its code."""

    def __init__(self, tracker: ResourceTrackerRef) -> None:
        self._tracker: ResourceTrackerRef | None = tracker

    @property
    def closed(self) -> bool:
        return self._tracker is None

    def close(self) -> None:
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            tracker.close()


def load_object(object_code: bytes, name: str) -> JITObject:
    """Add ``object_code`` to the JIT under a resource tracker of its own."""
    lib = native().llvm
    jit, dylib = _get()
    tracker = ResourceTrackerRef(lib.LLVMOrcJITDylibCreateResourceTracker(dylib))
    try:
        buf = MemoryBufferRef.from_bytes(object_code, name)
        msg = error_message(lib, lib.LLVMOrcLLJITAddObjectFileWithRT(jit.handle, tracker.handle, buf.detach()))
        if msg is not None:
            raise CompileError(f"the JIT rejected the object code: {msg}")
    except BaseException:
        tracker.close()
        raise
    return JITObject(tracker)


def load_helper(text: str, name: str, what: str) -> JITObject:
    """Compile the LLVM IR ``text`` of one of enzyme_py's own helper objects (``name``)
    for the host and add it to the JIT.  :class:`LibraryError` ("internal error: ``what``
    did not parse") when the text does not parse: the helpers are generated here, so
    that is a defect of enzyme_py, not of the caller's input."""
    nat = native()
    tm = host_target_machine()
    with ContextRef.create() as ctx:
        try:
            mod = ctx.parse_ir(text, name)
        except IRParseError as e:
            raise LibraryError(f"internal error: {what} did not parse: {e}") from None
        with mod:
            mod.prepare(nat.triple, tm)
            obj = mod.emit_object(tm)
    return load_object(obj, f"{name}.o")

