"""Vector (batch) mode: the width of a request and the ctypes values of a
:class:`~enzyme_py.BatchDuplicated` argument.

Enzyme's vector mode of width ``w`` passes every shadow as an LLVM array: ``[w x double]``
for a scalar, ``[w x ptr]`` for a pointer.  The entry point takes each such array *by
pointer*, so a batched argument becomes two ctypes values: the primal, and the address of
a ctypes array holding the ``w`` tangents (scalars) or the ``w`` shadow addresses
(arrays).  The ctypes arrays and the shadows must stay alive for the call: the converters
return them to be kept.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

from ..activity import BatchDuplicated, BatchDuplicatedNoNeed, Duplicated

__all__ = ["MAX_WIDTH", "batch_width", "lane_values", "lanes", "tangent_array"]

#: Widths above this are refused (Enzyme's code size grows with the width).
MAX_WIDTH = 64

_CT = {"f64": ctypes.c_double, "f32": ctypes.c_float}


def batch_width(args: Sequence[Any], ret: Any, fname: str) -> int:
    """The vector width of a request: the common width of its batched arguments (1 when
    there are none).  Raises ``TypeError``/``ValueError`` for mixed widths, a batched
    return without batched arguments, or a width above :data:`MAX_WIDTH`."""
    widths = {a.width for a in args if isinstance(a, BatchDuplicated)}
    if len(widths) > 1:
        raise ValueError(
            f"{fname}: every BatchDuplicated argument of one call must have the same number "
            f"of shadows; got widths {sorted(widths)}"
        )
    width = widths.pop() if widths else 1
    if width > MAX_WIDTH:
        raise ValueError(
            f"{fname}: a batch width of {width} is above the supported maximum {MAX_WIDTH}; "
            "split the directions into chunks"
        )
    if ret in (BatchDuplicated, BatchDuplicatedNoNeed) and not any(
        isinstance(a, BatchDuplicated) for a in args
    ):
        raise TypeError(
            f"{fname}: a {ret.__name__} return needs at least one BatchDuplicated argument "
            "(the width comes from the arguments)"
        )
    if width > 1:
        plain = [i for i, a in enumerate(args) if isinstance(a, Duplicated)]
        if plain:
            raise TypeError(
                f"{fname}: argument(s) {plain} are Duplicated in a batched call of width "
                f"{width}; give them {width} shadows with BatchDuplicated(x, (dx1, ...))"
            )
    return width


def tangent_array(kind: str, tangents: Sequence[float]) -> Any:
    """A ctypes array of the ``w`` scalar tangents of one batched scalar."""
    return (_CT[kind] * len(tangents))(*tangents)


def lane_values(addresses: Sequence[int]) -> Any:
    """A ctypes array of the ``w`` shadow addresses of one batched array."""
    return (ctypes.c_void_p * len(addresses))(*addresses)


def lanes(got: dict[str, Any], name: str, width: int, batched: bool = False) -> Any:
    """The value ``name`` from an entry point's results: itself at width 1 (a 1-tuple when
    the call is ``batched``, i.e. has a BatchDuplicated argument), else the tuple of its
    ``width`` lanes; None when absent."""
    if width == 1:
        v = got.get(name)
        return (v,) if batched and v is not None else v
    if f"{name}@0" not in got:
        return None
    return tuple(got[f"{name}@{k}"] for k in range(width))
