"""Annotated Python calls onto the entry function, and the entry's module per lowering.

What ``enzyme_py.autodiff``/``gradient`` need to differentiate a Python function:

* :func:`entry_function` parses ``lowered.ir`` once per :class:`~._numba.Lowered` (with its
  runtime symbols) and returns the :class:`enzyme_py.Function` of the entry;
* :func:`map_call` turns the user's arguments (annotations or bare values) into entry
  arguments: an array's annotation is kept (with flat views of the array and its shadow) on
  the data parameter, its shape becomes bare ints (Const), and the status array is appended
  as ``Const``;
* :meth:`MappedCall.fold` turns a reverse-mode result (one entry per entry parameter) back
  into one entry per Python argument.
"""

from __future__ import annotations

__all__ = ["MappedCall", "entry_function", "map_call"]

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..activity import Active, Annotation, Const, Duplicated
from ._status import new_status
from ._types import classify

if TYPE_CHECKING:
    from . import Lowered

_modules_lock = threading.Lock()
_modules: dict[int, tuple[Any, Any, Any]] = {}


def entry_function(lowered: Lowered) -> Any:
    """The :class:`enzyme_py.Function` of ``lowered.entry``; its module is parsed once and kept
    for as long as *lowered* is (lowerings are cached, so in practice for the process).

    Raises:
        RuntimeError: the function needs numba runtime symbols and this enzyme_py's
            ``Module.from_ir`` does not accept ``symbols=``.
    """
    import enzyme_py

    with _modules_lock:
        hit = _modules.get(id(lowered))
        if hit is not None and hit[0] is lowered:
            return hit[2]
        if lowered.symbols:
            try:
                module = enzyme_py.Module.from_ir(lowered.ir, name=lowered.entry, symbols=dict(lowered.symbols))
            except TypeError as exc:
                if "symbols" not in str(exc):
                    raise
                raise RuntimeError(
                    f"{lowered.qualname} calls numba runtime functions ({', '.join(sorted(lowered.symbols))}) "
                    "that the JIT must resolve, but enzyme_py.Module.from_ir has no symbols= keyword"
                ) from exc
        else:
            module = enzyme_py.Module.from_ir(lowered.ir, name=lowered.entry)
        function = module.function(lowered.entry)
        _modules[id(lowered)] = (lowered, module, function)
        return function


@dataclass(frozen=True)
class MappedCall:
    """A Python-level call mapped onto the entry's parameters.

    Attributes:
        args: the entry arguments (annotations or bare values), status array last.
        status: the status array, for :func:`~._numba.raise_from_status` after the call.
        first_param: for each Python argument, the index of its first entry parameter.
        kinds: for each Python argument, ``"scalar"``, ``"array1d"`` or ``"array2d"``.
    """

    args: tuple[Any, ...]
    status: np.ndarray[Any, np.dtype[np.int64]] = field(repr=False)
    first_param: tuple[int, ...]
    kinds: tuple[str, ...]

    def fold(self, derivs: Sequence[Any]) -> tuple[Any, ...]:
        """One reverse-mode entry per Python argument from one per entry parameter: the
        derivative of a scalar, ``None`` for arrays (their derivatives are in the shadows)."""
        return tuple(
            derivs[k] if kind == "scalar" else None for k, kind in zip(self.first_param, self.kinds)
        )


def _flat(array: object, what: str) -> np.ndarray[Any, Any]:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{what} must be a NumPy array, got {type(array).__name__}")
    if not array.flags.c_contiguous:
        raise TypeError(f"{what} is not C-contiguous; pass np.ascontiguousarray(x)")
    return array.reshape(-1)


def map_call(lowered: Lowered, args: Sequence[Any]) -> MappedCall:
    """Map the annotated Python *args* onto the entry of *lowered* (see the module docstring).

    Raises:
        TypeError/ValueError: an argument does not fit the layout *lowered* was built for,
            ``Active`` on an array, or a shadow that differs from its array.
    """
    if len(args) != len(lowered.arg_layout):
        raise TypeError(f"{lowered.qualname} takes {len(lowered.arg_layout)} argument(s), {len(args)} given")
    out: list[Any] = []
    first: list[int] = []
    for i, (spec, arg) in enumerate(zip(lowered.arg_layout, args)):
        value = arg.val if isinstance(arg, Annotation) else arg
        got = classify(value, i)
        if got != spec:
            raise TypeError(
                f"argument {i} is a {got.kind} of {got.dtype}; {lowered.qualname} was lowered for a "
                f"{spec.kind} of {spec.dtype}"
            )
        first.append(len(out))
        if spec.kind == "scalar":
            out.append(arg)
            continue
        if isinstance(arg, Active):
            raise TypeError(f"argument {i} is an array: use Duplicated(x, dx) (or Const), not Active")
        flat = _flat(value, f"argument {i}")
        if isinstance(arg, Duplicated):
            shadow = arg.dval
            if not isinstance(shadow, np.ndarray) or shadow.shape != value.shape or shadow.dtype != value.dtype:
                raise ValueError(
                    f"the shadow of argument {i} must be an array of shape {value.shape} and dtype "
                    f"{value.dtype}, got {getattr(shadow, 'shape', type(shadow).__name__)}"
                )
            out.append(type(arg)(flat, _flat(shadow, f"the shadow of argument {i}")))
        elif isinstance(arg, Const):
            out.append(Const(flat))
        elif isinstance(arg, Annotation):
            raise TypeError(f"argument {i}: {type(arg).__name__} is not supported for arrays")
        else:
            out.append(flat)
        out.extend(int(n) for n in value.shape)
    status = new_status()
    out.append(Const(status))
    return MappedCall(tuple(out), status, tuple(first), tuple(s.kind for s in lowered.arg_layout))
