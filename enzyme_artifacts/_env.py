"""The one reader of environment variables for enzyme_artifacts, enzyme_py and build_recipes.

Every variable a package reads goes through these functions, so that a value that does
not parse gives the same kind of error everywhere: :class:`EnvironmentValueError` (a
``ValueError``) whose message names the variable, the value and what would be accepted.
Each package keeps one prefix (``ENZYME_ARTIFACTS_``, ``ENZYME_PY_``,
``ENZYME_RECIPES_``) and lists its variables in one docstring (``enzyme_artifacts``'s
package docstring, :mod:`enzyme_py.config`, :mod:`build_recipes`) and in the docs'
environment page.

Invariants: nothing is cached (a variable changed by the program is seen at the next read);
an empty or all-blank value means *unset* everywhere, so ``VAR=`` in a shell restores the
default; no reader writes to the environment.

>>> import os
>>> os.environ["ENZYME_DOCTEST_FLAG"] = "off"
>>> flag("ENZYME_DOCTEST_FLAG", True)
False
>>> os.environ["ENZYME_DOCTEST_SIZE"] = "64M"
>>> size("ENZYME_DOCTEST_SIZE", 0)
67108864
>>> del os.environ["ENZYME_DOCTEST_FLAG"], os.environ["ENZYME_DOCTEST_SIZE"]
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "EnvironmentValueError",
    "choice",
    "flag",
    "integer",
    "number",
    "path",
    "size",
    "text",
    "with_prefix",
]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class EnvironmentValueError(ValueError):
    """An environment variable is set to a value that does not parse; the message names
    the variable, its value and what is accepted."""

    def __init__(self, name: str, value: str, expected: str) -> None:
        self.name = name
        self.value = value
        super().__init__(f"{name}={value!r} is not valid: expected {expected} (or unset it)")


def text(name: str) -> str | None:
    """The stripped value of ``name``, or None when it is unset or blank."""
    raw = os.environ.get(name)
    if raw is None:
        return None
    raw = raw.strip()
    return raw or None


def flag(name: str, default: bool) -> bool:
    """A boolean: ``1/true/yes/on`` or ``0/false/no/off`` (any case)."""
    raw = text(name)
    if raw is None:
        return default
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise EnvironmentValueError(name, raw, "1/true/yes/on or 0/false/no/off")


def integer(name: str, default: int, *, minimum: int | None = None) -> int:
    """An integer, at least ``minimum`` when given."""
    raw = text(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EnvironmentValueError(name, raw, "an integer") from None
    if minimum is not None and value < minimum:
        raise EnvironmentValueError(name, raw, f"an integer >= {minimum}")
    return value


def number(name: str, default: float, *, positive: bool = False) -> float:
    """A float (e.g. seconds), strictly positive when ``positive``."""
    raw = text(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise EnvironmentValueError(name, raw, "a number") from None
    if math.isnan(value) or (positive and value <= 0):  # NaN, or not positive
        raise EnvironmentValueError(name, raw, "a positive number" if positive else "a number")
    return value


def size(name: str, default: int) -> int:
    """A size in bytes: a plain number or one with a ``K``/``M``/``G``/``T`` suffix
    (binary units; ``B``/``iB`` accepted: ``512M``, ``2GiB``, ``1000000``)."""
    raw = text(name)
    if raw is None:
        return default
    body = raw.upper().removesuffix("B").removesuffix("I")
    unit = body[-1:] if body[-1:] in _UNITS and body[-1:] else ""
    digits = body[: len(body) - len(unit)].strip()
    try:
        value = int(float(digits) * _UNITS[unit])
    except (ValueError, OverflowError):
        raise EnvironmentValueError(name, raw, "a size such as 1000000, 256M or 2G") from None
    if value < 0:
        raise EnvironmentValueError(name, raw, "a size that is not negative")
    return value


def path(name: str) -> Path | None:
    """A path (``~`` expanded), or None when unset."""
    raw = text(name)
    return None if raw is None else Path(raw).expanduser()


def choice(name: str, default: str, choices: Iterable[str]) -> str:
    """One of ``choices`` (compared in lower case)."""
    allowed = tuple(choices)
    raw = text(name)
    if raw is None:
        return default
    low = raw.lower()
    if low not in allowed:
        raise EnvironmentValueError(name, raw, "one of " + ", ".join(allowed))
    return low


def with_prefix(prefix: str) -> dict[str, str]:
    """Every variable whose name starts with ``prefix`` and whose value is not blank,
    sorted by name (for diagnostics such as ``enzyme-artifacts status``)."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(prefix) and v.strip()}
