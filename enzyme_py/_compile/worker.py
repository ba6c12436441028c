"""The isolation worker: ``python -m enzyme_py._compile.worker``, driven by
:mod:`enzyme_py._compile.client`; and the frame codec both ends share.

Protocol (the worker's stdin and stdout carry only frames; everything the worker, LLVM
or Enzyme print goes to stderr, which the parent keeps in a file)::

    frame   = length (8 bytes, big-endian) | pickle of a dict
    parent -> {"op": "hello", "llvm_path", "enzyme_path", "capi", "llvm_major"}
    worker -> {"ok": {"pid", "triple", "cpu", "features"}}
    parent -> {"op": "compile", "bitcode", "content_hash", "plan", "stateful", "options"}
    worker -> {"ok": CompiledCode, "rss": bytes} | {"error": {...}, "rss": bytes}
    parent -> {"op": "source", "bitcode", "name", "optimise"}   (Enzyme's own pass)
    worker -> {"ok": bitcode, "rss": bytes} | {"error": {...}, "rss": bytes}
    parent -> {"op": "crash", "how": "abort" | "exit" | "segv"}   (tests only)
    end of stdin -> the worker exits

The worker loads exactly the libraries named in ``hello`` (no lookup, no download) and
compiles with the options sent along with each request.  Frames are pickles: both ends
are this package, started by the parent over private pipes.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import pickle
import struct
import sys
import traceback
from dataclasses import fields
from pathlib import Path
from typing import Any, BinaryIO

from .. import config
from .._native.library import Pinned, pin
from ..errors import CompileError
from .pipeline import compile_plan, source_pass

__all__ = [
    "HEADER",
    "MAX_FRAME",
    "decode_error",
    "decode_frame",
    "encode_error",
    "encode_frame",
    "frame_length",
    "main",
    "read_frame",
    "resident_bytes",
    "write_frame",
]

_LEN = struct.Struct(">Q")
#: Frames above this size are refused (a corrupt length must not allocate gigabytes).
MAX_FRAME = 1 << 31


#: Size of a frame's length header.
HEADER = _LEN.size


def encode_frame(message: dict[str, Any]) -> bytes:
    """One frame: the length header, then the pickled message."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


def frame_length(header: bytes) -> int:
    """The body length a frame header announces; :class:`ValueError` above
    :data:`MAX_FRAME` (a corrupt length must not allocate gigabytes)."""
    (n,) = _LEN.unpack(header)
    if n > MAX_FRAME:
        raise ValueError(f"frame of {n} bytes refused")
    return int(n)


def decode_frame(body: bytes) -> dict[str, Any]:
    """The message of a frame body; :class:`TypeError` when it is not a dict."""
    message = pickle.loads(body)
    if not isinstance(message, dict):
        raise TypeError("a frame must hold a dict")
    return message


def write_frame(stream: BinaryIO, message: dict[str, Any]) -> None:
    """Write one frame and flush."""
    stream.write(encode_frame(message))
    stream.flush()


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: BinaryIO) -> dict[str, Any] | None:
    """Read one frame; None at end of stream."""
    head = _read_exact(stream, HEADER)
    if head is None:
        return None
    body = _read_exact(stream, frame_length(head))
    if body is None:
        return None
    return decode_frame(body)


def encode_error(exc: BaseException) -> dict[str, Any]:
    """An exception as plain data (its class path, args and picklable attributes)."""
    state = {}
    for k, v in vars(exc).items():
        try:
            pickle.dumps(v)
        except Exception:  # noqa: BLE001, S112 - anything unpicklable is left out
            continue
        state[k] = v
    cls = type(exc)
    return {
        "type": f"{cls.__module__}:{cls.__qualname__}",
        "args": tuple(a if isinstance(a, (str, int, float, type(None))) else repr(a) for a in exc.args),
        "state": state,
        "text": "".join(traceback.format_exception_only(cls, exc)).strip(),
    }


def decode_error(data: dict[str, Any]) -> BaseException:
    """Rebuild an exception from :func:`encode_error`; a :class:`CompileError` with the
    text when its class cannot be rebuilt."""
    try:
        mod_name, qual = str(data["type"]).split(":", 1)
        obj: Any = importlib.import_module(mod_name)
        for part in qual.split("."):
            obj = getattr(obj, part)
        if not (isinstance(obj, type) and issubclass(obj, Exception)):
            raise TypeError(obj)
        exc = obj.__new__(obj)
        exc.args = tuple(data["args"])
        exc.__dict__.update(data["state"])
        return exc
    except Exception:  # noqa: BLE001 - fall back to the text
        return CompileError(f"the isolation worker failed: {data.get('text', '?')}")


def _load(hello: dict[str, Any]) -> dict[str, Any]:
    nat = pin(
        Pinned(
            llvm_path=Path(hello["llvm_path"]),
            enzyme_path=Path(hello["enzyme_path"]),
            capi=str(hello["capi"]),
            llvm_major=int(hello["llvm_major"]),
        )
    )
    return {"pid": os.getpid(), "triple": nat.triple, "cpu": nat.cpu, "features": nat.features}


def _compile(req: dict[str, Any]) -> Any:
    wanted = dict(req.get("options") or {})
    wanted["isolate"] = False
    known = {f.name for f in fields(config.Options)}
    config.set_options(**{k: v for k, v in wanted.items() if k in known})
    return compile_plan(req["bitcode"], req["content_hash"], req["plan"], tuple(req.get("stateful", ())))


def resident_bytes() -> int:
    """This process's resident set size in bytes (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _crash(how: str) -> None:
    """Die the way Enzyme can (test hook for :mod:`enzyme_py.isolation`)."""
    sys.stderr.write(f"enzyme_py worker: crashing on request ({how})\n")
    sys.stderr.flush()
    libc = ctypes.CDLL(None)
    if how == "abort":
        libc.abort()
    elif how == "exit":
        libc.exit(1)
    elif how == "segv":
        ctypes.string_at(8)
    raise ValueError(f"unknown crash kind {how!r}")


def main() -> int:
    """Serve requests until stdin closes."""
    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)  # anything printed (by C or Python) goes to stderr
    sys.stdout = sys.stderr
    while True:
        try:
            req = read_frame(proto_in)
        except (OSError, ValueError, TypeError, pickle.UnpicklingError) as e:
            sys.stderr.write(f"enzyme_py worker: bad frame ({e}); exiting\n")
            return 2
        if req is None:
            return 0
        op = req.get("op")
        try:
            if op == "hello":
                result: Any = _load(req)
            elif op == "compile":
                result = _compile(req)
            elif op == "source":
                result = source_pass(bytes(req["bitcode"]), str(req["name"]), optimise=bool(req["optimise"]))
            elif op == "crash":
                _crash(str(req.get("how")))
                result = None
            elif op == "ping":
                result = os.getpid()
            else:
                raise ValueError(f"unknown request {op!r}")
            reply: dict[str, Any] = {"ok": result}
        except Exception as e:  # noqa: BLE001 - every failure goes back to the parent
            reply = {"error": encode_error(e)}
        reply["rss"] = resident_bytes()
        write_frame(proto_out, reply)


if __name__ == "__main__":
    sys.exit(main())
