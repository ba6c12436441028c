"""Calling a loaded entry point: the ctypes call, the out-struct it fills, the status
array of a Python function, and the raw results in ``outputs`` order.

Invariants: an :class:`Entry` is immutable once built; the out-struct and the status
array are one per entry and thread, so calls are thread-safe.  The function's own
exception (from the status array) is raised after the call, as the function would raise
it.
"""

from __future__ import annotations

import ctypes
import struct
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeAlias

from .._compile.loader import LoadedCode
from .._native.traps import STATUS_WORDS, read_status
from .._numba.status import raise_from_status
from ..errors import ProgramExit
from .layout import StatusInfo

__all__ = ["Entry", "address_of", "raise_program_exit"]

_STRUCT_CODES = {"f64": "d", "f32": "f", "i1": "?", "i8": "b", "i16": "h", "i32": "i", "i64": "q", "ptr": "P"}

#: ``call(values) -> raw results`` of an :class:`Entry`
EntryCall: TypeAlias = Callable[[list[Any]], tuple[Any, ...]]


class _AddressReader(Protocol):
    """What :func:`address_of` is rebound to: one of the readers below."""

    def __call__(self, arr: Any) -> int: ...


_from_address = ctypes.c_void_p.from_address
#: Offset of the data pointer in NumPy's array object (right after the object header).
_DATA_OFFSET = object.__basicsize__


def _address_slow(arr: Any) -> int:
    return int(arr.__array_interface__["data"][0])


def _address_direct(arr: Any) -> int:
    return _from_address(id(arr) + _DATA_OFFSET).value or 0


def _pick_address() -> _AddressReader:
    """Read the data pointer straight from the array object when this NumPy lays it out
    as expected (checked on a few arrays), else through ``__array_interface__``."""
    import numpy as np

    probes = [np.zeros(3), np.zeros((2, 3), dtype=np.float32)[1:], np.arange(5)[2:]]
    try:
        if all(_address_direct(a) == _address_slow(a) for a in probes):
            return _address_direct
    except (ValueError, OverflowError):  # pragma: no cover - defensive
        pass
    return _address_slow  # pragma: no cover - other array layouts


def address_of(arr: Any) -> int:  # noqa: F811 - rebinds itself on first use
    """The data pointer of the NumPy array ``arr``; the first call picks the reader
    (nothing runs at import time) and rebinds this name to it."""
    global address_of
    address_of = _pick_address()
    return address_of(arr)


def raise_program_exit(function: str, words: Any) -> None:
    """Raise :class:`~enzyme_py.errors.ProgramExit` for a trap status block that records
    an ``exit()``/``abort()``/failed ``assert()``."""
    got = read_status(words)
    if got is not None:
        kind, code, message = got
        raise ProgramExit(f"{function}: {message}; the call was abandoned", kind=kind, status=code)


class Entry:
    """One loaded entry point and how to call it.

    ``call(values)`` returns the raw results (the return value, then the out-struct
    fields) in the order of ``compiled.outputs``.  ``status``: the hidden status array of
    a Python function, appended to every call and checked after it.
    """

    __slots__ = (
        "call", "cfunc", "code", "has_result", "n_out", "out_type", "outputs", "status", "tls", "traps", "unpack",
    )

    def __init__(self, code: LoadedCode, status: StatusInfo | None = None) -> None:
        compiled = code.compiled
        self.code = code
        self.cfunc = code.cfunc
        self.outputs = compiled.outputs
        self.has_result = compiled.result != "void"
        self.out_type = code.out_type
        self.n_out = len(compiled.out_fields)
        self.unpack = (
            struct.Struct("@" + "".join(_STRUCT_CODES[k] for k in compiled.out_fields)).unpack_from
            if compiled.out_fields
            else None
        )
        self.status = status
        self.traps = compiled.traps
        self.tls = threading.local()
        self.call: EntryCall
        if self.unpack is None and status is None and not self.traps:  # the common case, in one closure
            cfunc = self.cfunc
            if self.has_result:
                self.call = lambda values: (cfunc(*values),)
            else:
                self.call = lambda values: (cfunc(*values), ())[1]
        else:
            self.call = self._call

    def status_buffer(self) -> tuple[Any, int]:
        """This thread's status array and its address (zeroed)."""
        tls = self.tls
        try:
            buf, addr = tls.status
        except AttributeError:
            assert self.status is not None
            buf = (ctypes.c_int64 * self.status.words)()
            addr = ctypes.addressof(buf)
            tls.status = (buf, addr)
        ctypes.memset(addr, 0, ctypes.sizeof(buf))
        return buf, addr

    def _call(self, values: list[Any]) -> tuple[Any, ...]:
        """Call with ``values`` (the status address is appended for a Python function,
        whose exception is raised after the call); ``call`` is this or a shortcut of it."""
        status = None
        if self.status is not None:
            status, addr = self.status_buffer()
            values.append(addr)
        trap = None
        if self.traps:
            trap, trap_addr = self._trap_buffer()
        if self.unpack is None:
            r = self.cfunc(*values) if trap is None else self.cfunc(*values, trap_addr)
            raw: tuple[Any, ...] = (r,) if self.has_result else ()
        else:
            tls = self.tls
            try:
                out, out_addr = tls.out
            except AttributeError:
                out = self.out_type()  # type: ignore[misc]
                out_addr = ctypes.addressof(out)
                tls.out = (out, out_addr)
            r = self.cfunc(*values, out_addr) if trap is None else self.cfunc(*values, out_addr, trap_addr)
            fields = self.unpack(out)
            raw = (r, *fields) if self.has_result else fields
        if trap is not None and trap[0]:
            raise_program_exit(self.code.compiled.plan.function, trap)
        if status is not None:
            info = self.status
            assert info is not None
            if status[0] not in (0, -2):
                raise_from_status(info.qualname, info.exceptions, list(status))
        return raw

    def _trap_buffer(self) -> tuple[Any, int]:
        """This thread's trap status block and its address (zeroed)."""
        tls = self.tls
        try:
            buf, addr = tls.trap
        except AttributeError:
            buf = (ctypes.c_int64 * STATUS_WORDS)()
            addr = ctypes.addressof(buf)
            tls.trap = (buf, addr)
        ctypes.memset(addr, 0, ctypes.sizeof(buf))
        return buf, addr

    def last_status(self) -> list[int]:
        """This thread's status words after the last call."""
        buf, _ = self.tls.status
        return list(buf)
