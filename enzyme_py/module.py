"""LLVM modules and their functions: :class:`Module` (from IR text, bitcode or C) and
:class:`Function` (callable as the primal, differentiable with every transform).

Each Module owns one LLVM context (typed-pointer IR, as llvmlite writes it, and
opaque-pointer IR, as clang 15 writes it, cannot share one) and keeps its bitcode;
every compilation parses that bitcode into a fresh context, so the module itself is
never changed by Enzyme.  Compiled code is cached per module by (function, mode,
activities, dtypes, return activity, options) and unloaded when the module is closed.

A module's mutable globals are its state: every code object compiled from one module
instance (the primal, each derivative) shares one definition of each, and two modules
never clash, whatever their globals are called.  Globals nothing writes are constants.
A mutable global whose initial value holds the address of a function or another global
(a table of function pointers, say) cannot be kept apart from the code: each code object
has its own copy of it.

A Python function lowered by :func:`enzyme_py.lower` is a :class:`Function` too, of a
module holding its numba IR; its :attr:`Function.layout` maps its Python arguments (an
array is a data pointer and a shape) onto the module's entry point.

Modules written against Enzyme's own source-level interface (``__enzyme_autodiff``
calls, registration globals) go through Enzyme's own pass when they are built, and keep
the bitcode that comes out of it; C++ comes in through :meth:`Module.from_cpp`, its
functions found by their C++ names.

Environment: ``ENZYME_PY_CLANG`` names the clang used by :meth:`Module.from_c` and
:meth:`Module.from_cpp`.
"""

from __future__ import annotations

import ctypes
import hashlib
import re
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from . import config
from ._call import request as _request
from ._call.fast import Table
from ._call.layout import Layout, PointerParam, ScalarParam, c_layout
from ._compile.clang import compile_c, find_clang, rewrite_plugin_attributes
from ._compile.client import source_pass_isolated
from ._compile.pipeline import optimise_source, source_pass
from ._compile.service import Program
from ._native import transforms
from ._native.cxx import cxx_runtime, demangle, openmp_runtime
from ._native.handles import Closing, ContextRef, ModuleRef
from ._native.library import native
from ._native.types import Signature, read_signature
from .errors import CompileError, UnsupportedError

__all__ = ["Function", "FunctionNotFoundError", "Module", "find_clang"]


class FunctionNotFoundError(KeyError):
    """The module defines no function of that name; the message lists those it defines."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _check_symbols(symbols: Mapping[str, int] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, addr in (symbols or {}).items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"symbol names must be non-empty strings, got {name!r}")
        if isinstance(addr, bool) or not isinstance(addr, int) or addr <= 0:
            raise ValueError(f"symbol {name!r}: the address must be a positive int, got {addr!r}")
        out[name] = addr
    return out


def _refuse_interface(mod: ModuleRef, name: str) -> None:
    """Refuse a module whose ``__enzyme_*`` calls are still there (Enzyme's pass was not
    run over it, or left them): nothing could run them."""
    calls = transforms.interface_calls(mod)
    if calls:
        raise UnsupportedError(
            f"module {name!r} calls Enzyme's source-level interface ({', '.join(sorted(calls))}), "
            "which Enzyme's own pass did not replace; build the module with Module.from_c, "
            "from_cpp, from_ir or from_bitcode (they run it), or differentiate through the "
            "Python API: enzyme_py.autodiff(mode, module.function(name), ...)"
        )


def _source_pass(data: bytes, name: str, *, optimise: bool) -> bytes:
    """Enzyme's own pass over the module ``data`` (in the isolation worker when
    isolation is active)."""
    if config.isolation_active():
        return source_pass_isolated(data, name, optimise=optimise)
    return source_pass(data, name, optimise=optimise)


class Module(Closing):
    """An LLVM module: build with :meth:`from_ir`, :meth:`from_bitcode` or :meth:`from_c`.

    ``close()`` (or a ``with`` block) frees the LLVM context and unloads all code compiled
    from this module; the module and its functions cannot be used afterwards.
    """

    def __init__(
        self,
        context: ContextRef,
        module: ModuleRef,
        name: str,
        symbols: Mapping[str, int] | None = None,
        *,
        bitcode: bytes | None = None,
    ) -> None:
        module.verify(f"module {name!r}")
        _refuse_interface(module, name)
        if transforms.uses_openmp(module):
            openmp_runtime(native().llvm_major)
        if transforms.uses_cxx_runtime(module):
            cxx_runtime()
        self.name = name
        #: name -> address of external functions the JIT must resolve (e.g. runtime
        #: functions of a library loaded RTLD_LOCAL); given to the JIT when code loads.
        self.symbols: dict[str, int] = _check_symbols(symbols)
        self._context: ContextRef | None = context
        self._module: ModuleRef | None = module
        self._bitcode = module.bitcode() if bitcode is None else bytes(bitcode)
        self._functions = self._read_functions(module)
        stateful = tuple(
            sorted(
                n
                for n, g in transforms.scan_globals(module).items()
                if not g.constant and g.written and not g.refers
            )
        )
        self.content_hash = hashlib.sha256(self._bitcode).hexdigest()
        self._program = Program(self._bitcode, self.content_hash, name, self.symbols, stateful)
        #: prepared calls of this module's functions (enzyme_py._call.fast)
        self._table = Table()
        self._function_objects: dict[str, Function] = {}
        self._cxx_index: dict[str, set[str]] | None = None

    @staticmethod
    def _read_functions(module: ModuleRef) -> dict[str, tuple[Signature, tuple[str | None, ...]]]:
        out = {}
        for name, fn in module.defined_functions().items():
            sig = read_signature(fn)
            pointees = transforms.infer_pointees(fn) if any(p.is_pointer and p.pointee is None for p in sig.params) else ()
            out[name] = (sig, pointees)
        return out

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_ir(cls, text: str, *, name: str = "module", symbols: Mapping[str, int] | None = None) -> Module:
        """Parse LLVM IR text; :class:`IRParseError` (a ValueError) with line on failure.

        ``symbols`` maps external function names to addresses in this process, for
        functions the JIT cannot find by itself (see :attr:`symbols`).
        """
        if not isinstance(text, str):
            raise TypeError(f"from_ir expects IR text (str), got {type(text).__name__}")
        native()
        return cls._parsed(lambda ctx: ctx.parse_ir(text, name), name, symbols, optimise=False)

    @classmethod
    def from_bitcode(
        cls, data: bytes, *, name: str = "module", symbols: Mapping[str, int] | None = None
    ) -> Module:
        """Parse LLVM bitcode; :class:`IRParseError` when it is not valid bitcode.  The
        module keeps these very bytes (its content hash, and so its disk-cache keys, are
        those of ``data``), unless it uses Enzyme's source-level interface: it then keeps
        the bitcode Enzyme's own pass produced (see :meth:`from_c`)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"from_bitcode expects bytes, got {type(data).__name__}")
        native()
        data = bytes(data)
        return cls._parsed(lambda ctx: ctx.parse_bitcode(data, name), name, symbols, bitcode=data, optimise=False)

    @classmethod
    def from_c(
        cls,
        source: str,
        *,
        flags: Sequence[str] = (),
        name: str = "module",
        symbols: Mapping[str, int] | None = None,
    ) -> Module:
        """Compile C source with the clang of the loaded LLVM and parse the result.

        The code is optimised before differentiation without unrolling or vectorisation
        (those run after Enzyme).  :class:`CompileError` carries clang's stderr.

        Source written against Enzyme's own interface (``__enzyme_autodiff`` calls,
        ``__enzyme_register_*`` rules, ``__attribute__((enzyme_inactive))``, ...) goes
        through Enzyme's own pass, as with Enzyme's clang plugin: its errors raise the
        matching :class:`~enzyme_py.errors.EnzymeError` here, and ``main()`` (or any other
        function) can then be called.  ``-fopenmp`` code loads LLVM's OpenMP runtime.
        """
        if not isinstance(source, str):
            raise TypeError(f"from_c expects C source (str), got {type(source).__name__}")
        if isinstance(flags, str):
            raise TypeError("flags must be a sequence of strings, not one string")
        source = rewrite_plugin_attributes(source, name=name)
        nat = native()
        data = compile_c(source, flags, name, nat.llvm_major)
        return cls._parsed(lambda ctx: ctx.parse_bitcode(data, name), name, symbols, optimise=True)

    @classmethod
    def from_cpp(
        cls,
        source: str,
        *,
        std: str = "c++17",
        flags: Sequence[str] = (),
        name: str = "module",
        symbols: Mapping[str, int] | None = None,
    ) -> Module:
        """Compile C++ source (``-std=<std>``) as :meth:`from_c` compiles C.  Functions
        are found by their C++ names (``m.function("ns::f(double)")``, or ``"ns::f"`` /
        ``"f"`` when only one function has that name); the C++ runtime (libstdc++) is
        loaded for the JIT.  :class:`CompileError` carries clang's stderr."""
        if not isinstance(source, str):
            raise TypeError(f"from_cpp expects C++ source (str), got {type(source).__name__}")
        if isinstance(flags, str):
            raise TypeError("flags must be a sequence of strings, not one string")
        if not isinstance(std, str) or not std:
            raise TypeError(f"std must name a C++ standard such as 'c++17', got {std!r}")
        source = rewrite_plugin_attributes(source, cpp=True, name=name)
        nat = native()
        cxx_runtime()
        data = compile_c(source, [f"-std={std}", *flags], name, nat.llvm_major, suffix=".cpp")
        return cls._parsed(lambda ctx: ctx.parse_bitcode(data, name), name, symbols, optimise=True)

    @classmethod
    def _parsed(
        cls,
        parse: Callable[[ContextRef], ModuleRef],
        name: str,
        symbols: Mapping[str, int] | None,
        *,
        bitcode: bytes | None = None,
        optimise: bool,
    ) -> Module:
        """The Module of what ``parse`` makes in a fresh context (closed if it raises)."""
        ctx = ContextRef.create()
        try:
            mod = parse(ctx)
        except BaseException:
            ctx.close()
            raise
        return cls._make(ctx, mod, name, symbols, bitcode=bitcode, optimise=optimise)

    @classmethod
    def _make(
        cls,
        ctx: ContextRef,
        mod: ModuleRef,
        name: str,
        symbols: Mapping[str, int] | None,
        *,
        bitcode: bytes | None = None,
        optimise: bool,
    ) -> Module:
        """The Module of a freshly parsed ``mod`` (owning ``ctx``): a module that uses
        Enzyme's source-level interface goes through Enzyme's own pass first (and keeps
        the bitcode that comes out of it); ``optimise``: code from source gets the
        pre-differentiation optimisation."""
        try:
            if transforms.uses_source_interface(mod):
                data = mod.bitcode()
                mod.close()
                ctx.close()
                data = _source_pass(data, name, optimise=optimise)
                ctx = ContextRef.create()
                mod = ctx.parse_bitcode(data, name)
                bitcode = None
            elif optimise:
                optimise_source(mod, name)
            return cls(ctx, mod, name, symbols, bitcode=bitcode)
        except BaseException:
            ctx.close()
            raise

    # ------------------------------------------------------------------ inspection

    def _handle(self) -> ModuleRef:
        if self._module is None:
            raise ValueError(f"module {self.name!r} was closed and cannot be used")
        return self._module

    @property
    def closed(self) -> bool:
        return self._module is None

    @property
    def program(self) -> Program:
        """The compiled code of this module (``enzyme_py._compile.service.Program``)."""
        self._handle()
        return self._program

    @property
    def functions(self) -> tuple[str, ...]:
        """Names of the functions this module defines."""
        self._handle()
        return tuple(self._functions)

    @property
    def bitcode(self) -> bytes:
        """The module's bitcode (what every compilation starts from)."""
        self._handle()
        return self._bitcode

    @property
    def ir(self) -> str:
        """The module as LLVM IR text."""
        return self._handle().text()

    @property
    def stateful_globals(self) -> tuple[str, ...]:
        """The mutable globals the module's code writes: its state, shared by the primal
        and every derivative of this module instance."""
        return self._program.stateful

    def function(self, name: str, *, layout: Layout | None = None) -> Function:
        """The function ``name``; :class:`FunctionNotFoundError` (a KeyError) if the
        module does not define it.  ``layout``: how Python arguments map onto it (the
        default: one argument per LLVM parameter)."""
        self._handle()
        if not isinstance(name, str):
            raise TypeError(f"a function name is a str, got {type(name).__name__}")
        entry = self._functions.get(name)
        if entry is None:
            found = self._cxx_lookup(name)
            if found is not None:
                name, entry = found, self._functions[found]
        if entry is None:
            defined = ", ".join(sorted(self._described(n) for n in self._functions)) or "none"
            raise FunctionNotFoundError(f"module {self.name!r} defines no function {name!r}; it defines: {defined}")
        if layout is None:
            fn = self._function_objects.get(name)
            if fn is None:
                sig, pointees = entry
                shown = demangle(name) or name
                fn = self._function_objects[name] = Function(self, name, sig, c_layout(shown, sig, pointees))
            return fn
        return Function(self, name, entry[0], layout)

    @staticmethod
    def _described(name: str) -> str:
        cxx = demangle(name)
        return f"{cxx} [{name}]" if cxx else name

    def _cxx_lookup(self, wanted: str) -> str | None:
        """The LLVM name of the C++ function ``wanted`` names: its full C++ name
        (``ns::f(double)``), or its name without parameters (``ns::f``), without template
        arguments (``ns::g`` for ``ns::g<double>``) or unqualified (``f``) when exactly one
        function has it; :class:`FunctionNotFoundError` listing them when several do."""
        index = self._cxx_index
        if index is None:
            index = self._cxx_index = _cxx_index(self._functions)
        hits = index.get(_normal(wanted))
        if not hits:
            return None
        if len(hits) > 1:
            listed = ", ".join(sorted(self._described(h) for h in hits))
            raise FunctionNotFoundError(
                f"module {self.name!r}: {wanted!r} names {len(hits)} functions ({listed}); "
                "give the full C++ name with its parameter types, e.g. 'ns::f(double)'"
            )
        return next(iter(hits))

    # ------------------------------------------------------------------ compiled code

    def clear_cache(self) -> None:
        """Release every derivative compiled for this module."""
        self._table.clear()
        self._program.clear()

    def close(self) -> None:
        """Unload compiled code and free the LLVM module and context (idempotent)."""
        program = getattr(self, "_program", None)
        if program is not None:
            self._table.clear()
            program.close()
        mod, ctx = getattr(self, "_module", None), getattr(self, "_context", None)
        self._module = self._context = None
        if mod is not None:
            mod.close()
        if ctx is not None:
            ctx.close()

    def __repr__(self) -> str:
        state = "closed" if self._module is None else f"{len(self._functions)} function(s)"
        return f"<Module {self.name!r}: {state}>"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by content: bitcode, name and the *names* of :attr:`symbols`, resolved
        again by name in the unpickling process (see ``rebuild_module``)."""
        return (rebuild_module, (self.bitcode, self.name, tuple(sorted(self.symbols))))


class Function:
    """A function defined in a :class:`Module`.

    Calling it runs the primal (compiled once, cached): scalars as Python numbers,
    pointers as C-contiguous NumPy arrays of the matching dtype (a list of arrays for a
    pointer to pointers, a ``ctypes.Structure`` or structured array for a pointer to a
    struct).  C's ``main(int argc, char **argv)`` called without arguments gets
    ``argc = 1`` and the module's name as ``argv[0]``.  Compiled code that calls
    ``exit()``, ``abort()`` or fails an ``assert()`` raises
    :class:`~enzyme_py.errors.ProgramExit` instead of ending the process.  ``layout`` says how
    Python arguments map onto the LLVM function (see :mod:`enzyme_py._call.layout`).
    """

    __slots__ = (
        "__weakref__",
        "fast_autodiff",
        "fast_gradient",
        "fast_gradient_mode",
        "layout",
        "llvm_signature",
        "module",
        "name",
        "origin",
        "table",
    )

    def __init__(self, module: Module, name: str, signature: Signature, layout: Layout) -> None:
        self.module = module
        self.name = name
        #: Parameter and return types as :class:`~enzyme_py._native.types.Signature`.
        self.llvm_signature = signature
        self.layout = layout
        #: The prepared calls of this function (its module's, see :mod:`enzyme_py._call.fast`).
        self.table: Table = module._table
        #: For a lowered Python function: iterates as ``(rebuild, args)``, which lowers it
        #: again in the unpickling process.
        self.origin: Any = None
        #: The native entries of ``autodiff(mode, self, ...)``, ``gradient(self, ...)`` and
        #: ``gradient(mode, self, ...)`` (set by the call layer, dropped when the table is
        #: cleared).
        self.fast_autodiff: Any = None
        self.fast_gradient: Any = None
        self.fast_gradient_mode: Any = None

    @property
    def program(self) -> Program:
        return self.module.program

    @property
    def signature(self) -> str:
        """The signature as text, e.g. ``"double (double*, i64)"``."""
        return self.layout.signature

    def __call__(self, *args: Any) -> Any:
        if not args and self.name == "main" and _takes_argv(self.layout):
            args = _argv(self.module.name, len(self.layout.params))
        return self.table.call(_request.PRIMAL_ROUTE, None, None, self.name, args, self)

    def __repr__(self) -> str:
        return f"<Function {self.layout.name}: {self.layout.signature}>"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as (module, name), or as the Python function it was lowered from."""
        if self.origin is not None:
            return tuple(self.origin)
        return (rebuild_function, (self.module, self.name))



def _normal(name: str) -> str:
    """A C++ name with its spaces normalised (``ns::f(double const *)`` and
    ``ns::f(const double*)`` are not made equal; ``f(double, int)`` and
    ``f(double,int)`` are)."""
    name = " ".join(name.split())
    return re.sub(r"\s*([(),<>*&\[\]:])\s*", r"\1", name)


def _top_level_paren(name: str) -> int:
    depth = 0
    for i, c in enumerate(name):
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif c == "(" and depth == 0 and i > 0 and not name[:i].endswith("operator"):
            return i
    return -1


def _last_top_level_space(name: str) -> int:
    depth, at = 0, -1
    for i, c in enumerate(name):
        if c in "<(":
            depth += 1
        elif c in ">)":
            depth -= 1
        elif c == " " and depth == 0:
            at = i
    return at


def _strip_templates(name: str) -> str:
    out, depth = [], 0
    for c in name:
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif depth == 0:
            out.append(c)
    return "".join(out)


def _cxx_index(functions: Mapping[str, Any]) -> dict[str, set[str]]:
    """Every C++ spelling a mangled function may be looked up by -> its LLVM names."""
    index: dict[str, set[str]] = {}
    for llvm_name in functions:
        cxx = demangle(llvm_name)
        if not cxx:
            continue
        full = _normal(cxx)
        cut = _top_level_paren(full)
        base = full[:cut] if cut > 0 else full
        space = _last_top_level_space(base)
        if space >= 0:  # a template's return type comes first: "double ns::f<double>(double)"
            base = base[space + 1 :]
            full = base + (full[cut:] if cut > 0 else "")
        keys = {full, _normal(cxx), base}
        bare = _strip_templates(base)
        keys.add(bare)
        keys.add(bare.rsplit("::", 1)[-1])
        for key in keys:
            if key:
                index.setdefault(key, set()).add(llvm_name)
    return index


def _takes_argv(layout: Layout) -> bool:
    """Whether ``layout`` is C's ``main(int argc, char **argv[, char **envp])``."""
    params = layout.params
    return (
        len(params) in (2, 3)
        and isinstance(params[0], ScalarParam)
        and params[0].kind == "i32"
        and all(isinstance(p, PointerParam) for p in params[1:])
    )


def _argv(program: str, n: int) -> tuple[Any, ...]:
    """``(argc, argv[, envp])`` for a ``main`` called without arguments: ``argv`` holds
    the program's name alone, NULL-terminated (one np.uintp array: the two pointers,
    then the name's bytes), and ``envp`` is empty."""
    raw = program.encode() + b"\0"
    argv = np.zeros(2 + (len(raw) + 7) // 8, dtype=np.uintp)
    argv.view(np.uint8)[16 : 16 + len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    argv[0] = argv.ctypes.data + 16
    argv[1] = 0
    return (1, argv) if n == 2 else (1, argv, np.zeros(1, dtype=np.uintp))


# --------------------------------------------------------------------------- pickling
# A module pickles as its bitcode, its name and the names of its external ``symbols``
# (addresses are per process).  Unpickling parses the very bytes again (the content hash,
# and so the disk-cache key of every derivative, is unchanged) and looks each symbol name
# up among the libraries loaded ``RTLD_GLOBAL`` in this process.  Unpickling the same
# content twice in one process gives the same live Module (a weak memo).

_memo: weakref.WeakValueDictionary[tuple[Any, ...], Module] = weakref.WeakValueDictionary()
_memo_lock = threading.Lock()


def _resolve_symbols(names: tuple[str, ...], module_name: str) -> dict[str, int]:
    if not names:
        return {}
    process = ctypes.CDLL(None)
    out: dict[str, int] = {}
    missing = []
    for name in names:
        try:
            out[name] = ctypes.cast(getattr(process, name), ctypes.c_void_p).value or 0
        except AttributeError:
            missing.append(name)
    if missing:
        raise CompileError(
            f"unpickling module {module_name!r}: the external symbol(s) {', '.join(missing)} "
            "are not defined in this process. Load the library that defines them "
            "(ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)) before unpickling, or pickle the "
            "object that created the module (e.g. an @enzyme_py.jit function) instead"
        )
    return out


def rebuild_module(bitcode: bytes, name: str, symbol_names: tuple[str, ...]) -> Module:
    """The :class:`Module` of ``bitcode`` (shared with earlier unpicklings of it)."""
    key = (hashlib.sha256(bitcode).hexdigest(), name, tuple(symbol_names))
    with _memo_lock:
        mod = _memo.get(key)
        if mod is not None and not mod.closed:
            return mod
        mod = Module.from_bitcode(bitcode, name=name, symbols=_resolve_symbols(symbol_names, name))
        _memo[key] = mod
        return mod


def rebuild_function(module: Module, name: str) -> Function:
    """``module.function(name)``."""
    return module.function(name)
