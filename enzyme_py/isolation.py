"""Crash isolation: compile in a child worker process, load the object code here.

Enzyme ends the process on some requests it cannot handle: a failed assertion
(``SIGABRT``), ``exit(1)`` after printing an error, now and then a segmentation fault.
In-process, :mod:`enzyme_py._guard` turns Enzyme's *reported* errors into exceptions,
but nothing can survive those.  In isolation mode the compile stage (Enzyme, the
optimiser, code generation) runs in a persistent worker, ``python -m
enzyme_py._worker``, started on first use with the very libraries this process
loaded (no lookup, no download).  It sends back :class:`~enzyme_py.compiler.CompiledCode`,
which this process's JIT loads.  When the worker dies, that one request raises
:class:`~enzyme_py.errors.EnzymeCrashError` (exit status or signal, tail of the
worker's stderr) and the next request starts a new worker.  Whatever Enzyme leaks
while failing stays in the worker.

Turn it on:

* for the process: ``enzyme_py.config.set_options(isolate=True)`` or ``ENZYME_PY_ISOLATE=1``;
* for a block of code (this thread / async task only): ``with enzyme_py.isolated(): ...``;
  ``with enzyme_py.isolated(False):`` compiles in-process inside a globally isolated program.

Only compilation moves: calling derivatives, which cannot crash Enzyme, stays in
process at full speed, and compiled derivatives are cached in memory and on disk
(:mod:`enzyme_py.diskcache`) exactly as without isolation.

Environment: ``ENZYME_PY_ISOLATE`` (see :mod:`enzyme_py.config`),
``ENZYME_PY_ISOLATE_TIMEOUT`` seconds one request may take before the worker is killed
and the request fails (default 600).
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from . import config
from ._worker import MAX_FRAME, decode_error
from .compiler import CompiledCode, Plan
from .errors import CompileError, EnzymeCrashError

__all__ = ["WorkerClient", "active", "compile_isolated", "isolated", "shutdown", "worker"]

_override: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "enzyme_py_isolated", default=None
)
_TAIL = 8192


@contextlib.contextmanager
def isolated(enabled: bool = True) -> Iterator[None]:
    """Compile in the isolation worker (``enabled=False``: in-process) inside the block.

    Applies to this thread or async task, overrides ``options().isolate`` and nests.

    >>> import enzyme_py as ez  # doctest: +SKIP
    >>> with ez.isolated():  # doctest: +SKIP
    ...     ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(3.0))
    """
    token = _override.set(bool(enabled))
    try:
        yield
    finally:
        _override.reset(token)


def active() -> bool:
    """Whether compilations of this thread/task go to the worker now."""
    value = _override.get()
    return config.options().isolate if value is None else value


def _timeout() -> float:
    raw = os.environ.get("ENZYME_PY_ISOLATE_TIMEOUT", "").strip()
    if not raw:
        return 600.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"ENZYME_PY_ISOLATE_TIMEOUT={raw!r} is not a number of seconds"
        ) from None
    if value <= 0:
        raise ValueError(f"ENZYME_PY_ISOLATE_TIMEOUT must be positive, got {raw!r}")
    return value


def _describe_death(returncode: int | None) -> tuple[str, str | None]:
    if returncode is None:
        return "stopped answering", None
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        why = {
            "SIGABRT": "an Enzyme or LLVM assertion failed (or abort() was called)",
            "SIGSEGV": "it crashed (segmentation fault)",
            "SIGBUS": "it crashed (bus error)",
            "SIGKILL": "it was killed (out of memory?)",
        }.get(name, "it was killed by a signal")
        return f"died with {name}: {why}", name
    why = "Enzyme prints an error and exits on some code it cannot differentiate"
    return f"exited with status {returncode} ({why})", None


class _Dead(Exception):
    """The worker is gone (end of its stdout)."""


class WorkerClient:
    """One worker process and the pipes to it.  Requests are serialised by a lock.

    The worker starts on the first request and again on the first request after it
    died.  :meth:`close` ends it (also done at interpreter exit).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._owner = os.getpid()
        #: How many workers this client started (restarts included).
        self.starts = 0

    # ------------------------------------------------------------------ process

    @property
    def pid(self) -> int | None:
        """The running worker's pid, or None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def _start(self) -> subprocess.Popen[bytes]:
        from ._library import native

        nat = native()
        env = dict(os.environ)
        env["ENZYME_PY_ISOLATE"] = "0"
        env["ENZYME_PY_DISK_CACHE"] = "0"
        package_parent = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_parent, env.get("PYTHONPATH", "")) if p
        )
        # Kept open for the worker's life (closed by _discard), read on its death.
        stderr = tempfile.TemporaryFile(prefix="enzyme_py_worker_")  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "enzyme_py._worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                close_fds=True,
            )
        except OSError as e:
            stderr.close()
            raise CompileError(f"could not start the isolation worker: {e}") from e
        self._proc, self._stderr = proc, stderr
        self._owner = os.getpid()
        self.starts += 1
        hello = {
            "op": "hello",
            "llvm_path": str(nat.llvm_path),
            "enzyme_path": str(nat.enzyme_path),
            "capi": nat.capi,
            "llvm_major": nat.llvm_major,
        }
        info = self._exchange(hello, what="starting the worker", deadline=time.monotonic() + 120)
        if (info["cpu"], info["features"], info["triple"]) != (nat.cpu, nat.features, nat.triple):
            self._kill()
            raise CompileError(
                "the isolation worker sees another CPU or target than this process "
                f"({info['cpu']} vs {nat.cpu}); its code would not fit here"
            )
        return proc

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._owner != os.getpid():  # inherited through fork: not ours to use
            self._proc, self._stderr = None, None
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._discard()
            proc = self._start()
        return proc

    def _discard(self) -> None:
        proc, err = self._proc, self._stderr
        self._proc, self._stderr = None, None
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    if stream is not None:
                        stream.close()
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if err is not None:
            err.close()

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def close(self) -> None:
        """End the worker (it exits when its stdin closes)."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.stdin is not None and self._owner == os.getpid():
                with contextlib.suppress(OSError):
                    proc.stdin.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            if self._owner == os.getpid():
                self._discard()

    # ------------------------------------------------------------------ protocol

    def _stderr_size(self) -> int:
        err = self._stderr
        return os.fstat(err.fileno()).st_size if err is not None else 0

    def _stderr_tail(self, since: int) -> str:
        err = self._stderr
        if err is None:
            return ""
        size = os.fstat(err.fileno()).st_size
        start = max(since, size - _TAIL)
        data = os.pread(err.fileno(), size - start, start) if size > start else b""
        return data.decode("utf-8", errors="replace")

    def _read(self, fd: int, n: int, deadline: float) -> bytes:
        chunks = []
        while n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, min(n, 1 << 20))
            if not chunk:
                raise _Dead
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _exchange(
        self, message: dict[str, Any], *, what: str, deadline: float, function: str | None = None
    ) -> Any:
        import pickle

        from ._worker import _LEN

        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        since = self._stderr_size()
        try:
            data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
            proc.stdin.write(_LEN.pack(len(data)) + data)
            proc.stdin.flush()
            fd = proc.stdout.fileno()
            (n,) = _LEN.unpack(self._read(fd, _LEN.size, deadline))
            if n > MAX_FRAME:
                raise _Dead
            reply = pickle.loads(self._read(fd, n, deadline))
        except TimeoutError:
            self._kill()
            tail = self._stderr_tail(since)
            self._discard()
            raise EnzymeCrashError(
                f"the isolation worker took longer than ENZYME_PY_ISOLATE_TIMEOUT "
                f"({_timeout():g} s) {what} and was killed; the request failed",
                function=function,
                returncode=None,
                signal=None,
                stderr=tail,
            ) from None
        except (_Dead, OSError, EOFError, pickle.UnpicklingError):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            rc = proc.poll()
            tail = self._stderr_tail(since)
            self._discard()
            how, sig = _describe_death(rc)
            raise EnzymeCrashError(
                f"the isolation worker (pid {proc.pid}) {how} while {what}. Only this "
                "request failed; the next one starts a new worker",
                function=function,
                returncode=rc,
                signal=sig,
                stderr=tail,
            ) from None
        if "error" in reply:
            raise decode_error(reply["error"])
        return reply["ok"]

    def request(self, message: dict[str, Any], *, what: str, function: str | None = None) -> Any:
        """Send one request (starting the worker if needed) and return its result;
        errors raised in the worker are raised here, a dead worker raises
        :class:`EnzymeCrashError`."""
        with self._lock:
            self._ensure()
            deadline = time.monotonic() + _timeout()
            return self._exchange(message, what=what, deadline=deadline, function=function)

    def compile(self, bitcode: bytes, content_hash: str, plan: Plan) -> CompiledCode:
        """Compile ``plan`` in the worker with this process's options."""
        opts = asdict(config.options())
        message = {
            "op": "compile",
            "bitcode": bitcode,
            "content_hash": content_hash,
            "plan": plan,
            "options": opts,
        }
        what = f"compiling the {plan.mode} code of {plan.function!r}"
        code = self.request(message, what=what, function=plan.function)
        if not isinstance(code, CompiledCode):
            raise CompileError(f"the isolation worker returned {type(code).__name__}")
        return code


_client: WorkerClient | None = None
_client_lock = threading.Lock()


def worker() -> WorkerClient:
    """The process's worker client (the worker itself starts on the first request)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = WorkerClient()
            atexit.register(_client.close)
        return _client


def compile_isolated(bitcode: bytes, content_hash: str, plan: Plan) -> CompiledCode:
    """Compile one request in the worker (see the module docstring)."""
    return worker().compile(bitcode, content_hash, plan)


def shutdown() -> None:
    """End the worker now (a later request starts a new one)."""
    if _client is not None:
        _client.close()
