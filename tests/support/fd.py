"""Finite differences: the independent check every derivative test compares against."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["central_difference", "directional_difference"]


def central_difference(f: Callable[[Any], Any], x: Any, eps: float = 1e-6) -> Any:
    """d f / d x by central differences.

    ``x`` a float: a float (or an array when ``f`` returns one).  ``x`` an array: the
    Jacobian with one trailing axis per element of ``x`` (``f(x).shape + x.shape``; the
    gradient for a float-valued ``f``).  ``f`` must not modify its argument.
    """
    if np.isscalar(x):
        return (np.asarray(f(x + eps)) - np.asarray(f(x - eps))) / (2 * eps)
    x = np.asarray(x, dtype=float)
    cols = []
    for j in range(x.size):
        e = np.zeros_like(x)
        e.flat[j] = eps
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps))
    out = np.stack(cols, axis=-1)
    return out.reshape(out.shape[:-1] + x.shape)


def directional_difference(f: Callable[[Any], Any], x: Any, v: Any, eps: float = 1e-6) -> Any:
    """(f(x + eps v) - f(x - eps v)) / 2 eps: the derivative of ``f`` along ``v``."""
    x = np.asarray(x, dtype=float)
    v = np.asarray(v, dtype=float)
    return (np.asarray(f(x + eps * v)) - np.asarray(f(x - eps * v))) / (2 * eps)
