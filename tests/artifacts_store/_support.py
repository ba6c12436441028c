"""Helpers shared by the artifact-store tests: a scriptable HTTP server, tarballs, manifests."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


Behaviour = Callable[[http.server.BaseHTTPRequestHandler, "ArtifactServer"], None]


@dataclass
class ArtifactServer:
    """A threaded HTTP/1.0 server whose answers are scripted per path.

    ``route(path, *behaviours)``: the n-th request to ``path`` gets the n-th behaviour
    (the last one repeats).  ``log`` records every request; ``bytes_sent`` counts body
    bytes written per path.
    """

    host: str = "127.0.0.1"
    port: int = 0
    log: list[Request] = field(default_factory=list)
    bytes_sent: dict[str, int] = field(default_factory=dict)
    routes: dict[str, list[Behaviour]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def route(self, path: str, *behaviours: Behaviour) -> str:
        self.routes[path] = list(behaviours)
        self.hits[path] = 0
        return self.url(path)

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in self.log if r.path == path]

    # -- behaviours --------------------------------------------------------------------
    @staticmethod
    def ok(body: bytes, *, content_length: bool = True, honor_range: bool = True,
           chunk: int = 1 << 16, chunk_delay: float = 0.0, header_delay: float = 0.0,
           headers: dict[str, str] | None = None) -> Behaviour:
        def run(h: http.server.BaseHTTPRequestHandler, srv: ArtifactServer) -> None:
            if header_delay:
                time.sleep(header_delay)
            start = 0
            rng = h.headers.get("Range")
            if honor_range and rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                h.send_response(206)
                h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                h.send_response(200)
            data = body[start:]
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            if content_length:
                h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            srv._write(h, data, chunk, chunk_delay)
        return run

    @staticmethod
    def cut(body: bytes, upto: int, *, content_length: bool = True) -> Behaviour:
        """Send the first ``upto`` bytes (honouring Range) and close the connection."""
        def run(h: http.server.BaseHTTPRequestHandler, srv: ArtifactServer) -> None:
            start = 0
            rng = h.headers.get("Range")
            if rng and rng.startswith("bytes="):
                start = int(rng[6:-1])
                h.send_response(206)
                h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                h.send_response(200)
            if content_length:
                h.send_header("Content-Length", str(len(body) - start))
            h.end_headers()
            srv._write(h, body[start:upto], 1 << 16, 0.0)
            h.close_connection = True
        return run

    @staticmethod
    def status(code: int) -> Behaviour:
        def run(h: http.server.BaseHTTPRequestHandler, srv: ArtifactServer) -> None:
            msg = f"status {code}\n".encode()
            h.send_response(code)
            h.send_header("Content-Length", str(len(msg)))
            h.end_headers()
            h.wfile.write(msg)
        return run

    @staticmethod
    def files(root: Path) -> Behaviour:
        """Serve files below ``root`` (the request path, minus its first component)."""
        def run(h: http.server.BaseHTTPRequestHandler, srv: ArtifactServer) -> None:
            rel = h.path.split("?", 1)[0].split("/", 2)[-1]
            p = root / rel
            if p.is_dir():
                p = p / "index.html"
            if not p.is_file():
                ArtifactServer.status(404)(h, srv)
                return
            data = p.read_bytes()
            h.send_response(200)
            h.send_header("Content-Type", "text/html" if p.suffix == ".html" else "application/octet-stream")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            srv._write(h, data, 1 << 16, 0.0)
        return run

    def _write(self, h: http.server.BaseHTTPRequestHandler, data: bytes, chunk: int, delay: float) -> None:
        path = h.path
        for i in range(0, len(data), chunk):
            piece = data[i:i + chunk]
            h.wfile.write(piece)
            h.wfile.flush()
            with self.lock:
                self.bytes_sent[path] = self.bytes_sent.get(path, 0) + len(piece)
            if delay:
                time.sleep(delay)


def _make_handler(srv: ArtifactServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path
            with srv.lock:
                srv.log.append(Request("GET", path, dict(self.headers.items())))
                prefix = next((p for p in srv.routes if path == p or (p.endswith("/") and path.startswith(p))),
                              None)
                if prefix is None:
                    behaviour: Behaviour = ArtifactServer.status(404)
                else:
                    n = srv.hits[prefix]
                    srv.hits[prefix] = n + 1
                    seq = srv.routes[prefix]
                    behaviour = seq[min(n, len(seq) - 1)]
            try:
                behaviour(self, srv)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def make_tarball(members: dict[str, bytes], *, mode: str = "w:gz") -> bytes:
    """A tarball holding regular files ``relpath -> bytes``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.startswith("lib/") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def artifact_tarball(payload: bytes = b"\x7fELF fake plugin " * 4096, llvm: int = 15) -> bytes:
    return make_tarball({
        f"lib/LLVMEnzyme-{llvm}.so": payload,
        "share/licenses/LLVMEnzyme/LICENSE": b"Apache-2.0 WITH LLVM-exception\n",
    })


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


ENTRY_HEAD = """\
[[LLVMEnzyme]]
enzyme_version = "{enzyme}"
llvm_version = {llvm}
arch = "x86_64"
os = "linux"
libc = "glibc"
cxxstring_abi = "cxx11"
capi = "v0.0.289"
lazy = true
"""


def tarball_manifest(path: Path, urls_and_bodies: list[tuple[str, bytes]], *, llvm: int = 15,
                     enzyme: str = "0.0.289") -> Path:
    """Write a manifest with one entry whose tarball sources are ``(url, body)``."""
    text = ENTRY_HEAD.format(enzyme=enzyme, llvm=llvm)
    for url, body in urls_and_bodies:
        text += f'\n    [[LLVMEnzyme.download]]\n    url = "{url}"\n    sha256 = "{sha256(body)}"\n' \
                f"    size = {len(body)}\n"
    path.write_text(text)
    return path


