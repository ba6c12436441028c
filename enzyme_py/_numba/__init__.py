"""The numba bridge: a plain Python function -> one LLVM module Enzyme can differentiate.

Private to :mod:`enzyme_py`; the public ``autodiff``/``gradient``/``jit`` call it.  numba is
imported on first use, never when :mod:`enzyme_py` is imported.

Flow::

    lower(f, primal values)                       # cached per (function, argument layout)
      -> numba (nopython) compiles f into a private, never-finalised library
      -> optimised at level 3 with vectorisers and unrolling off (small constant loops unrolled)
      -> entry function with a plain C ABI + allocation shim linked in, the rest pruned
      -> Lowered(ir, entry, symbols, llvm_major, arg_layout, returns)
    expand_args(lowered, values, shadows)         # Python call -> entry parameters
    ... the caller differentiates ``lowered.entry`` in ``lowered.ir`` (status array Const) ...
    raise_from_status(lowered, status)            # re-raise what the function raised

With enzyme_py's annotations, the whole call is::

    low = lower(f, [a.val if isinstance(a, Annotation) else a for a in args])
    call = map_call(low, args)                    # annotations -> entry arguments
    res = autodiff(mode, entry_function(low), Const if low.returns == "void" else ret, *call.args)
    raise_from_status(low, call.status)
    # reverse modes: (call.fold(res[0]),) + res[1:]; forward modes: res as it is

which is what :func:`enzyme_py.autodiff` / :func:`enzyme_py.gradient` do for a Python function
(:mod:`._dispatch`, which also loads or checks the native libraries for ``llvm_major``), and
what ``enzyme_py.jit`` objects do with a lowering cached per argument layout.

Entry ABI (``lowered.entry``): each scalar argument as ``double``/``float``/``i64``; each 1-D
C-contiguous array as ``(T* data, i64 n)``; each 2-D one as ``(T* data, i64 n0, i64 n1)``;
then ``i64* status``: an int64 array of :data:`STATUS_WORDS` (2) words, always ``Const``.
It returns the scalar result, or void for a function returning None.  After every call,
``status[0]`` is numba's status code and ``status[1]`` the number of the raised exception
in ``Lowered.exceptions`` (:func:`raise_from_status` turns both into the Python exception).

Environment: ``NUMBA_BOUNDSCHECK`` (bounds checks raise IndexError through the status array), and
``ENZYME_ARTIFACTS_LIBRARY`` / ``ENZYME_ARTIFACTS_MANIFEST`` for the LLVM-major check.
"""

from __future__ import annotations

__all__ = [
    "STATUS_WORDS",
    "ArgSpec",
    "Expanded",
    "Lowered",
    "MappedCall",
    "entry_function",
    "expand_args",
    "lower",
    "map_call",
    "new_status",
    "raise_from_status",
]

import functools
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from ._calls import MappedCall, entry_function, map_call
from ._status import STATUS_WORDS, new_status
from ._status import raise_from_status as _raise_from_status
from ._types import RETURN_KINDS, ArgSpec, classify, numba_type


@dataclass(frozen=True)
class Lowered:
    """A function lowered for one argument layout.

    Attributes:
        ir: the self-contained module, LLVM IR text with typed pointers (llvmlite's dialect).
        entry: name of the plain-ABI entry function in *ir*.
        symbols: symbol name -> absolute address the JIT must resolve (numba runtime helpers
            still called by the code; empty for most functions).
        llvm_major: the LLVM major of llvmlite, which the libLLVM and LLVMEnzyme used must match.
        arg_layout: one :class:`ArgSpec` per Python argument.
        returns: ``"f64"``, ``"f32"``, ``"i64"`` or ``"void"``.
        qualname: the Python function's qualified name, for messages.
        exceptions: numba's pickled ``(class, args, location)`` payloads of the exceptions the
            code can raise; ``status[1] == k`` after a call means payload ``k - 1`` was raised.
    """

    ir: str = field(repr=False)
    entry: str
    symbols: Mapping[str, int]
    llvm_major: int
    arg_layout: tuple[ArgSpec, ...]
    returns: str
    qualname: str = ""
    exceptions: tuple[bytes, ...] = field(default=(), repr=False)

    @property
    def n_params(self) -> int:
        """Number of entry parameters, the status pointer included."""
        return sum(spec.ir_params for spec in self.arg_layout) + 1


@dataclass(frozen=True)
class Expanded:
    """A Python call mapped onto the entry's parameters.

    Attributes:
        params: one primal value per entry parameter: floats/ints for scalars and shapes, the
            (C-contiguous, possibly flattened) array for a data pointer, the status array last.
        shadows: same length; the shadow for a data pointer or a scalar tangent when one was
            given, ``None`` for parameters that are always ``Const`` (shapes, status).
        owner: same length; index of the Python argument each parameter comes from
            (``None`` for the status array).
        status: the status array (also ``params[-1]``), to pass to :func:`raise_from_status`.
    """

    params: tuple[object, ...]
    shadows: tuple[object | None, ...]
    owner: tuple[int | None, ...]
    status: np.ndarray[Any, np.dtype[np.int64]] = field(repr=False)


_lock = threading.RLock()
_cache: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Lowered]] = weakref.WeakKeyDictionary()


@functools.cache
def _checked_major() -> int:
    from ._versions import check_artifact_for_major, llvmlite_major

    major = llvmlite_major()
    check_artifact_for_major(major)
    return major


def _config_key() -> tuple[Any, ...]:
    from numba.core import config

    return (config.BOUNDSCHECK,)


def lower(func: Callable[..., Any], args: Sequence[object]) -> Lowered:
    """Lower *func* (a plain function or a numba dispatcher) for the primal values *args*.

    Results are cached per (function, argument layout, NUMBA_BOUNDSCHECK); the function
    is held weakly.

    Raises:
        TypeError: an argument of an unsupported type or layout, or numba cannot type the
            function in nopython mode.
        NotImplementedError: a construct the bridge does not lower (named in the message).
        enzyme_artifacts.errors.UnsupportedPlatformError: no Enzyme artifact for llvmlite's
            LLVM major (the message lists the numba/llvmlite releases that would pair).
    """
    specs = tuple(classify(value, i) for i, value in enumerate(args))
    major = _checked_major()
    key = (specs, _config_key())
    with _lock:
        try:
            per_func = _cache.setdefault(func, {})
        except TypeError:
            per_func = {}
        hit = per_func.get(key)
        if hit is not None:
            return hit
        lowered = _lower_uncached(func, specs, major)
        per_func[key] = lowered
        return lowered


def _lower_uncached(func: Callable[..., Any], specs: tuple[ArgSpec, ...], major: int) -> Lowered:
    from ._assemble import assemble
    from ._compile import compile_module
    from ._runtime import runtime_symbols

    compiled = compile_module(func, [numba_type(spec) for spec in specs])
    returns = RETURN_KINDS[compiled.return_type]
    ir, entry, needed, exceptions = assemble(compiled, specs)
    symbols = MappingProxyType(dict(runtime_symbols(needed)))
    return Lowered(ir, entry, symbols, major, specs, returns, compiled.qualname, exceptions)


def expand_args(
    lowered: Lowered,
    values: Sequence[object],
    shadows: Sequence[object | None] | None = None,
) -> Expanded:
    """Map a Python call (primal *values*, optional per-argument *shadows*) onto entry parameters.

    Arrays become ``(data, n)`` or ``(data, n0, n1)``: the data parameter carries the array
    (2-D arrays as a flat view of the same memory) and its shadow; shapes are plain ints,
    always ``Const``.  A fresh status array is appended.

    Raises:
        TypeError/ValueError: the values do not match the layout *lowered* was built for, or a
            shadow differs from its primal in shape or dtype.
    """
    if len(values) != len(lowered.arg_layout):
        raise TypeError(f"{lowered.qualname} was lowered for {len(lowered.arg_layout)} arguments, got {len(values)}")
    shadow_list = list(shadows) if shadows is not None else [None] * len(values)
    if len(shadow_list) != len(values):
        raise TypeError(f"got {len(shadow_list)} shadows for {len(values)} arguments")
    params: list[object] = []
    out_shadows: list[object | None] = []
    owner: list[int | None] = []
    for i, (spec, value, shadow) in enumerate(zip(lowered.arg_layout, values, shadow_list)):
        got = classify(value, i)
        if got != spec:
            raise TypeError(
                f"argument {i} is a {got.kind} of {got.dtype}; {lowered.qualname} was lowered for a "
                f"{spec.kind} of {spec.dtype}"
            )
        if spec.kind == "scalar":
            params.append(value)
            out_shadows.append(shadow)
            owner.append(i)
            continue
        array = np.asarray(value)
        if shadow is not None:
            if not isinstance(shadow, np.ndarray) or shadow.shape != array.shape or shadow.dtype != array.dtype:
                raise ValueError(
                    f"the shadow of argument {i} must be an array of shape {array.shape} and dtype "
                    f"{array.dtype}, got {getattr(shadow, 'shape', type(shadow).__name__)}"
                )
            if not shadow.flags.c_contiguous:
                raise TypeError(f"the shadow of argument {i} is not C-contiguous")
            shadow = shadow.reshape(-1)
        params.append(array.reshape(-1))
        out_shadows.append(shadow)
        owner.append(i)
        for n in array.shape:
            params.append(int(n))
            out_shadows.append(None)
            owner.append(i)
    status = new_status()
    params.append(status)
    out_shadows.append(None)
    owner.append(None)
    return Expanded(tuple(params), tuple(out_shadows), tuple(owner), status)


def raise_from_status(lowered: Lowered, status: object) -> None:
    """Re-raise the exception the function raised during the last call, if any.

    Call it after the entry (or a derivative of it) returned, with the status array passed
    to that call.  Nothing is read from the compiled code: the exception comes from
    ``lowered.exceptions``.
    """
    _raise_from_status(lowered.qualname, lowered.exceptions, status)
