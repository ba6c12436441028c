"""Differentiation modes, as in Enzyme.jl: :data:`Reverse`, :data:`ReverseWithPrimal`,
:data:`Forward`, :data:`ForwardWithPrimal`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Forward", "ForwardWithPrimal", "Mode", "Reverse", "ReverseWithPrimal"]


@dataclass(frozen=True)
class Mode:
    """A differentiation mode; use the four module-level singletons.

    ``reverse``: reverse (adjoint) mode, else forward (tangent) mode.
    ``with_primal``: the result also carries the primal return value.
    """

    name: str
    reverse: bool
    with_primal: bool

    def __repr__(self) -> str:
        return self.name


Reverse = Mode("Reverse", reverse=True, with_primal=False)
ReverseWithPrimal = Mode("ReverseWithPrimal", reverse=True, with_primal=True)
Forward = Mode("Forward", reverse=False, with_primal=False)
ForwardWithPrimal = Mode("ForwardWithPrimal", reverse=False, with_primal=True)
