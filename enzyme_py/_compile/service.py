"""Where a compile request is served, and the compiled code of one module instance.

:class:`Program` is what a :class:`~enzyme_py.Module` owns: its bitcode, content hash,
JIT symbols and, when its code writes mutable globals, its state (one
:class:`~.loader.StateObject` per instance, shared by all its code objects).
:meth:`Program.code` turns a plan into loaded code:

1. the program's own table, then the process-wide table of loaded code
   (:mod:`.memcache`; shared between instances of equal content without state);
2. the disk cache (:mod:`.diskcache`), unless disabled or the program has state;
3. otherwise the isolation worker when isolation is active (:mod:`.client`), else
   :func:`~.pipeline.compile_plan` in this process;
4. a fresh result is stored in the disk cache.

Invariant: an entry-point symbol is loaded at most once at a time per process, because
the JIT refuses a second definition of a name.  :func:`load_code` claims the symbol until
its :class:`~.loader.LoadedCode` is garbage; a disk entry whose symbol is claimed (two
modules with equal content and different ``symbols=``) is compiled afresh instead.
"""

from __future__ import annotations

import ctypes
import secrets
import threading
import weakref
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .. import config
from . import diskcache, memcache
from .client import compile_isolated
from .loader import LoadedCode, StateObject
from .pipeline import compile_plan, compile_state
from .plan import CompiledCode, Plan

__all__ = ["Program", "compile_code", "load_code"]

_claimed: set[str] = set()
_claim_lock = threading.Lock()


def _claim(symbol: str) -> bool:
    with _claim_lock:
        if symbol in _claimed:
            return False
        _claimed.add(symbol)
        return True


def _unclaim(symbol: str) -> None:
    with _claim_lock:
        _claimed.discard(symbol)


def compile_code(
    bitcode: bytes, content_hash: str, plan: Plan, stateful: tuple[str, ...] = ()
) -> CompiledCode:
    """The compiled code of ``plan`` for the module ``bitcode`` (whose SHA-256 is
    ``content_hash``), from the disk cache when possible."""
    cache = diskcache.default_cache() if not plan.state else None
    key = None
    if cache is not None:
        key = diskcache.cache_key(content_hash, plan, config.options())
        hit = cache.get(key, plan)
        if hit is not None and _claim(hit.symbol):
            return hit
    if config.isolation_active():
        code = compile_isolated(bitcode, content_hash, plan, stateful)
    else:
        code = compile_plan(bitcode, content_hash, plan, stateful)
    _claim(code.symbol)
    if cache is not None and key is not None:
        cache.put(key, code)
    return code


def load_code(
    bitcode: bytes,
    content_hash: str,
    plan: Plan,
    symbols: Mapping[str, int] | None,
    stateful: tuple[str, ...] = (),
    state: StateObject | None = None,
) -> LoadedCode:
    """:func:`compile_code`, then load it into the JIT."""
    code = compile_code(bitcode, content_hash, plan, stateful)
    try:
        loaded = LoadedCode(code, symbols, state)
    except BaseException:
        _unclaim(code.symbol)
        raise
    weakref.finalize(loaded, _unclaim, code.symbol)
    return loaded


class Program:
    """The compiled code of one module instance (see the module docstring).

    ``stateful``: the mutable globals its code writes; when there are any, the program
    gets a random ``token`` that names its state, and its code is never shared with
    another instance or the disk cache.
    """

    def __init__(
        self,
        bitcode: bytes,
        content_hash: str,
        name: str,
        symbols: Mapping[str, int],
        stateful: tuple[str, ...] = (),
    ) -> None:
        self.bitcode = bitcode
        self.content_hash = content_hash
        self.name = name
        self.symbols = dict(symbols)
        self.stateful = stateful
        self.token = secrets.token_hex(8) if stateful else ""
        self._codes: dict[Plan, tuple[Any, LoadedCode]] = {}
        self._lock = threading.Lock()
        self._state: StateObject | None = None
        self._constructed = False
        self.closed = False
        #: 1 until :meth:`close` (native entries of this program's code read it)
        self.alive = ctypes.c_int32(1)

    def _key(self, plan: Plan) -> tuple[Any, ...]:
        return (self.content_hash, plan, config.options(), tuple(sorted(self.symbols.items())))

    def _state_object(self) -> StateObject | None:
        if not self.stateful:
            return None
        if self._state is None:
            self._state = StateObject(compile_state(self.bitcode, self.stateful, self.token), self.name)
        return self._state

    def code(self, plan: Plan) -> LoadedCode:
        """Loaded code for ``plan`` (compiled once per plan and options)."""
        if self.token:
            plan = replace(plan, state=self.token)
        opts = config.options()
        hit = self._codes.get(plan)
        if hit is not None and hit[0] is opts and not hit[1].closed:
            return hit[1]
        with self._lock:
            if self.closed:
                raise ValueError(f"module {self.name!r} was closed and cannot be used")
            key = self._key(plan)
            state = self._state_object()

            def build() -> LoadedCode:
                return load_code(self.bitcode, self.content_hash, plan, self.symbols, self.stateful, state)

            code = memcache.acquire(key, build)
            if code.init_address and not self._constructed:
                # static constructors run once per instance, from its first code object
                self._constructed = True
                code.run_constructors()
            old = self._codes.get(plan)
            self._codes[plan] = (opts, code)
            if old is not None and old[1] is not code:
                memcache.release(self._key_for(old[0], plan), evict=bool(self.token))
        return code

    def plans(self) -> tuple[Plan, ...]:
        """The plans this program has code loaded for."""
        with self._lock:
            return tuple(self._codes)

    def _key_for(self, opts: Any, plan: Plan) -> tuple[Any, ...]:
        return (self.content_hash, plan, opts, tuple(sorted(self.symbols.items())))

    def clear(self) -> None:
        """Release every code object of this program (see :mod:`.memcache`); code of a
        program with state is unloaded at once (no other instance can use it)."""
        with self._lock:
            held = list(self._codes.items())
            self._codes.clear()
        for plan, (opts, _code) in held:
            memcache.release(self._key_for(opts, plan), evict=bool(self.token))

    def close(self) -> None:
        """Release all code and unload the state (idempotent)."""
        self.alive.value = 0
        self.clear()
        self.closed = True
        state, self._state = self._state, None
        if state is not None:
            state.close()
