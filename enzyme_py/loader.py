"""The load stage: object code from :mod:`enzyme_py.compiler` in, a ctypes callable out.

One ORC LLJIT serves the process (created on first use, with a generator that resolves
symbols from the process: libm, libc, ...).  Each :class:`LoadedCode` adds one object
file under its own resource tracker; closing it removes that code from the JIT.
Calling JIT-compiled code does not take the LLVM lock.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from typing import Any

from ._irtypes import CTYPES
from ._library import LOCK, error_message, native
from ._refs import Closing, LLJITRef, MemoryBufferRef, ResourceTrackerRef
from .compiler import CompiledCode
from .errors import CompileError

_is_finalizing = sys.is_finalizing

__all__ = ["LoadedCode", "define_symbols", "load", "out_struct_type"]

_jit: LLJITRef | None = None
_main_dylib: int | None = None
_session_errors = threading.local()


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


_reporter: Any = None


def _get_jit() -> tuple[LLJITRef, int]:
    global _jit, _main_dylib
    if _jit is not None and _main_dylib is not None:
        return _jit, _main_dylib
    lib = native().llvm
    handle = ctypes.c_void_p()
    msg = error_message(lib, lib.LLVMOrcCreateLLJIT(ctypes.byref(handle), None))
    if msg is not None:
        raise CompileError(f"could not create the ORC JIT: {msg}")
    jit = LLJITRef(handle.value)
    dylib = lib.LLVMOrcLLJITGetMainJITDylib(jit.handle)
    gen = ctypes.c_void_p()
    prefix = lib.LLVMOrcLLJITGetGlobalPrefix(jit.handle)
    msg = error_message(
        lib,
        lib.LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
            ctypes.byref(gen), prefix, None, None
        ),
    )
    if msg is not None:
        raise CompileError(f"could not create the JIT's process symbol generator: {msg}")
    lib.LLVMOrcJITDylibAddGenerator(dylib, gen)
    global _reporter
    from ._ffi.llvm import ORC_ERROR_REPORTER

    _reporter = ORC_ERROR_REPORTER(_on_session_error)  # kept alive: C holds it
    lib.LLVMOrcExecutionSessionSetErrorReporter(
        lib.LLVMOrcLLJITGetExecutionSession(jit.handle), _reporter, None
    )
    _jit, _main_dylib = jit, dylib
    return jit, dylib


_defined_symbols: dict[str, int] = {}


def define_symbols(symbols: dict[str, int]) -> None:
    """Make ``name -> address`` known to the JIT (process-wide, for the life of the
    process), e.g. runtime functions living in a library loaded ``RTLD_LOCAL``.

    Defining a name again with the same address does nothing; with another address it
    raises :class:`CompileError`.  Call under the LLVM lock.
    """
    from ._ffi.llvm import CSymbolMapPair, JITEvaluatedSymbol, JITSymbolFlags

    new = {}
    for name, addr in symbols.items():
        addr = int(addr)
        if not addr:
            raise ValueError(f"symbol {name!r} has a NULL address")
        old = _defined_symbols.get(name)
        if old is None:
            new[name] = addr
        elif old != addr:
            raise CompileError(
                f"symbol {name!r} is already defined in the JIT at {old:#x}; it cannot also "
                f"be {addr:#x}"
            )
    if not new:
        return
    lib = native().llvm
    jit, dylib = _get_jit()
    pairs = (CSymbolMapPair * len(new))()
    for i, (name, addr) in enumerate(new.items()):
        pairs[i].Name = lib.LLVMOrcLLJITMangleAndIntern(jit.handle, name.encode())
        pairs[i].Sym = JITEvaluatedSymbol(addr, JITSymbolFlags(1 | 2, 0))  # exported, callable
    mu = lib.LLVMOrcAbsoluteSymbols(pairs, len(new))
    msg = error_message(lib, lib.LLVMOrcJITDylibDefine(dylib, mu))
    if msg is not None:
        lib.LLVMOrcDisposeMaterializationUnit(mu)
        raise CompileError(f"could not define symbols {', '.join(new)} in the JIT: {msg}")
    _defined_symbols.update(new)


_struct_types: dict[tuple[str, ...], type[ctypes.Structure]] = {}


def out_struct_type(kinds: tuple[str, ...]) -> type[ctypes.Structure]:
    """The ctypes Structure matching an entry point's out-struct of scalar ``kinds``."""
    cls = _struct_types.get(kinds)
    if cls is None:
        fields = [(f"f{i}", CTYPES[k]) for i, k in enumerate(kinds)]
        cls = type("EnzymePyOut", (ctypes.Structure,), {"_fields_": fields})
        _struct_types[kinds] = cls
    return cls


class LoadedCode(Closing):
    """Compiled code loaded into the JIT: ``cfunc`` is the entry point as a ctypes function.

    ``close()`` removes the code from the JIT; ``cfunc`` must not be called afterwards
    (the wrapper forgets it, so use through this object raises :class:`ValueError`).
    """

    def __init__(self, compiled: CompiledCode, symbols: dict[str, int] | None = None) -> None:
        self.compiled = compiled
        lib = native().llvm
        with LOCK:
            jit, dylib = _get_jit()
            if symbols:
                define_symbols(symbols)
            tracker = ResourceTrackerRef(lib.LLVMOrcJITDylibCreateResourceTracker(dylib))
            try:
                buf = MemoryBufferRef.from_bytes(compiled.object_code, compiled.symbol)
                msg = error_message(
                    lib,
                    lib.LLVMOrcLLJITAddObjectFileWithRT(jit.handle, tracker.handle, buf.detach()),
                )
                if msg is not None:
                    raise CompileError(f"the JIT rejected the object code: {msg}")
                addr = ctypes.c_uint64()
                _take_session_errors()
                msg = error_message(
                    lib,
                    lib.LLVMOrcLLJITLookup(
                        jit.handle, ctypes.byref(addr), compiled.symbol.encode()
                    ),
                )
                if msg is not None:
                    detail = "; ".join(_take_session_errors() + [msg])
                    raise CompileError(
                        f"the JIT could not link {compiled.plan.function!r}: {detail}. "
                        "Every function the code calls must be defined in the module, "
                        "exported by a library loaded in this process, or given with "
                        "Module.from_ir(..., symbols={name: address})"
                    )
            except BaseException:
                tracker.close()
                raise
        self._tracker: ResourceTrackerRef | None = tracker
        self.address = int(addr.value)
        restype = None if compiled.result == "void" else CTYPES[compiled.result]
        argtypes = [CTYPES[k] for k in compiled.params]
        proto = ctypes.CFUNCTYPE(restype, *argtypes)
        self._cfunc: Any = proto(self.address)
        self.out_type = out_struct_type(compiled.out_fields) if compiled.out_fields else None

    @property
    def cfunc(self) -> Any:
        """The entry point; :class:`ValueError` once closed."""
        if self._cfunc is None:
            raise ValueError("this compiled code was unloaded and cannot be called")
        return self._cfunc

    @property
    def closed(self) -> bool:
        return self._tracker is None

    def close(self) -> None:
        """Remove the code from the JIT (idempotent)."""
        tracker, self._tracker = self._tracker, None
        self._cfunc = None
        if tracker is not None:
            tracker.close()



def load(compiled: CompiledCode, symbols: dict[str, int] | None = None) -> LoadedCode:
    """Load object code into the process JIT (``symbols``: see :func:`define_symbols`)."""
    return LoadedCode(compiled, symbols)
