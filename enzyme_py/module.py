"""LLVM modules and their functions: :class:`Module` (from IR text, bitcode or C) and
:class:`Function` (callable as the primal, differentiable with :func:`enzyme_py.autodiff`).

Each Module owns one LLVM context (typed-pointer IR, as llvmlite writes it, and
opaque-pointer IR, as clang 15 writes it, cannot share one) and keeps its bitcode;
every compilation parses that bitcode into a fresh context, so the module itself is
never changed by Enzyme.  Compiled code is cached per module by (function, mode,
activities, dtypes, return activity, options) and unloaded when the module is closed.

Environment: ``ENZYME_PY_CLANG`` names the clang used by :meth:`Module.from_c`
(default: ``clang-N`` on ``PATH``, then ``/usr/lib/llvm-N/bin/clang``, N the LLVM major
of the loaded libLLVM).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import _cache as _codecache
from . import config
from ._dispatch import load_code
from ._fastpath import MISS as _MISS
from ._fastpath import fast_primal as _fast_primal
from ._irtypes import Signature, read_signature
from ._library import LOCK, collecting, native, take_message
from ._refs import Closing, ContextRef, MemoryBufferRef, ModuleRef
from .compiler import (
    Plan,
    host_target_machine,
    parse_bitcode,
    prepare_module,
    run_pipeline,
    verify,
    write_bitcode,
)
from .errors import CompileError, IRParseError
from .loader import LoadedCode

_is_finalizing = sys.is_finalizing

__all__ = ["Function", "FunctionNotFoundError", "Module", "find_clang"]

#: Flags given to clang by :meth:`Module.from_c`: optimise, but leave unrolling and
#: vectorisation to the pipeline after differentiation; no errno from libm calls (clang
#: would declare them ``writeonly``, which conflicts with what Enzyme adds).
C_FLAGS = (
    "-O2",
    "-fno-math-errno",
    "-Xclang",
    "-disable-llvm-optzns",
    "-emit-llvm",
    "-c",
)

_PARSE_POS = re.compile(r":(\d+):(\d+):\s*error:\s*(.*)", re.DOTALL)


class FunctionNotFoundError(KeyError):
    """The module defines no function of that name; the message lists those it defines."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def find_clang(major: int) -> Path:
    """The clang of LLVM ``major``: ``ENZYME_PY_CLANG``, ``clang-N`` on PATH, or
    ``/usr/lib/llvm-N/bin/clang``.  :class:`CompileError` when none exists."""
    env = os.environ.get("ENZYME_PY_CLANG")
    if env:
        return Path(env)
    found = shutil.which(f"clang-{major}")
    if found:
        return Path(found)
    for cand in (Path(f"/usr/lib/llvm-{major}/bin/clang"), Path(f"/usr/local/opt/llvm@{major}/bin/clang")):
        if cand.exists():
            return cand
    raise CompileError(
        f"no clang for LLVM {major} was found; install clang-{major} "
        f"(e.g. `apt-get install clang-{major}`) or set ENZYME_PY_CLANG to its path"
    )


class Module(Closing):
    """An LLVM module: build with :meth:`from_ir`, :meth:`from_bitcode` or :meth:`from_c`.

    ``close()`` (or a ``with`` block) frees the LLVM context and unloads all code compiled
    from this module; the module and its functions cannot be used afterwards.
    """

    def __init__(
        self,
        context: ContextRef,
        module: ModuleRef,
        name: str,
        symbols: Mapping[str, int] | None = None,
    ) -> None:
        nat = native()
        with LOCK:
            verify(nat, module.handle, f"module {name!r}")
        self.name = name
        #: name -> address of external functions the JIT must resolve (e.g. runtime
        #: functions of a library loaded RTLD_LOCAL); given to the JIT when code loads.
        self.symbols: dict[str, int] = _check_symbols(symbols)
        self._context: ContextRef | None = context
        self._module: ModuleRef | None = module
        with LOCK:
            self._bitcode = write_bitcode(nat, module.handle)
            self._functions = self._read_functions()
        self.content_hash = hashlib.sha256(self._bitcode).hexdigest()
        self._cache: dict[tuple[Any, ...], LoadedCode] = {}
        self._cache_lock = threading.Lock()
        #: request kind -> call plan of enzyme_py._fastpath; cleared with the cache.
        self._fast_plans: dict[Any, Any] = {}

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_ir(
        cls, text: str, *, name: str = "module", symbols: Mapping[str, int] | None = None
    ) -> Module:
        """Parse LLVM IR text; :class:`IRParseError` (a ValueError) with line on failure.

        ``symbols`` maps external function names to addresses in this process, for
        functions the JIT cannot find by itself (see :attr:`symbols`).
        """
        if not isinstance(text, str):
            raise TypeError(f"from_ir expects IR text (str), got {type(text).__name__}")
        nat = native()
        with LOCK:
            ctx = ContextRef.create()
            try:
                data = text.encode()
                buf = MemoryBufferRef.from_bytes(data, name)
                mod = ctypes.c_void_p()
                msg = ctypes.c_void_p()
                failed = nat.llvm.LLVMParseIRInContext(
                    ctx.handle, buf.detach(), ctypes.byref(mod), ctypes.byref(msg)
                )
                text_msg = take_message(nat.llvm, msg.value)
                if failed or not mod.value:
                    raise _parse_error(text_msg or "invalid LLVM IR")
                return cls(ctx, ModuleRef(mod.value, keep=ctx), name, symbols)
            except BaseException:
                ctx.close()
                raise

    @classmethod
    def from_bitcode(
        cls, data: bytes, *, name: str = "module", symbols: Mapping[str, int] | None = None
    ) -> Module:
        """Parse LLVM bitcode; :class:`IRParseError` when it is not valid bitcode."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"from_bitcode expects bytes, got {type(data).__name__}")
        nat = native()
        with LOCK:
            ctx = ContextRef.create()
            try:
                mod = parse_bitcode(nat, ctx, bytes(data), name)
                return cls(ctx, mod, name, symbols)
            except BaseException:
                ctx.close()
                raise

    @classmethod
    def from_c(
        cls,
        source: str,
        *,
        flags: Sequence[str] = (),
        name: str = "module",
        symbols: Mapping[str, int] | None = None,
    ) -> Module:
        """Compile C source with the clang of the loaded LLVM and parse the result.

        The code is optimised before differentiation without unrolling or vectorisation
        (those run after Enzyme).  :class:`CompileError` carries clang's stderr.
        """
        if not isinstance(source, str):
            raise TypeError(f"from_c expects C source (str), got {type(source).__name__}")
        if isinstance(flags, str):
            raise TypeError("flags must be a sequence of strings, not one string")
        nat = native()
        clang = find_clang(nat.llvm_major)
        with tempfile.TemporaryDirectory(prefix="enzyme_py_") as tmp:
            src = Path(tmp) / f"{_safe(name)}.c"
            out = Path(tmp) / f"{_safe(name)}.bc"
            src.write_text(source)
            cmd = [str(clang), *C_FLAGS, *map(str, flags), str(src), "-o", str(out)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
            except OSError as e:
                raise CompileError(f"could not run {clang}: {e}") from e
            if proc.returncode != 0 or not out.exists():
                raise CompileError(
                    f"clang failed on C source {name!r} (exit status {proc.returncode})",
                    proc.stderr,
                )
            data = out.read_bytes()
        with LOCK:
            ctx = ContextRef.create()
            try:
                mod = parse_bitcode(nat, ctx, data, name)
                tm = host_target_machine()
                with collecting() as reports:
                    prepare_module(nat, mod.handle, tm)
                    run_pipeline(nat, mod.handle, "default<O2>", tm, loop_transforms=False)
                if reports:
                    raise CompileError(
                        f"optimising C source {name!r} failed",
                        "\n".join(r.message for r in reports),
                    )
                return cls(ctx, mod, name, symbols)
            except BaseException:
                ctx.close()
                raise

    # ------------------------------------------------------------------ inspection

    def _read_functions(self) -> dict[str, Signature]:
        lib = native().llvm
        out: dict[str, Signature] = {}
        size = ctypes.c_size_t()
        fn = lib.LLVMGetFirstFunction(self._handle())
        while fn:
            if not lib.LLVMIsDeclaration(fn):
                name = ctypes.string_at(lib.LLVMGetValueName2(fn, ctypes.byref(size)), size.value)
                out[name.decode()] = read_signature(lib, fn)
            fn = lib.LLVMGetNextFunction(fn)
        return out

    def _handle(self) -> int:
        if self._module is None:
            raise ValueError(f"module {self.name!r} was closed and cannot be used")
        return self._module.handle

    @property
    def closed(self) -> bool:
        return self._module is None

    @property
    def functions(self) -> tuple[str, ...]:
        """Names of the functions this module defines."""
        self._handle()
        return tuple(self._functions)

    @property
    def bitcode(self) -> bytes:
        """The module's bitcode (what every compilation starts from)."""
        self._handle()
        return self._bitcode

    @property
    def ir(self) -> str:
        """The module as LLVM IR text."""
        lib = native().llvm
        with LOCK:
            return take_message(lib, lib.LLVMPrintModuleToString(self._handle())) or ""

    def function(self, name: str) -> Function:
        """The function ``name``; :class:`FunctionNotFoundError` (a KeyError) if the
        module does not define it."""
        self._handle()
        sig = self._functions.get(name)
        if sig is None:
            defined = ", ".join(sorted(self._functions)) or "none"
            raise FunctionNotFoundError(
                f"module {self.name!r} defines no function {name!r}; it defines: {defined}"
            )
        return Function(self, name, sig)

    # ------------------------------------------------------------------ compilation

    def _compiled(self, plan: Plan) -> LoadedCode:
        """Compiled and loaded code for ``plan``, from the caches when possible."""
        self._handle()
        key = (self.content_hash, plan, config.options(), tuple(sorted(self.symbols.items())))
        code = self._cache.get(key)
        if code is not None:
            return code
        bitcode, symbols = self._bitcode, self.symbols

        def build() -> LoadedCode:
            # disk cache, isolation worker or this process (enzyme_py._dispatch)
            return load_code(bitcode, self.content_hash, plan, symbols)

        with self._cache_lock:
            code = self._cache.get(key)
            if code is not None:
                return code
            if self._module is None:
                raise ValueError(f"module {self.name!r} was closed and cannot be used")
            code = _codecache.acquire(key, build)
            self._cache[key] = code
        return code

    def clear_cache(self) -> None:
        """Release every derivative compiled for this module (see :mod:`enzyme_py._cache`)."""
        with self._cache_lock:
            self._fast_plans.clear()
            keys = list(self._cache)
            self._cache.clear()
        for key in keys:
            _codecache.release(key)

    def close(self) -> None:
        """Unload compiled code and free the LLVM module and context (idempotent)."""
        self.clear_cache()
        mod, ctx = self._module, self._context
        self._module = self._context = None
        if mod is not None:
            mod.close()
        if ctx is not None:
            ctx.close()


    def __repr__(self) -> str:
        state = "closed" if self._module is None else f"{len(self._functions)} function(s)"
        return f"<Module {self.name!r}: {state}>"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by content: bitcode, name and the *names* of :attr:`symbols`, resolved
        again by name in the unpickling process (see :mod:`enzyme_py._pickling`)."""
        from ._pickling import rebuild_module

        return (rebuild_module, (self.bitcode, self.name, tuple(sorted(self.symbols))))


class Function:
    """A function defined in a :class:`Module`.

    Calling it runs the primal (compiled once, cached): scalars as Python numbers,
    pointers as C-contiguous NumPy arrays of the matching dtype.
    """

    __slots__ = ("llvm_signature", "module", "name")

    def __init__(self, module: Module, name: str, signature: Signature) -> None:
        self.module = module
        self.name = name
        #: Parameter and return types as :class:`~enzyme_py._irtypes.Signature`.
        self.llvm_signature = signature

    @property
    def signature(self) -> str:
        """The LLVM signature as text, e.g. ``"double (double*, i64)"``."""
        return str(self.llvm_signature)

    def __call__(self, *args: Any) -> Any:
        hit = _fast_primal(self, args)  # a kind called before (enzyme_py._fastpath)
        if hit is not _MISS:
            return hit
        from .api import call_primal

        return call_primal(self, args)

    def __repr__(self) -> str:
        return f"<Function {self.name}: {self.llvm_signature}>"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as (module, name); see :meth:`Module.__reduce__`."""
        from ._pickling import rebuild_function

        return (rebuild_function, (self.module, self.name))


def _check_symbols(symbols: Mapping[str, int] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, addr in (symbols or {}).items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"symbol names must be non-empty strings, got {name!r}")
        if isinstance(addr, bool) or not isinstance(addr, int) or addr <= 0:
            raise ValueError(f"symbol {name!r}: the address must be a positive int, got {addr!r}")
        out[name] = addr
    return out


def _parse_error(message: str) -> IRParseError:
    m = _PARSE_POS.search(message)
    if m:
        return IRParseError(m.group(3).strip(), int(m.group(1)), int(m.group(2)))
    return IRParseError(message.strip())


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "module"
