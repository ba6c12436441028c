"""Owning wrappers for every native handle enzyme_py creates.

Each wrapper owns one handle: :meth:`ObjectRef.close` frees it (once; under the LLVM
lock), a ``with`` block closes it, :meth:`ObjectRef.detach` hands ownership to C (the
wrapper then forgets the handle) and ``__del__`` closes it unless the interpreter is
shutting down.  Using a closed or detached wrapper raises :class:`ValueError` instead of
touching freed memory.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import weakref
from typing import Any, ClassVar, Self

from ._library import LOCK, error_message, native

_is_finalizing = sys.is_finalizing

__all__ = [
    "BuilderRef",
    "Closing",
    "ContextRef",
    "EnzymeLogicRef",
    "LLJITRef",
    "MemoryBufferRef",
    "ModuleRef",
    "ObjectRef",
    "PassBuilderOptionsRef",
    "ResourceTrackerRef",
    "TargetDataRef",
    "TargetMachineRef",
    "TypeAnalysisRef",
    "TypeTreeRef",
]


class Closing:
    """Mixin for owners of native state: a context manager and a finaliser around
    ``close()``, which must be idempotent.  The finaliser does nothing at interpreter
    shutdown, when the libraries it would call into may already be gone."""

    __slots__ = ()

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if _is_finalizing is None or _is_finalizing():
            return
        with contextlib.suppress(Exception):
            self.close()


class ObjectRef(Closing):
    """Base of the owning wrappers; subclasses name the C function that frees the handle."""

    _kind: ClassVar[str] = "handle"
    __slots__ = ("__weakref__", "_closed", "_handle", "_keep")

    def __init__(self, handle: int | None, *, keep: Any = None) -> None:
        if not handle:
            raise ValueError(f"cannot wrap a NULL {self._kind}")
        self._handle: int | None = int(handle)
        self._closed = False
        self._keep = keep  # objects that must outlive this handle (e.g. its context)
        if isinstance(keep, ContextRef):
            keep._children.append(weakref.ref(self))

    @property
    def handle(self) -> int:
        """The raw handle; :class:`ValueError` once closed or detached."""
        h = self._handle
        if h is None:
            raise ValueError(f"this {self._kind} was closed or detached and cannot be used")
        return h

    @property
    def closed(self) -> bool:
        """True once :meth:`close` or :meth:`detach` was called."""
        return self._handle is None

    def _dispose(self, handle: int) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        """Free the handle now; further calls do nothing."""
        h = self._handle
        if h is None:
            return
        with LOCK:
            if self._handle is None:
                return
            self._handle = None
            self._closed = True
            self._dispose(h)
        self._keep = None

    def detach(self) -> int:
        """Give up ownership (C now owns the handle) and return it."""
        h = self.handle
        self._handle = None
        self._keep = None
        return h

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else hex(self._handle)
        return f"<{type(self).__name__} {state}>"


def _llvm() -> ctypes.CDLL:
    return native().llvm


class ContextRef(ObjectRef):
    """An ``LLVMContextRef`` (with enzyme_py's diagnostic handler installed)."""

    _kind = "LLVM context"
    __slots__ = ("_children",)

    def __init__(self, handle: int | None) -> None:
        #: objects the context frees with itself (its modules): forgotten before disposal
        self._children: list[weakref.ref[ObjectRef]] = []
        super().__init__(handle)

    @classmethod
    def create(cls) -> ContextRef:
        nat = native()
        with LOCK:
            h = nat.llvm.LLVMContextCreate()
            nat.llvm.LLVMContextSetDiagnosticHandler(h, nat.context_diagnostic_handler, None)
        return cls(h)

    def _dispose(self, handle: int) -> None:
        # Disposing a context frees its modules: make their wrappers forget them first,
        # whatever order the garbage collector finalises them in.
        for ref in self._children:
            child = ref()
            if child is not None:
                child._handle = None
        self._children.clear()
        _llvm().LLVMContextDispose(handle)


class ModuleRef(ObjectRef):
    """An ``LLVMModuleRef``; keeps its :class:`ContextRef` alive."""

    _kind = "LLVM module"
    __slots__ = ()

    def _dispose(self, handle: int) -> None:
        context = self._keep
        if isinstance(context, ContextRef) and context._handle is None:
            return  # the context was disposed first (e.g. by the cyclic GC) and freed us
        _llvm().LLVMDisposeModule(handle)


class BuilderRef(ObjectRef):
    """An ``LLVMBuilderRef``."""

    _kind = "LLVM IR builder"
    __slots__ = ()

    def _dispose(self, handle: int) -> None:
        _llvm().LLVMDisposeBuilder(handle)


class MemoryBufferRef(ObjectRef):
    """An ``LLVMMemoryBufferRef``."""

    _kind = "LLVM memory buffer"
    __slots__ = ()

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "buffer") -> MemoryBufferRef:
        with LOCK:
            h = _llvm().LLVMCreateMemoryBufferWithMemoryRangeCopy(
                data, len(data), name.encode()
            )
        return cls(h)

    def to_bytes(self) -> bytes:
        lib = _llvm()
        with LOCK:
            start = lib.LLVMGetBufferStart(self.handle)
            size = lib.LLVMGetBufferSize(self.handle)
            return ctypes.string_at(start, size)

    def _dispose(self, handle: int) -> None:
        _llvm().LLVMDisposeMemoryBuffer(handle)


class TargetMachineRef(ObjectRef):
    """An ``LLVMTargetMachineRef``."""

    _kind = "LLVM target machine"
    __slots__ = ()

    def _dispose(self, handle: int) -> None:
        _llvm().LLVMDisposeTargetMachine(handle)


class TargetDataRef(ObjectRef):
    """An ``LLVMTargetDataRef`` (a data layout)."""

    _kind = "LLVM target data"
    __slots__ = ()

    def _dispose(self, handle: int) -> None:
        _llvm().LLVMDisposeTargetData(handle)


class PassBuilderOptionsRef(ObjectRef):
    """An ``LLVMPassBuilderOptionsRef``."""

    _kind = "LLVM pass-builder options"
    __slots__ = ()

    def _dispose(self, handle: int) -> None:
        _llvm().LLVMDisposePassBuilderOptions(handle)


class EnzymeLogicRef(ObjectRef):
    """An ``EnzymeLogicRef`` (``CreateEnzymeLogic`` / ``FreeEnzymeLogic``)."""

    _kind = "Enzyme logic"
    __slots__ = ()

    @classmethod
    def create(cls, post_opt: bool = False) -> EnzymeLogicRef:
        with LOCK:
            return cls(native().enzyme.CreateEnzymeLogic(1 if post_opt else 0))

    def _dispose(self, handle: int) -> None:
        native().enzyme.FreeEnzymeLogic(handle)


class TypeAnalysisRef(ObjectRef):
    """An ``EnzymeTypeAnalysisRef`` (``CreateTypeAnalysis`` / ``FreeTypeAnalysis``)."""

    _kind = "Enzyme type analysis"
    __slots__ = ()

    @classmethod
    def create(cls, logic: EnzymeLogicRef) -> TypeAnalysisRef:
        with LOCK:
            return cls(native().enzyme.CreateTypeAnalysis(logic.handle, None, None, 0), keep=logic)

    def _dispose(self, handle: int) -> None:
        native().enzyme.FreeTypeAnalysis(handle)


class TypeTreeRef(ObjectRef):
    """A ``CTypeTreeRef`` (``EnzymeNewTypeTree*`` / ``EnzymeFreeTypeTree``)."""

    _kind = "Enzyme type tree"
    __slots__ = ()

    @classmethod
    def empty(cls) -> TypeTreeRef:
        with LOCK:
            return cls(native().enzyme.EnzymeNewTypeTree())

    @classmethod
    def concrete(cls, concrete_type: int, context: ContextRef) -> TypeTreeRef:
        with LOCK:
            return cls(native().enzyme.EnzymeNewTypeTreeCT(concrete_type, context.handle))

    def only_eq(self, offset: int) -> TypeTreeRef:
        with LOCK:
            native().enzyme.EnzymeTypeTreeOnlyEq(self.handle, offset)
        return self

    def merge(self, other: TypeTreeRef) -> bool:
        with LOCK:
            return bool(native().enzyme.EnzymeMergeTypeTree(self.handle, other.handle))

    def __str__(self) -> str:
        enz = native().enzyme
        with LOCK:
            p = enz.EnzymeTypeTreeToString(self.handle)
            try:
                return ctypes.string_at(p).decode()
            finally:
                enz.EnzymeTypeTreeToStringFree(p)

    def _dispose(self, handle: int) -> None:
        native().enzyme.EnzymeFreeTypeTree(handle)


class LLJITRef(ObjectRef):
    """An ``LLVMOrcLLJITRef``."""

    _kind = "ORC LLJIT"
    __slots__ = ()

    def _dispose(self, handle: int) -> None:
        lib = _llvm()
        error_message(lib, lib.LLVMOrcDisposeLLJIT(handle))


class ResourceTrackerRef(ObjectRef):
    """An ``LLVMOrcResourceTrackerRef``; closing removes the code it tracks from the JIT."""

    _kind = "ORC resource tracker"
    __slots__ = ()

    def _dispose(self, handle: int) -> None:
        lib = _llvm()
        error_message(lib, lib.LLVMOrcResourceTrackerRemove(handle))
        lib.LLVMOrcReleaseResourceTracker(handle)
