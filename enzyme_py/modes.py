"""Differentiation modes, as in Enzyme.jl: :data:`Reverse`, :data:`ReverseWithPrimal`,
:data:`Forward`, :data:`ForwardWithPrimal`, and for :func:`enzyme_py.autodiff_thunk`
:data:`ReverseSplitWithPrimal`, :data:`ReverseSplitNoPrimal`.  Flags are set with
:func:`set_runtime_activity`, :func:`set_strong_zero` and :func:`set_fast_math`."""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = [
    "Forward",
    "ForwardWithPrimal",
    "Mode",
    "Reverse",
    "ReverseSplitNoPrimal",
    "ReverseSplitWithPrimal",
    "ReverseWithPrimal",
    "set_fast_math",
    "set_runtime_activity",
    "set_strong_zero",
]


@dataclass(frozen=True)
class Mode:
    """A differentiation mode; use the four module-level singletons.

    ``reverse``: reverse (adjoint) mode, else forward (tangent) mode.
    ``with_primal``: the result also carries the primal return value.
    ``split``: split reverse mode (:func:`enzyme_py.autodiff_thunk` only): an augmented
    forward pass that records a tape, and a reverse pass that consumes it.

    Flags (set with :func:`set_runtime_activity`, :func:`set_strong_zero`,
    :func:`set_fast_math`; each returns a new mode and leaves the singleton unchanged;
    derivatives are compiled and cached per flag combination):

    ``runtime_activity``: Enzyme decides at run time whether a value whose activity
    cannot be proven statically carries a derivative (needed when active and constant
    memory may alias, e.g. a shadow that is the primal itself).
    ``strong_zero``: a zero derivative times an infinite or NaN primal partial gives 0
    rather than NaN (``0 * inf`` is treated as 0).
    ``fast_math``: Enzyme marks the derivative arithmetic it generates ``fast``
    (reassociation, no NaN/inf guarantees); on by default as in Enzyme itself.  Off gives
    derivatives that follow IEEE semantics instruction by instruction.
    """

    name: str
    reverse: bool
    with_primal: bool
    split: bool = False
    runtime_activity: bool = False
    strong_zero: bool = False
    fast_math: bool = True

    def __repr__(self) -> str:
        flags = [
            f"{fn}({{}})"
            for fn, on in (
                ("set_runtime_activity", self.runtime_activity),
                ("set_strong_zero", self.strong_zero),
                ("set_fast_math", not self.fast_math),
            )
            if on
        ]
        text = self.name
        for f in flags:
            text = f.format(text) if "fast_math" not in f else f"set_fast_math({text}, False)"
        return text


Reverse = Mode("Reverse", reverse=True, with_primal=False)
ReverseWithPrimal = Mode("ReverseWithPrimal", reverse=True, with_primal=True)
Forward = Mode("Forward", reverse=False, with_primal=False)
ForwardWithPrimal = Mode("ForwardWithPrimal", reverse=False, with_primal=True)
ReverseSplitWithPrimal = Mode("ReverseSplitWithPrimal", reverse=True, with_primal=True, split=True)
ReverseSplitNoPrimal = Mode("ReverseSplitNoPrimal", reverse=True, with_primal=False, split=True)


def _check_mode(mode: object, what: str) -> Mode:
    if not isinstance(mode, Mode):
        raise TypeError(f"{what} takes a mode such as Reverse or Forward, got {mode!r}")
    return mode


def set_runtime_activity(mode: Mode, on: bool = True) -> Mode:
    """``mode`` with Enzyme's runtime activity checks on (or off): see :class:`Mode`.

    >>> set_runtime_activity(Reverse).runtime_activity
    True
    """
    return replace(_check_mode(mode, "set_runtime_activity"), runtime_activity=bool(on))


def set_strong_zero(mode: Mode, on: bool = True) -> Mode:
    """``mode`` with strong zeros on (or off): ``0 * inf`` in derivative code is 0."""
    return replace(_check_mode(mode, "set_strong_zero"), strong_zero=bool(on))


def set_fast_math(mode: Mode, on: bool) -> Mode:
    """``mode`` with Enzyme's fast-math flags on generated derivative code on or off."""
    return replace(_check_mode(mode, "set_fast_math"), fast_math=bool(on))
