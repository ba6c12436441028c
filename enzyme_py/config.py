"""Every option and environment variable of :mod:`enzyme_py`, in one leaf module.

Compilation options (:class:`Options`; defaults from the environment when first read,
changed with :func:`set_options`; compiled derivatives are cached per options, so a change
takes effect for the next compilation):

``ENZYME_PY_PIPELINE``   the LLVM pass pipeline run after Enzyme (default ``default<O2>``;
                         ``default<O0>`` or an empty string skips optimisation)
``ENZYME_PY_HOST_CPU``   ``1`` (default): generate code for this machine's CPU name and
                         features, as ``-march=native`` does; ``0``: generic code for the
                         target triple
``ENZYME_PY_TUNE_CPU``   ``generic`` (default): tune optimisation and code generation with
                         LLVM's generic model while using the host's instructions; ``host``:
                         tune for this CPU too (slower to compile on some CPUs, e.g. Zen 3)
``ENZYME_PY_VECTOR_MATH`` ``1`` (default): calls of ``exp``, ``log``, ``sin``, ``cos``,
                         ``tanh`` and ``pow`` in vectorised loops become calls of glibc's
                         libmvec where the host has it (results within 4 ulp of the
                         correctly rounded ones, see :mod:`enzyme_py._native.vecmath`);
                         ``0``: keep the scalar libm calls
``ENZYME_PY_SCRATCH_MEMORY`` ``1`` (default): large blocks compiled code frees are kept for
                         its next call instead of going back to the C library (see
                         :mod:`enzyme_py._native.scratch`); ``0``: plain ``malloc``/``free``
``ENZYME_PY_ISOLATE``    ``1``: run every compilation in a child worker process, so that an
                         Enzyme assertion, ``exit()`` or crash fails one request instead of
                         the process (default ``0``; see :mod:`enzyme_py.isolation`)

Other variables, read when they are needed:

``ENZYME_PY_LLVM_VERSION``      the LLVM major to load (default: enzyme_artifacts' choice,
                                which honours ``ENZYME_ARTIFACTS_LLVM_VERSION``)
``ENZYME_PY_CLANG``             the clang of :meth:`enzyme_py.Module.from_c` (default
                                ``clang-N`` on ``PATH``, then ``/usr/lib/llvm-N/bin/clang``)
``ENZYME_PY_CACHE_SIZE``        compiled derivatives kept loaded after their modules are
                                closed (default 64)
``ENZYME_PY_ISOLATE_TIMEOUT``   seconds one isolated request may take (default 600)
``ENZYME_PY_WORKER_MAX_FAILURES``  failed requests after which the isolation worker is
                                replaced by a fresh one (default 50)
``ENZYME_PY_WORKER_MAX_RSS``    resident size after which the worker is replaced (default
                                1G; suffixes K, M, G)
``ENZYME_PY_DISK_CACHE``        ``0`` disables the on-disk cache of compiled derivatives
``ENZYME_PY_CACHE_DIR``         its folder (default: the user cache folder ``enzyme-py``)
``ENZYME_PY_CACHE_MAX_BYTES``   its size bound (default 512M; suffixes K, M, G)
``ENZYME_PY_NATIVE_CALLS``      ``0``: repeated calls and prepared derivatives go through
                                ctypes instead of JIT-compiled native entries (default on)
``ENZYME_PY_BLAS``              the BLAS library compiled code calls (``cblas_*``, ``np.dot``;
                                default: SciPy's OpenBLAS, then ``scipy-openblas32``; see
                                :mod:`enzyme_py._native.blas`)

Invalid values raise :class:`ValueError` naming the variable.  The isolation switch of a
block of code, :func:`isolated`, lives here too, so that every layer can read it without
importing the isolation worker.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from enzyme_artifacts import _env

__all__ = [
    "DEFAULT_CACHE_MAX_BYTES",
    "TUNE_CHOICES",
    "Options",
    "cache_dir",
    "cache_max_bytes",
    "check_tune_cpu",
    "clang_override",
    "disk_cache_enabled",
    "isolated",
    "isolation_active",
    "isolation_timeout",
    "llvm_version",
    "loaded_cache_size",
    "native_calls",
    "options",
    "set_options",
    "worker_limits",
]

#: Values accepted for ``Options.tune_cpu``.
TUNE_CHOICES = ("generic", "host")
DEFAULT_CACHE_MAX_BYTES = 512 * 1024**2


def check_tune_cpu(value: object) -> str:
    """``value`` if it is one of :data:`TUNE_CHOICES`; :class:`ValueError` otherwise."""
    if not isinstance(value, str) or value.strip().lower() not in TUNE_CHOICES:
        raise ValueError(
            f"tune_cpu must be one of {', '.join(map(repr, TUNE_CHOICES))}, got {value!r} "
            "(ENZYME_PY_TUNE_CPU / enzyme_py.config.set_options(tune_cpu=...))"
        )
    return value.strip().lower()


@dataclass(frozen=True)
class Options:
    """Compilation options (see the module docstring for the environment variables).

    ``pipeline``: new-pass-manager pipeline run after Enzyme.
    ``host_cpu``: target this CPU's name and features.
    ``max_alignment``: loads and stores with a larger alignment are clamped to it after
    differentiation (Enzyme's caches can claim an alignment ``malloc`` does not give).
    ``codegen_level``: the code generator's optimisation level, 0-3 (as ``llc -O``).
    ``isolate``: compile in a child worker process (:mod:`enzyme_py.isolation`); it does
    not change the code produced.
    ``tune_cpu``: ``"generic"`` or ``"host"``, the CPU model the optimiser and code
    generator tune for.
    ``vector_math``: vectorised loops call libmvec's vector ``exp``, ``log``, ``sin``,
    ``cos``, ``tanh`` and ``pow`` (where the host has libmvec).
    ``scratch_memory``: compiled code keeps the large blocks it frees for its next call
    (where the C library allows it, see :mod:`enzyme_py._native.scratch`).
    """

    pipeline: str = "default<O2>"
    host_cpu: bool = True
    max_alignment: int = 16
    codegen_level: int = 2
    isolate: bool = False
    tune_cpu: str = "generic"
    vector_math: bool = True
    scratch_memory: bool = True

    @classmethod
    def from_environment(cls) -> Options:
        pipeline = _env.text("ENZYME_PY_PIPELINE")
        if pipeline is None and "ENZYME_PY_PIPELINE" in os.environ:
            pipeline = ""  # set but blank: no optimisation after Enzyme
        return cls(
            pipeline=cls.pipeline if pipeline is None else pipeline,
            host_cpu=_env.flag("ENZYME_PY_HOST_CPU", True),
            isolate=_env.flag("ENZYME_PY_ISOLATE", False),
            tune_cpu=check_tune_cpu(_env.choice("ENZYME_PY_TUNE_CPU", cls.tune_cpu, TUNE_CHOICES)),
            vector_math=_env.flag("ENZYME_PY_VECTOR_MATH", True),
            scratch_memory=_env.flag("ENZYME_PY_SCRATCH_MEMORY", True),
        )


_lock = threading.Lock()
#: The options in force; the call layer compares identity with it (a plan built under
#: other options is rebuilt).  Read it through :func:`options`.
current: Options | None = None


def options() -> Options:
    """The options in force."""
    global current
    opts = current
    if opts is None:
        with _lock:
            if current is None:
                current = Options.from_environment()
            opts = current
    return opts


def set_options(**changes: Any) -> Options:
    """Replace some options (``pipeline=``, ``host_cpu=``, ``tune_cpu=``,
    ``max_alignment=``, ...; see :class:`Options`); returns the previous options, so that
    ``set_options(**vars(old))`` restores them."""
    names = {f.name for f in fields(Options)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    if "codegen_level" in changes and changes["codegen_level"] not in (0, 1, 2, 3):
        raise ValueError(f"codegen_level must be 0, 1, 2 or 3, got {changes['codegen_level']!r}")
    if "max_alignment" in changes:
        m = changes["max_alignment"]
        if not isinstance(m, int) or m < 1 or m & (m - 1):
            raise ValueError(f"max_alignment must be a power of two >= 1, got {m!r}")
    if "tune_cpu" in changes:
        changes["tune_cpu"] = check_tune_cpu(changes["tune_cpu"])
    global current
    old = options()
    with _lock:
        current = replace(old, **changes)
    return old


# --------------------------------------------------------------------------- isolation

_isolated: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "enzyme_py_isolated", default=None
)


@contextlib.contextmanager
def isolated(enabled: bool = True) -> Iterator[None]:
    """Compile in the isolation worker (``enabled=False``: in-process) inside the block.

    Applies to this thread or async task, overrides ``options().isolate`` and nests.
    """
    token = _isolated.set(bool(enabled))
    try:
        yield
    finally:
        _isolated.reset(token)


def isolation_active() -> bool:
    """Whether compilations of this thread/task go to the isolation worker now."""
    value = _isolated.get()
    return options().isolate if value is None else value


def isolation_timeout() -> float:
    """``ENZYME_PY_ISOLATE_TIMEOUT`` in seconds (default 600)."""
    return _env.number("ENZYME_PY_ISOLATE_TIMEOUT", 600.0, positive=True)


def worker_limits() -> tuple[int, int]:
    """``(max failed requests, max resident bytes)`` after which the isolation worker is
    replaced (``ENZYME_PY_WORKER_MAX_FAILURES``, ``ENZYME_PY_WORKER_MAX_RSS``)."""
    return (
        _env.integer("ENZYME_PY_WORKER_MAX_FAILURES", 50, minimum=1),
        _env.size("ENZYME_PY_WORKER_MAX_RSS", 1024**3),
    )


# --------------------------------------------------------------------------- the rest


def llvm_version() -> int | None:
    """``ENZYME_PY_LLVM_VERSION``: the LLVM major to load, or None for the default."""
    raw = _env.text("ENZYME_PY_LLVM_VERSION")
    if raw is None:
        return None
    return _env.integer("ENZYME_PY_LLVM_VERSION", 0, minimum=1)


def clang_override() -> Path | None:
    """``ENZYME_PY_CLANG``: the clang to use, or None to search for one."""
    return _env.path("ENZYME_PY_CLANG")


def loaded_cache_size() -> int:
    """``ENZYME_PY_CACHE_SIZE``: compiled derivatives kept loaded when unused (64)."""
    return _env.integer("ENZYME_PY_CACHE_SIZE", 64, minimum=0)


def native_calls() -> bool:
    """False when ``ENZYME_PY_NATIVE_CALLS`` is ``0``/``false``/``no``/``off``."""
    return _env.flag("ENZYME_PY_NATIVE_CALLS", True)


def disk_cache_enabled() -> bool:
    """False when ``ENZYME_PY_DISK_CACHE`` is ``0``/``false``/``no``/``off``."""
    return _env.flag("ENZYME_PY_DISK_CACHE", True)


def cache_dir() -> Path:
    """``ENZYME_PY_CACHE_DIR``, else the platform's user cache folder ``enzyme-py``
    (never created here)."""
    env = _env.path("ENZYME_PY_CACHE_DIR")
    if env is not None:
        return env
    import platformdirs

    return Path(platformdirs.user_cache_path("enzyme-py"))


def cache_max_bytes() -> int:
    """``ENZYME_PY_CACHE_MAX_BYTES`` (``1000000``, ``64M``, ``2G``; default 512M)."""
    return _env.size("ENZYME_PY_CACHE_MAX_BYTES", DEFAULT_CACHE_MAX_BYTES)
