"""Turn the entry's status words back into the Python exception the function raised.

The entry writes numba's status code into ``status[0]`` (0, or -2 for a function returning
None: success; >= 1: a user exception) and into ``status[1]`` the number ``k`` of the raised
exception among the static exceptions of the module (``Lowered.exceptions[k - 1]``, 0 when
unknown).  Each payload is numba's pickled ``(exception class or instance, args tuple,
location)`` triple, which numba builds for every exception with compile-time arguments
(``raise ValueError("...")``, bounds checks, numba's own checks).  Exceptions with runtime
arguments are refused when lowering.
"""

from __future__ import annotations

__all__ = ["raise_from_status"]

import pickle
from collections.abc import Sequence

#: numba's status codes (numba.core.callconv).
_OK, _EXC, _NONE, _STOPIT = 0, -1, -2, -3


def raise_from_status(qualname: str, payloads: Sequence[bytes], status: Sequence[int]) -> None:
    """Raise the exception recorded in *status*, if any; return None on success.

    The raised exception is the one the Python function would raise (same class, same
    arguments); a note names the function and, when numba recorded it, the source line.
    """
    words = status
    code = int(words[0])
    if code in (_OK, _NONE):
        return
    if code >= 1:
        k = int(words[1])
        if not 1 <= k <= len(payloads):
            raise RuntimeError(f"{qualname} raised an exception the bridge cannot identify (status {code}, {k})")
        exc, args, location = pickle.loads(payloads[k - 1])
        error = _instantiate(exc, args, qualname)
        if location:
            fname, filename, line = location
            error.add_note(f"raised by {fname} ({filename}, line {line}) under enzyme_py")
        raise error
    if code == _STOPIT:
        raise StopIteration
    raise RuntimeError(f"{qualname} failed with numba status {code} (an error without exception information)")


def _instantiate(exc: object, args: object, qualname: str) -> BaseException:
    if exc is None:
        return RuntimeError(f"{qualname} re-raised an exception (bare raise), which has no value here")
    if isinstance(exc, BaseException):
        return exc
    if isinstance(exc, type) and issubclass(exc, BaseException):
        if args is None:
            return exc()
        return exc(*args) if isinstance(args, tuple) else exc(args)
    return TypeError("exceptions must derive from BaseException")
