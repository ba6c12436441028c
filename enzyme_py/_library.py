"""Loading libLLVM-N and LLVMEnzyme-N once per process, and the process-wide error hooks.

The libraries come from :func:`enzyme_artifacts.resolve` (never from a path of our own):
libLLVM-N is loaded first with ``RTLD_GLOBAL`` (the plugin binds to its symbols), then the
plugin.  The Enzyme C-API profile named by the artifact is checked against the binary
(exported symbols, and the C signatures an assertions build carries) before any Enzyme
function is called.

Environment:
    ``ENZYME_PY_LLVM_VERSION``  LLVM major to use (else enzyme_artifacts' default, which
    honours ``ENZYME_ARTIFACTS_LLVM_VERSION``).

Invariants: every call into LLVM or Enzyme happens while :data:`LOCK` is held (LLVM is
not thread-safe); JIT-compiled code is called without it.  Enzyme's ``CustomErrorHandler``
and every context's diagnostic handler report into the innermost :func:`collecting`
block of the calling thread.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ._ffi import llvm as _llvm_decl
from ._ffi.enzyme import ERROR_HANDLER, load_profile
from .errors import LibraryError

__all__ = [
    "LOCK",
    "Native",
    "Report",
    "collecting",
    "error_message",
    "native",
    "take_message",
]

#: The one re-entrant lock guarding every LLVM and Enzyme call of this process.
LOCK = threading.RLock()


@dataclass(frozen=True)
class Report:
    """One problem reported by Enzyme (``error_type`` 0-6) or LLVM (``error_type`` None)."""

    error_type: int | None
    message: str
    instruction: str | None


class Native:
    """The loaded libraries of this process and what was learnt about the host."""

    def __init__(
        self,
        llvm: ctypes.CDLL,
        enzyme: ctypes.CDLL,
        profile: ModuleType,
        *,
        llvm_path: Path,
        enzyme_path: Path,
        llvm_major: int,
        capi: str,
    ) -> None:
        self.llvm = llvm
        self.enzyme = enzyme
        self.profile = profile
        self.llvm_path = llvm_path
        self.enzyme_path = enzyme_path
        self.llvm_major = llvm_major
        self.capi = capi
        self.triple = take_message(llvm, llvm.LLVMGetDefaultTargetTriple()) or ""
        self.cpu = take_message(llvm, llvm.LLVMGetHostCPUName()) or ""
        self.features = take_message(llvm, llvm.LLVMGetHostCPUFeatures()) or ""
        # Kept alive for the life of the process: C holds these function pointers.
        self.diagnostic_handler = _llvm_decl.DIAGNOSTIC_HANDLER(_on_diagnostic)
        self.error_handler = ERROR_HANDLER(_on_enzyme_error)
        #: The handler given to every new context (the guard's, once it is built).
        self.context_diagnostic_handler: Any = self.diagnostic_handler
        self.guard: Any = None

    def call_enzyme(self, name: str, *args: Any) -> tuple[bool, Any]:
        """Call an Enzyme entry point through its trampoline: ``(completed, result)``."""
        return self.guard.call(name, *args)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return (
            f"Native(llvm={str(self.llvm_path)!r}, enzyme={str(self.enzyme_path)!r}, "
            f"capi={self.capi!r}, cpu={self.cpu!r})"
        )


_native: Native | None = None
_local = threading.local()


def take_message(llvm: ctypes.CDLL, ptr: int | None) -> str | None:
    """Copy a C string LLVM allocated, free it with ``LLVMDisposeMessage``; None for NULL."""
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode("utf-8", errors="replace")
    finally:
        llvm.LLVMDisposeMessage(ptr)


def error_message(llvm: ctypes.CDLL, err: int | None) -> str | None:
    """Consume an ``LLVMErrorRef``: its message, or None when ``err`` is success (NULL)."""
    if not err:
        return None
    msg = llvm.LLVMGetErrorMessage(err)
    try:
        return ctypes.string_at(msg).decode("utf-8", errors="replace")
    finally:
        llvm.LLVMDisposeErrorMessage(msg)


@contextmanager
def collecting() -> Iterator[list[Report]]:
    """Collect every Enzyme/LLVM report made by this thread inside the block."""
    stack: list[list[Report]] = getattr(_local, "stack", None) or []
    _local.stack = stack
    reports: list[Report] = []
    stack.append(reports)
    try:
        yield reports
    finally:
        stack.pop()


def _record(report: Report) -> None:
    stack = getattr(_local, "stack", None)
    if stack:  # outside any request (e.g. freeing a context) a report concerns nobody
        stack[-1].append(report)


def _value_text(val: int | None, limit: int = 4000) -> str | None:
    if not val or _native is None:
        return None
    text = take_message(_native.llvm, _native.llvm.LLVMPrintValueToString(val))
    if text is not None and len(text) > limit:
        text = text[:limit] + " ..."
    return text


def _on_enzyme_error(
    msg: bytes | None, val: int | None, etype: int, data: Any, val2: int | None, builder: Any
) -> int | None:
    """Enzyme's ``CustomErrorHandler``: record the report, let Enzyme continue safely.

    Enzyme uses the returned value for some error types (a shadow for ``NoShadow``, a
    replacement value elsewhere) and falls back to its default reaction, which may exit
    the process, when it gets NULL.  We return a null constant of the value's type, so
    that Enzyme finishes building a function; the request then fails and the module is
    discarded, so the placeholder is never executed.
    """
    try:
        text = msg.decode("utf-8", errors="replace") if msg else ""
        _record(Report(int(etype), text, _value_text(val)))
        if _native is None:
            return None
        lib = _native.llvm
        for v in (val2, val):
            if not v:
                continue
            ty = lib.LLVMTypeOf(v)
            kind = lib.LLVMGetTypeKind(ty)
            if kind in (
                _llvm_decl.TypeKind.VOID,
                _llvm_decl.TypeKind.LABEL,
                _llvm_decl.TypeKind.FUNCTION,
            ) or kind > _llvm_decl.TypeKind.VECTOR:
                continue
            return lib.LLVMConstNull(ty)  # type: ignore[no-any-return]
        return None
    except BaseException:  # noqa: BLE001 - never let a Python error unwind through C++ frames
        return None


def _on_diagnostic(info: int, _data: Any) -> None:
    """Context diagnostic handler: errors are recorded; warnings and remarks are dropped.

    Having a handler also stops LLVM's default reaction to an error diagnostic, which is
    to print it and exit the process.
    """
    try:
        if _native is None:
            return
        lib = _native.llvm
        if lib.LLVMGetDiagInfoSeverity(info) != _llvm_decl.DiagnosticSeverity.ERROR:
            return
        text = take_message(lib, lib.LLVMGetDiagInfoDescription(info)) or ""
        _record(Report(None, text, None))
    except BaseException:  # noqa: BLE001 - never let a Python error unwind through C frames
        return


def _llvm_major() -> int | None:
    raw = os.environ.get("ENZYME_PY_LLVM_VERSION", "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise LibraryError(
            f"ENZYME_PY_LLVM_VERSION={raw!r} is not an LLVM major version number such as 15"
        ) from None


def _resolve(llvm: int | None) -> Any:
    import enzyme_artifacts

    return enzyme_artifacts.resolve(llvm)


def _check_profile(enzyme: ctypes.CDLL, path: Path, capi: str) -> None:
    from enzyme_artifacts.capi import required_symbols, signature_markers

    try:
        symbols = required_symbols(capi)
    except KeyError as e:
        raise LibraryError(str(e.args[0])) from None
    missing = sorted(s for s in symbols if not hasattr(enzyme, s))
    if missing:
        raise LibraryError(
            f"{path} does not export what Enzyme C-API profile {capi!r} needs "
            f"(missing: {', '.join(missing)}); the artifact's 'capi' field does not match "
            "the binary — reinstall it (`enzyme-artifacts` CLI) or fix the override"
        )
    markers = signature_markers(capi)
    if not markers:
        return
    data = path.read_bytes()
    for marker in markers:
        name = marker.split("(", 1)[0]
        if (name + "(").encode() in data and marker.encode() not in data:
            raise LibraryError(
                f"{path}: the C signature of {name} differs from Enzyme C-API profile "
                f"{capi!r}; calling it would corrupt memory. Use an artifact whose 'capi' "
                "matches the binary"
            )


def _major_mismatch(loaded: int, needed: int, needed_by: str, where: str) -> LibraryError:
    return LibraryError(
        f"{needed_by} needs LLVM {needed}, but {where} LLVM {loaded}; the libLLVM and "
        f"LLVMEnzyme used must be the major of the IR's producer. Unset ENZYME_PY_LLVM_VERSION "
        f"or set it to {needed} (in a fresh process), or install a producer built on LLVM {loaded}"
    )


def native(llvm_major: int | None = None, *, needed_by: str = "this code") -> Native:
    """Load and check the native libraries on first use; the same object afterwards.

    *llvm_major*: the LLVM major the caller's IR needs (the numba bridge passes llvmlite's;
    *needed_by* names that producer in messages).  When nothing is loaded yet, that major is
    loaded; when another major is loaded, or ``ENZYME_PY_LLVM_VERSION`` asks for another,
    :class:`~enzyme_py.errors.LibraryError` names both.

    Raises :class:`~enzyme_py.errors.LibraryError` (wrapping enzyme_artifacts' errors)
    when the libraries cannot be found, loaded or checked.
    """
    global _native
    if _native is not None:
        if llvm_major is not None and _native.llvm_major != llvm_major:
            where = f"this process already loaded {_native.llvm_path}, which is"
            raise _major_mismatch(_native.llvm_major, llvm_major, needed_by, where)
        return _native
    with LOCK:
        if _native is not None:
            return native(llvm_major, needed_by=needed_by)
        requested = _llvm_major()
        if llvm_major is not None and requested is not None and requested != llvm_major:
            where = "ENZYME_PY_LLVM_VERSION asks for"
            raise _major_mismatch(requested, llvm_major, needed_by, where)
        try:
            resolved = _resolve(requested if llvm_major is None else llvm_major)
        except LibraryError:
            raise
        except Exception as e:  # enzyme_artifacts' errors, OSError, ...
            raise LibraryError(f"could not locate the Enzyme plugin: {e}") from e
        llvm_path = Path(resolved.llvm.path)
        enzyme_path = Path(resolved.library)
        try:
            llvm = ctypes.CDLL(str(llvm_path), mode=ctypes.RTLD_GLOBAL)
        except OSError as e:
            raise LibraryError(f"could not load libLLVM {llvm_path}: {e}") from e
        try:
            enzyme = ctypes.CDLL(str(enzyme_path), mode=ctypes.RTLD_GLOBAL)
        except OSError as e:
            raise LibraryError(
                f"could not load the Enzyme plugin {enzyme_path}: {e}. It must be built "
                f"for the same LLVM as {llvm_path}"
            ) from e
        try:
            _llvm_decl.bind(llvm)
        except AttributeError as e:
            raise LibraryError(f"{llvm_path} lacks an LLVM-C function enzyme_py needs: {e}") from e
        _check_profile(enzyme, enzyme_path, resolved.capi)
        try:
            profile = load_profile(resolved.capi)
        except KeyError as e:
            raise LibraryError(str(e.args[0])) from None
        for name, (restype, argtypes) in profile.FUNCTIONS.items():
            fn = getattr(enzyme, name)
            fn.restype = restype
            fn.argtypes = list(argtypes)
        for init in _llvm_decl.host_target_initializers(platform.machine()):
            fn = getattr(llvm, init, None)
            if fn is not None:
                fn.restype = None
                fn.argtypes = []
                fn()
        nat = Native(
            llvm,
            enzyme,
            profile,
            llvm_path=llvm_path,
            enzyme_path=enzyme_path,
            llvm_major=int(resolved.llvm.major),
            capi=resolved.capi,
        )
        _native = nat
        try:
            from ._guard import build_guard

            guarded = {n: profile.FUNCTIONS[n] for n in profile.GUARDED}
            nat.guard = build_guard(nat, guarded, nat.error_handler, nat.diagnostic_handler)
        except BaseException:
            _native = None
            raise
        nat.context_diagnostic_handler = _llvm_decl.DIAGNOSTIC_HANDLER(
            nat.guard.diag_handler_address
        )
        handler_slot = ctypes.c_void_p.in_dll(enzyme, "CustomErrorHandler")
        handler_slot.value = nat.guard.error_handler_address
        return nat
