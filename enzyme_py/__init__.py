"""enzyme_py: exact derivatives of LLVM IR and C with Enzyme, in-process.

Importing this package loads no native library; the first compilation loads libLLVM-N
and the matching LLVMEnzyme-N through :func:`enzyme_artifacts.resolve`.  Names are
imported lazily on first access.

Environment variables (all ``ENZYME_PY_*``): ``ENZYME_PY_LLVM_VERSION`` (LLVM major),
``ENZYME_PY_PIPELINE`` (pass pipeline after Enzyme), ``ENZYME_PY_HOST_CPU`` (target the
host CPU), ``ENZYME_PY_CLANG`` (clang for :meth:`Module.from_c`), ``ENZYME_PY_CACHE_SIZE``
(compiled derivatives kept loaded after their modules are closed, default 64).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Active",
    "CompileError",
    "Const",
    "DiagnosticError",
    "Duplicated",
    "DuplicatedNoNeed",
    "EnzymeError",
    "EnzymePyError",
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
    "Reverse",
    "ReverseWithPrimal",
    "TypeDepthExceededError",
    "autodiff",
    "config",
    "errors",
    "gradient",
    "make_zero",
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
}
_MODULES = {"errors", "config"}
_ERRORS = {n for n in __all__ if n.endswith("Error")}

if TYPE_CHECKING:
    from . import config, errors
    from .activity import Active, Const, Duplicated, DuplicatedNoNeed, make_zero
    from .api import autodiff, gradient
    from .errors import (
        CompileError,
        DiagnosticError,
        EnzymeError,
        EnzymePyError,
        IllegalFirstPointerError,
        IllegalTypeAnalysisError,
        InternalError,
        IRParseError,
        LibraryError,
        NoDerivativeError,
        NoShadowError,
        NoTypeError,
        TypeDepthExceededError,
    )
    from .modes import Forward, ForwardWithPrimal, Mode, Reverse, ReverseWithPrimal
    from .module import Function, Module


def __getattr__(name: str) -> Any:
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
