"""What every argument converter is (:class:`ArgConv`) and the signal that an argument is
of another kind than the one a spec was built for (:class:`KindMismatch`); shared by
:mod:`.request` and :mod:`.pointers`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from .._compile.plan import ArgPlan
from .._native.pycall import ArgIn

__all__ = ["ArgConv", "Converter", "KindMismatch"]

#: ``convert(a) -> (values, keep, fresh)`` of one argument (see :class:`ArgConv`)
Converter: TypeAlias = Callable[[Any], tuple[tuple[Any, ...], tuple[Any, ...], Any]]


class KindMismatch(Exception):
    """An argument is not of the kind a spec was built for (internal)."""


@dataclass
class ArgConv:
    """The converter of one argument: ``convert(a)`` returns ``(values, keep, fresh)``:
    its ctypes values, the objects to keep alive for the call, and the fresh zero shadow
    a gradient returns for it (or None).  ``plans``: its entry parameters."""

    convert: Converter
    plans: tuple[ArgPlan, ...]
    #: reverse mode: the entry parameter whose derivative is this argument's result (-1: none)
    deriv: int = -1
    fresh: bool = False
    #: the same checks and conversion for a native entry (:mod:`enzyme_py._call.native`);
    #: None when this kind has none
    native: ArgIn | None = None
