"""``autodiff`` and ``gradient``, as in Enzyme.jl: routing only.

Every call goes to the prepared-call table of its function (:mod:`enzyme_py._call.fast`):
a :class:`~enzyme_py.Function` uses its module's, a Python function its own (its
lowerings are :class:`~enzyme_py.Function` objects too, made on first use of each
argument layout).  The request is validated there, completely, before any native code
runs: arity, each activity against its parameter, the return activity against the return
type and the mode, dtypes, contiguity, shadow shapes and writability; invalid requests
raise :class:`TypeError` or :class:`ValueError` naming the function and the argument.

The common forms, ``autodiff(mode, f, ReturnActivity, *args)``, ``gradient(f, *xs)``
and ``gradient(mode, f, *xs)``, go straight to the native entry of the kind they were last
called with (:mod:`enzyme_py._call.native`, stored on the Function or on the Python function's
table): a JIT-compiled function that checks and converts the arguments as the validating
path does and hands anything else back to it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from ._call import request
from ._call.fast import Install, Table, python_table, python_tables
from .activity import Active, Annotation
from .modes import Mode, Reverse
from .module import Function
from .python_functions import function_for, is_python_function

__all__ = ["autodiff", "gradient", "resolve"]


def resolve(f: Any, what: str = "this transform") -> tuple[Table, str, Any]:
    """``(table, name, target)`` of a callable: a Function's own, or a Python function's
    (``target`` is then ``function_for``, which lowers it for given arguments)."""
    if type(f) is Function or isinstance(f, Function):
        return f.table, f.name, f
    if is_python_function(f):
        return python_table(f), "", functools.partial(function_for, f)
    raise TypeError(
        f"{what} takes an enzyme_py Function (Module.function(name)), a Python function, a "
        f"numba dispatcher or an enzyme_py.jit function, got {type(f).__name__}"
    )


def _target(target: Any, args: Sequence[Any]) -> Function:
    """The Function a :func:`resolve` target stands for with these arguments."""
    return target if isinstance(target, Function) else target(args)


def _split(args: tuple[Any, ...]) -> tuple[Mode, Any, Any, tuple[Any, ...]]:
    if not args:
        raise TypeError("autodiff needs at least a function")
    if isinstance(args[0], Mode):
        if len(args) < 3:
            raise TypeError("autodiff(mode, f, ReturnActivity, *args) needs f and ReturnActivity")
        return args[0], args[1], args[2], args[3:]
    if isinstance(args[0], type) and issubclass(args[0], Annotation):
        raise TypeError("autodiff's first argument is a mode or a function, not an activity")
    return Reverse, args[0], Active, args[1:]


def _holder(f: Any, table: Table) -> Any:
    """Where the native entries of ``f``'s calls are stored."""
    return f if type(f) is Function else table


def autodiff(*args: Any, seed: Any = None) -> tuple[Any, ...]:
    """``autodiff(mode, f, ReturnActivity, *args)``, or ``autodiff(f, *args)`` for
    ``autodiff(Reverse, f, Active, *args)``.

    Reverse / ReverseWithPrimal: ``(derivs,)`` / ``(derivs, primal)``; ``derivs`` has one
    entry per argument: the derivative (float) of an ``Active`` argument, ``None`` for
    the others (array derivatives are accumulated into their shadows).
    Forward / ForwardWithPrimal: ``(dret,)`` / ``(dret, primal)`` with a
    ``Duplicated``/``DuplicatedNoNeed`` return, ``()`` / ``(primal,)`` with ``Const``.

    A Python function returning a new array (or a tuple of floats): in forward mode with a
    ``Duplicated`` return, ``dret`` is the result's tangent; in reverse mode a
    ``Duplicated`` return takes the result's seed as ``seed=`` (an array shaped like the
    result, or one per lane of a batched call).
    """
    if seed is None and len(args) > 2:
        f = args[1]
        if type(f) is Function:
            fast = f.fast_autodiff
        else:  # a Python function's table, if it has one (python_table_of, inlined)
            hit = python_tables.get(id(f))
            fast = hit[1].fast_autodiff if hit is not None and hit[0]() is f else None
        if fast is not None:
            return fast(*args)  # type: ignore[no-any-return]
    return _autodiff(*args, seed=seed)


def _unexpected(name: str, kwargs: dict[str, Any]) -> TypeError:
    """The error Python gives the public function for a keyword it does not take."""
    return TypeError(f"{name}() got an unexpected keyword argument {next(iter(kwargs))!r}")


def _autodiff(*args: Any, seed: Any = None, **kwargs: Any) -> tuple[Any, ...]:
    """:func:`autodiff` through the call layer (also what a native entry falls back to)."""
    if kwargs:
        raise _unexpected("autodiff", kwargs)
    mode, f, ret, rest = _split(args)
    table, name, target = resolve(f, "autodiff")
    install: Install | None = None
    if seed is None and type(args[0]) is Mode:
        install = (_holder(f, table), "fast_autodiff", (args[0], f, args[2]), _autodiff)
    return table.call(request.AUTODIFF, mode, ret, name, rest, target, seed, install)  # type: ignore[no-any-return]


def gradient(*args: Any) -> tuple[Any, ...]:
    """``gradient(Reverse, f, *xs)`` (the mode may be omitted): one entry per argument.

    A bare float is Active (its derivative, a float), a bare float array is Duplicated
    with a fresh zero shadow (the array of derivatives), ``Const(v)`` and integers give
    ``None``.  ``f`` must return a float scalar.  With ``ReverseWithPrimal`` the result
    is ``(gradients, primal)``.
    """
    if args:
        f = args[0]
        if type(f) is Function:
            fast = f.fast_gradient
        elif type(f) is Mode and len(args) > 1:
            g = args[1]
            if type(g) is Function:
                fast = g.fast_gradient_mode
            else:
                hit = python_tables.get(id(g))
                fast = hit[1].fast_gradient_mode if hit is not None and hit[0]() is g else None
        else:
            hit = python_tables.get(id(f))
            fast = hit[1].fast_gradient if hit is not None and hit[0]() is f else None
        if fast is not None:
            return fast(*args)  # type: ignore[no-any-return]
    return _gradient(*args)


def _gradient(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """:func:`gradient` through the call layer (also what a native entry falls back to)."""
    if kwargs:
        raise _unexpected("gradient", kwargs)
    if not args:
        raise TypeError("gradient needs at least a function")
    install: Install | None = None
    if isinstance(args[0], Mode):
        mode, f, xs = args[0], args[1] if len(args) > 1 else None, args[2:]
        if not mode.reverse or mode.split:
            raise TypeError("gradient supports Reverse and ReverseWithPrimal only")
        table, name, target = resolve(f, "gradient")
        install = (_holder(f, table), "fast_gradient_mode", (mode, f), _gradient)
    else:
        mode, f, xs = Reverse, args[0], args[1:]
        table, name, target = resolve(f, "gradient")
        install = (_holder(f, table), "fast_gradient", (f,), _gradient)
    return table.call(request.GRADIENT, mode, None, name, xs, target, None, install)  # type: ignore[no-any-return]
