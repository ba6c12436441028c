"""Compile a Python function with numba (nopython) into an optimised llvmlite module.

The function is compiled into a *private* numba code library that is never finalised, so
no machine code is generated and the IR is the optimiser's output rather than what the
code generator left behind.  Dependencies (other jitted functions, numba's own
implementations) are linked in exactly as numba links them.  The module is then optimised
with numba's own two-step pipeline (a cheap inlining pass, NRT reference-count pruning, then
level 3), with the loop and SLP vectorisers and loop unrolling turned off: the vectorised,
unrolled form slows Enzyme down and unrolled loops can trip its cache analysis.

The module pipeline always runs at level 3, whatever ``NUMBA_OPT`` says: on less optimised
numba IR Enzyme meets mixed-activity patterns it rejects.  Loops with a small constant trip
count (numba's ``x ** 2`` is a power-by-squaring loop) are then fully unrolled; nothing
else is.

This module uses numba internals (``Dispatcher._compiler``, ``CodeLibrary._final_module``,
``_linking_libraries``, ``_get_module_for_linking``, ``Flags.no_compile``) as they are in
numba 0.61; the ``numba`` extra pins that series.
"""

from __future__ import annotations

__all__ = ["Compiled", "compile_module"]

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UnsupportedError
from .types import result_kind


@dataclass(frozen=True)
class Compiled:
    """numba's result for one signature.

    Attributes:
        module: the optimised ``llvmlite.binding.ModuleRef`` (owned by the caller).
        native_name: symbol of numba's native-ABI function in *module*.
        native_params: LLVM types of that function's parameters, as printed.
        result: ``(kind, dtype, ndim or length)`` of the return type (see
            :func:`~.types.result_kind`).
        qualname: the Python function's qualified name, for messages.
    """

    module: Any
    native_name: str
    native_params: tuple[str, ...]
    result: tuple[str, str, int]
    qualname: str


def _dispatcher_parts(func: Callable[..., Any]) -> tuple[Callable[..., Any], Any]:
    """Return (python function, numba _FunctionCompiler) for a function or a dispatcher."""
    import numba
    from numba.core.dispatcher import Dispatcher

    if isinstance(func, Dispatcher):
        options = dict(func.targetoptions)
        if options.get("parallel"):
            raise UnsupportedError(
                f"{func.py_func.__qualname__} is compiled with parallel=True; parallel (parfor) "
                "functions are not supported, use a plain @njit function"
            )
        if not options.get("nopython", True) or options.get("forceobj"):
            raise UnsupportedError(
                f"{func.py_func.__qualname__} is an object-mode function (forceobj/nopython=False); "
                "only nopython functions can be differentiated"
            )
        options.pop("nopython", None)
        options.pop("forceobj", None)
        options.pop("cache", None)
        py_func = func.py_func
    elif callable(func) and hasattr(func, "__code__"):
        py_func, options = func, {}
    else:
        raise TypeError(
            f"cannot differentiate {func!r}: pass a plain Python function or a numba @njit dispatcher"
        )
    if py_func.__code__.co_flags & (0x20 | 0x200):  # CO_GENERATOR | CO_ASYNC_GENERATOR
        raise UnsupportedError(f"{py_func.__qualname__} is a generator; generators are not supported")
    return py_func, numba.njit(**options)(py_func)._compiler


def _pass_manager(codegen: Any, opt: int, cheap: bool) -> Any:
    import llvmlite.binding as llvm
    from numba.core import config

    pm = llvm.create_module_pass_manager()
    pm.add_target_library_info(llvm.get_process_triple())
    codegen._tm.add_analysis_passes(pm)
    builder = llvm.create_pass_manager_builder()
    try:
        builder.opt_level = opt
        builder.loop_vectorize = False
        builder.slp_vectorize = False
        builder.disable_unroll_loops = True
        if opt > 0:
            builder.inlining_threshold = 275 if opt >= 3 else 225
        builder.populate(pm)
    finally:
        builder.close()
    if cheap and opt != 0:
        pm.add_loop_rotate_pass()
        pm.add_instruction_combining_pass()
        pm.add_jump_threading_pass()
    if config.LLVM_REFPRUNE_PASS:
        pm.add_refprune_pass()
    return pm


def _full_unroll_manager() -> Any:
    """Unroll loops with a small constant trip count (``x ** 2`` is a power-by-squaring
    loop in numba) and clean up; the main pipeline ran with unrolling off."""
    import llvmlite.binding as llvm

    pm = llvm.create_module_pass_manager()
    pm.add_loop_rotate_pass()
    pm.add_loop_unroll_pass()
    pm.add_sccp_pass()
    pm.add_instruction_combining_pass()
    pm.add_cfg_simplification_pass()
    pm.add_gvn_pass()
    pm.add_dead_code_elimination_pass()
    return pm


def compile_module(func: Callable[..., Any], argtypes: Sequence[Any]) -> Compiled:
    """Compile *func* for the numba types *argtypes* and return the optimised module.

    Raises:
        TypeError: numba cannot type the function in nopython mode (its message is kept).
        UnsupportedError: generators, parallel or object-mode dispatchers.
    """
    import llvmlite.binding as llvm
    from numba.core import compiler
    from numba.core.compiler_lock import global_compiler_lock

    py_func, fcomp = _dispatcher_parts(func)
    targetdescr = fcomp.targetdescr
    context = targetdescr.target_context
    with global_compiler_lock:
        flags = compiler.Flags()
        targetdescr.options.parse_as_flags(flags, fcomp.targetoptions)
        flags.no_compile = True
        flags.no_cpython_wrapper = True
        flags.no_cfunc_wrapper = True
        codegen = context.codegen()
        library = codegen.create_library(f"enzyme_py.{py_func.__qualname__}")
        try:
            cres = compiler.compile_extra(
                targetdescr.typing_context,
                context,
                py_func,
                args=tuple(argtypes),
                return_type=None,
                flags=flags,
                locals=fcomp.locals,
                library=library,
                pipeline_class=fcomp.pipeline_class,
            )
        except Exception as exc:
            _reraise_numba_error(exc, py_func.__qualname__, argtypes)
            raise
        if cres.typing_error is not None or getattr(cres, "objectmode", False):
            raise UnsupportedError(
                f"{py_func.__qualname__} fell back to object mode; only nopython code can be differentiated"
            )
        module = library._final_module
        seen: set[int] = set()
        for dependency in library._linking_libraries:
            if id(dependency) not in seen:
                seen.add(id(dependency))
                module.link_in(dependency._get_module_for_linking(), preserve=True)
        _pass_manager(codegen, 0, cheap=True).run(module)
        _pass_manager(codegen, 3, cheap=False).run(module)
        _full_unroll_manager().run(module)
        module.verify()
        # Detach the module from numba's library: the library is dropped unfinalised.
        module = llvm.parse_assembly(str(module))

    name = cres.fndesc.mangled_name
    fn = module.get_function(name)
    params = tuple(str(a.type) for a in fn.arguments)
    restype = cres.signature.return_type
    return Compiled(module, name, params, result_kind(restype, py_func.__qualname__), py_func.__qualname__)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _reraise_numba_error(exc: Exception, qualname: str, argtypes: Sequence[Any]) -> None:
    """Map numba's compile errors onto TypeError/UnsupportedError (returns for others)."""
    from numba.core import errors

    message = _ANSI.sub("", str(exc)).strip()
    signature = ", ".join(map(str, argtypes))
    unsupported = tuple(
        getattr(errors, name)
        for name in ("UnsupportedError", "UnsupportedBytecodeError", "UnsupportedRewriteError")
        if hasattr(errors, name)
    )
    if isinstance(exc, unsupported):
        raise UnsupportedError(f"numba does not support a construct in {qualname}: {message}") from exc
    if isinstance(exc, errors.TypingError):
        raise TypeError(
            f"numba cannot compile {qualname} in nopython mode for ({signature}): {message}"
        ) from exc
    if isinstance(exc, errors.NumbaError):
        raise TypeError(f"numba failed to compile {qualname} for ({signature}): {message}") from exc
