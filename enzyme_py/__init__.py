"""enzyme_py: exact derivatives of Python (through numba), C and LLVM IR with Enzyme,
in-process.

Importing this package loads no native library and does not import numba; the first
compilation loads libLLVM-N and the matching LLVMEnzyme-N through
:func:`enzyme_artifacts.resolve`.  Names are imported lazily on first access.

Every ``ENZYME_PY_*`` environment variable is listed in :mod:`enzyme_py.config`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Active",
    "BatchDuplicated",
    "BatchDuplicatedNoNeed",
    "CompileError",
    "Const",
    "DiagnosticError",
    "Duplicated",
    "DuplicatedNoNeed",
    "EnzymeCrashError",
    "EnzymeError",
    "EnzymePyError",
    "EnzymeWarning",
    "Forward",
    "ForwardWithPrimal",
    "Function",
    "IRParseError",
    "IllegalFirstPointerError",
    "IllegalTypeAnalysisError",
    "InternalError",
    "LibraryError",
    "Mode",
    "Module",
    "NoDerivativeError",
    "NoShadowError",
    "NoTypeError",
    "ProgramExit",
    "Reverse",
    "ReverseSplitNoPrimal",
    "ReverseSplitWithPrimal",
    "ReverseWithPrimal",
    "TapeError",
    "TypeDepthExceededError",
    "UnsupportedError",
    "__version__",
    "autodiff",
    "autodiff_function",
    "autodiff_thunk",
    "config",
    "errors",
    "gradient",
    "gradient_function",
    "hvp",
    "hvp_and_gradient",
    "inactive",
    "isolated",
    "jacobian",
    "jit",
    "lower",
    "make_zero",
    "set_fast_math",
    "set_runtime_activity",
    "set_strong_zero",
    "with_derivative",
]

_WHERE = {
    "Module": "module",
    "Function": "module",
    "Reverse": "modes",
    "ReverseWithPrimal": "modes",
    "Forward": "modes",
    "ForwardWithPrimal": "modes",
    "Mode": "modes",
    "Const": "activity",
    "Active": "activity",
    "Duplicated": "activity",
    "DuplicatedNoNeed": "activity",
    "make_zero": "activity",
    "autodiff": "api",
    "gradient": "api",
    "jit": "decorator",
    "isolated": "config",
    "lower": "python_functions",
    "BatchDuplicated": "activity",
    "BatchDuplicatedNoNeed": "activity",
    "ReverseSplitNoPrimal": "modes",
    "ReverseSplitWithPrimal": "modes",
    "set_fast_math": "modes",
    "set_runtime_activity": "modes",
    "set_strong_zero": "modes",
    "autodiff_thunk": "split",
    "autodiff_function": "prepared",
    "gradient_function": "prepared",
    "hvp": "derivatives",
    "hvp_and_gradient": "derivatives",
    "jacobian": "derivatives",
    "inactive": "rules",
    "with_derivative": "rules",
}
_MODULES = {"errors", "config"}
_ERRORS = {n for n in __all__ if n.endswith("Error")} | {"ProgramExit", "EnzymeWarning"}

if TYPE_CHECKING:
    from . import config, errors
    from .activity import (
        Active,
        BatchDuplicated,
        BatchDuplicatedNoNeed,
        Const,
        Duplicated,
        DuplicatedNoNeed,
        make_zero,
    )
    from .api import autodiff, gradient
    from .config import isolated
    from .decorator import jit
    from .derivatives import hvp, hvp_and_gradient, jacobian
    from .errors import (
        CompileError,
        DiagnosticError,
        EnzymeCrashError,
        EnzymeError,
        EnzymePyError,
        EnzymeWarning,
        IllegalFirstPointerError,
        IllegalTypeAnalysisError,
        InternalError,
        IRParseError,
        LibraryError,
        NoDerivativeError,
        NoShadowError,
        NoTypeError,
        ProgramExit,
        TapeError,
        TypeDepthExceededError,
        UnsupportedError,
    )
    from .modes import (
        Forward,
        ForwardWithPrimal,
        Mode,
        Reverse,
        ReverseSplitNoPrimal,
        ReverseSplitWithPrimal,
        ReverseWithPrimal,
        set_fast_math,
        set_runtime_activity,
        set_strong_zero,
    )
    from .module import Function, Module
    from .prepared import autodiff_function, gradient_function
    from .python_functions import lower
    from .rules import inactive, with_derivative
    from .split import autodiff_thunk


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from enzyme_artifacts._version import distribution_version

        return distribution_version()
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _ERRORS:
        where = "errors"
    else:
        where = _WHERE.get(name)  # type: ignore[assignment]
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
