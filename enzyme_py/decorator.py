"""``@enzyme_py.jit``: a numba-compiled function that also knows its derivatives.

::

    @enzyme_py.jit                      # or enzyme_py.jit(f), or @enzyme_py.jit(boundscheck=True)
    def loss(w, x):
        ...

    loss(w, x)                          # the primal, run by numba itself
    loss.grad(w, x)                     # gradient(Reverse, loss, w, x)
    loss.autodiff(Forward, Duplicated, Duplicated(w, dw), Const(x))

The object wraps a numba ``@njit`` dispatcher built with the options given (numba's own
options: ``boundscheck``, ``fastmath``, ``error_model``, ...).  Derivatives are compiled on
first use for each signature — the argument types and layouts, the activities, the mode and
the return activity — and kept for the life of the object, so a repeated call with the same
kinds of arguments runs the cached machine code.

Invariants:
    * ``parallel=True`` and object mode are refused when decorating (Enzyme cannot
      differentiate them through this bridge).
    * Instances pickle by their numba dispatcher (which numba pickles by its Python function),
      so they can be sent to ``spawn`` worker processes; the derivative cache is not pickled
      and is rebuilt on first use in the receiving process.

numba is imported when a function is decorated, never when :mod:`enzyme_py` is imported.
"""

from __future__ import annotations

__all__ = ["JitFunction", "jit"]

import functools
from collections.abc import Callable
from typing import Any, overload

from ._call.fast import python_table
from .api import autodiff, gradient
from .modes import Mode
from .python_functions import layouts_of

_REFUSED = {
    "parallel": "parallel=True (parfor) functions cannot be differentiated",
    "forceobj": "object-mode functions cannot be differentiated",
}


class JitFunction:
    """A numba dispatcher with derivatives: call it for the primal, ``.grad`` / ``.autodiff``
    for derivatives.  Build it with :func:`jit`."""

    def __init__(self, dispatcher: Any) -> None:
        from numba.core.dispatcher import Dispatcher

        if not isinstance(dispatcher, Dispatcher):
            raise TypeError(f"JitFunction wraps a numba dispatcher, got {type(dispatcher).__name__}")
        self._dispatcher = dispatcher
        #: this object's table of prepared calls (enzyme_py._call.fast), once used
        self._table: Any = None
        functools.update_wrapper(self, dispatcher.py_func)

    @property
    def dispatcher(self) -> Any:
        """The wrapped numba dispatcher (``@njit`` with this object's options)."""
        return self._dispatcher

    @property
    def __enzyme_py_target__(self) -> Any:
        """What the numba lowering compiles (the dispatcher, with its options)."""
        return self._dispatcher

    @property
    def py_func(self) -> Callable[..., Any]:
        """The Python function."""
        return self._dispatcher.py_func  # type: ignore[no-any-return]

    @property
    def signatures(self) -> tuple[tuple[tuple[str, str, int], ...], ...]:
        """The argument layouts lowered so far, one ``((kind, dtype, ndim), ...)`` per
        layout; each has its derivatives compiled per mode and activities on first use."""
        return layouts_of(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The primal, run by numba (compiled by numba for these argument types)."""
        return self._dispatcher(*args, **kwargs)

    def autodiff(self, mode: Mode, ret: Any, *args: Any, seed: Any = None) -> tuple[Any, ...]:
        """``enzyme_py.autodiff(mode, self, ret, *args)``."""
        if not isinstance(mode, Mode):
            raise TypeError(f"the first argument of .autodiff is a mode (Reverse, Forward, ...), got {mode!r}")
        return autodiff(mode, self, ret, *args, seed=seed)

    def grad(self, *xs: Any) -> tuple[Any, ...]:
        """``enzyme_py.gradient(self, *xs)`` (reverse mode): one derivative per argument
        (bare floats are Active, bare float arrays get a fresh zero shadow, the rest is
        Const)."""
        table = self._table
        if table is None:
            table = self._table = python_table(self)
        fast = table.fast_gradient  # the native entry of gradient(self, ...), once made
        if fast is not None:
            return fast(self, *xs)  # type: ignore[no-any-return]
        return gradient(self, *xs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._dispatcher,))

    def __repr__(self) -> str:
        return f"<enzyme_py.jit {self.py_func.__qualname__} ({len(self.signatures)} argument layout(s) compiled)>"


def _rebuild(dispatcher: Any) -> JitFunction:
    return JitFunction(dispatcher)


@overload
def jit(func: Callable[..., Any], /, **options: Any) -> JitFunction: ...
@overload
def jit(func: None = None, /, **options: Any) -> Callable[[Callable[..., Any]], JitFunction]: ...


def jit(
    func: Callable[..., Any] | None = None, /, **options: Any
) -> JitFunction | Callable[[Callable[..., Any]], JitFunction]:
    """Compile *func* with numba (``@njit`` with *options*) and give it ``.grad``/``.autodiff``.

    Usable as ``@jit``, ``@jit(boundscheck=True, fastmath=False)`` or ``jit(f)``.  *func* may
    be a plain function, a numba ``@njit`` dispatcher (its options are kept; *options*, if
    given, recompile its Python function with them) or a :class:`JitFunction`.

    Raises:
        NotImplementedError: ``parallel=True`` or object mode (``forceobj=True``,
            ``nopython=False``).
        TypeError: *func* is not a function.
    """
    for name, why in _REFUSED.items():
        if options.get(name):
            raise NotImplementedError(f"enzyme_py.jit: {why}")
    if options.get("nopython") is False:
        raise NotImplementedError(f"enzyme_py.jit: {_REFUSED['forceobj']}")
    if func is None:
        return lambda f: jit(f, **options)
    import numba
    from numba.core.dispatcher import Dispatcher

    if isinstance(func, JitFunction):
        if not options:
            return func
        func = func.py_func
    if isinstance(func, Dispatcher):
        if not options:
            target = dict(func.targetoptions)
            if target.get("parallel") or target.get("forceobj") or target.get("nopython") is False:
                raise NotImplementedError(
                    f"enzyme_py.jit: {func.py_func.__qualname__} is a parallel or object-mode "
                    "dispatcher, which cannot be differentiated"
                )
            return JitFunction(func)
        func = func.py_func
    if not callable(func) or not hasattr(func, "__code__"):
        raise TypeError(f"enzyme_py.jit decorates a Python function, got {type(func).__name__}")
    return JitFunction(numba.njit(**options)(func))
