"""The compile stage: a validated :class:`~.plan.Plan` and a module's bitcode in, object
code out.

Pipeline (under the LLVM lock, in a fresh LLVM context discarded after)::

    bitcode -> module (host triple and data layout)
            -> BLAS calls made Enzyme's (:mod:`.._native.linalg`): numba's ``np.dot``
               helpers become CBLAS calls, row-major CBLAS calls column-major ones;
               zeroing memsets of float buffers become typed loops
            -> what the function reaches is inspected: inline assembly and OpenMP are
               refused before Enzyme sees them; the module's mutable globals become
               declarations of its state object (with zeroed shadows for derivatives),
               globals nothing writes become constants
            -> Enzyme (reverse, forward, split or hvp; type trees from the plan), called
               through a setjmp trampoline
            -> derivative renamed; C-ABI entry point generated, external (Active return
               seeded with 1.0 inside; aggregates via an out-pointer); the LAPACK-style
               helpers Enzyme's BLAS derivatives call are defined
            -> every other definition internal; load/store alignment clamped to
               ``options().max_alignment``; ``llvm.loop.unroll.disable`` dropped;
               calls of ``exp``/``log``/... given libmvec variants (``options().vector_math``)
            -> verifier -> ``globaldce,`` + ``options().pipeline`` (``default<O2>``, with
               LLVM's ordered FP reductions while it runs, see :mod:`.._native.tuning`) for
               the host CPU (tuned per ``options().tune_cpu``) -> calls of ``malloc``,
               ``calloc`` and ``free`` renamed to the scratch memory helpers
               (``options().scratch_memory``, :mod:`.._native.scratch`) -> object code
               (code generator level 0 for small straight-line code)  => CompiledCode

Any Enzyme ``CustomErrorHandler`` call or LLVM error diagnostic during a request makes it
fail with the matching :class:`~enzyme_py.errors.EnzymeError`; nothing is returned.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import warnings
from collections.abc import Mapping

from .. import config
from .._native import enzyme as native_enzyme
from .._native import linalg, scratch, transforms, vecmath
from .._native.ffi import LOCK
from .._native.ffi.enzyme import DiffeType
from .._native.handles import ContextRef, ModuleRef
from .._native.library import native
from .._native.reports import Report, collecting, raise_for_reports
from .._native.target import host_target_machine
from .._native.tuning import apply_tuning, emit_level
from ..errors import CompileError, EnzymeError, EnzymeWarning, UnsupportedError
from . import modes
from .plan import FORWARD, HVP, PRIMAL, REVERSE, SPLIT, CompiledCode, Plan, output_names

__all__ = ["compile_plan", "compile_state", "enzyme_request", "optimise_source", "state_names"]

_counter = itertools.count()
#: Random per process: entry-point symbols stay unique when object code compiled by
#: another process (an isolation worker, the disk cache) is loaded here.
_PROCESS_TOKEN = secrets.token_hex(4)


def state_names(stateful: tuple[str, ...], token: str) -> dict[str, str]:
    """The symbol of each mutable global of a module instance in its state object."""
    return {name: f"{name}.enzpy.{token}" for name in stateful}


def enzyme_request(plan: Plan) -> native_enzyme.Request:
    """What Enzyme is told for ``plan``."""
    return native_enzyme.Request(
        args=plan.args,
        ret_kind=plan.ret_kind,
        ret_activity=plan.ret_activity,
        return_primal=plan.with_primal,
        width=plan.width,
        runtime_activity=plan.runtime_activity,
        strong_zero=plan.strong_zero,
        fast_math=plan.fast_math,
        overwritten=plan.overwritten or None,
    )


def _refuse_fatal_calls(mod: ModuleRef, root: str, what: str) -> None:
    """:class:`UnsupportedError` when code to be differentiated calls a function whose
    derivative would end the process: :data:`~.._native.transforms.FATAL_CALLS` and the
    loaded C-API profile's ``FATAL_CALLS`` (name -> why)."""
    reasons = {**transforms.FATAL_CALLS, **getattr(native().profile, "FATAL_CALLS", {})}
    fatal = transforms.fatal_calls(mod, root, reasons)
    if fatal:
        callee = fatal[0][1]
        where = ", ".join(f"{c} (in {f})" for f, c in fatal)
        raise UnsupportedError(
            f"{what} calls {where}; {reasons[callee]}. Move the call into a function of "
            "your own and mark it inactive (enzyme_py.inactive(module, name)) or give that "
            "function a derivative (enzyme_py.with_derivative)"
        )


def _refuse_unsupported(facts: transforms.ModuleFacts, plan: Plan) -> None:
    if facts.inline_asm:
        where = ", ".join(facts.inline_asm)
        raise UnsupportedError(
            f"{plan.function!r} reaches inline assembly (in {where}), which Enzyme cannot "
            "differentiate; move it into a function marked inactive "
            "(enzyme_py.inactive(module, name)) or give that function a derivative "
            "(enzyme_py.with_derivative)"
        )
    if facts.openmp:
        where = ", ".join(facts.openmp)
        raise UnsupportedError(
            f"{plan.function!r} forks OpenMP parallel regions (in {where}); Enzyme's C API, "
            "which the Python API uses, aborts on them. Call it from C through Enzyme's "
            "source interface instead (__enzyme_autodiff in the module: Module.from_c runs "
            "Enzyme's own pass, which differentiates parallel loops), or compile without "
            "-fopenmp to differentiate it serially"
        )


def _check_state(facts: transforms.ModuleFacts, stateful: Mapping[str, str], plan: Plan) -> None:
    for name in stateful:
        use = facts.globals[name]
        if use.has_pointers and name in facts.used_globals and plan.mode != PRIMAL:
            raise UnsupportedError(
                f"{plan.function!r} uses the mutable global {name!r} ({use.text_type}), which "
                "holds pointers and is written by the module; Enzyme would need a shadow for "
                "it that enzyme_py cannot build. Pass the data as an argument instead"
            )


def _raise_for(reports: list[Report], plan: Plan) -> None:
    """The reports of a request as its exception: Enzyme's errors for a derivative,
    :class:`CompileError` for a primal (no Enzyme ran)."""
    if reports and plan.mode == PRIMAL:
        raise CompileError(f"compiling {plan.function!r} failed", "\n".join(r.message for r in reports))
    raise_for_reports(reports, plan.function)


def compile_plan(
    bitcode: bytes, content_hash: str, plan: Plan, stateful: tuple[str, ...] = ()
) -> CompiledCode:
    """Compile one request to object code (see the module docstring).  ``stateful``: the
    module's mutable globals that its code writes (shared through its state object)."""
    nat = native()
    opts = config.options()
    tag = hashlib.sha256(f"{content_hash}|{plan.key()}".encode()).hexdigest()[:16]
    # Unique across processes too (code may come from a worker or the disk cache).
    symbol = f"enzpy_{tag}_{_PROCESS_TOKEN}{os.getpid():x}_{next(_counter)}"
    names = state_names(stateful, plan.state) if plan.state else {}
    with LOCK:
        tm = host_target_machine()
        ctx = ContextRef.create()
        try:
            with collecting() as reports:
                mod = ctx.parse_bitcode(bitcode, plan.function)
                try:
                    mod.prepare(nat.triple, tm)
                    if linalg.map_numba_blas(mod):  # np.dot & co.: CBLAS calls Enzyme knows
                        # numba's abort path after its helpers is dead now: drop it
                        mod.run_passes("function(instsimplify,simplifycfg)", tm, loop_transforms=False)
                    linalg.column_major(mod)
                    transforms.typed_memsets(mod)
                    fn = mod.defined_function(plan.function)
                    if fn is None:
                        raise CompileError(f"function {plan.function!r} is not defined")
                    facts = transforms.inspect(mod, plan.function)
                    if plan.mode != PRIMAL:
                        _refuse_unsupported(facts, plan)
                        _refuse_fatal_calls(mod, plan.function, repr(plan.function))
                    _check_state(facts, names, plan)
                    shadows = transforms.isolate_state(mod, facts, names, shadows=plan.mode != PRIMAL)
                    keep = [symbol]
                    if plan.mode == PRIMAL:
                        target = fn
                    else:
                        completed, target = _differentiate(mod, fn, plan, symbol, keep)
                        if not completed:
                            # Enzyme was abandoned mid-way: its objects may point into
                            # this module and context, so both are abandoned too.
                            mod.detach()
                            ctx.detach()
                            if not reports:
                                reports.append(Report(None, "Enzyme stopped", None))
                        raise_for_reports(reports, plan.function)
                        if not target:
                            raise CompileError(f"Enzyme returned no derivative for {plan.function!r}")
                        transforms.rename(target, f"{symbol}_impl")
                    seeded = plan.mode in (REVERSE, HVP) and plan.ret_activity == DiffeType.OUT_DIFF
                    # exit()/abort()/assert() come back to Python (not in split mode and
                    # hvp, whose entries are built elsewhere: those end the process)
                    traps = plan.mode in (PRIMAL, FORWARD, REVERSE) and transforms.redirect_exits(mod)
                    # static constructors: one function, run once per module instance
                    init = transforms.collect_constructors(mod, f"{symbol}_init")
                    if init:
                        keep.append(f"{symbol}_init")
                    params, result, out_fields = transforms.build_entry(
                        mod, target, symbol, seeded=seeded, zero_first=shadows, trap=traps
                    )
                    outputs = output_names(plan)
                    count = (0 if result == "void" else 1) + len(out_fields)
                    if count != len(outputs):
                        raise CompileError(
                            f"Enzyme produced {count} result value(s) for {plan.function!r} where "
                            f"{len(outputs)} ({', '.join(outputs) or 'none'}) were expected; this "
                            "Enzyme build's C API does not behave like its profile"
                        )
                    linalg.define_lapack_helpers(mod)
                    transforms.finish(mod, keep, opts.max_alignment)
                    if opts.host_cpu:  # host instructions, generic tuning
                        apply_tuning(mod, opts.tune_cpu)
                    if opts.vector_math and opts.host_cpu:
                        vecmath.annotate(mod)
                    mod.verify(f"derivative of {plan.function!r}")
                    # Drop what the entry point does not reach, then optimise.
                    pipeline = f"globaldce,{opts.pipeline}" if opts.pipeline else "globaldce"
                    mod.run_passes(pipeline, tm, loop_transforms=True)
                    _raise_for(reports, plan)
                    # After the optimiser, which knows malloc and free by name.
                    uses_scratch = opts.scratch_memory and scratch.supported() and scratch.redirect(mod)
                    # Straight-line code: the fast code generator, same speed.
                    level = emit_level(mod, opts.codegen_level)
                    code = mod.emit_object(host_target_machine(level))
                    _raise_for(reports, plan)
                finally:
                    mod.close()
        finally:
            ctx.close()
    return CompiledCode(
        code, symbol, params, result, out_fields, outputs, plan, traps=traps, init=init, scratch=uses_scratch
    )


def _differentiate(mod: ModuleRef, fn: int, plan: Plan, symbol: str, keep: list[str]) -> tuple[bool, int]:
    ctx = mod.context
    if plan.mode == HVP:
        return modes.differentiate_hvp(mod, fn, plan, enzyme_request(plan))
    if plan.mode == SPLIT:
        keep.append(f"{symbol}_reverse")
        return modes.differentiate_split(mod, fn, plan, symbol, enzyme_request(plan))
    if plan.mode in (REVERSE, FORWARD):
        return native_enzyme.differentiate(ctx, fn, enzyme_request(plan), forward=plan.mode == FORWARD)
    raise CompileError(f"unknown compile mode {plan.mode!r}")


def compile_state(bitcode: bytes, stateful: tuple[str, ...], token: str) -> bytes:
    """Object code defining a module instance's mutable globals (its state object)."""
    nat = native()
    names = state_names(stateful, token)
    with LOCK:
        tm = host_target_machine()
        with (
            ContextRef.create() as ctx,
            ctx.parse_bitcode(bitcode, "state") as mod,
            transforms.state_module(mod, names) as state,
        ):
            state.prepare(nat.triple, tm)
            state.verify("state of the module")
            return state.emit_object(tm)


def optimise_source(mod: ModuleRef, name: str) -> None:
    """The optimisation a module compiled from source gets before any differentiation:
    ``default<O2>`` for the host without unrolling or vectorisation (those run after
    Enzyme; unrolled loops can trip Enzyme's cache analysis)."""
    nat = native()
    with LOCK:
        tm = host_target_machine()
        with collecting() as reports:
            mod.prepare(nat.triple, tm)
            mod.run_passes("default<O2>", tm, loop_transforms=False)
        if reports:
            raise CompileError(f"optimising source {name!r} failed", "\n".join(r.message for r in reports))


#: What runs around Enzyme's own pass, as the clang plugin's pipeline has it: after the
#: pre-AD optimisation, always-inline functions are inlined and memory is promoted to
#: registers (``sroa``, ``gvn``); after the pass, the same clean-up and dead loops go.
SOURCE_PRE_PASS = "always-inline,function(sroa,gvn)"
#: The optimisation of C/C++ source before Enzyme's pass, without unrolling or
#: vectorisation (as FACTS.md measured: O2 before the pass turns more branches into
#: selects of pointers, which this Enzyme reports as mixed activity).
SOURCE_OPTIMISE = "default<O1>"
#: The fallback when Enzyme fails on code optimised with :data:`SOURCE_OPTIMISE`.
SOURCE_OPTIMISE_LIGHT = "function(sroa,early-cse,instcombine)"
SOURCE_POST_PASS = "function(sroa,gvn,loop(loop-deletion))"


def refuse_source_interface(mod: ModuleRef, name: str, why: str) -> None:
    """:class:`UnsupportedError` naming the source-level constructs ``mod`` uses, for a
    process where Enzyme's own pass cannot run (``why``)."""
    calls, regs = transforms.interface_uses(mod)
    used = ", ".join(sorted(set(calls) | set(regs))) or "Enzyme's source-level interface"
    raise UnsupportedError(
        f"module {name!r} uses Enzyme's source-level interface ({used}), which only "
        f"Enzyme's own pass implements, and it cannot run here: {why}. Use an Enzyme build "
        "that exports AddEnzymePass, or differentiate through the Python API "
        "(enzyme_py.autodiff(mode, module.function(name), ...), enzyme_py.with_derivative, "
        "enzyme_py.inactive)"
    )


def source_pass(bitcode: bytes, name: str, *, optimise: bool) -> bytes:
    """Enzyme's own pass over a module that uses its source-level interface (see
    :func:`_source_pass`).  When Enzyme reports an error for code optimised with
    :data:`SOURCE_OPTIMISE`, the pass runs once more on the code optimised only with
    :data:`SOURCE_OPTIMISE_LIGHT` (close to what the clang plugin sees at ``-O0``:
    optimisation can change the code into forms this Enzyme cannot differentiate); if
    that fails too, the first error is raised."""
    try:
        return _source_pass(bitcode, name, pre=SOURCE_OPTIMISE if optimise else None)
    except EnzymeError as first:
        if not optimise:
            raise
        try:
            return _source_pass(bitcode, name, pre=SOURCE_OPTIMISE_LIGHT)
        except EnzymeError:
            raise first from None


def _source_pass(bitcode: bytes, name: str, *, pre: str | None) -> bytes:
    """Enzyme's own pass over a module that uses its source-level interface: every
    ``__enzyme_autodiff``/``__enzyme_fwddiff``/... call becomes a call of the derivative
    Enzyme generates, registered rules and inactive functions take effect.  Returns the
    module's bitcode afterwards (no ``__enzyme_*`` call is left).

    Pipeline (under the LLVM lock, in a fresh context): math intrinsics clang made of
    registered C functions become calls of those functions again
    (:func:`~.._native.transforms.registered_libm_calls`) -> Enzyme's ``PreserveNVVM`` (reads
    the registrations before anything can inline the functions they name) ->
    the pipeline ``pre`` without unrolling or vectorisation (for code from C source;
    IR given by the user is differentiated as it is) -> :data:`SOURCE_PRE_PASS`
    -> Enzyme's pass and ``PreserveNVVM``'s end, through the setjmp trampoline ->
    :data:`SOURCE_POST_PASS` -> verifier.  Enzyme's errors raise the matching
    :class:`~enzyme_py.errors.EnzymeError`; malformed registrations, which would abort
    the process inside the pass, raise :class:`UnsupportedError` before it runs.
    """
    why = native_enzyme.source_pass_missing()
    nat = native()
    with LOCK:
        tm = host_target_machine()
        ctx = ContextRef.create()
        try:
            with collecting() as reports:
                mod = ctx.parse_bitcode(bitcode, name)
                try:
                    if why is not None:
                        refuse_source_interface(mod, name, why)
                    transforms.check_registrations(mod, name)
                    transforms.registered_libm_calls(mod)
                    mod.prepare(nat.triple, tm)
                    native_enzyme.preserve_rules(mod)
                    for root in transforms.differentiated_functions(mod):  # rules now attributes
                        _refuse_fatal_calls(mod, root, f"{root!r} (differentiated in {name!r})")
                    if pre:
                        mod.run_passes(pre, tm, loop_transforms=False)
                    mod.run_passes(SOURCE_PRE_PASS, tm, loop_transforms=False)
                    if reports:
                        raise CompileError(
                            f"optimising source {name!r} failed", "\n".join(r.message for r in reports)
                        )
                    warned: list[str] = []
                    completed = native_enzyme.run_source_pass(mod, warned)
                    if not completed:
                        # Abandoned mid-way: what Enzyme built may point into this module
                        # and context, so both are abandoned too.
                        mod.detach()
                        ctx.detach()
                        if not reports:
                            reports.append(Report(None, "Enzyme stopped", None))
                    raise_for_reports(reports, name)
                    left = transforms.interface_calls(mod)
                    if left:
                        raise CompileError(
                            f"Enzyme's pass left calls of {', '.join(sorted(left))} in module "
                            f"{name!r}; they have no definition to run"
                        )
                    mod.run_passes(SOURCE_POST_PASS, tm, loop_transforms=False)
                    mod.verify(f"module {name!r} after Enzyme's pass")
                    raise_for_reports(reports, name)
                    for text in dict.fromkeys(warned):
                        warnings.warn(f"Enzyme's pass over module {name!r}: {text}", EnzymeWarning, stacklevel=4)
                    return mod.bitcode()
                finally:
                    mod.close()
        finally:
            ctx.close()
