"""Loading libLLVM-N and LLVMEnzyme-N once per process.

The libraries come from :func:`enzyme_artifacts.resolve` (never from a path of our own),
or, in an isolation worker, from the paths its parent pinned (:func:`pin`).  libLLVM-N is
loaded first with ``RTLD_GLOBAL`` (the plugin binds to its symbols); the plugin is loaded
when Enzyme is first needed (:attr:`Native.enzyme`), so that a process that only parses
modules and loads compiled code from the disk cache never loads it.  Its Enzyme C-API
profile is the one :mod:`enzyme_artifacts` identified by probing it in a child process
(:func:`enzyme_artifacts.plugin.identify_plugin`); here it is checked once more against
the binary (exported symbols, and the C signatures an assertions build carries) and
smoke-tested (a logic and a type analysis are created and freed) before any other Enzyme
function is called, and bound through the profile's module (:mod:`.ffi`).

A choice that was loaded and checked is remembered in the disk cache folder
(:mod:`.remembered`): a later process with the same request and environment loads the
same files, if they are unchanged, without asking enzyme_artifacts again (nor probing the
plugin) or re-reading the plugin for its profile check.

Environment: ``ENZYME_PY_LLVM_VERSION`` (see :mod:`enzyme_py.config`).

Invariants: one :class:`Native` per process; its bindings take the LLVM lock on every
call (:mod:`enzyme_py._native.ffi`).  Enzyme's ``CustomErrorHandler`` and every
context's diagnostic handler report into :mod:`enzyme_py._native.reports`.
"""

from __future__ import annotations

import ctypes
import platform
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .. import config
from ..errors import LibraryError
from . import remembered, reports
from .ffi import LOCK, Binding
from .ffi import llvm as llvm_decl
from .ffi.enzyme import ERROR_HANDLER, load_profile

__all__ = ["Native", "Pinned", "error_message", "loaded", "native", "pin", "take_message"]


def take_message(llvm: Any, ptr: int | None) -> str | None:
    """Copy a C string LLVM allocated, free it with ``LLVMDisposeMessage``; None for NULL."""
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode("utf-8", errors="replace")
    finally:
        llvm.LLVMDisposeMessage(ptr)


def error_message(llvm: Any, err: int | None) -> str | None:
    """Consume an ``LLVMErrorRef``: its message, or None when ``err`` is success (NULL)."""
    if not err:
        return None
    msg = llvm.LLVMGetErrorMessage(err)
    try:
        return ctypes.string_at(msg).decode("utf-8", errors="replace")
    finally:
        llvm.LLVMDisposeErrorMessage(msg)


class Native:
    """The loaded libraries of this process and what was learnt about the host.

    ``llvm``/``enzyme``: the :class:`~enzyme_py._native.ffi.Binding` of each library
    (the plugin is loaded and checked on first access to ``enzyme`` or ``profile``);
    ``profile``: the C-API profile module (see :mod:`enzyme_py._native.ffi.enzyme`).
    """

    def __init__(
        self,
        llvm: Binding,
        choice: Pinned,
        *,
        llvm_path: Path,
        enzyme_path: Path,
        llvm_major: int,
        capi: str,
    ) -> None:
        self.llvm = llvm
        self._choice = choice
        self._enzyme: Binding | None = None
        self._profile: ModuleType | None = None
        self.llvm_path = llvm_path
        self.enzyme_path = enzyme_path
        self.llvm_major = llvm_major
        self.capi = capi
        self.triple = take_message(llvm, llvm.LLVMGetDefaultTargetTriple()) or ""
        self.cpu = take_message(llvm, llvm.LLVMGetHostCPUName()) or ""
        self.features = take_message(llvm, llvm.LLVMGetHostCPUFeatures()) or ""
        # Kept alive for the life of the process: C holds these function pointers.
        self.diagnostic_handler = llvm_decl.DIAGNOSTIC_HANDLER(_on_diagnostic)
        self.error_handler = ERROR_HANDLER(_on_enzyme_error)
        #: The handler given to every new context (the trampolines' once they are built).
        self.context_diagnostic_handler: Any = self.diagnostic_handler

    @property
    def enzyme(self) -> Binding:
        """The plugin's binding (loaded and checked on first use)."""
        e = self._enzyme
        if e is None:
            e = self._load_enzyme()
        return e

    @property
    def profile(self) -> ModuleType:
        """The C-API profile module (the plugin is loaded first)."""
        if self._profile is None:
            self._load_enzyme()
        assert self._profile is not None
        return self._profile

    def _load_enzyme(self) -> Binding:
        with LOCK:
            if self._enzyme is not None:
                return self._enzyme
            choice = self._choice
            try:
                enzyme_cdll = ctypes.CDLL(str(choice.enzyme_path), mode=ctypes.RTLD_GLOBAL)
            except OSError as e:
                raise LibraryError(
                    f"could not load the Enzyme plugin {choice.enzyme_path}: {e}. It must be built "
                    f"for the same LLVM as {choice.llvm_path}"
                ) from None
            enzyme = Binding(enzyme_cdll, {}, str(choice.enzyme_path))
            _check_profile(enzyme, choice.enzyme_path, choice.capi, markers_checked=choice.checked)
            try:
                profile = load_profile(choice.capi)
            except KeyError as e:
                raise LibraryError(str(e.args[0])) from None
            enzyme.declare(profile.FUNCTIONS)
            _smoke_test(enzyme, choice.enzyme_path)
            if _pinned is None and not choice.checked:
                remembered.remember(
                    self._asked,
                    remembered.Choice(choice.llvm_path, choice.enzyme_path, choice.capi, choice.llvm_major),
                )
            self._profile = profile
            self._enzyme = enzyme
            return enzyme

    #: the LLVM major this process asked for (the key of its remembered choice)
    _asked: int | None = None

    def __repr__(self) -> str:
        return (
            f"Native(llvm={str(self.llvm_path)!r}, enzyme={str(self.enzyme_path)!r}, "
            f"capi={self.capi!r}, cpu={self.cpu!r})"
        )


@dataclass(frozen=True)
class Pinned:
    """Libraries chosen by someone else (an isolation worker's parent): no lookup.
    ``checked``: this pair already passed the profile check (a remembered choice)."""

    llvm_path: Path
    enzyme_path: Path
    capi: str
    llvm_major: int
    checked: bool = False


_native: Native | None = None
_pinned: Pinned | None = None


def pin(pinned: Pinned) -> Native:
    """Load exactly these libraries (the isolation worker's start); returns them."""
    global _pinned
    if _native is not None:
        raise LibraryError("the native libraries of this process are already loaded")
    _pinned = pinned
    return native(pinned.llvm_major)


def _value_text(val: int | None, limit: int = 4000) -> str | None:
    if not val or _native is None:
        return None
    text = take_message(_native.llvm, _native.llvm.LLVMPrintValueToString(val))
    if text is not None and len(text) > limit:
        text = text[:limit] + " ..."
    return text


#: Enzyme error types treated as warnings right now (set by Enzyme's own pass for its
#: duration, under the LLVM lock), and the trampolines' flag that says so.
warnings_only: frozenset[int] = frozenset()
warning_flag = 0
#: The warnings given meanwhile (the pass turns them into Python warnings).
warned: list[str] = []


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
        if int(etype) in warnings_only:
            # a warning where Enzyme's own pass runs, as the clang plugin has it (it
            # passes no handler): Enzyme takes its default path (NULL) and goes on;
            # the warning is kept, nothing jumps
            if warning_flag:
                ctypes.c_int32.from_address(warning_flag).value = 1
            warned.append(f"{text} ({_value_text(val) or 'no instruction'})".strip())
            return None
        reports.record(reports.Report(int(etype), text, _value_text(val)))
        if _native is None:
            return None
        lib = _native.llvm
        for v in (val2, val):
            if not v:
                continue
            kind = lib.LLVMGetTypeKind(lib.LLVMTypeOf(v))
            if kind in (
                llvm_decl.TypeKind.VOID,
                llvm_decl.TypeKind.LABEL,
                llvm_decl.TypeKind.FUNCTION,
            ) or kind > llvm_decl.TypeKind.VECTOR:
                continue
            return lib.LLVMConstNull(lib.LLVMTypeOf(v))  # type: ignore[no-any-return]
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
        if lib.LLVMGetDiagInfoSeverity(info) != llvm_decl.DiagnosticSeverity.ERROR:
            return
        text = take_message(lib, lib.LLVMGetDiagInfoDescription(info)) or ""
        reports.record(reports.Report(None, text, None))
    except BaseException:  # noqa: BLE001 - never let a Python error unwind through C frames
        return


def _choose(major: int | None) -> Pinned:
    if _pinned is not None:
        return _pinned
    known = remembered.recall(major)
    if known is not None:
        return Pinned(known.llvm_path, known.enzyme_path, known.capi, known.llvm_major, checked=True)
    import enzyme_artifacts

    try:
        resolved = enzyme_artifacts.resolve(major)
    except LibraryError:
        raise
    except Exception as e:  # noqa: BLE001 - enzyme_artifacts' errors, OSError, ...
        # The message of enzyme_artifacts says everything (what was tried, what to do);
        # it is not repeated as the cause.
        raise LibraryError(f"could not locate the Enzyme plugin: {e}") from None
    return Pinned(
        Path(resolved.llvm.path), Path(resolved.library), resolved.capi, int(resolved.llvm.major)
    )


def _check_profile(enzyme: Binding, path: Path, capi: str, *, markers_checked: bool = False) -> None:
    from enzyme_artifacts.capi import required_symbols, signature_markers

    try:
        symbols = required_symbols(capi)
    except KeyError as e:
        raise LibraryError(str(e.args[0])) from None
    missing = sorted(s for s in symbols if not enzyme.has(s))
    if missing:
        raise LibraryError(
            f"{path} does not export what Enzyme C-API profile {capi!r} needs "
            f"(missing: {', '.join(missing)}); the artifact's 'capi' field does not match "
            "the binary — reinstall it (`enzyme-artifacts` CLI) or fix the override"
        )
    markers = signature_markers(capi)
    if not markers or markers_checked:
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


def _smoke_test(enzyme: Binding, path: Path) -> None:
    """Create and free a logic and a type analysis: a library that exports the profile's
    names but does not implement them is refused here, not at the first derivative."""
    logic = enzyme.CreateEnzymeLogic(0)
    if not logic:
        raise LibraryError(
            f"{path}: CreateEnzymeLogic returned NULL; this library exports Enzyme's C API "
            "names but is not a working Enzyme plugin. Point ENZYME_ARTIFACTS_LIBRARY or "
            "the `enzyme-artifacts dev` override at a real LLVMEnzyme build"
        )
    try:
        ta = enzyme.CreateTypeAnalysis(logic, None, None, 0)
        if not ta:
            raise LibraryError(
                f"{path}: CreateTypeAnalysis returned NULL; this library exports Enzyme's C "
                "API names but is not a working Enzyme plugin. Point ENZYME_ARTIFACTS_LIBRARY "
                "or the `enzyme-artifacts dev` override at a real LLVMEnzyme build"
            )
        enzyme.FreeTypeAnalysis(ta)
    finally:
        enzyme.FreeEnzymeLogic(logic)


def _major_mismatch(loaded: int, needed: int, needed_by: str, where: str) -> LibraryError:
    return LibraryError(
        f"{needed_by} needs LLVM {needed}, but {where} LLVM {loaded}; the libLLVM and "
        f"LLVMEnzyme used must be the major of the IR's producer. Unset ENZYME_PY_LLVM_VERSION "
        f"or set it to {needed} (in a fresh process), or install a producer built on LLVM {loaded}"
    )


def native(llvm_major: int | None = None, *, needed_by: str = "this code") -> Native:
    """Load and check the native libraries on first use; the same object afterwards.

    *llvm_major*: the LLVM major the caller's IR needs (the numba lowering passes
    llvmlite's; *needed_by* names that producer in messages).  When nothing is loaded yet,
    that major is loaded; when another major is loaded, or ``ENZYME_PY_LLVM_VERSION``
    asks for another, :class:`~enzyme_py.errors.LibraryError` names both.

    Raises :class:`~enzyme_py.errors.LibraryError` (with enzyme_artifacts' message) when
    the libraries cannot be found, loaded or checked.
    """
    global _native
    nat = _native
    if nat is not None:
        if llvm_major is not None and nat.llvm_major != llvm_major:
            where = f"this process already loaded {nat.llvm_path}, which is"
            raise _major_mismatch(nat.llvm_major, llvm_major, needed_by, where)
        return nat
    with LOCK:
        if _native is not None:
            return native(llvm_major, needed_by=needed_by)
        try:
            requested = config.llvm_version() if _pinned is None else None
        except ValueError as e:
            raise LibraryError(f"{e}; it names the LLVM major to load, such as 15") from None
        if llvm_major is not None and requested is not None and requested != llvm_major:
            raise _major_mismatch(requested, llvm_major, needed_by, "ENZYME_PY_LLVM_VERSION asks for")
        asked = requested if llvm_major is None else llvm_major
        choice = _choose(asked)
        try:
            llvm_cdll = ctypes.CDLL(str(choice.llvm_path), mode=ctypes.RTLD_GLOBAL)
        except OSError as e:
            raise LibraryError(f"could not load libLLVM {choice.llvm_path}: {e}") from None
        try:
            llvm = Binding(llvm_cdll, llvm_decl.FUNCTIONS, str(choice.llvm_path))
        except AttributeError as e:
            raise LibraryError(f"{choice.llvm_path} lacks an LLVM-C function enzyme_py needs: {e}") from None
        llvm.declare({n: t for n, t in llvm_decl.OPTIONAL.items() if llvm.has(n)})
        for init in llvm_decl.host_target_initializers(platform.machine()):
            if llvm.has(init):
                fn = llvm.raw(init)
                fn.restype = None
                fn.argtypes = []
                fn()
        nat = Native(
            llvm,
            choice,
            llvm_path=choice.llvm_path,
            enzyme_path=choice.enzyme_path,
            llvm_major=choice.llvm_major,
            capi=choice.capi,
        )
        nat._asked = asked
        _native = nat
        return nat


def loaded() -> Native | None:
    """The loaded libraries, or None when nothing was loaded yet (loads nothing)."""
    return _native
