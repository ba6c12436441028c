"""``autodiff`` and ``gradient``, as in Enzyme.jl, over :mod:`enzyme_py.compiler` and
:mod:`enzyme_py.loader`.

Every request is validated here, completely, before any native code runs: arity, each
activity against its parameter's LLVM type, the return activity against the return
type and the mode, dtypes, contiguity, shadow shape/dtype and writability.  Invalid
requests raise :class:`TypeError` or :class:`ValueError`; Enzyme never sees them.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _fastpath as _fast
from ._batch import batch_argument, batch_width, lanes
from ._ffi.enzyme import DiffeType
from ._irtypes import DTYPES, KIND_OF_DTYPE, ValueType
from .activity import (
    Active,
    Annotation,
    BatchDuplicated,
    BatchDuplicatedNoNeed,
    Const,
    Duplicated,
    DuplicatedNoNeed,
)
from .compiler import FORWARD, PRIMAL, REVERSE, ArgPlan, Plan
from .loader import LoadedCode
from .modes import Mode, Reverse
from .module import Function

__all__ = ["autodiff", "call_primal", "gradient", "prepare"]

_RETURN_ACTIVITIES = (Active, Const, Duplicated, DuplicatedNoNeed)
#: A batched return activity is the plain one at the request's width.
_UNBATCHED = {BatchDuplicated: Duplicated, BatchDuplicatedNoNeed: DuplicatedNoNeed}
_INT_RANGES = {
    "i1": (0, 1),
    "i8": (-(2**7), 2**8 - 1),
    "i16": (-(2**15), 2**16 - 1),
    "i32": (-(2**31), 2**32 - 1),
    "i64": (-(2**63), 2**64 - 1),
}


@dataclass(frozen=True)
class Prepared:
    """A validated request: its plan, the ctypes arguments (without the out-struct) and
    how to read the results."""

    plan: Plan
    values: tuple[Any, ...]
    keep: tuple[Any, ...]
    shadows: tuple[Any, ...]


def _describe(i: int, p: ValueType, f: Function) -> str:
    return f"argument {i} of {f.name} ({p.text})"


def _scalar(value: Any, p: ValueType, what: str) -> Any:
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise TypeError(f"{what} is a scalar; got an array of shape {value.shape}")
        value = value[()]
    if p.is_float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            raise TypeError(f"{what} expects a real number, got {type(value).__name__}")
        return float(value)
    if not isinstance(value, (int, np.integer, bool, np.bool_)):
        raise TypeError(f"{what} expects an integer, got {type(value).__name__}")
    v = int(value)
    lo, hi = _INT_RANGES[p.kind]
    if not lo <= v <= hi:
        raise ValueError(f"{what}: {v} does not fit in {p.text}")
    return v


def _element_kind(arr: Any, p: ValueType, what: str, *, float_only: bool) -> str:
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{what} expects a NumPy array, got {type(arr).__name__}")
    kind = KIND_OF_DTYPE.get(arr.dtype)
    if p.pointee == "unsupported":
        raise TypeError(f"{what}: pointers to this element type are not supported")
    if p.pointee is not None and kind != p.pointee:
        want = DTYPES[p.pointee]
        raise TypeError(f"{what} expects a {want} array, got dtype {arr.dtype}")
    if kind is None:
        raise TypeError(
            f"{what}: arrays of dtype {arr.dtype} are not supported "
            "(use float64, float32 or a native-endian integer dtype)"
        )
    if float_only and kind not in ("f64", "f32"):
        raise TypeError(
            f"{what}: only float64/float32 arrays can be differentiated; an integer "
            "array is Const"
        )
    if not arr.flags.c_contiguous:
        raise ValueError(f"{what}: the array must be C-contiguous (use np.ascontiguousarray)")
    return kind


def _writable(arr: np.ndarray[Any, Any], readonly: bool, what: str) -> None:
    if not readonly and not arr.flags.writeable:
        raise ValueError(
            f"{what}: the array is read-only but the function may write through this "
            "pointer (it is not marked readonly); pass a writable array"
        )


def _shadow(x: np.ndarray[Any, Any], dx: Any, what: str) -> np.ndarray[Any, Any]:
    if not isinstance(dx, np.ndarray):
        raise TypeError(f"{what}: the shadow must be a NumPy array, got {type(dx).__name__}")
    if dx.dtype != x.dtype:
        raise TypeError(f"{what}: shadow dtype {dx.dtype} differs from the array's {x.dtype}")
    if dx.shape != x.shape:
        raise ValueError(f"{what}: shadow shape {dx.shape} differs from the array's {x.shape}")
    if not dx.flags.c_contiguous:
        raise ValueError(f"{what}: the shadow must be C-contiguous")
    if not dx.flags.writeable:
        raise ValueError(f"{what}: the shadow is read-only; Enzyme writes into shadows")
    return dx


def _address(arr: np.ndarray[Any, Any]) -> int:
    return int(arr.__array_interface__["data"][0])


def _check_function(f: Any) -> Function:
    if not isinstance(f, Function):
        raise TypeError(
            "expected an enzyme_py Function (Module.function(name)) or a Python function, "
            f"got {type(f).__name__}"
        )
    f.module._handle()
    return f


def prepare(mode: Mode | None, f: Function, ret: Any, args: Sequence[Any]) -> Prepared:
    """Validate a request and build its :class:`Plan` and ctypes arguments.

    ``mode=None`` prepares a primal call (every argument Const).
    """
    f = _check_function(f)
    sig = f.llvm_signature
    if sig.variadic:
        raise TypeError(f"{f.name} is variadic ({f.signature}); it cannot be called from Python")
    if len(args) != len(sig.params):
        raise TypeError(
            f"{f.name} takes {len(sig.params)} argument(s) ({f.signature}), "
            f"{len(args)} given"
        )
    reverse = mode is not None and mode.reverse
    width = 1 if mode is None else batch_width(args, ret, f.name)
    values: list[Any] = []
    keep: list[Any] = []
    shadows: list[Any] = []
    plans: list[ArgPlan] = []
    readonly = sig.readonly or (False,) * len(sig.params)
    for i, (p, a, ro) in enumerate(zip(sig.params, args, readonly)):
        what = _describe(i, p, f)
        if isinstance(a, type) and issubclass(a, Annotation):
            raise TypeError(f"{what}: pass an instance such as {a.__name__}(x), not the class")
        if p.kind in ("void", "unsupported"):
            raise TypeError(f"{what}: parameters of type {p.text} are not supported")
        if mode is None and isinstance(a, Annotation) and not isinstance(a, Const):
            raise TypeError(f"{what}: a primal call takes plain values, got {type(a).__name__}")
        ann = a if isinstance(a, Annotation) else Const(a)
        if isinstance(ann, Active):
            if not p.is_float:
                raise TypeError(
                    f"{what}: Active applies to float scalars only"
                    + ("; use Duplicated(x, dx) for arrays" if p.is_pointer else "")
                )
            if not reverse:
                raise TypeError(
                    f"{what}: Active is not allowed in forward mode; use Duplicated(x, dx)"
                )
            values.append(_scalar(ann.val, p, what))
            plans.append(ArgPlan(p.kind, None, DiffeType.OUT_DIFF))
        elif isinstance(ann, BatchDuplicated):
            bvals, bkeep, (bkind, belem, bact) = batch_argument(
                ann,
                p,
                what,
                reverse=reverse,
                element_kind=_element_kind,
                writable=lambda arr, w, ro=ro: _writable(arr, ro, w),
                shadow=_shadow,
                address=_address,
            )
            values += bvals
            keep += bkeep
            plans.append(ArgPlan(bkind, belem, bact))
        elif isinstance(ann, Duplicated):
            act = DiffeType.DUP_NONEED if isinstance(ann, DuplicatedNoNeed) else DiffeType.DUP_ARG
            if p.is_pointer:
                kind = _element_kind(ann.val, p, what, float_only=True)
                _writable(ann.val, ro, what)
                dx = _shadow(ann.val, ann.dval, what)
                values += [_address(ann.val), _address(dx)]
                keep += [ann.val, dx]
                plans.append(ArgPlan("ptr", kind, act))
            elif p.is_float:
                if reverse:
                    raise TypeError(
                        f"{what}: a scalar is Active in reverse mode, not "
                        f"{type(ann).__name__}"
                    )
                values += [_scalar(ann.val, p, what), _scalar(ann.dval, p, what + " (tangent)")]
                plans.append(ArgPlan(p.kind, None, act))
            else:
                raise TypeError(f"{what}: an integer cannot be {type(ann).__name__}; use Const")
        else:
            if p.is_pointer:
                kind = _element_kind(ann.val, p, what, float_only=False)
                _writable(ann.val, ro, what)
                values.append(_address(ann.val))
                keep.append(ann.val)
                plans.append(ArgPlan("ptr", kind, DiffeType.CONSTANT))
            else:
                values.append(_scalar(ann.val, p, what))
                plans.append(ArgPlan(p.kind, None, DiffeType.CONSTANT))
    r = sig.ret
    if mode is None:
        if r.kind == "unsupported" or (r.is_pointer):
            raise TypeError(f"{f.name} returns {r.text}, which cannot be returned to Python")
        plan = Plan(f.name, PRIMAL, True, tuple(plans), r.kind, DiffeType.CONSTANT)
        return Prepared(plan, tuple(values), tuple(keep), tuple(shadows))
    ret = _UNBATCHED.get(ret, ret)
    if not (isinstance(ret, type) and issubclass(ret, Annotation)) or ret not in _RETURN_ACTIVITIES:
        raise TypeError(
            "the return activity must be one of the classes Active, Const, Duplicated, "
            "DuplicatedNoNeed, BatchDuplicated, BatchDuplicatedNoNeed (the class itself), "
            f"got {ret!r}"
        )
    if r.kind == "unsupported" or (r.is_pointer and ret is not Const):
        raise TypeError(f"{f.name} returns {r.text}; only Const fits that return type")
    if r.kind == "void" and ret is not Const:
        raise TypeError(f"{f.name} returns void: its return activity must be Const")
    if r.is_int and ret is not Const:
        raise TypeError(f"{f.name} returns an integer ({r.text}): its return activity must be Const")
    if reverse:
        if ret in (Duplicated, DuplicatedNoNeed):
            raise TypeError(
                f"{ret.__name__} return activity is for forward mode; a scalar return is "
                "Active (or Const) in reverse mode"
            )
        # An Active return is seeded with 1.0 inside the entry point.
        ret_act = DiffeType.OUT_DIFF if ret is Active else DiffeType.CONSTANT
    else:
        if ret is Active:
            raise TypeError(
                "Active is not allowed in forward mode; use Duplicated (or Const) as the "
                "return activity"
            )
        if ret is Const:
            ret_act = DiffeType.CONSTANT
        else:
            ret_act = DiffeType.DUP_ARG if mode.with_primal else DiffeType.DUP_NONEED
    plan = Plan(
        f.name,
        REVERSE if reverse else FORWARD,
        mode.with_primal,
        tuple(plans),
        r.kind,
        ret_act,
        width=width,
        runtime_activity=mode.runtime_activity,
        strong_zero=mode.strong_zero,
        fast_math=mode.fast_math,
    )
    return Prepared(plan, tuple(values), tuple(keep), tuple(shadows))


def _run(code: LoadedCode, values: Sequence[Any]) -> dict[str, Any]:
    compiled = code.compiled
    cfunc = code.cfunc
    if code.out_type is not None:
        out = code.out_type()
        result = cfunc(*values, ctypes.addressof(out))
        got = [getattr(out, f"f{i}") for i in range(len(compiled.out_fields))]
    else:
        result = cfunc(*values)
        got = []
    if compiled.result != "void":
        got.insert(0, result)
    return dict(zip(compiled.outputs, got))


def call_primal(f: Function, args: Sequence[Any]) -> Any:
    """Run ``f`` itself (compiled once per argument dtypes)."""
    hit = _fast.fast_primal(f, args)
    if hit is not _fast.MISS:
        return hit
    prep = prepare(None, f, None, args)
    code = f.module._compiled(prep.plan)
    result = _run(code, prep.values).get("primal")
    _fast.remember("primal", None, f, None, args, code)
    return result


def _split(args: tuple[Any, ...]) -> tuple[Mode, Any, Any, tuple[Any, ...]]:
    if not args:
        raise TypeError("autodiff needs at least a function")
    if isinstance(args[0], Mode):
        if len(args) < 3:
            raise TypeError("autodiff(mode, f, ReturnActivity, *args) needs f and ReturnActivity")
        return args[0], args[1], args[2], args[3:]
    if isinstance(args[0], type) and issubclass(args[0], Annotation):
        raise TypeError("autodiff's first argument is a mode or a function, not an activity")
    return Reverse, args[0], Active, args[1:]


def autodiff(*args: Any) -> tuple[Any, ...]:
    """``autodiff(mode, f, ReturnActivity, *args)``, or ``autodiff(f, *args)`` for
    ``autodiff(Reverse, f, Active, *args)``.

    Reverse / ReverseWithPrimal: ``(derivs,)`` / ``(derivs, primal)``; ``derivs`` has one
    entry per argument: the derivative (float) of an ``Active`` argument, ``None`` for
    the others (array derivatives are accumulated into their shadows).
    Forward / ForwardWithPrimal: ``(dret,)`` / ``(dret, primal)`` with a
    ``Duplicated``/``DuplicatedNoNeed`` return, ``()`` / ``(primal,)`` with ``Const``.

    >>> import enzyme_py as ez  # doctest: +SKIP
    >>> f = ez.Module.from_c("double f(double x) { return x * x; }").function("f")  # doctest: +SKIP
    >>> ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(3.0))  # doctest: +SKIP
    ((6.0,),)
    """
    if len(args) > 2 and type(args[1]) is Function and type(args[0]) is Mode:
        hit = _fast.fast_autodiff(args[0], args[1], args[2], args[3:])
        if hit is not _fast.MISS:
            return hit
    elif args and type(args[0]) is Function:  # autodiff(f, *args): Reverse, Active return
        hit = _fast.fast_autodiff(Reverse, args[0], Active, args[1:])
        if hit is not _fast.MISS:
            return hit
    mode, f, ret, rest = _split(args)
    if not isinstance(f, Function) and callable(f):  # a Python function: the numba bridge
        hit = _fast.fast_python_autodiff(mode, f, ret, rest)
        if hit is not _fast.MISS:
            return hit
        from ._numba._dispatch import autodiff_python

        return autodiff_python(mode, f, ret, rest)
    if mode.split:
        raise TypeError(
            f"{mode!r} is for autodiff_thunk(mode, f, ReturnActivity, *argtypes); "
            "use Reverse or ReverseWithPrimal with autodiff"
        )
    prep = prepare(mode, f, ret, rest)
    code = f.module._compiled(prep.plan)
    got = _run(code, prep.values)
    _fast.remember("autodiff", mode, f, ret, rest, code)
    primal = got.get("primal")
    width = prep.plan.width
    batched = any(isinstance(a, BatchDuplicated) for a in rest)
    if mode.reverse:
        derivs = tuple(lanes(got, f"d{i}", width, batched) for i in range(len(rest)))
        return (derivs, primal) if mode.with_primal else (derivs,)
    out: tuple[Any, ...] = ()
    if "dret" in got or "dret@0" in got:
        out = (lanes(got, "dret", width, batched),)
    if mode.with_primal:
        out += (primal,)
    return out


def gradient(*args: Any) -> tuple[Any, ...]:
    """``gradient(Reverse, f, *xs)`` (the mode may be omitted): one entry per argument.

    A bare float is Active (its derivative, a float), a bare float array is Duplicated
    with a fresh zero shadow (the array of derivatives), ``Const(v)`` and integers give
    ``None``.  ``f`` must return a float scalar.  With ``ReverseWithPrimal`` the result
    is ``(gradients, primal)``.
    """
    if not args:
        raise TypeError("gradient needs at least a function")
    if isinstance(args[0], Mode):
        mode, f, xs = args[0], args[1] if len(args) > 1 else None, args[2:]
        if not mode.reverse:
            raise TypeError("gradient supports Reverse and ReverseWithPrimal only")
    else:
        mode, f, xs = Reverse, args[0], args[1:]
    if not isinstance(f, Function) and callable(f):  # a Python function: the numba bridge
        hit = _fast.fast_python_gradient(mode, f, xs)
        if hit is not _fast.MISS:
            return hit
        from ._numba._dispatch import gradient_python

        return gradient_python(mode, f, xs)
    hit = _fast.fast_gradient(mode, f, xs) if type(f) is Function else _fast.MISS
    if hit is not _fast.MISS:
        return hit
    f = _check_function(f)
    sig = f.llvm_signature
    if not sig.ret.is_float:
        raise TypeError(f"gradient needs a function returning a float; {f.name} returns {sig.ret.text}")
    if len(xs) != len(sig.params):
        raise TypeError(
            f"{f.name} takes {len(sig.params)} argument(s) ({f.signature}), {len(xs)} given"
        )
    annotated: list[Any] = []
    for p, x in zip(sig.params, xs):
        if isinstance(x, Annotation):
            annotated.append(x)
        elif p.is_pointer and isinstance(x, np.ndarray) and x.dtype in (
            np.dtype(np.float64),
            np.dtype(np.float32),
        ):
            annotated.append(Duplicated(x, np.zeros(x.shape, dtype=x.dtype)))
        elif p.is_float:
            annotated.append(Active(x))
        else:
            annotated.append(Const(x))
    res = autodiff(mode, f, Active, *annotated)
    _fast.remember_gradient(mode, f, xs, annotated)
    derivs = res[0]
    grads = tuple(
        a.dval if isinstance(a, Duplicated) else (d if isinstance(a, Active) else None)
        for a, d in zip(annotated, derivs)
    )
    return (grads, res[1]) if mode.with_primal else grads
