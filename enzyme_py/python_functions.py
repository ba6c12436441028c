"""Python functions become :class:`~enzyme_py.Function` objects.

A Python function (plain, ``@numba.njit`` or ``@enzyme_py.jit``) is lowered through numba
once per *argument layout* (the type of each scalar, the dtype and number of dimensions
of each array, numba's bounds-check setting) into a module of its own; the result is a
:class:`~enzyme_py.Function` whose :attr:`~enzyme_py.Function.layout` maps the Python
arguments onto the module's entry point.  From there every transform takes it exactly as
it takes a C or IR function.  :func:`lower` gives it to the user who wants to see it.

A lowering is also kept on disk (:mod:`enzyme_py._compile.lowercache`): a fresh process
that needs the lowering of the same function (same code, same values of the globals and
closure cells it reads, same argument layout, same numba) reads the module from there and
runs neither numba's compiler nor, for a plain function, numba's import.

Invariant: lowerings are held weakly by the Python function object: when the function is
garbage, its modules and compiled code go with it.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from enzyme_artifacts.errors import ArtifactError

from ._call.layout import (
    ArrayParam,
    ArrayResult,
    Layout,
    Param,
    ScalarParam,
    ScalarResult,
    StatusInfo,
    TupleResult,
    VoidResult,
)
from ._compile import lowercache
from ._native.library import native
from ._numba import STATUS_WORDS, Lowered, classify, config_key, llvm_major
from ._numba import lower as numba_lower
from ._numba.runtime import runtime_symbols
from ._numba.types import SCALAR_KINDS
from .activity import Annotation
from .errors import LibraryError
from .module import Function, Module

__all__ = ["arity", "from_lowered", "function_for", "is_python_function", "layouts_of", "lower", "target_of"]

_lock = threading.RLock()
_lowered: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Function]] = weakref.WeakKeyDictionary()


def target_of(f: Any) -> Any:
    """What numba compiles for ``f``: an ``enzyme_py.jit`` object's dispatcher, else ``f``."""
    return getattr(f, "__enzyme_py_target__", f)


def is_python_function(f: Any) -> bool:
    """Whether ``f`` is something the numba lowering takes (a function, a numba
    dispatcher, an ``enzyme_py.jit`` object) rather than an enzyme_py Function."""
    if isinstance(f, Function):
        return False
    t = target_of(f)
    return hasattr(t, "__code__") or hasattr(t, "py_func")


@functools.cache
def _producer() -> str:
    import llvmlite
    import numba

    return f"numba {numba.__version__} (llvmlite {llvmlite.__version__})"


def _primal_values(args: Sequence[Any]) -> list[Any]:
    return [a.val if isinstance(a, Annotation) else a for a in args]


def _param(spec: Any, readonly: bool) -> Param:
    if spec.kind == "scalar":
        kind, lo, hi = SCALAR_KINDS[spec.dtype]
        return ScalarParam(kind, f"{spec.dtype} scalar", lo, hi, spec.dtype)
    return ArrayParam(np.dtype(spec.dtype), spec.ndim, readonly)


def _layout(low: Any, fn: Function) -> Layout:
    readonly = fn.llvm_signature.readonly or (False,) * len(fn.llvm_signature.params)
    params = []
    k = 0
    for spec in low.arg_layout:
        params.append(_param(spec, readonly[k]))
        k += spec.ir_params
    kind, dtype, count = low.result
    result: Any
    if kind == "void":
        result = VoidResult("None")
    elif kind == "scalar":
        result = ScalarResult(SCALAR_KINDS[dtype][0], dtype, dtype)
    elif kind == "array":
        result = ArrayResult(np.dtype(dtype), count)
    else:
        result = TupleResult(np.dtype(dtype), count)
    sig = f"({', '.join(p.text for p in params)}) -> {result.text}"
    status = StatusInfo(low.qualname, low.exceptions, STATUS_WORDS)
    return Layout(low.qualname, sig, tuple(params), result, status=status)


def _relower(f: Any, values: tuple[Any, ...]) -> Function:
    return lower(f, *values)


def function_for(f: Any, args: Sequence[Any]) -> Function:
    """The lowered Function of ``f`` for the layout of ``args`` (annotations unwrapped),
    lowered on first use of that layout."""
    target = target_of(f)
    qualname = getattr(getattr(target, "py_func", target), "__qualname__", repr(target))
    for i, a in enumerate(args):
        if isinstance(a, type) and issubclass(a, Annotation):
            raise TypeError(f"argument {i} of {qualname}: pass an instance such as {a.__name__}(x), not the class")
    values = _primal_values(args)
    specs = tuple(classify(v, i, qualname) for i, v in enumerate(values))
    key = (specs, config_key())
    with _lock:
        try:
            table = _lowered.setdefault(f, {})
        except TypeError:
            table = {}
        hit = table.get(key)
        if hit is not None and not hit.module.closed:
            return hit
        edit = getattr(f, "__enzyme_py_edit__", None)
        disk_key = lowercache.key(target, specs)
        cached = lowercache.load(disk_key) if disk_key is not None else None
        if cached is not None:
            fn = _from_cached(cached, edit)
        else:
            try:
                # The libraries first: numba's compiler must not run in a process that
                # holds a libLLVM of another major (llvmlite's LLVM would resolve symbols
                # into it and crash), so the mismatch is refused before numba runs.
                native(llvm_major(), needed_by=f"{qualname}, to be compiled by {_producer()},")
                low = numba_lower(target, specs)
            except LibraryError:
                raise
            except ArtifactError as exc:
                raise LibraryError(str(exc)) from None
            module = _module_of(low, _producer())
            if disk_key is not None:
                lowercache.store(disk_key, low, module.bitcode, _producer())
            fn = _function_of(low, module, edit)
        example = tuple(np.zeros(v.shape, v.dtype) if isinstance(v, np.ndarray) else v for v in values)
        ref = weakref.ref(f) if _weakrefable(f) else (lambda f=f: f)
        fn.origin = _Origin(ref, example)
        table[key] = fn
        return fn


def arity(f: Any) -> int | None:
    """The number of positional parameters of a Python function (None when it takes
    ``*args`` or cannot be told)."""
    target = target_of(f)
    code = getattr(getattr(target, "py_func", target), "__code__", None)
    if code is None or code.co_flags & 0x04:  # CO_VARARGS
        return None
    return int(code.co_argcount)


def layouts_of(f: Any) -> tuple[tuple[tuple[str, str, int], ...], ...]:
    """The argument layouts ``f`` was lowered for, one ``((kind, dtype, ndim), ...)`` each."""
    with _lock:
        table = _lowered.get(f) or {}
        return tuple(tuple((s.kind, s.dtype, s.ndim) for s in key[0]) for key in table)


def from_lowered(low: Any, edit: Callable[[Module], Module] | None = None) -> Function:
    """The Function of a :class:`~enzyme_py._numba.Lowered` (its module parsed, with the
    native libraries of its LLVM major loaded); ``edit`` changes the module first (the
    custom rules of :mod:`enzyme_py.rules`)."""
    return _function_of(low, _module_of(low, _producer()), edit)


def _module_of(low: Lowered, producer: str, bitcode: bytes | None = None,
               symbols: dict[str, int] | None = None) -> Module:
    """The module of a lowering: its IR text parsed, or its cached ``bitcode``."""
    native(low.llvm_major, needed_by=f"{low.qualname}, compiled by {producer},")
    syms = dict(low.symbols) if symbols is None else symbols
    if bitcode is not None:
        return Module.from_bitcode(bitcode, name=low.entry, symbols=syms)
    return Module.from_ir(low.ir, name=low.entry, symbols=syms)


def _function_of(low: Lowered, module: Module, edit: Callable[[Module], Module] | None) -> Function:
    if edit is not None:
        module = edit(module)
    raw = module.function(low.entry)
    return module.function(low.entry, layout=_layout(low, raw))


def _from_cached(cached: lowercache.CachedLowering, edit: Callable[[Module], Module] | None) -> Function:
    """The Function of a lowering read from disk (numba is imported only when its code
    calls one of numba's runtime helpers)."""
    low = cached.lowered
    symbols = dict(runtime_symbols(cached.symbol_names)) if cached.symbol_names else {}
    return _function_of(low, _module_of(low, cached.producer, cached.bitcode, symbols), edit)


def _weakrefable(f: Any) -> bool:
    try:
        weakref.ref(f)
    except TypeError:
        return False
    return True


class _Origin:
    """How a lowered Function pickles: as its Python function and example arguments
    (lowered again in the unpickling process).  Holds the function weakly."""

    __slots__ = ("example", "ref")

    def __init__(self, ref: Callable[[], Any], example: tuple[Any, ...]) -> None:
        self.ref = ref
        self.example = example

    def __iter__(self) -> Any:  # the (callable, args) pair __reduce__ returns
        f = self.ref()
        if f is None:
            raise TypeError("the Python function this Function was lowered from no longer exists")
        return iter((_relower, (f, self.example)))


def lower(f: Any, *example_args: Any) -> Function:
    """The :class:`~enzyme_py.Function` a Python function becomes for the layout of
    ``example_args`` (values or annotations; only their types, dtypes and dimensions
    matter).  Every transform lowers functions by itself; this shows what they use.

    The Function's module holds numba's IR (:attr:`~enzyme_py.Module.ir`); calling the
    Function runs the primal through enzyme_py's JIT.
    """
    if isinstance(f, Function):
        raise TypeError("lower() takes a Python function; this is already an enzyme_py Function")
    if not is_python_function(f):
        raise TypeError(f"lower() takes a Python function or a numba dispatcher, got {type(f).__name__}")
    return function_for(f, example_args)
