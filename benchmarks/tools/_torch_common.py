"""What the ``torch`` and ``torch_compile`` tools share: thread setup and the autograd wrapping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.problems import Array, Inputs
from benchmarks.tools import Prepared

__all__ = ["prepared", "setup_threads"]


def setup_threads(threads: int | None) -> None:
    """Import torch; with an int, restrict intra- and inter-op parallelism to it."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)


def prepared(fn: Callable[..., Any], inputs: Inputs) -> Prepared:
    """Wrap ``fn`` (a torch form, maybe compiled): arrays become float64 tensors sharing memory
    with the NumPy inputs, the active ones requiring grad; the gradient is
    ``torch.autograd.grad`` (fresh tensors, nothing accumulates); the primal runs under
    ``torch.no_grad``."""
    import torch

    targs: list[Any] = []
    for a in inputs.args:
        if isinstance(a, np.ndarray):
            targs.append(torch.from_numpy(a))
        elif isinstance(a, float):
            targs.append(torch.tensor(a, dtype=torch.float64))
        else:
            targs.append(a)
    active = [targs[i].requires_grad_(True) for i in inputs.active]

    def primal() -> Any:
        with torch.no_grad():
            return fn(*targs)

    def gradient() -> Any:
        return torch.autograd.grad(fn(*targs), active)

    def gradient_value() -> tuple[Array, ...]:
        return tuple(g.detach().numpy().astype(np.float64, copy=True) for g in gradient())

    latency = None
    if len(inputs.args) == 1 and isinstance(inputs.args[0], float):
        def latency(x: float) -> float:
            t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            (g,) = torch.autograd.grad(fn(t), (t,))
            return float(g.item())

    return Prepared(primal=primal, gradient=gradient, gradient_value=gradient_value,
                    latency=latency)
