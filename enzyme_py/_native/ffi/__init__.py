"""ctypes bindings of the native libraries: one declaration table per library (LLVM-C in
:mod:`.llvm`, Enzyme's C API in :mod:`.enzyme` and one module per C-API profile), and
:class:`Binding`, which attaches a table to a loaded library.

Invariant: LLVM and Enzyme are not thread-safe, so every function of a :class:`Binding`
takes :data:`LOCK` (re-entrant, one per process) for the duration of the call, as
llvmlite's ``_lib_fn_wrapper`` does.  Callers never lock by hand for a single call; a
sequence of calls that must not interleave with another thread's (a whole compilation,
a global option set right before the Enzyme call it applies to) holds :data:`LOCK`
around the sequence.  JIT-compiled code is called without it.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

__all__ = ["LOCK", "Binding", "Table"]

#: The one re-entrant lock guarding every LLVM and Enzyme call of this process.
LOCK = threading.RLock()

#: A declaration table: function name -> (restype, argtypes).
Table = Mapping[str, tuple[Any, tuple[Any, ...]]]


def _locked(fn: Any, lock: threading.RLock) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        with lock:
            return fn(*args)

    call.__name__ = fn.__name__
    return call


class Binding:
    """A loaded library with the functions of its declaration tables as attributes.

    ``Binding(cdll, table, what)``: every function of ``table`` is declared
    (``restype``/``argtypes``) and exposed as a locked attribute; a name missing from the
    library raises :class:`AttributeError` naming it and ``what``.  Names not in a table
    are not reachable (a typo fails at once instead of calling with guessed types).
    """

    def __init__(self, cdll: ctypes.CDLL, table: Table, what: str) -> None:
        self._cdll = cdll
        self._what = what
        self.declare(table)

    def declare(self, table: Table) -> None:
        """Declare (and expose) more functions, e.g. those of a C-API profile."""
        for name, (restype, argtypes) in table.items():
            try:
                fn = getattr(self._cdll, name)
            except AttributeError:
                raise AttributeError(f"{self._what} does not export {name}") from None
            fn.restype = restype
            fn.argtypes = list(argtypes)
            setattr(self, name, _locked(fn, LOCK))

    def has(self, name: str) -> bool:
        """Whether the library exports ``name`` (declared or not)."""
        return hasattr(self._cdll, name)

    def global_address(self, name: str) -> int | None:
        """The address of an exported global variable, or None when not exported."""
        try:
            return ctypes.addressof(ctypes.c_uint8.in_dll(self._cdll, name))
        except ValueError:
            return None

    def raw(self, name: str) -> Any:
        """The undeclared ctypes function ``name`` (only for the loader's own probes)."""
        return getattr(self._cdll, name)

    def __repr__(self) -> str:
        return f"<Binding {self._what}>"

    if TYPE_CHECKING:
        # The declared functions are attributes set by :meth:`declare`.
        def __getattr__(self, name: str) -> Callable[..., Any]: ...
