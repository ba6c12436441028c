"""Where a compile request is served: the disk cache, the isolation worker or this process.

:func:`compile_code` is what :class:`~enzyme_py.module.Module` calls to turn a plan into
:class:`~enzyme_py.compiler.CompiledCode`:

1. the disk cache (:mod:`enzyme_py.diskcache`), unless disabled;
2. otherwise the isolation worker when isolation is active (:mod:`enzyme_py.isolation`),
   else :func:`~enzyme_py.compiler.compile_plan` in this process;
3. a fresh result is stored in the disk cache.

Invariant: an entry-point symbol is loaded at most once at a time per process, because
the JIT refuses a second definition of a name.  :func:`load_code` claims the symbol
until its :class:`~enzyme_py.loader.LoadedCode` is garbage; a disk entry whose symbol
is claimed (two modules with equal content and different ``symbols=``) is compiled
afresh instead.
"""

from __future__ import annotations

import sys
import threading
import weakref

from . import config, diskcache
from .compiler import CompiledCode, Plan, compile_plan
from .loader import LoadedCode

__all__ = ["compile_code", "load_code"]

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


def _isolation_active() -> bool:
    # Not importing enzyme_py.isolation when nobody did: then no isolated() block is open.
    isolation = sys.modules.get(f"{__package__}.isolation")
    if isolation is None:
        return config.options().isolate
    return bool(isolation.active())


def compile_code(bitcode: bytes, content_hash: str, plan: Plan) -> CompiledCode:
    """The compiled code of ``plan`` for the module ``bitcode`` (whose SHA-256 is
    ``content_hash``), from the disk cache when possible."""
    cache = diskcache.default_cache()
    key = None
    if cache is not None:
        key = diskcache.cache_key(content_hash, plan, config.options())
        hit = cache.get(key, plan)
        if hit is not None and _claim(hit.symbol):
            return hit
    if _isolation_active():
        from .isolation import compile_isolated

        code = compile_isolated(bitcode, content_hash, plan)
    else:
        code = compile_plan(bitcode, content_hash, plan)
    _claim(code.symbol)
    if cache is not None and key is not None:
        cache.put(key, code)
    return code


def load_code(
    bitcode: bytes, content_hash: str, plan: Plan, symbols: dict[str, int] | None
) -> LoadedCode:
    """:func:`compile_code`, then load it into the JIT (``symbols``: see
    :func:`enzyme_py.loader.define_symbols`)."""
    code = compile_code(bitcode, content_hash, plan)
    try:
        loaded = LoadedCode(code, symbols)
    except BaseException:
        _unclaim(code.symbol)
        raise
    weakref.finalize(loaded, _unclaim, code.symbol)
    return loaded
