"""What to compile and what came out: :class:`Plan` in, :class:`CompiledCode` out.

A :class:`Plan` is a validated request for one entry point of one function: the mode,
each entry parameter's kind, element kind and activity, the return's, and the flags.
:class:`CompiledCode` is plain data (bytes and strings), so it can be cached on disk or
produced in another process.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._native.ffi.enzyme import DiffeType

__all__ = [
    "FORWARD",
    "HVP",
    "PRIMAL",
    "REVERSE",
    "SPLIT",
    "ArgPlan",
    "CompiledCode",
    "Plan",
    "output_names",
    "split_reverse_layout",
]

PRIMAL = "primal"
REVERSE = "reverse"
FORWARD = "forward"
#: Hessian-vector product: forward mode over the reverse-mode gradient, in one module.
HVP = "hvp"
#: Split reverse mode: an augmented forward entry point (returns the tape) and a reverse
#: entry point ``<symbol>_reverse`` (consumes it), in one object.
SPLIT = "split"

_DUP = (DiffeType.DUP_ARG, DiffeType.DUP_NONEED)


@dataclass(frozen=True)
class ArgPlan:
    """One entry parameter of a request: its LLVM kind (``f64``, ``i32``, ``ptr``, ...),
    the element kind of the array passed for a pointer (``None`` otherwise) and its
    ``DiffeType`` (CONSTANT for a primal)."""

    kind: str
    elem: str | None
    activity: int

    @property
    def duplicated(self) -> bool:
        return self.activity in _DUP


@dataclass(frozen=True)
class Plan:
    """A validated request: ``mode`` is one of ``primal``, ``reverse``, ``forward``,
    ``hvp``, ``split``.

    ``ret_activity`` is a ``DiffeType`` (Active return = OUT_DIFF, reverse only);
    ``with_primal`` asks for the primal return value too.  ``width``: Enzyme's vector
    width (batched shadows are ``[width x T]`` arrays, passed to the entry point by
    pointer); ``runtime_activity``, ``strong_zero``, ``fast_math``: the mode flags.
    ``overwritten``: split mode's per-argument flags (empty otherwise).  ``state``: the
    token of the module instance whose mutable globals the code shares (empty when the
    module has none), so code of two instances is never confused.
    """

    function: str
    mode: str
    with_primal: bool
    args: tuple[ArgPlan, ...]
    ret_kind: str
    ret_activity: int
    width: int = 1
    runtime_activity: bool = False
    strong_zero: bool = False
    fast_math: bool = True
    overwritten: tuple[bool, ...] = ()
    state: str = ""

    def key(self) -> str:
        return repr(self)


@dataclass(frozen=True)
class CompiledCode:
    """Object code of one entry point and how to call it (plain data).

    The entry point ``symbol`` takes ``params`` (ctypes kinds, see
    :data:`enzyme_py._native.types.CTYPES`) and returns ``result`` (a kind or ``void``).
    When ``out_fields`` is not empty, the last parameter is a pointer to a C struct of
    those kinds that the entry point fills.  ``outputs`` names each result value in order
    (``result`` first, then the out fields): ``primal``, ``dret`` (tangent of the
    return), ``d<i>`` (derivative of entry parameter ``i``) or ``tape``; in vector mode a
    derivative's lanes are ``name@k``.  Split mode's reverse entry is
    ``<symbol>_reverse``.  ``traps``: see the field.
    """

    object_code: bytes
    symbol: str
    params: tuple[str, ...]
    result: str
    out_fields: tuple[str, ...]
    outputs: tuple[str, ...]
    plan: Plan
    #: The entry's last parameter is a status block (``int64[6]``, see
    #: :mod:`enzyme_py._native.traps`): the code's ``exit()``/``abort()``/failed
    #: ``assert()`` return to Python through it.
    traps: bool = False
    #: The object defines ``<symbol>_init``, which runs the module's static constructors
    #: (C++ globals); called once per module instance, when its first code loads.
    init: bool = False
    #: The code calls the scratch memory helpers (:mod:`enzyme_py._native.scratch`)
    #: instead of ``malloc``/``calloc``/``free``; they are loaded before it.
    scratch: bool = False


def output_names(plan: Plan) -> tuple[str, ...]:
    """The names of an entry point's result values, in Enzyme's order."""
    names: list[str] = []
    if plan.mode == PRIMAL:
        if plan.ret_kind != "void":
            names.append("primal")
    elif plan.mode == SPLIT:  # the augmented forward pass: tape, then the primal
        names.append("tape")
        if plan.with_primal and plan.ret_kind != "void":
            names.append("primal")
    elif plan.mode == FORWARD:
        if plan.with_primal and plan.ret_kind != "void":
            names.append("primal")
        if plan.ret_activity in _DUP:
            names.append("dret")
    elif plan.mode == HVP:
        pass
    else:
        if plan.with_primal and plan.ret_kind != "void":
            names.append("primal")
        names.extend(f"d{i}" for i, a in enumerate(plan.args) if a.activity == DiffeType.OUT_DIFF)
    if plan.width > 1:  # vector mode: every derivative is [width x T], one name per lane
        names = [
            n if n == "primal" else f"{n}@{k}"
            for n in names
            for k in (range(1) if n == "primal" else range(plan.width))
        ]
    return tuple(names)


def split_reverse_layout(plan: Plan) -> tuple[tuple[str, ...], str, tuple[str, ...], tuple[str, ...]]:
    """The C signature of a split plan's reverse entry point ``<symbol>_reverse``:
    ``(params, result, out_fields, outputs)`` as in :class:`CompiledCode`.

    Parameters: each argument (its primal, then its shadow for ``Duplicated``), the seed of
    an ``Active`` return, then the tape (a pointer).  Results: the derivative of each
    ``Active`` argument, returned directly when there is one, else through an out-pointer.
    """
    params: list[str] = []
    for a in plan.args:
        params.append(a.kind)
        if a.duplicated:
            params.append(a.kind)
    if plan.ret_activity == DiffeType.OUT_DIFF:
        params.append(plan.ret_kind)
    params.append("ptr")
    active = [(i, a.kind) for i, a in enumerate(plan.args) if a.activity == DiffeType.OUT_DIFF]
    outputs = tuple(f"d{i}" for i, _ in active)
    if not active:
        return tuple(params), "void", (), outputs
    if len(active) == 1:
        return tuple(params), active[0][1], (), outputs
    return tuple(params) + ("ptr",), "void", tuple(k for _, k in active), outputs
