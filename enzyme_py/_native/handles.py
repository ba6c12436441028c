"""Owning wrappers for every native handle enzyme_py creates, with their operations.

Each wrapper owns one handle: :meth:`ObjectRef.close` frees it (once), a ``with`` block
closes it, :meth:`ObjectRef.detach` hands ownership to C (the wrapper then forgets the
handle) and ``__del__`` closes it unless the interpreter is shutting down.  Using a
closed or detached wrapper raises :class:`ValueError` instead of touching freed memory.

The operations live on the handles (as llvmlite's ``ModuleRef.verify()``/``as_bitcode()``
do): :meth:`ContextRef.parse_ir`, :meth:`ContextRef.parse_bitcode`,
:meth:`ModuleRef.verify`, :meth:`ModuleRef.bitcode`, :meth:`ModuleRef.text`,
:meth:`ModuleRef.run_passes`, :meth:`ModuleRef.link_in`, ...  Every call takes the LLVM
lock inside the binding.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import sys
import weakref
from typing import Any, ClassVar, Self

from ..errors import CompileError, IRParseError
from . import reports
from .ffi import LOCK
from .library import error_message, native, take_message

_is_finalizing = sys.is_finalizing

__all__ = [
    "MAX_IR_NESTING",
    "BuilderRef",
    "Closing",
    "ContextRef",
    "EnzymeLogicRef",
    "LLJITRef",
    "MemoryBufferRef",
    "ModuleRef",
    "ObjectRef",
    "PassBuilderOptionsRef",
    "PassManagerRef",
    "ResourceTrackerRef",
    "TargetDataRef",
    "TargetMachineRef",
    "TypeAnalysisRef",
    "TypeTreeRef",
    "check_ir_nesting",
    "value_name",
]

#: IR text nested deeper than this (parentheses, brackets, braces) is refused before LLVM's
#: recursive parser sees it: a few thousand levels overflow the C stack.
MAX_IR_NESTING = 500

_PARSE_POS = re.compile(r":(\d+):(\d+):\s*error:\s*(.*)", re.DOTALL)
_NESTING_TOKENS = re.compile(r'"[^"]*"|;[^\n]*|[(\[{]|[)\]}]')


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
    """Base of the owning wrappers; subclasses free the handle in ``_dispose``."""

    _kind: ClassVar[str] = "handle"
    __slots__ = ("__weakref__", "_handle", "_keep")

    def __init__(self, handle: int | None, *, keep: Any = None) -> None:
        if not handle:
            raise ValueError(f"cannot wrap a NULL {self._kind}")
        self._handle: int | None = int(handle)
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
        if self._handle is None:
            return
        with LOCK:  # two threads closing one handle: one disposes it
            h, self._handle = self._handle, None
            if h is not None:
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


def value_name(handle: int) -> str:
    """The name of an LLVM value (a function, a global); :class:`IRParseError` when it is
    not UTF-8 (names are matched as text everywhere in enzyme_py)."""
    size = ctypes.c_size_t()
    raw = ctypes.string_at(native().llvm.LLVMGetValueName2(handle, ctypes.byref(size)), size.value)
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise IRParseError(
            f"the module names a value {raw!r}, which is not UTF-8; rename it "
            "(enzyme_py finds functions and globals by their names as text)"
        ) from None


def check_ir_nesting(text: str, limit: int = MAX_IR_NESTING) -> None:
    """Raise :class:`IRParseError` when ``text`` nests deeper than ``limit`` (see
    :data:`MAX_IR_NESTING`); strings and comments are not counted."""
    depth = deepest = 0
    line = 1
    at = 0
    for m in _NESTING_TOKENS.finditer(text):
        tok = m.group()
        if tok in "([{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    line += text.count("\n", at, m.start())
                    raise IRParseError(
                        f"the IR nests more than {limit} levels deep (constant expressions "
                        "or types); LLVM's parser would overflow the stack on it",
                        line,
                    )
        elif tok in ")]}":
            depth -= 1


class ContextRef(ObjectRef):
    """An ``LLVMContextRef`` with enzyme_py's diagnostic handler installed."""

    _kind = "LLVM context"
    __slots__ = ("_children",)

    def __init__(self, handle: int | None) -> None:
        #: objects the context frees with itself (its modules): forgotten before disposal
        self._children: list[weakref.ref[ObjectRef]] = []
        super().__init__(handle)

    @classmethod
    def create(cls, *, opaque_pointers: bool = False) -> ContextRef:
        """A new context; ``opaque_pointers`` forces opaque-pointer mode (typed-pointer
        IR and bitcode parsed into it are upgraded), else the first module parsed decides."""
        nat = native()
        h = nat.llvm.LLVMContextCreate()
        nat.llvm.LLVMContextSetDiagnosticHandler(h, nat.context_diagnostic_handler, None)
        if opaque_pointers:
            nat.llvm.LLVMContextSetOpaquePointers(h, 1)
        return cls(h)

    def parse_ir(self, text: str, name: str) -> ModuleRef:
        """Parse LLVM IR text into this context; :class:`IRParseError` with the line."""
        check_ir_nesting(text)
        try:
            data = text.encode()
        except UnicodeEncodeError as e:
            line = text.count("\n", 0, e.start) + 1
            raise IRParseError(
                f"the IR text holds a character that cannot be encoded as UTF-8 "
                f"({text[e.start:e.end]!r}, a lone surrogate)",
                line,
            ) from None
        lib = native().llvm
        buf = MemoryBufferRef.from_bytes(data, name)
        mod = ctypes.c_void_p()
        msg = ctypes.c_void_p()
        failed = lib.LLVMParseIRInContext(self.handle, buf.detach(), ctypes.byref(mod), ctypes.byref(msg))
        text_msg = take_message(lib, msg.value)
        if failed or not mod.value:
            message = text_msg or "invalid LLVM IR"
            m = _PARSE_POS.search(message)
            if m:
                raise IRParseError(m.group(3).strip(), int(m.group(1)), int(m.group(2)))
            raise IRParseError(message.strip())
        return ModuleRef(mod.value, keep=self)

    def parse_bitcode(self, data: bytes, name: str) -> ModuleRef:
        """Parse bitcode into this context; :class:`IRParseError` when it does not parse."""
        lib = native().llvm
        mod = ctypes.c_void_p()
        with reports.collecting() as got, MemoryBufferRef.from_bytes(data, name) as buf:
            failed = lib.LLVMParseBitcodeInContext2(self.handle, buf.handle, ctypes.byref(mod))
        if failed or not mod.value:
            raise IRParseError("; ".join(r.message for r in got) or "invalid bitcode")
        return ModuleRef(mod.value, keep=self)

    def _dispose(self, handle: int) -> None:
        # Disposing a context frees its modules: make their wrappers forget them first,
        # whatever order the garbage collector finalises them in.
        for ref in self._children:
            child = ref()
            if child is not None:
                child._handle = None
        self._children.clear()
        native().llvm.LLVMContextDispose(handle)


class ModuleRef(ObjectRef):
    """An ``LLVMModuleRef``; keeps its :class:`ContextRef` alive."""

    _kind = "LLVM module"
    __slots__ = ()

    @property
    def context(self) -> ContextRef:
        ctx = self._keep
        if not isinstance(ctx, ContextRef):
            raise ValueError("this module has no context wrapper")  # noqa: TRY004 - a state, not a type
        return ctx

    def verify(self, what: str) -> None:
        """Run the IR verifier; :class:`CompileError` with its report on failure."""
        lib = native().llvm
        out = ctypes.c_void_p()
        failed = lib.LLVMVerifyModule(self.handle, 2, ctypes.byref(out))  # ReturnStatusAction
        msg = take_message(lib, out.value) or ""
        if failed:
            raise CompileError(f"the {what} failed LLVM's verifier", msg)

    def bitcode(self) -> bytes:
        """The module as bitcode."""
        with MemoryBufferRef(native().llvm.LLVMWriteBitcodeToMemoryBuffer(self.handle)) as buf:
            return buf.to_bytes()

    def text(self) -> str:
        """The module as LLVM IR text."""
        lib = native().llvm
        return take_message(lib, lib.LLVMPrintModuleToString(self.handle)) or ""

    def defined_functions(self) -> dict[str, int]:
        """Name -> handle of every function the module defines (not just declares)."""
        lib = native().llvm
        out: dict[str, int] = {}
        fn = lib.LLVMGetFirstFunction(self.handle)
        while fn:
            if not lib.LLVMIsDeclaration(fn):
                out[value_name(fn)] = int(fn)
            fn = lib.LLVMGetNextFunction(fn)
        return out

    def function(self, name: str) -> int | None:
        """The handle of function ``name`` (defined or declared), or None."""
        fn = native().llvm.LLVMGetNamedFunction(self.handle, name.encode())
        return int(fn) if fn else None

    def defined_function(self, name: str) -> int | None:
        """The handle of function ``name`` when the module defines it, else None."""
        fn = self.function(name)
        return fn if fn is not None and not native().llvm.LLVMIsDeclaration(fn) else None

    def prepare(self, triple: str, tm: TargetMachineRef) -> None:
        """Give the module ``triple`` and the target machine's data layout."""
        lib = native().llvm
        lib.LLVMSetTarget(self.handle, triple.encode())
        with TargetDataRef(lib.LLVMCreateTargetDataLayout(tm.handle)) as td:
            lib.LLVMSetModuleDataLayout(self.handle, td.handle)

    def run_passes(self, pipeline: str, tm: TargetMachineRef, *, loop_transforms: bool) -> None:
        """Run a new-pass-manager pipeline; ``loop_transforms=False`` keeps unrolling and
        vectorisation out (what runs before differentiation)."""
        if not pipeline:
            return
        lib = native().llvm
        with PassBuilderOptionsRef(lib.LLVMCreatePassBuilderOptions()) as opts:
            flag = 1 if loop_transforms else 0
            lib.LLVMPassBuilderOptionsSetLoopUnrolling(opts.handle, flag)
            lib.LLVMPassBuilderOptionsSetLoopVectorization(opts.handle, flag)
            lib.LLVMPassBuilderOptionsSetSLPVectorization(opts.handle, flag)
            msg = error_message(
                lib, lib.LLVMRunPasses(self.handle, pipeline.encode(), tm.handle, opts.handle)
            )
        if msg is not None:
            raise CompileError(f"LLVM pass pipeline {pipeline!r} failed: {msg}")

    def link_in(self, other: ModuleRef, what: str) -> None:
        """Link ``other`` (same context) into this module; ``other`` is consumed."""
        if native().llvm.LLVMLinkModules2(self.handle, other.detach()):
            raise CompileError(f"linking {what} failed (a name defined twice, or a type conflict)")

    def emit_object(self, tm: TargetMachineRef) -> bytes:
        """Object code for the target machine ``tm``."""
        lib = native().llvm
        err = ctypes.c_void_p()
        buf = ctypes.c_void_p()
        if lib.LLVMTargetMachineEmitToMemoryBuffer(
            tm.handle, self.handle, 1, ctypes.byref(err), ctypes.byref(buf)
        ):
            raise CompileError("LLVM code generation failed", take_message(lib, err.value) or "")
        with MemoryBufferRef(buf.value) as mb:
            return mb.to_bytes()

    def _dispose(self, handle: int) -> None:
        context = self._keep
        if isinstance(context, ContextRef) and context._handle is None:
            return  # the context was disposed first (e.g. by the cyclic GC) and freed us
        native().llvm.LLVMDisposeModule(handle)


class BuilderRef(ObjectRef):
    """An ``LLVMBuilderRef``."""

    _kind = "LLVM IR builder"
    __slots__ = ()

    @classmethod
    def create(cls, context: ContextRef) -> BuilderRef:
        return cls(native().llvm.LLVMCreateBuilderInContext(context.handle))

    def _dispose(self, handle: int) -> None:
        native().llvm.LLVMDisposeBuilder(handle)


class MemoryBufferRef(ObjectRef):
    """An ``LLVMMemoryBufferRef``."""

    _kind = "LLVM memory buffer"
    __slots__ = ()

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "buffer") -> MemoryBufferRef:
        return cls(native().llvm.LLVMCreateMemoryBufferWithMemoryRangeCopy(data, len(data), name.encode()))

    def to_bytes(self) -> bytes:
        lib = native().llvm
        return ctypes.string_at(lib.LLVMGetBufferStart(self.handle), lib.LLVMGetBufferSize(self.handle))

    def _dispose(self, handle: int) -> None:
        native().llvm.LLVMDisposeMemoryBuffer(handle)


class TargetMachineRef(ObjectRef):
    """An ``LLVMTargetMachineRef``."""

    _kind = "LLVM target machine"
    __slots__ = ()

    def _dispose(self, handle: int) -> None:
        native().llvm.LLVMDisposeTargetMachine(handle)


class TargetDataRef(ObjectRef):
    """An ``LLVMTargetDataRef`` (a data layout)."""

    _kind = "LLVM target data"
    __slots__ = ()

    def _dispose(self, handle: int) -> None:
        native().llvm.LLVMDisposeTargetData(handle)


class PassBuilderOptionsRef(ObjectRef):
    """An ``LLVMPassBuilderOptionsRef``."""

    _kind = "LLVM pass-builder options"
    __slots__ = ()

    def _dispose(self, handle: int) -> None:
        native().llvm.LLVMDisposePassBuilderOptions(handle)


class PassManagerRef(ObjectRef):
    """A legacy ``LLVMPassManagerRef`` (``LLVMCreatePassManager`` /
    ``LLVMDisposePassManager``): what Enzyme's own pass (``AddEnzymePass``) is added to."""

    _kind = "LLVM legacy pass manager"
    __slots__ = ()

    @classmethod
    def create(cls) -> PassManagerRef:
        return cls(native().llvm.LLVMCreatePassManager())

    def _dispose(self, handle: int) -> None:
        native().llvm.LLVMDisposePassManager(handle)


class EnzymeLogicRef(ObjectRef):
    """An ``EnzymeLogicRef`` (``CreateEnzymeLogic`` / ``FreeEnzymeLogic``)."""

    _kind = "Enzyme logic"
    __slots__ = ()

    @classmethod
    def create(cls, post_opt: bool = False) -> EnzymeLogicRef:
        return cls(native().enzyme.CreateEnzymeLogic(1 if post_opt else 0))

    def erase_preprocessed(self) -> None:
        """Erase Enzyme's preprocessed clones of the functions it differentiated."""
        native().enzyme.EnzymeLogicErasePreprocessedFunctions(self.handle)

    def _dispose(self, handle: int) -> None:
        native().enzyme.FreeEnzymeLogic(handle)


class TypeAnalysisRef(ObjectRef):
    """An ``EnzymeTypeAnalysisRef`` (``CreateTypeAnalysis`` / ``FreeTypeAnalysis``)."""

    _kind = "Enzyme type analysis"
    __slots__ = ()

    @classmethod
    def create(cls, logic: EnzymeLogicRef) -> TypeAnalysisRef:
        return cls(native().enzyme.CreateTypeAnalysis(logic.handle, None, None, 0), keep=logic)

    def _dispose(self, handle: int) -> None:
        native().enzyme.FreeTypeAnalysis(handle)


class TypeTreeRef(ObjectRef):
    """A ``CTypeTreeRef`` (``EnzymeNewTypeTree*`` / ``EnzymeFreeTypeTree``)."""

    _kind = "Enzyme type tree"
    __slots__ = ()

    @classmethod
    def empty(cls) -> TypeTreeRef:
        return cls(native().enzyme.EnzymeNewTypeTree())

    @classmethod
    def concrete(cls, concrete_type: int, context: ContextRef) -> TypeTreeRef:
        return cls(native().enzyme.EnzymeNewTypeTreeCT(concrete_type, context.handle))

    def only_eq(self, offset: int) -> TypeTreeRef:
        native().enzyme.EnzymeTypeTreeOnlyEq(self.handle, offset)
        return self

    def merge(self, other: TypeTreeRef) -> bool:
        return bool(native().enzyme.EnzymeMergeTypeTree(self.handle, other.handle))

    def __str__(self) -> str:
        enz = native().enzyme
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
        lib = native().llvm
        error_message(lib, lib.LLVMOrcDisposeLLJIT(handle))


class ResourceTrackerRef(ObjectRef):
    """An ``LLVMOrcResourceTrackerRef``; closing removes the code it tracks from the JIT."""

    _kind = "ORC resource tracker"
    __slots__ = ()

    def _dispose(self, handle: int) -> None:
        lib = native().llvm
        error_message(lib, lib.LLVMOrcResourceTrackerRemove(handle))
        lib.LLVMOrcReleaseResourceTracker(handle)
