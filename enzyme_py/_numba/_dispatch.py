"""``autodiff`` and ``gradient`` on a Python function: the numba route of :mod:`enzyme_py.api`.

:func:`enzyme_py.autodiff` and :func:`enzyme_py.gradient` send every callable that is not an
:class:`enzyme_py.Function` here.  One call:

1. the primal values are classified (:func:`~._types.classify`) and the function is lowered
   for that layout (:func:`~enzyme_py._numba.lower`, cached per function and layout);
2. the native libraries are loaded for llvmlite's LLVM major, or checked against it
   (:func:`enzyme_py._library.native`);
3. the annotated call is mapped onto the entry (:func:`~._calls.map_call`), the entry is
   differentiated like any IR function (its compiled derivative is cached per plan by its
   module), and the function's exception, if it raised one, is re-raised;
4. reverse results are folded back to one entry per Python argument.

A function returning ``None`` has no return value to differentiate: its return activity is
taken as ``Const`` whatever was asked (derivatives then flow from ``Duplicated`` output
arrays, whose shadows are the seeds).

Activities are checked per *Python* argument before anything runs, so that messages name the
function and the argument the user wrote, not the entry's expanded parameters.
"""

from __future__ import annotations

__all__ = ["autodiff_python", "gradient_python", "lowered_for", "primal_values"]

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import _fastpath as _fast
from ..activity import Active, Annotation, Const, Duplicated
from ..api import autodiff
from ..errors import LibraryError
from ..modes import Mode
from ._calls import entry_function, map_call


def _target(f: Callable[..., Any]) -> Callable[..., Any]:
    """The plain function or numba dispatcher to lower (an ``enzyme_py.jit`` object's
    dispatcher)."""
    from ..decorator import JitFunction

    return f.dispatcher if isinstance(f, JitFunction) else f


def primal_values(args: Sequence[Any]) -> list[Any]:
    """The primal value of each argument (annotations unwrapped).

    Raises:
        TypeError: an activity class was passed where an instance belongs.
    """
    values = []
    for i, a in enumerate(args):
        if isinstance(a, type) and issubclass(a, Annotation):
            raise TypeError(f"argument {i}: pass an instance such as {a.__name__}(x), not the class")
        values.append(a.val if isinstance(a, Annotation) else a)
    return values


@functools.cache
def _producer() -> str:
    import llvmlite
    import numba

    return f"numba {numba.__version__} (llvmlite {llvmlite.__version__})"


def lowered_for(f: Callable[..., Any], values: Sequence[object]) -> Any:
    """Lower *f* for the primal *values* and make sure the loaded libraries fit its LLVM.

    Raises:
        LibraryError: no Enzyme artifact for llvmlite's LLVM major (the message names the
            numba/llvmlite releases that pair with the available ones), or libraries of
            another major are loaded / requested by ``ENZYME_PY_LLVM_VERSION``.
        TypeError, NotImplementedError: from the lowering (argument or construct refused).
    """
    from enzyme_artifacts.errors import ArtifactError

    from .. import _library
    from . import lower

    try:
        low = lower(_target(f), values)
    except ArtifactError as exc:
        raise LibraryError(str(exc)) from exc
    _library.native(low.llvm_major, needed_by=f"{low.qualname}, compiled by {_producer()},")
    return low


def _check_activities(low: Any, mode: Mode, ret: Any, args: Sequence[Any]) -> None:
    name = low.qualname
    if not (isinstance(ret, type) and issubclass(ret, Annotation)):
        raise TypeError(
            "the return activity must be one of the classes Active, Const, Duplicated, "
            f"DuplicatedNoNeed (the class itself), got {ret!r}"
        )
    for i, (spec, a) in enumerate(zip(low.arg_layout, args)):
        if not isinstance(a, Annotation) or isinstance(a, Const):
            continue
        what = f"argument {i} of {name} ({spec.dtype} {'scalar' if spec.kind == 'scalar' else spec.kind})"
        if not spec.differentiable:
            raise TypeError(f"{what}: only float64/float32 values can be {type(a).__name__}; pass it bare or Const")
        if isinstance(a, Active):
            if spec.kind != "scalar":
                raise TypeError(f"{what}: an array is Duplicated(x, dx) (or Const), not Active")
            if not mode.reverse:
                raise TypeError(f"{what}: Active is not allowed in forward mode; use Duplicated(x, dx)")
        elif isinstance(a, Duplicated) and spec.kind == "scalar" and mode.reverse:
            raise TypeError(f"{what}: a scalar is Active in reverse mode, not {type(a).__name__}")
    if low.returns == "i64" and ret is not Const:
        raise TypeError(f"{name} returns an integer: its return activity must be Const")


def autodiff_python(
    mode: Mode, f: Callable[..., Any], ret: Any, args: Sequence[Any], *, lowered: Any = None
) -> tuple[Any, ...]:
    """``autodiff(mode, f, ret, *args)`` for a Python function or numba dispatcher.

    Same results as for an IR function, one entry per Python argument; arrays' derivatives
    are in their shadows.  The function's own exception (a ``raise`` in its body, a bounds
    check) is raised after the derivative call, as the function would raise it.
    *lowered*: the lowering of *f* for these arguments' layout, when the caller has it.
    """
    from . import raise_from_status

    low = lowered
    if low is None:
        low = lowered_for(f, primal_values(args))
    _check_activities(low, mode, ret, args)
    entry = entry_function(low)
    call = map_call(low, args)
    entry_ret = Const if low.returns == "void" else ret
    res = autodiff(mode, entry, entry_ret, *call.args)
    raise_from_status(low, call.status)
    _fast.remember_python("autodiff", mode, f, ret, args, low, entry, entry_ret, call)
    if mode.reverse:
        return (call.fold(res[0]), *res[1:])
    return res


def gradient_python(
    mode: Mode, f: Callable[..., Any], xs: Sequence[Any], *, lowered: Any = None
) -> tuple[Any, ...]:
    """``gradient(mode, f, *xs)`` for a Python function: bare floats are Active, bare float
    arrays Duplicated with a fresh zero shadow, everything else Const; one result per
    argument (``(grads, primal)`` with ReverseWithPrimal)."""
    low = lowered
    if low is None:
        low = lowered_for(f, primal_values(xs))
    if low.returns not in ("f64", "f32"):
        what = "returns None" if low.returns == "void" else "returns an integer"
        raise TypeError(f"gradient needs a function returning a float; {low.qualname} {what}")
    annotated: list[Any] = []
    for x, spec in zip(xs, low.arg_layout):
        if isinstance(x, Annotation) or not spec.differentiable:
            annotated.append(x)
        elif spec.kind == "scalar":
            annotated.append(Active(x))
        else:
            annotated.append(Duplicated(x, np.zeros_like(x)))
    res = autodiff_python(mode, f, Active, annotated, lowered=low)
    grads = tuple(
        a.dval if isinstance(a, Duplicated) else (d if isinstance(a, Active) else None)
        for a, d in zip(annotated, res[0])
    )
    if not any(isinstance(x, Annotation) for x in xs):  # bare values: the fast path's kind
        roles = tuple(
            ("active" if s.kind == "scalar" else "shadow") if s.differentiable else "none"
            for s in low.arg_layout
        )
        entry = entry_function(low)
        _fast.remember_python(
            "gradient", mode, f, None, annotated, low, entry, Active, map_call(low, annotated), roles, xs
        )
    return (grads, res[1]) if mode.with_primal else grads
