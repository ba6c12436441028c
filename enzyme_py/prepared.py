"""Prepared derivatives: a derivative compiled and checked once, then called like a C
extension function (Enzyme.jl's ``autodiff_thunk`` idea for combined mode, JAX's
``jit(grad(f))``).

>>> g = gradient_function(f, 0.5)           # doctest: +SKIP
>>> g(0.7)                                  # doctest: +SKIP
(2.67...,)

:func:`gradient_function` and :func:`autodiff_function` validate the request for the kinds
of the example arguments (a Python function is lowered for their layout), compile the
derivative and return a built-in function whose call checks and converts its arguments in
JIT-compiled code (:mod:`enzyme_py._call.native`).  Calling it is calling
:func:`~enzyme_py.gradient` / :func:`~enzyme_py.autodiff` without the function and mode:
same results, same errors.  Arguments of other kinds (or keywords, or after
:func:`enzyme_py.config.set_options`, or once the module was closed) take the validating
path and get exactly what the public function gives them.

When the request has no native entry (a Python function returning an array or a tuple,
vector mode, ``ENZYME_PY_NATIVE_CALLS=0``), the result is a :class:`PreparedCall`, a
plain Python callable over the same prepared request.
"""

from __future__ import annotations

import functools
from typing import Any

from ._call import native, request
from .activity import Active
from .api import _autodiff, _gradient, resolve
from .modes import Mode, Reverse

__all__ = ["PreparedCall", "autodiff_function", "gradient_function"]


class PreparedCall:
    """A prepared derivative without a native entry: ``call(*args)`` is the public
    function with its leading arguments bound."""

    __slots__ = ("_call", "label")

    def __init__(self, call: Any, label: str) -> None:
        self._call = call
        self.label = label

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<prepared {self.label}>"


def _label(f: Any, name: str) -> str:
    return name or getattr(getattr(f, "py_func", f), "__qualname__", repr(f))


def _prepared(spec: request.Spec, fallback: Any, label: str) -> Any:
    spec.entry()  # compile now: the first call is as fast as the others
    fn = native.callable_for(spec, (), fallback, name=label)
    return fn if fn is not None else PreparedCall(fallback, label)


def gradient_function(*args: Any) -> Any:
    """``g = gradient_function([mode,] f, *example_args)``: the prepared
    :func:`~enzyme_py.gradient` of ``f`` for arguments of the kinds of ``example_args``;
    ``g(*xs)`` returns ``gradient([mode,] f, *xs)``.

    ``mode``: ``Reverse`` (default) or ``ReverseWithPrimal``.  The request is validated
    and the derivative compiled here (the errors :func:`~enzyme_py.gradient` would raise
    are raised now).  ``g`` is a built-in function (or a :class:`PreparedCall`, see the
    module docstring); the example values themselves are not kept.
    """
    if not args:
        raise TypeError("gradient_function needs at least a function")
    if isinstance(args[0], Mode):
        mode, f, xs = args[0], args[1] if len(args) > 1 else None, args[2:]
        if not mode.reverse or mode.split:
            raise TypeError("gradient_function supports Reverse and ReverseWithPrimal only")
    else:
        mode, f, xs = Reverse, args[0], args[1:]
    table, name, target = resolve(f, "gradient_function")
    spec = table.spec(request.GRADIENT, mode, None, name, xs, target)
    label = f"gradient of {_label(f, name)}"
    return _prepared(spec, functools.partial(_gradient, mode, f), label)


def autodiff_function(mode: Mode, f: Any, ret: Any = Active, *example_args: Any) -> Any:
    """``h = autodiff_function(mode, f, ReturnActivity, *example_args)``: the prepared
    :func:`~enzyme_py.autodiff`; ``h(*args)`` returns ``autodiff(mode, f,
    ReturnActivity, *args)`` (``seed=`` is accepted and passed on).

    The request is validated and compiled here for the kinds of ``example_args``
    (annotations such as ``Active(0.5)`` or ``Duplicated(x, dx)``; only their kinds
    matter).  See :func:`gradient_function` for what ``h`` is.
    """
    if not isinstance(mode, Mode):
        raise TypeError(f"autodiff_function takes a mode (Reverse, Forward, ...) first, got {mode!r}")
    table, name, target = resolve(f, "autodiff_function")
    spec = table.spec(request.AUTODIFF, mode, ret, name, example_args, target)
    label = f"{mode.name} derivative of {_label(f, name)}"
    return _prepared(spec, functools.partial(_autodiff, mode, f, ret), label)
