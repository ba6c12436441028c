"""The client of the isolation worker: one worker process per parent, started on first
use with the very libraries this process loaded (no lookup, no download), restarted after
it dies, replaced after too many failed requests or too much growth.

See :mod:`enzyme_py.isolation` for what isolation protects against and how to turn it on;
the protocol and the worker itself are in :mod:`.worker`.

Environment (read through :mod:`enzyme_py.config`): ``ENZYME_PY_ISOLATE_TIMEOUT``,
``ENZYME_PY_WORKER_MAX_FAILURES``, ``ENZYME_PY_WORKER_MAX_RSS``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from .. import config
from .._native.library import native
from ..errors import CompileError, EnzymeCrashError
from .plan import CompiledCode, Plan
from .worker import HEADER, decode_error, decode_frame, encode_frame, frame_length

__all__ = ["WorkerClient", "compile_isolated", "shutdown", "source_pass_isolated", "worker"]

_TAIL = 8192


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
        #: How many workers were replaced because they grew or failed too often.
        self.recycled = 0
        self._failures = 0
        self._rss = 0

    # ------------------------------------------------------------------ process

    @property
    def pid(self) -> int | None:
        """The running worker's pid, or None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def _start(self) -> subprocess.Popen[bytes]:
        nat = native()
        env = dict(os.environ)
        env["ENZYME_PY_ISOLATE"] = "0"
        env["ENZYME_PY_DISK_CACHE"] = "0"
        package_parent = str(Path(__file__).resolve().parent.parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_parent, env.get("PYTHONPATH", "")) if p
        )
        # Kept open for the worker's life (closed by _discard), read on its death.
        stderr = tempfile.TemporaryFile(prefix="enzyme_py_worker_")  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "enzyme_py._compile.worker"],
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
            self._close_worker()

    def _close_worker(self) -> None:
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
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        since = self._stderr_size()
        try:
            proc.stdin.write(encode_frame(message))
            proc.stdin.flush()
            fd = proc.stdout.fileno()
            try:
                n = frame_length(self._read(fd, HEADER, deadline))
            except ValueError:
                raise _Dead from None
            reply = decode_frame(self._read(fd, n, deadline))
        except TimeoutError:
            self._kill()
            tail = self._stderr_tail(since)
            self._discard()
            raise EnzymeCrashError(
                f"the isolation worker took longer than ENZYME_PY_ISOLATE_TIMEOUT "
                f"({config.isolation_timeout():g} s) {what} and was killed; the request failed",
                function=function,
                returncode=None,
                signal=None,
                stderr=tail,
            ) from None
        except (_Dead, OSError, EOFError, ValueError, TypeError, pickle.UnpicklingError):
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
        self._rss = int(reply.get("rss") or 0)
        if "error" in reply:
            self._failures += 1
            raise decode_error(reply["error"])
        return reply["ok"]

    def _maybe_recycle(self) -> None:
        """Replace a worker that failed too many requests or grew too large (what Enzyme
        leaks while failing stays in the worker; see ``ENZYME_PY_WORKER_MAX_FAILURES``
        and ``ENZYME_PY_WORKER_MAX_RSS``)."""
        max_failures, max_rss = config.worker_limits()
        if self._proc is not None and (self._failures >= max_failures or (max_rss and self._rss > max_rss)):
            self.recycled += 1
            self._close_worker()
            self._failures = 0
            self._rss = 0

    def request(self, message: dict[str, Any], *, what: str, function: str | None = None) -> Any:
        """Send one request (starting the worker if needed) and return its result;
        errors raised in the worker are raised here, a dead worker raises
        :class:`EnzymeCrashError`."""
        with self._lock:
            self._ensure()
            deadline = time.monotonic() + config.isolation_timeout()
            try:
                return self._exchange(message, what=what, deadline=deadline, function=function)
            finally:
                self._maybe_recycle()

    @property
    def resident_bytes(self) -> int:
        """The worker's resident size after its last request (0 before any)."""
        return self._rss

    def compile(
        self, bitcode: bytes, content_hash: str, plan: Plan, stateful: tuple[str, ...] = ()
    ) -> CompiledCode:
        """Compile ``plan`` in the worker with this process's options."""
        opts = asdict(config.options())
        message = {
            "op": "compile",
            "bitcode": bitcode,
            "content_hash": content_hash,
            "plan": plan,
            "stateful": stateful,
            "options": opts,
        }
        what = f"compiling the {plan.mode} code of {plan.function!r}"
        code = self.request(message, what=what, function=plan.function)
        if not isinstance(code, CompiledCode):
            raise CompileError(f"the isolation worker returned {type(code).__name__}")
        return code


    def source_pass(self, bitcode: bytes, name: str, *, optimise: bool) -> bytes:
        """Run Enzyme's own pass over a module in the worker (see
        :func:`~enzyme_py._compile.pipeline.source_pass`); its bitcode afterwards."""
        message = {"op": "source", "bitcode": bitcode, "name": name, "optimise": optimise}
        what = f"running Enzyme's pass over module {name!r}"
        data = self.request(message, what=what, function=name)
        if not isinstance(data, bytes):
            raise CompileError(f"the isolation worker returned {type(data).__name__}")
        return data


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


def compile_isolated(
    bitcode: bytes, content_hash: str, plan: Plan, stateful: tuple[str, ...] = ()
) -> CompiledCode:
    """Compile one request in the worker."""
    return worker().compile(bitcode, content_hash, plan, stateful)


def source_pass_isolated(bitcode: bytes, name: str, *, optimise: bool) -> bytes:
    """Enzyme's own pass over a module, in the worker."""
    return worker().source_pass(bitcode, name, optimise=optimise)


def shutdown() -> None:
    """End the worker now (a later request starts a new one)."""
    if _client is not None:
        _client.close()
