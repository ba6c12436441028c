"""Verified downloads: how bytes arrive (HTTP(S), or a ``file://`` URL), never what they are.

:func:`download` streams a URL into a uniquely named temporary file beside the target,
checks its size and sha256, and only then renames it to the target: a reader never sees
a partial or unverified file.  A body cut short (with or without ``Content-Length``) is
retried, resuming with a ``Range`` request; a server that ignores ``Range`` (answers
``200``) is read again from the start.  Connection errors and ``500/502/503/504``
answers are retried by urllib3 with exponential backoff.

Every download is bounded in time three ways: the connect timeout (per connection), the
read timeout (the longest silence), and -- so that a server dripping a byte now and then
cannot hold the install lock for ever -- a total deadline over all attempts and a
minimum rate over every read-timeout window.  Either of the last two failing raises
:class:`~enzyme_artifacts.errors.DownloadTimeoutError` and deletes the partial file.

One progress bar (tqdm, on stderr) shows what is fetched and how big, when
:func:`progress_enabled` says so.

Environment variables (all optional; read at every download):

``ENZYME_ARTIFACTS_OFFLINE=1``
    make no request at all; :func:`download` raises :class:`OfflineError`.
``ENZYME_ARTIFACTS_MIRROR=<base url>``
    replace everything before the file name of every tarball URL
    (``https://a/b/x.tar.gz`` with ``ENZYME_ARTIFACTS_MIRROR=https://m/e`` becomes
    ``https://m/e/x.tar.gz``).
``ENZYME_ARTIFACTS_ALLOW_HTTP=1``
    allow plain ``http`` to hosts other than loopback (loopback is always allowed).
``ENZYME_ARTIFACTS_CONNECT_TIMEOUT`` / ``ENZYME_ARTIFACTS_READ_TIMEOUT``
    seconds, default 10 and 60 (the read timeout bounds the silence between two reads).
``ENZYME_ARTIFACTS_DOWNLOAD_DEADLINE``
    seconds one download may take in all, retries included (default 1200).
``ENZYME_ARTIFACTS_MIN_RATE``
    bytes per second (``K``/``M`` suffixes allowed) that must arrive on average over every
    window of ``ENZYME_ARTIFACTS_READ_TIMEOUT`` seconds (default ``4K``; ``0`` disables).
``ENZYME_ARTIFACTS_RETRIES``
    retries per download for connection errors, 5xx answers and cut-short bodies (default 4).
``ENZYME_ARTIFACTS_PROGRESS=0|1``
    force the progress bar (on stderr) off or on; by default it is shown when stderr is
    a terminal.

``requests`` and ``tqdm`` are imported on the first download, never at import time.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

from . import _env
from .errors import DownloadError, DownloadTimeoutError, HashMismatchError, OfflineError

__all__ = [
    "ALLOW_HTTP_ENV",
    "CONNECT_TIMEOUT_ENV",
    "DEADLINE_ENV",
    "MIN_RATE_ENV",
    "MIRROR_ENV",
    "OFFLINE_ENV",
    "PROGRESS_ENV",
    "READ_TIMEOUT_ENV",
    "RETRIES_ENV",
    "DownloadSettings",
    "Label",
    "check_url_allowed",
    "download",
    "format_size",
    "is_offline",
    "mirror_url",
    "progress_enabled",
]

OFFLINE_ENV = "ENZYME_ARTIFACTS_OFFLINE"
MIRROR_ENV = "ENZYME_ARTIFACTS_MIRROR"
ALLOW_HTTP_ENV = "ENZYME_ARTIFACTS_ALLOW_HTTP"
PROGRESS_ENV = "ENZYME_ARTIFACTS_PROGRESS"
CONNECT_TIMEOUT_ENV = "ENZYME_ARTIFACTS_CONNECT_TIMEOUT"
READ_TIMEOUT_ENV = "ENZYME_ARTIFACTS_READ_TIMEOUT"
RETRIES_ENV = "ENZYME_ARTIFACTS_RETRIES"
DEADLINE_ENV = "ENZYME_ARTIFACTS_DOWNLOAD_DEADLINE"
MIN_RATE_ENV = "ENZYME_ARTIFACTS_MIN_RATE"

Label = str | Callable[[int | None], str]
"""What the progress bar says: text, or a function of the size the server announces."""

_CHUNK = 1 << 16


def is_offline() -> bool:
    """True when ``ENZYME_ARTIFACTS_OFFLINE`` is set to a true value."""
    return _env.flag(OFFLINE_ENV, False)


def progress_enabled(progress: bool | None = None) -> bool:
    """The explicit argument, else ``ENZYME_ARTIFACTS_PROGRESS``, else ``stderr.isatty()``."""
    if progress is not None:
        return progress
    if _env.text(PROGRESS_ENV) is not None:
        return _env.flag(PROGRESS_ENV, False)
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def format_size(n: int | None) -> str:
    """A size for people, in decimal units as download tools show them.

    >>> format_size(73415555), format_size(8922897), format_size(512), format_size(None)
    ('73.4 MB', '8.9 MB', '512 B', 'unknown size')
    """
    if n is None:
        return "unknown size"
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.95 or unit == "TB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def mirror_url(url: str) -> str:
    """``url`` with its base replaced by ``ENZYME_ARTIFACTS_MIRROR`` (file name kept);
    ``url`` itself when the variable is unset or empty.

    With ``ENZYME_ARTIFACTS_MIRROR=https://m.example/enzyme``,
    ``https://a.example/x/y/E.tar.gz`` becomes ``https://m.example/enzyme/E.tar.gz``.
    """
    base = _env.text(MIRROR_ENV)
    if base is None:
        return url
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadError(f"{MIRROR_ENV}={base!r} is not an http(s) URL with a host; fix or unset it")
    return base.rstrip("/") + "/" + name


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url_allowed(url: str, *, allow_http: bool = False, allow_file: bool = False) -> None:
    """Refuse anything but https, and http to loopback (or with
    ``ENZYME_ARTIFACTS_ALLOW_HTTP=1`` or ``allow_http``); ``file://`` only with ``allow_file``."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        if allow_http or _is_loopback(parts.hostname) or _env.flag(ALLOW_HTTP_ENV, False):
            return
        raise DownloadError(
            f"refusing plain http for {url}: bytes could be altered in transit (they would still be "
            f"hash-checked). Use https, or set {ALLOW_HTTP_ENV}=1 to allow it"
        )
    if parts.scheme == "file" and allow_file:
        return
    raise DownloadError(f"unsupported URL {url!r}: only https (and http to loopback) can be fetched")


@dataclass(frozen=True, slots=True)
class DownloadSettings:
    """Timeouts and the deadline (seconds), the minimum rate (bytes/s, ``0`` = none), the
    retry budget and backoff; :meth:`from_env` reads the environment."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 4
    backoff_factor: float = 0.5
    deadline: float = 1200.0
    min_rate: int = 4096

    @classmethod
    def from_env(cls) -> DownloadSettings:
        d = cls()
        return cls(
            connect_timeout=_env.number(CONNECT_TIMEOUT_ENV, d.connect_timeout, positive=True),
            read_timeout=_env.number(READ_TIMEOUT_ENV, d.read_timeout, positive=True),
            retries=_env.integer(RETRIES_ENV, d.retries, minimum=0),
            backoff_factor=d.backoff_factor,
            deadline=_env.number(DEADLINE_ENV, d.deadline, positive=True),
            min_rate=_env.size(MIN_RATE_ENV, d.min_rate),
        )


def _user_agent() -> str:
    from ._version import distribution_version

    return f"enzyme-artifacts/{distribution_version()} (+enzyme-py)"


def _check_redirect(allow_http: bool) -> Callable[..., Any]:
    def hook(response: Any, *args: Any, **kwargs: Any) -> Any:
        """Refuse a redirect to a URL :func:`check_url_allowed` refuses, before it is followed."""
        if response.is_redirect:
            check_url_allowed(urljoin(response.url, response.headers.get("Location", "")),
                              allow_http=allow_http)
        return response

    return hook


def _retry_class() -> Any:
    from urllib3.util.retry import Retry

    class DeadlineRetry(Retry):
        """urllib3's retries (connection errors, 5xx), never past the download's deadline."""

        deadline_at: float | None = None

        def new(self, **kw: Any) -> Any:
            retry = super().new(**kw)
            retry.deadline_at = self.deadline_at
            return retry

        def get_backoff_time(self) -> float:
            backoff = float(super().get_backoff_time())
            if self.deadline_at is None:
                return backoff
            return max(0.0, min(backoff, self.deadline_at - time.monotonic()))

        def is_exhausted(self) -> bool:
            if self.deadline_at is not None and time.monotonic() >= self.deadline_at:
                return True
            return bool(super().is_exhausted())

    return DeadlineRetry


def _session(settings: DownloadSettings, allow_http: bool, deadline_at: float | None = None) -> Any:
    import requests
    from requests.adapters import HTTPAdapter

    retry = _retry_class()(
        total=settings.retries,
        connect=settings.retries,
        read=settings.retries,
        status=settings.retries,
        other=0,
        backoff_factor=settings.backoff_factor,
        backoff_max=10,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=False,  # keep every wait bounded by backoff_max
        raise_on_status=False,
    )
    retry.deadline_at = deadline_at
    s = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.hooks["response"].append(_check_redirect(allow_http))
    s.headers["User-Agent"] = _user_agent()
    # Never let requests decode gzip: the sha256 is of the bytes as stored.
    s.headers["Accept-Encoding"] = "identity"
    return s


class _Progress:
    """The one progress bar of a download (nothing at all when disabled)."""

    def __init__(self, enabled: bool, label: Label | None, url: str) -> None:
        self.enabled = enabled
        self.label = label
        self.url = url
        self.bar: Any = None

    def start(self, total: int | None) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.reset(total=total)
            return
        from tqdm import tqdm

        if callable(self.label):
            desc = self.label(total)
        elif self.label:
            desc = self.label
        else:
            desc = f"{self.url.rsplit('/', 1)[-1]} ({format_size(total)})"
        self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1000, desc=desc,
                        file=sys.stderr, leave=True, dynamic_ncols=True)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Clock:
    """The deadline over all attempts and the minimum rate over each window."""

    def __init__(self, url: str, settings: DownloadSettings) -> None:
        self.url = url
        self.settings = settings
        self.start = time.monotonic()
        self.window_start = self.start
        self.window_bytes = 0

    def remaining(self) -> float:
        return self.settings.deadline - (time.monotonic() - self.start)

    def check_deadline(self, received: int) -> None:
        if self.remaining() <= 0:
            raise DownloadTimeoutError(
                f"downloading {self.url} took longer than {self.settings.deadline:g} s "
                f"({received} bytes received); the partial file was deleted. The server or the "
                f"network is too slow: retry later, set {MIRROR_ENV}, or raise {DEADLINE_ENV}"
            )

    def new_attempt(self) -> None:
        self.window_start = time.monotonic()
        self.window_bytes = 0

    def received(self, n: int, total: int) -> None:
        self.window_bytes += n
        now = time.monotonic()
        window = self.settings.read_timeout
        if self.settings.min_rate and now - self.window_start >= window:
            rate = self.window_bytes / (now - self.window_start)
            if rate < self.settings.min_rate:
                raise DownloadTimeoutError(
                    f"{self.url} sent {self.window_bytes} bytes in the last {now - self.window_start:.1f} s "
                    f"({rate:.0f} B/s), less than the minimum of {self.settings.min_rate} B/s "
                    f"({total} bytes received in all); the partial file was deleted. The server is "
                    f"stalling: retry later, set {MIRROR_ENV}, or lower {MIN_RATE_ENV}"
                )
            self.window_start = now
            self.window_bytes = 0
        self.check_deadline(total)


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None,
    size: int | None = None,
    progress: bool | None = None,
    settings: DownloadSettings | None = None,
    apply_mirror: bool = True,
    on_request: Callable[[str, dict[str, str]], None] | None = None,
    label: Label | None = None,
    allow_http: bool = False,
    allow_file: bool = False,
) -> Path:
    """Fetch ``url`` into ``dest`` (a file path whose folder exists), verified.

    The bytes go to ``<dest folder>/.<dest name>.<random>.part``; only when their size
    equals ``size`` (when given) and their sha256 equals ``sha256`` (when given: callers
    that know no digest must check the file themselves) is the file renamed to ``dest``.
    On a mismatch the temporary file is deleted and :class:`HashMismatchError` names both
    digests.  Other failures raise :class:`DownloadError` (with the URL and what to try),
    after bounded retries; :class:`DownloadTimeoutError` past the deadline or under the
    minimum rate.  ``label`` is what the progress bar says.  ``allow_http`` and
    ``allow_file`` admit plain-http and ``file://`` URLs (chosen by pip's configuration,
    for instance).  ``on_request(url, headers)`` is called before every request.
    """
    if is_offline():
        raise OfflineError(
            f"{OFFLINE_ENV} is set, so {url} was not downloaded; unset it or install the artifact "
            "on a connected machine and copy the cache (ENZYME_ARTIFACTS_CACHE)"
        )
    dest = Path(dest)
    expected = sha256.lower() if sha256 else None
    if apply_mirror:
        url = mirror_url(url)
    check_url_allowed(url, allow_http=allow_http, allow_file=allow_file)
    settings = settings or DownloadSettings.from_env()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    bar = _Progress(progress_enabled(progress), label, url)
    try:
        with os.fdopen(fd, "r+b") as out:
            if urlsplit(url).scheme == "file":
                digest, total = _copy_local(out, url, size, bar, _Clock(url, settings))
            else:
                digest, total = _fetch_into(out, url, size, bar, settings, on_request, allow_http)
            out.flush()
            os.fsync(out.fileno())
        if size is not None and total != size:
            raise HashMismatchError(
                f"{url} gave {total} bytes, the manifest says {size}; the download was deleted. "
                "The file on the server changed or is damaged; try again or use another mirror "
                f"({MIRROR_ENV})"
            )
        if expected is not None and digest != expected:
            raise HashMismatchError(
                f"sha256 mismatch for {url}: expected {expected}, got {digest}; the download was "
                "deleted. The file on the server changed or was tampered with: do not use it; try "
                f"another mirror ({MIRROR_ENV}) or report it"
            )
        os.replace(tmp, dest)
        return dest
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        bar.close()


def _copy_local(out: BinaryIO, url: str, size: int | None, bar: _Progress, clock: _Clock) -> tuple[str, int]:
    """A ``file://`` URL: the same bounded, hashed copy, without a network."""
    from urllib.request import url2pathname

    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise DownloadError(f"cannot read {url}: a file URL must name a local path")
    path = Path(url2pathname(parts.path))
    hasher = hashlib.sha256()
    total = 0
    try:
        with open(path, "rb") as src:
            bar.start(os.fstat(src.fileno()).st_size)
            while chunk := src.read(1 << 20):
                if size is not None and total + len(chunk) > size:
                    chunk = chunk[: size + 1 - total]  # one byte too many makes the size check fail
                    out.write(chunk)
                    hasher.update(chunk)
                    return hasher.hexdigest(), total + len(chunk)
                out.write(chunk)
                hasher.update(chunk)
                total += len(chunk)
                bar.update(len(chunk))
                clock.check_deadline(total)
    except OSError as e:
        raise DownloadError(f"cannot read {url}: {e.strerror or e}") from None
    return hasher.hexdigest(), total


def _fetch_into(
    out: BinaryIO,
    url: str,
    size: int | None,
    bar: _Progress,
    settings: DownloadSettings,
    on_request: Callable[[str, dict[str, str]], None] | None,
    allow_http: bool,
) -> tuple[str, int]:
    import requests
    import urllib3

    clock = _Clock(url, settings)
    session = _session(settings, allow_http, clock.start + settings.deadline)
    hasher = hashlib.sha256()
    written = 0
    failures: list[str] = []
    try:
        for attempt in range(settings.retries + 1):
            clock.check_deadline(written)
            headers: dict[str, str] = {}
            if written:
                headers["Range"] = f"bytes={written}-"
            if on_request is not None:
                on_request(url, headers)
            r = _open(session, url, headers, settings, clock.remaining())
            with r:
                if r.status_code == 206 and written:
                    start = _content_range_start(r.headers.get("Content-Range", ""))
                    if start != written:
                        raise DownloadError(
                            f"{url} answered a Range request for byte {written} with "
                            f"{r.headers.get('Content-Range')!r}; cannot resume"
                        )
                elif r.status_code == 200:
                    if written:  # the server ignored Range: start again
                        out.seek(0)
                        out.truncate()
                        hasher = hashlib.sha256()
                        written = 0
                else:
                    raise DownloadError(_status_message(url, r.status_code, r.reason),
                                        status=r.status_code, reason="status")
                announced = _announced_size(r)
                if size is not None and announced is not None and announced != size:
                    raise HashMismatchError(
                        f"{url} has {announced} bytes, the manifest says {size}; nothing was kept. "
                        "The file on the server changed or is damaged; try another mirror "
                        f"({MIRROR_ENV}) or report it"
                    )
                if written == 0:
                    bar.start(size if size is not None else announced)
                clock.new_attempt()
                try:
                    # raw bytes as transferred (a misconfigured server's Content-Encoding must
                    # not change what is hashed); read1 returns what one read gives, so the
                    # deadline and the rate are checked however slowly bytes arrive
                    while True:
                        chunk = r.raw.read1(_CHUNK, decode_content=False)
                        if not chunk:
                            break
                        if size is not None and written + len(chunk) > size:
                            # More bytes than the manifest allows: keep one extra to make the
                            # size check fail, never write an unbounded body to disk.
                            chunk = chunk[: size + 1 - written]
                            out.write(chunk)
                            hasher.update(chunk)
                            return hasher.hexdigest(), written + len(chunk)
                        out.write(chunk)
                        hasher.update(chunk)
                        written += len(chunk)
                        bar.update(len(chunk))
                        clock.received(len(chunk), written)
                except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as e:
                    # a body cut short (Content-Length not reached) or a stall mid-body
                    failures.append(f"connection broken after {written} bytes: {_short(e)}")
                    _pause(settings, attempt, clock)
                    continue
                if size is not None and written < size:
                    failures.append(f"body ended after {written} of {size} bytes")
                    _pause(settings, attempt, clock)
                    continue
                return hasher.hexdigest(), written
        raise DownloadError(
            f"could not download {url}: {settings.retries + 1} attempts failed "
            f"({'; '.join(failures[-3:])}). The server is slow or the connection unstable: retry "
            f"later, raise {READ_TIMEOUT_ENV}, or set {MIRROR_ENV}"
        )
    finally:
        session.close()


def _pause(settings: DownloadSettings, attempt: int, clock: _Clock) -> None:
    """Exponential backoff before retrying a broken body (none after the last attempt,
    never past the deadline)."""
    if attempt < settings.retries:
        time.sleep(max(0.0, min(settings.backoff_factor * (2 ** attempt), 10.0, clock.remaining())))


def _open(session: Any, url: str, headers: dict[str, str], settings: DownloadSettings,
          remaining: float) -> Any:
    """Send the GET (urllib3 retries connection errors and 5xx); map failures to DownloadError."""
    import requests

    timeout = (min(settings.connect_timeout, remaining), min(settings.read_timeout, remaining))
    try:
        return session.get(url, headers=headers, stream=True, timeout=timeout)
    except requests.exceptions.ConnectTimeout as e:
        raise DownloadError(
            f"could not connect to {url} within {timeout[0]:g} s "
            f"(after {settings.retries} retries): {_short(e)}. Check the network, set {MIRROR_ENV}, "
            f"raise {CONNECT_TIMEOUT_ENV}, or use {OFFLINE_ENV}=1 with a filled cache"
        ) from None
    except requests.exceptions.SSLError as e:
        raise DownloadError(
            f"could not download {url}: the TLS connection failed ({_short(e)}). Check the system's "
            "certificates (REQUESTS_CA_BUNDLE names a bundle to trust) or set " + MIRROR_ENV,
            reason="tls",
        ) from None
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as e:
        if isinstance(e, requests.exceptions.ReadTimeout) or "ReadTimeoutError" in repr(e):
            raise DownloadError(
                f"{url} did not answer within {timeout[1]:g} s (after "
                f"{settings.retries} retries). The server is slow or down: retry later, raise "
                f"{READ_TIMEOUT_ENV}, or set {MIRROR_ENV}"
            ) from None
        raise DownloadError(
            f"could not download {url}: {_short(e)}. Check the network or set {MIRROR_ENV}"
        ) from None
    except requests.exceptions.RequestException as e:
        raise DownloadError(f"could not download {url}: {_short(e)}") from None


def _short(e: BaseException) -> str:
    text = str(e)
    return text if len(text) < 300 else text[:300] + "..."


def _announced_size(r: Any) -> int | None:
    """The full size the server announces: Content-Length (200) or Content-Range's total (206)."""
    try:
        if r.status_code == 206:
            total = r.headers.get("Content-Range", "").rsplit("/", 1)[-1]
            return int(total) if total.isdigit() else None
        length = r.headers.get("Content-Length")
        return int(length) if length is not None and length.isdigit() else None
    except ValueError:
        return None


def _content_range_start(value: str) -> int | None:
    # "bytes 100-199/200"
    try:
        unit, rest = value.split(" ", 1)
        if unit != "bytes":
            return None
        return int(rest.split("-", 1)[0])
    except (ValueError, IndexError):
        return None


def _status_message(url: str, status: int, reason: str | None) -> str:
    what = f"HTTP {status} {reason or ''}".strip()
    if status == 404:
        hint = "the file is not there: the manifest or the mirror is out of date"
    elif status in (401, 403, 407):
        hint = "access was refused: check the URL, the credentials or the mirror's permissions"
    elif status >= 500:
        hint = "the server kept failing after retries: try again later or set " + MIRROR_ENV
    else:
        hint = "check the URL"
    return f"could not download {url}: {what}; {hint}"
