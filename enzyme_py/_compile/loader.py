"""The load stage: :class:`~.plan.CompiledCode` in, a ctypes callable out.

Each :class:`LoadedCode` adds one object file to the process's JIT
(:mod:`enzyme_py._native.jit`) under its own resource tracker; closing it removes that
code.  A module instance with mutable globals has one :class:`StateObject` that every
code object of that instance links against (their shared state); it stays loaded while
any of them is.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from typing import Any

from .._native import jit
from .._native.ffi import LOCK
from .._native.handles import Closing
from .._native.scratch import ensure_scratch
from .._native.traps import ensure_traps
from .._native.types import CTYPES
from ..errors import CompileError
from .plan import CompiledCode

__all__ = ["LoadedCode", "StateObject", "out_struct_type"]

_struct_types: dict[tuple[str, ...], type[ctypes.Structure]] = {}


def out_struct_type(kinds: tuple[str, ...]) -> type[ctypes.Structure]:
    """The ctypes Structure matching an entry point's out-struct of scalar ``kinds``."""
    cls = _struct_types.get(kinds)
    if cls is None:
        fields = [(f"f{i}", CTYPES[k]) for i, k in enumerate(kinds)]
        cls = type("EnzymePyOut", (ctypes.Structure,), {"_fields_": fields})
        _struct_types[kinds] = cls
    return cls


def function_type(params: tuple[str, ...], result: str) -> Any:
    """The ctypes prototype of an entry point."""
    restype = None if result == "void" else CTYPES[result]
    return ctypes.CFUNCTYPE(restype, *(CTYPES[k] for k in params))


class StateObject(Closing):
    """The object code defining one module instance's mutable globals, loaded once."""

    def __init__(self, object_code: bytes, name: str) -> None:
        with LOCK:
            self._object: jit.JITObject | None = jit.load_object(object_code, f"{name}.state.o")

    def close(self) -> None:
        obj, self._object = self._object, None
        if obj is not None:
            obj.close()


class LoadedCode(Closing):
    """Compiled code loaded into the JIT: ``cfunc`` is the entry point as a ctypes function.

    ``close()`` removes the code from the JIT; ``cfunc`` must not be called afterwards
    (the wrapper forgets it, so use through this object raises :class:`ValueError`).
    ``state``: the state object the code links against (kept loaded as long as this is).
    ``alive``: a C word that is 1 while the code is loaded and 0 from the moment
    ``close()`` starts (native entries read it before every call).
    """

    def __init__(
        self,
        compiled: CompiledCode,
        symbols: Mapping[str, int] | None = None,
        state: StateObject | None = None,
    ) -> None:
        self.compiled = compiled
        self.state = state
        with LOCK:
            if compiled.traps:
                ensure_traps()
            if compiled.scratch:
                ensure_scratch()
            if symbols:
                jit.define_symbols(symbols)
            obj = jit.load_object(compiled.object_code, compiled.symbol)
            try:
                self.address = jit.lookup(compiled.symbol)
                self.reverse_address = (
                    jit.lookup(compiled.symbol + "_reverse") if compiled.plan.mode == "split" else 0
                )
                self.init_address = jit.lookup(compiled.symbol + "_init") if compiled.init else 0
            except CompileError as e:
                obj.close()
                raise CompileError(
                    f"the JIT could not link {compiled.plan.function!r}: {e}. Every function the "
                    "code calls must be defined in the module, exported by a library loaded in "
                    "this process, or given with Module.from_ir(..., symbols={name: address})"
                ) from None
        self._object: jit.JITObject | None = obj
        #: True from the moment ``close()`` removes the code (a plain attribute: the call
        #: layer reads it on every call)
        self.closed = False
        self.alive = ctypes.c_int32(1)
        self._cfunc: Any = function_type(compiled.params, compiled.result)(self.address)
        self.out_type = out_struct_type(compiled.out_fields) if compiled.out_fields else None

    def run_constructors(self) -> None:
        """Run the module's static constructors (see ``CompiledCode.init``); the caller
        does it once per module instance."""
        if self.init_address and self._object is not None:
            ctypes.CFUNCTYPE(None)(self.init_address)()

    @property
    def cfunc(self) -> Any:
        """The entry point; :class:`ValueError` once closed."""
        if self._cfunc is None:
            raise ValueError("this compiled code was unloaded and cannot be called")
        return self._cfunc

    def close(self) -> None:
        """Remove the code from the JIT (idempotent)."""
        alive = getattr(self, "alive", None)
        if alive is not None:
            alive.value = 0
        self.closed = True
        obj, self._object = self._object, None
        self._cfunc = None
        if obj is not None:
            obj.close()
        self.state = None
