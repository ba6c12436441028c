"""Verified HTTP downloads of artifact tarballs.

:func:`download` streams a URL into a uniquely named temporary file beside the target,
checks its size and sha256, and only then renames it to the target: a reader never sees
a partial or unverified file.  A body cut short (with or without ``Content-Length``) is
retried, resuming with a ``Range`` request; a server that ignores ``Range`` (answers
``200``) is read again from the start.  Connection errors and ``500/502/503/504``
answers are retried by urllib3 with exponential backoff.

Environment variables (all optional):

``ENZYME_ARTIFACTS_OFFLINE=1``
    make no request at all; :func:`download` raises :class:`OfflineError`.
``ENZYME_ARTIFACTS_MIRROR=<base url>``
    replace everything before the file name of every URL (``https://a/b/x.tar.gz`` with
    ``ENZYME_ARTIFACTS_MIRROR=https://m/e`` becomes ``https://m/e/x.tar.gz``).
``ENZYME_ARTIFACTS_ALLOW_HTTP=1``
    allow plain ``http`` to hosts other than loopback (loopback is always allowed).
``ENZYME_ARTIFACTS_CONNECT_TIMEOUT`` / ``ENZYME_ARTIFACTS_READ_TIMEOUT``
    seconds, default 10 and 60 (the read timeout bounds the silence between two reads).
``ENZYME_ARTIFACTS_RETRIES``
    retries per download for connection errors, 5xx answers and cut-short bodies (default 4).
``ENZYME_ARTIFACTS_PROGRESS=0|1``
    force the progress bar (on stderr) off or on; by default it is shown when stderr is
    a terminal.

``requests`` is imported on the first download, never at import time.
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
from typing import Any
from urllib.parse import urlsplit

from .errors import DownloadError, HashMismatchError, OfflineError

__all__ = [
    "DownloadSettings",
    "check_url_allowed",
    "download",
    "env_flag",
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

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_flag(name: str, default: bool = False) -> bool:
    """Read a boolean environment variable (``1/true/yes/on`` or ``0/false/no/off``).

    Raises :class:`ValueError` naming the variable for any other value.
    """
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean; use 1 or 0")


def is_offline() -> bool:
    """True when ``ENZYME_ARTIFACTS_OFFLINE`` is set to a true value."""
    return env_flag(OFFLINE_ENV)


def progress_enabled(progress: bool | None = None) -> bool:
    """The explicit argument, else ``ENZYME_ARTIFACTS_PROGRESS``, else ``stderr.isatty()``."""
    if progress is not None:
        return progress
    if os.environ.get(PROGRESS_ENV, "").strip():
        return env_flag(PROGRESS_ENV)
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def mirror_url(url: str) -> str:
    """``url`` with its base replaced by ``ENZYME_ARTIFACTS_MIRROR`` (file name kept);
    ``url`` itself when the variable is unset or empty.

    With ``ENZYME_ARTIFACTS_MIRROR=https://m.example/enzyme``,
    ``https://a.example/x/y/E.tar.gz`` becomes ``https://m.example/enzyme/E.tar.gz``.
    """
    base = os.environ.get(MIRROR_ENV, "").strip()
    if not base:
        return url
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadError(f"{MIRROR_ENV}={base!r} is not an http(s) URL with a host")
    return base.rstrip("/") + "/" + name


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url_allowed(url: str) -> None:
    """Refuse anything but https, and http to loopback (or with ``ENZYME_ARTIFACTS_ALLOW_HTTP=1``)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        if _is_loopback(parts.hostname) or env_flag(ALLOW_HTTP_ENV):
            return
        raise DownloadError(
            f"refusing plain http for {url}: bytes could be altered in transit (they would still be "
            f"hash-checked). Use https, or set {ALLOW_HTTP_ENV}=1 to allow it"
        )
    raise DownloadError(f"unsupported URL {url!r}: only https (and http to loopback) can be fetched")


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise DownloadError(f"{name}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise DownloadError(f"{name}={raw!r} must be positive")
    return value


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise DownloadError(f"{name}={raw!r} is not an integer") from None
    if value < 0:
        raise DownloadError(f"{name}={raw!r} must not be negative")
    return value


def _check_redirect(response: Any, *args: Any, **kwargs: Any) -> Any:
    """A requests response hook: refuse a redirect to a URL :func:`check_url_allowed` refuses,
    before it is followed."""
    if response.is_redirect:
        from urllib.parse import urljoin

        check_url_allowed(urljoin(response.url, response.headers.get("Location", "")))
    return response


@dataclass(frozen=True, slots=True)
class DownloadSettings:
    """Timeouts (seconds), retry budget and backoff; :meth:`from_env` reads the environment."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 4
    backoff_factor: float = 0.5

    @classmethod
    def from_env(cls) -> DownloadSettings:
        default = cls()
        return cls(
            connect_timeout=_float_env(CONNECT_TIMEOUT_ENV, default.connect_timeout),
            read_timeout=_float_env(READ_TIMEOUT_ENV, default.read_timeout),
            retries=_int_env(RETRIES_ENV, default.retries),
            backoff_factor=default.backoff_factor,
        )


def _user_agent() -> str:
    try:
        from importlib.metadata import version

        v = version("enzyme-py")
    except (ImportError, LookupError):
        v = "unknown"
    return f"enzyme-artifacts/{v} (+enzyme-py)"


def _session(settings: DownloadSettings) -> Any:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(
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
    s = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.hooks["response"].append(_check_redirect)
    s.headers["User-Agent"] = _user_agent()
    # Never let requests decode gzip: the sha256 is of the bytes as stored.
    s.headers["Accept-Encoding"] = "identity"
    return s


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str,
    size: int | None = None,
    progress: bool | None = None,
    settings: DownloadSettings | None = None,
    apply_mirror: bool = True,
    on_request: Callable[[str, dict[str, str]], None] | None = None,
) -> Path:
    """Fetch ``url`` into ``dest`` (a file path whose folder exists), verified.

    The bytes go to ``<dest folder>/.<dest name>.<random>.part``; only when their size
    equals ``size`` (when given) and their sha256 equals ``sha256`` is the file renamed to
    ``dest``.  On a mismatch the temporary file is deleted and
    :class:`HashMismatchError` names both digests.  Other failures raise
    :class:`DownloadError` (with the URL and what to try), after bounded retries.
    ``on_request(url, headers)`` is called before every request (tests, logging).
    """
    if is_offline():
        raise OfflineError(
            f"{OFFLINE_ENV} is set, so {url} was not downloaded; unset it or install the artifact "
            "on a connected machine and copy the cache (ENZYME_ARTIFACTS_CACHE)"
        )
    dest = Path(dest)
    expected = sha256.lower()
    if apply_mirror:
        url = mirror_url(url)
    check_url_allowed(url)
    settings = settings or DownloadSettings.from_env()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "r+b") as out:
            digest, total = _fetch_into(out, url, size, progress, settings, on_request)
            out.flush()
            os.fsync(out.fileno())
        if size is not None and total != size:
            tmp.unlink(missing_ok=True)
            raise HashMismatchError(
                f"{url} gave {total} bytes, the manifest says {size}; the download was deleted. "
                "The file on the server changed or is damaged; try again or use another mirror "
                f"({MIRROR_ENV})"
            )
        if digest != expected:
            tmp.unlink(missing_ok=True)
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


def _fetch_into(
    out: Any,
    url: str,
    size: int | None,
    progress: bool | None,
    settings: DownloadSettings,
    on_request: Callable[[str, dict[str, str]], None] | None,
) -> tuple[str, int]:
    import requests
    import urllib3

    session = _session(settings)
    bar = None
    if progress_enabled(progress):
        from tqdm import tqdm

        bar = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=url.rsplit("/", 1)[-1], file=sys.stderr, leave=False)
    hasher = hashlib.sha256()
    written = 0
    failures: list[str] = []
    try:
        for attempt in range(settings.retries + 1):
            headers: dict[str, str] = {}
            if written:
                headers["Range"] = f"bytes={written}-"
            if on_request is not None:
                on_request(url, headers)
            r = _open(session, url, headers, settings)
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
                        if bar is not None:
                            bar.reset(total=size)
                        written = 0
                else:
                    raise DownloadError(_status_message(url, r.status_code, r.reason))
                announced = _announced_size(r)
                if size is not None and announced is not None and announced != size:
                    raise HashMismatchError(
                        f"{url} has {announced} bytes, the manifest says {size}; nothing was kept. "
                        "The file on the server changed or is damaged; try another mirror "
                        f"({MIRROR_ENV}) or report it"
                    )
                try:
                    # raw bytes as transferred: a misconfigured server's Content-Encoding must
                    # not change what is hashed
                    for chunk in r.raw.stream(1 << 16, decode_content=False):
                        if not chunk:
                            continue
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
                        if bar is not None:
                            bar.update(len(chunk))
                except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as e:
                    # a body cut short (Content-Length not reached) or a stall mid-body
                    failures.append(f"connection broken after {written} bytes: {_short(e)}")
                    _pause(settings, attempt)
                    continue
                if size is not None and written < size:
                    failures.append(f"body ended after {written} of {size} bytes")
                    _pause(settings, attempt)
                    continue
                return hasher.hexdigest(), written
        raise DownloadError(
            f"could not download {url}: {settings.retries + 1} attempts failed "
            f"({'; '.join(failures[-3:])}). The server is slow or the connection unstable: retry "
            f"later, raise {READ_TIMEOUT_ENV}, or set {MIRROR_ENV}"
        )
    finally:
        if bar is not None:
            bar.close()
        session.close()


def _pause(settings: DownloadSettings, attempt: int) -> None:
    """Exponential backoff before retrying a broken body (none after the last attempt)."""
    if attempt < settings.retries:
        time.sleep(min(settings.backoff_factor * (2 ** attempt), 10.0))


def _open(session: Any, url: str, headers: dict[str, str], settings: DownloadSettings) -> Any:
    """Send the GET (urllib3 retries connection errors and 5xx); map failures to DownloadError."""
    import requests

    try:
        return session.get(url, headers=headers, stream=True,
                           timeout=(settings.connect_timeout, settings.read_timeout))
    except requests.exceptions.ConnectTimeout as e:
        raise DownloadError(
            f"could not connect to {url} within {settings.connect_timeout:g} s "
            f"(after {settings.retries} retries): {_short(e)}. Check the network, set {MIRROR_ENV}, "
            f"raise {CONNECT_TIMEOUT_ENV}, or use {OFFLINE_ENV}=1 with a filled cache"
        ) from None
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as e:
        if isinstance(e, requests.exceptions.ReadTimeout) or "ReadTimeoutError" in repr(e):
            raise DownloadError(
                f"{url} did not answer within {settings.read_timeout:g} s (after "
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
    elif status in (401, 403):
        hint = "access was refused: check the URL or the mirror's permissions"
    elif status >= 500:
        hint = "the server kept failing after retries: try again later or set " + MIRROR_ENV
    else:
        hint = "check the URL"
    return f"could not download {url}: {what}; {hint}"
