"""The HTTP server of the download tests: pytest-httpserver's ``httpserver`` (a real server on
127.0.0.1), with scripted answers per path.

Use the ``scripted_server`` fixture (import it into a folder's ``conftest.py``)::

    url = scripted_server.route("/a.tar.gz", ScriptedServer.status(503), ScriptedServer.ok(body))

The n-th request to a path gets the n-th answer (the last one repeats); a path with no
route answers 404.  ``requests_to(path)`` lists what arrived (method, path, headers) and
``bytes_sent[path]`` counts the body bytes written.  Answers: :meth:`ScriptedServer.ok`
(optionally slow, without ``Content-Length``, ignoring ``Range``), :meth:`~ScriptedServer.cut`
(a body cut short), :meth:`~ScriptedServer.drip` (one byte at a time),
:meth:`~ScriptedServer.status`, :meth:`~ScriptedServer.redirect`, and
:meth:`ScriptedServer.serve_directory` for a folder (a PEP 503 index for pip).

The server answers each connection in its own thread (HTTP/1.1, as real servers do), so a
stalled answer does not hold up the retry that follows it; the session fixture
``make_httpserver`` here replaces pytest-httpserver's single-threaded one wherever it is
imported.  Slow bodies stop when the test ends, so one test's dripping answer never delays
the next.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_httpserver import HTTPServer
    from werkzeug import Request, Response

__all__ = ["Answer", "Received", "ScriptedServer", "make_httpserver", "scripted_server"]

Answer = Callable[["Request", "ScriptedServer"], "Response"]


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]


class ScriptedServer:
    """Scripted answers on top of a pytest-httpserver :class:`HTTPServer`."""

    def __init__(self, httpserver: HTTPServer) -> None:
        self.httpserver = httpserver
        self.host = httpserver.host
        self.port = httpserver.port
        self.bytes_sent: dict[str, int] = {}
        self._routes: dict[str, list[Answer]] = {}
        self._hits: dict[str, int] = {}
        self._lock = threading.Lock()
        self.stopped = threading.Event()
        httpserver.no_handler_status_code = 404

    # -- addresses and logs ------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    @property
    def log(self) -> list[Received]:
        """Every request received, in order."""
        return [Received(r.method, r.path, dict(r.headers.items())) for r, _ in list(self.httpserver.log)]

    def requests_to(self, path: str) -> list[Received]:
        return [r for r in self.log if r.path == path]

    # -- routes ------------------------------------------------------------------------
    def route(self, path: str, *answers: Answer) -> str:
        """Answer the n-th request to ``path`` with ``answers[n]`` (the last repeats); return its URL."""
        with self._lock:
            first = path not in self._routes
            self._routes[path] = list(answers)
            self._hits[path] = 0
        if first:
            self.httpserver.expect_request(path).respond_with_handler(lambda request: self._dispatch(path, request))
        return self.url(path)

    def serve_directory(self, prefix: str, root: Path, *, auth: tuple[str, str] | None = None) -> str:
        """Serve the files below ``root`` at ``prefix`` (``index.html`` for a folder);
        with ``auth``, only to requests carrying those HTTP Basic credentials (401 otherwise)."""
        def answer(request: Request) -> Response:
            from werkzeug import Response

            if auth is not None:
                given = request.authorization
                if given is None or (given.username, given.password) != auth:
                    return Response("credentials needed\n", status=401,
                                    headers={"WWW-Authenticate": 'Basic realm="test"'})
            rel = request.path[len(prefix):].lstrip("/")
            p = root / rel
            if p.is_dir():
                p = p / "index.html"
            if not p.is_file():
                return Response("not found\n", status=404)
            data = p.read_bytes()
            kind = "text/html" if p.suffix == ".html" else "application/octet-stream"
            return Response(self._stream(request.path, data, 1 << 16, 0.0), status=200, mimetype=kind,
                            headers={"Content-Length": str(len(data))}, direct_passthrough=True)

        self.httpserver.expect_request(re.compile("^" + re.escape(prefix) + ".*")).respond_with_handler(answer)
        return self.url(prefix)

    def _dispatch(self, path: str, request: Request) -> Response:
        with self._lock:
            n = self._hits[path]
            self._hits[path] = n + 1
            seq = self._routes[path]
            answer = seq[min(n, len(seq) - 1)]
        return answer(request, self)

    def _stream(self, path: str, data: bytes, chunk: int, delay: float) -> Iterator[bytes]:
        for i in range(0, len(data), chunk):
            if self.stopped.is_set():
                return
            piece = data[i:i + chunk]
            yield piece
            with self._lock:
                self.bytes_sent[path] = self.bytes_sent.get(path, 0) + len(piece)
            if delay:
                self.stopped.wait(delay)

    # -- answers -----------------------------------------------------------------------
    @staticmethod
    def ok(body: bytes, *, content_length: bool = True, honor_range: bool = True, chunk: int = 1 << 16,
           chunk_delay: float = 0.0, header_delay: float = 0.0, headers: dict[str, str] | None = None) -> Answer:
        """The body (from the ``Range`` start when asked and ``honor_range``)."""
        def answer(request: Request, srv: ScriptedServer) -> Response:
            from werkzeug import Response

            if header_delay:
                srv.stopped.wait(header_delay)
            status = 200
            extra = dict(headers or {})
            start = 0
            rng = request.headers.get("Range")
            if honor_range and rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                status = 206
                extra["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
            data = body[start:]
            if content_length:
                extra["Content-Length"] = str(len(data))
            return Response(srv._stream(request.path, data, chunk, chunk_delay), status=status,
                            headers=extra, mimetype="application/octet-stream", direct_passthrough=True)
        return answer

    @staticmethod
    def cut(body: bytes, upto: int, *, content_length: bool = True) -> Answer:
        """The bytes up to ``upto`` (honouring ``Range``), then the connection is closed."""
        def answer(request: Request, srv: ScriptedServer) -> Response:
            from werkzeug import Response

            status = 200
            extra: dict[str, str] = {}
            start = 0
            rng = request.headers.get("Range")
            if rng and rng.startswith("bytes="):
                start = int(rng[6:-1])
                status = 206
                extra["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
            if content_length:
                extra["Content-Length"] = str(len(body) - start)
            extra["Connection"] = "close"  # the connection ends with the cut
            return Response(srv._stream(request.path, body[start:upto], 1 << 16, 0.0), status=status,
                            headers=extra, mimetype="application/octet-stream", direct_passthrough=True)
        return answer

    @staticmethod
    def drip(body: bytes, every: float, *, content_length: bool = True) -> Answer:
        """One byte every ``every`` seconds: never silent for long, never done."""
        def answer(request: Request, srv: ScriptedServer) -> Response:
            from werkzeug import Response

            extra = {"Content-Length": str(len(body))} if content_length else {}
            return Response(srv._stream(request.path, body, 1, every), status=200, headers=extra,
                            mimetype="application/octet-stream", direct_passthrough=True)
        return answer

    @staticmethod
    def status(code: int) -> Answer:
        def answer(request: Request, srv: ScriptedServer) -> Response:
            from werkzeug import Response

            return Response(f"status {code}\n", status=code)
        return answer

    @staticmethod
    def redirect(location: str, code: int = 302) -> Answer:
        def answer(request: Request, srv: ScriptedServer) -> Response:
            from werkzeug import Response

            return Response("", status=code, headers={"Location": location})
        return answer


@pytest.fixture(scope="session")
def make_httpserver() -> Iterator[HTTPServer]:
    """pytest-httpserver's server on 127.0.0.1, one thread per connection."""
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def scripted_server(httpserver: HTTPServer) -> Iterator[ScriptedServer]:
    """A :class:`ScriptedServer` on pytest-httpserver's server, cleared for each test."""
    srv = ScriptedServer(httpserver)
    try:
        yield srv
    finally:
        srv.stopped.set()
