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

The loops of ufuncs on arrays (``np.tanh(a)``, ``a * b``) are versioned
(:func:`_ufunc_kernel`): when no input is broadcast, a copy of numba's loop indexes the
inputs with the loop indices themselves, so that the loop and Enzyme's reverse loop
vectorise.  numba's broadcast index ("``i`` if the dimension is larger than 1, else 0") is
a loop-carried ``select``: the loop stayed scalar, ``tanh`` calls and all, Enzyme cached
every index, and the reverse loop's ``dx[idx] += ...`` could not be widened either.

This module uses numba internals (``Dispatcher._compiler``, ``CodeLibrary._final_module``,
``_linking_libraries``, ``_get_module_for_linking``, ``Flags.no_compile``) as they are in
numba 0.61; the ``numba`` extra pins that series.
"""

from __future__ import annotations

__all__ = ["Compiled", "compile_module"]

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
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


def _ufunc_kernel(context: Any, builder: Any, sig: Any, args: Any, ufunc: Any, kernel_class: Any) -> Any:
    """numba's ``npyimpl.numpy_ufunc_kernel`` (numba 0.61) with the loop nest versioned:
    when no input is broadcast (every array input has the loop's extent in each of its
    dimensions, the usual case), a copy of the loop indexes the inputs with the loop indices
    themselves; otherwise numba's own loop runs, whose broadcast indices are "``i`` if the
    dimension is larger than 1, else 0".  That index is a loop-carried ``select`` the
    vectoriser cannot widen, in the primal or in Enzyme's reverse loop (``dx[idx] += ...``),
    and Enzyme caches every index; the direct copy vectorises both (with libmvec's ``tanh``
    and, in reverse, ``cosh``)."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.core.imputils import impl_ret_new_ref
    from numba.np import npyimpl as n

    arguments = [n._prepare_argument(context, builder, arg, tyarg) for arg, tyarg in zip(args, sig.args)]
    if len(arguments) < ufunc.nin:
        raise RuntimeError(f"Not enough inputs to {ufunc.__name__}, expected {ufunc.nin} got {len(arguments)}")
    for out_i, ret_ty in enumerate(n._unpack_output_types(ufunc, sig)):
        if ufunc.nin + out_i >= len(arguments):
            if isinstance(ret_ty, types.ArrayCompatible):
                output = n._build_array(context, builder, ret_ty, sig.args, arguments)
            else:
                output = n._prepare_argument(context, builder, ir.Constant(context.get_value_type(ret_ty), None), ret_ty)
            arguments.append(output)
        elif context.enable_nrt:
            context.nrt.incref(builder, ret_ty, args[ufunc.nin + out_i])
    inputs = arguments[: ufunc.nin]
    outputs = arguments[ufunc.nin :]
    outer_sig = n._ufunc_loop_sig([a.base_type for a in outputs], [a.base_type for a in inputs])
    kernel = kernel_class(context, builder, outer_sig)
    intpty = context.get_value_type(types.intp)
    indices = [inp.create_iter_indices() for inp in inputs]
    loopshape = outputs[0].shape
    layouts = [inp.layout for inp in inputs if isinstance(inp, n._ArrayHelper)]
    order = "F" if layouts.count("F") > layouts.count("C") else "C"

    direct = ir.Constant(ir.IntType(1), 1)
    for inp in inputs:
        if isinstance(inp, n._ArrayHelper):
            tail = loopshape[len(loopshape) - len(inp.shape):]
            for dim, extent in zip(inp.shape, tail):
                direct = builder.and_(direct, builder.icmp_unsigned("==", dim, extent))

    def loop(broadcast: bool) -> None:
        with cgutils.loop_nest(builder, loopshape, intp=intpty, order=order) as loop_indices:
            vals_in = []
            for i, (index, arg) in enumerate(zip(indices, inputs)):
                if broadcast or not isinstance(index, n._ArrayIndexingHelper):
                    index.update_indices(loop_indices, i)
                else:
                    for src, dst in zip(loop_indices[len(loop_indices) - len(index.indices):], index.indices):
                        builder.store(src, dst)
                vals_in.append(arg.load_data(index.as_values()))
            vals_out = n._unpack_output_values(ufunc, builder, kernel.generate(*vals_in))
            for val_out, output in zip(vals_out, outputs):
                output.store_data(loop_indices, val_out)

    if any(isinstance(index, n._ArrayIndexingHelper) for index in indices):
        with builder.if_else(direct, likely=True) as (then, otherwise):
            with then:
                loop(broadcast=False)
            with otherwise:
                loop(broadcast=True)
    else:
        loop(broadcast=True)
    out = n._pack_output_values(ufunc, context, builder, sig.return_type, [o.return_val for o in outputs])
    return impl_ret_new_ref(context, builder, sig.return_type, out)


@contextlib.contextmanager
def _broadcast_indices() -> Iterator[None]:
    """Use :func:`_ufunc_kernel` for the compilations inside the block (numba's compiler
    lock is held, so no other compilation sees it)."""
    from numba.np import npyimpl

    original = npyimpl.numpy_ufunc_kernel
    npyimpl.numpy_ufunc_kernel = _ufunc_kernel
    try:
        yield
    finally:
        npyimpl.numpy_ufunc_kernel = original


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
    with global_compiler_lock, _broadcast_indices():
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
