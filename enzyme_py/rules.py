"""Custom rules: functions Enzyme must treat as inactive, and user-written derivatives of
external functions (code calling a C library function whose IR Enzyme cannot see).

Both return a **new** :class:`~enzyme_py.Module` (modules are immutable values; compiled
code is cached by content, so the new module never reuses the old module's derivatives).
Given a Python function instead of a module, both return a new callable that behaves as
that function everywhere (call it, differentiate it) and whose lowerings get the rule;
the names are then those of external functions its code calls by name (numba's
``types.ExternalFunction``; numba inlines its own jitted helpers, so they cannot be
named):

* :func:`inactive` marks functions with Enzyme's ``enzyme_inactive`` attribute: calls to
  them carry no derivative (their results are constants).
* :func:`with_derivative` links a module of rule functions into a copy of the module and
  attaches them to the declaration of the external function with Enzyme's metadata
  (``enzyme_derivative`` for forward mode; ``enzyme_augment`` and ``enzyme_gradient``
  for reverse mode), which is what Enzyme's own registration globals turn into.

The rule functions follow Enzyme's calling convention, for an external
``T g(A1 a1, ..., An an)`` in which every argument is active (floats and float pointers;
Enzyme passes a shadow for each):

forward ``{T, T} g_fwd(A1 a1, A1 da1, ..., An an, An dan)``
    returns the primal result and its tangent (a struct of two ``T``; in C a
    ``struct { double val, dval; }`` returned by value).
augment ``{ptr, T} g_aug(a1, ..., an)``
    the augmented forward pass, taking each float scalar argument alone and each pointer
    argument followed by its shadow: returns a tape (any pointer the gradient needs, e.g.
    ``malloc``-ed data, or NULL) and the primal result.
gradient ``{D1, ..., Dk} g_grad(a1, ..., an, T dret, ptr tape)``
    the reverse pass: ``dret`` is the adjoint of the result; it returns the adjoints of
    the float scalar arguments in order (one ``double`` is returned as is; ``void``
    when there are none) and accumulates into the shadows of pointer arguments.  It
    must free the tape if the augment allocated it.

The signatures are checked before Enzyme sees them (a mismatch would make Enzyme abort
the process).  The external function itself must still be callable by the JIT for the
primal (a library loaded in the process, or ``symbols=`` of the module).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from ._native import transforms
from ._native.ffi import LOCK
from ._native.handles import ContextRef, ModuleRef
from ._native.library import native
from ._native.types import read_signature
from .errors import UnsupportedError
from .module import Function, Module
from .python_functions import is_python_function, target_of

__all__ = ["RuledFunction", "inactive", "with_derivative"]


def _edit(
    module: Module,
    edit: Callable[[ModuleRef], None],
    *,
    extra: bytes | None = None,
    name: str | None = None,
    symbols: Mapping[str, int] | None = None,
) -> Module:
    """Parse ``module`` (and ``extra``, linked in) into a fresh context, apply
    ``edit(module)``, and return the result as a new Module."""
    if not isinstance(module, Module):
        raise TypeError(f"expected an enzyme_py Module, got {type(module).__name__}")
    native()
    # Opaque pointers: rules from clang (opaque) link into numba's modules (typed), which
    # are upgraded when parsed.
    with LOCK, ContextRef.create(opaque_pointers=extra is not None) as ctx:
        mod = ctx.parse_bitcode(module.bitcode, module.name)
        with mod:
            if extra is not None:
                mod.link_in(ctx.parse_bitcode(extra, "rules"), "the rule functions into the module")
            edit(mod)
            mod.verify(f"module {module.name!r} with its rules")
            data = mod.bitcode()
    merged = dict(module.symbols)
    merged.update(symbols or {})
    return Module.from_bitcode(data, name=name or module.name, symbols=merged)


class RuledFunction:
    """A Python function whose lowerings get custom rules (see the module docstring):
    calling it calls the function; every transform differentiates it with the rules."""

    def __init__(self, f: Any, edit: Callable[[Module], Module], what: str) -> None:
        self.__wrapped__ = f
        self._edit = edit
        self._what = what
        functools.update_wrapper(self, getattr(target_of(f), "py_func", target_of(f)))

    @property
    def __enzyme_py_target__(self) -> Any:
        return target_of(self.__wrapped__)

    def __enzyme_py_edit__(self, module: Module) -> Module:
        inner = getattr(self.__wrapped__, "__enzyme_py_edit__", None)
        if inner is not None:
            module = inner(module)
        return self._edit(module)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self.__wrapped__!r} with {self._what}>"


def _function(mod: ModuleRef, name: str, what: str) -> int:
    fn = mod.function(name)
    if fn is None:
        raise KeyError(f"{what}: the module declares or defines no function {name!r}")
    return fn


def inactive(module: Any, *names: str) -> Any:
    """A copy of ``module`` in which calls to each function of ``names`` carry no
    derivative (Enzyme's ``enzyme_inactive`` attribute).  ``KeyError`` for a name the
    module neither declares nor defines.  ``module`` may be a Python function (see the
    module docstring)."""
    if not names:
        raise TypeError("inactive(module, *names) needs at least one function name")
    for n in names:
        if not isinstance(n, str) or not n:
            raise TypeError(f"function names must be non-empty strings, got {n!r}")

    if is_python_function(module):
        return RuledFunction(module, lambda m: inactive(m, *names), f"inactive {', '.join(names)}")

    def edit(mod: ModuleRef) -> None:
        for n in names:
            transforms.add_function_attribute(_function(mod, n, "inactive"), mod.context, "enzyme_inactive")

    return _edit(module, edit)


def _rule_name(rule: Any, rules: Module | None, what: str) -> tuple[str, Module]:
    if isinstance(rule, Function):
        return rule.name, rule.module
    if isinstance(rule, str):
        if rules is None:
            raise TypeError(f"{what}={rule!r} is a name: pass rules=<Module defining it>")
        rules.function(rule)  # KeyError listing the defined functions when absent
        return rule, rules
    raise TypeError(f"{what} must be a Function or a function name, got {type(rule).__name__}")


def _check_rules(module: Module, name: str, fwd: Any, aug: Any, grad: Any) -> None:
    """Check the rules' signatures against the external function's (see the module
    docstring) before Enzyme sees them."""
    if transforms.is_builtin_math(name):
        raise UnsupportedError(
            f"with_derivative: Enzyme differentiates {name!r} by its own built-in rule and "
            "would not use this one; give the rule to an external function of another name "
            f"(a wrapper of {name} in the module's source or symbols)"
        )
    mod = module._handle()
    fn = mod.function(name)
    if fn is None:
        raise KeyError(f"with_derivative: module {module.name!r} does not declare {name!r}")
    if mod.defined_function(name) is not None:
        raise ValueError(
            f"with_derivative: {name!r} is defined in module {module.name!r}; rules are for "
            "external functions (declarations) whose IR Enzyme cannot see"
        )
    sig = read_signature(fn)
    if sig.variadic:
        raise TypeError(f"{name} is variadic: no rule can describe it")
    for p in sig.params:
        if not (p.is_float or p.is_pointer or p.is_int):
            raise TypeError(f"{name} takes {p.text}: rules support float, integer and pointer arguments")
    shadowed = [t for p in sig.params for t in (p.kind, p.kind)]
    # reverse mode: a float scalar is Active (its adjoint is returned, no shadow slot);
    # pointers and integers have a shadow slot (an integer's holds the value again)
    rev_params = [t for p in sig.params for t in ((p.kind,) if p.is_float else (p.kind, p.kind))]
    ret = sig.ret

    def params(f: Function) -> list[str]:
        return [p.kind for p in f.llvm_signature.params]

    if fwd is not None:
        if params(fwd) != shadowed:
            raise TypeError(
                f"the forward rule {fwd.name} must take {shadowed} (each argument, then its "
                f"shadow); it takes {params(fwd)}"
            )
        if not (ret.is_float or ret.kind == "void"):
            raise TypeError(f"a forward rule needs {name} to return a float or void, not {ret.text}")
    if (aug is None) != (grad is None):
        raise TypeError("reverse mode needs both augment= and gradient=")
    if aug is not None and grad is not None:
        if params(aug) != rev_params:
            raise TypeError(
                f"the augment rule {aug.name} must take {rev_params} (float scalars alone, "
                f"pointers with their shadow); it takes {params(aug)}"
            )
        want = rev_params + ([ret.kind] if ret.is_float else []) + ["ptr"]
        if params(grad) != want:
            raise TypeError(
                f"the gradient rule {grad.name} must take {want} (arguments with shadows, "
                f"dret, tape); it takes {params(grad)}"
            )


def with_derivative(
    module: Any,
    name: str,
    *,
    forward: Function | str | None = None,
    augment: Function | str | None = None,
    gradient: Function | str | None = None,
    rules: Module | None = None,
    symbols: Mapping[str, int] | None = None,
) -> Any:
    """A copy of ``module`` in which Enzyme differentiates calls to the external function
    ``name`` with the given rules (see the module docstring for their signatures); a new
    callable when ``module`` is a Python function.

    ``forward``: the forward-mode rule; ``augment`` and ``gradient``: the reverse-mode
    pair.  Each is a :class:`Function` (of any module) or a name defined in ``rules``.
    ``symbols`` adds JIT addresses (e.g. of ``name`` itself) to the module's.
    """
    if forward is None and augment is None and gradient is None:
        raise TypeError("with_derivative needs forward= and/or augment= with gradient=")
    if is_python_function(module):
        return RuledFunction(
            module,
            lambda m: with_derivative(
                m, name, forward=forward, augment=augment, gradient=gradient, rules=rules, symbols=symbols
            ),
            f"rules for {name}",
        )
    given = {"forward": forward, "augment": augment, "gradient": gradient}
    resolved: dict[str, tuple[str, Module]] = {
        k: _rule_name(v, rules, k) for k, v in given.items() if v is not None
    }
    sources = {id(m): m for _, m in resolved.values()}
    if len(sources) != 1:
        raise ValueError("the rules of one function must come from one module")
    (rule_module,) = sources.values()
    funcs = {k: rule_module.function(n) for k, (n, _) in resolved.items()}
    _check_rules(module, name, funcs.get("forward"), funcs.get("augment"), funcs.get("gradient"))
    clash = set(rule_module.functions) & set(module.functions)
    # the same rules module linked by an earlier with_derivative: link nothing again
    linked = clash == set(rule_module.functions) and all(
        rule_module.function(n).signature == module.function(n).signature for n in clash
    )
    if clash and not linked:
        raise ValueError(
            f"the rules module defines {sorted(clash)}, which module {module.name!r} defines "
            "too; rename them"
        )

    def edit(mod: ModuleRef) -> None:
        target = _function(mod, name, "with_derivative")
        for kind, key in (("forward", "enzyme_derivative"), ("augment", "enzyme_augment"),
                          ("gradient", "enzyme_gradient")):
            if kind in resolved:
                rule = _function(mod, resolved[kind][0], kind)
                transforms.set_rule_metadata(target, mod.context, key, rule)

    return _edit(
        module,
        edit,
        extra=None if linked else rule_module.bitcode,
        symbols={**rule_module.symbols, **(symbols or {})},
    )
