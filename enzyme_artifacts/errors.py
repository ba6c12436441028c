"""The exception tree of :mod:`enzyme_artifacts`.

Every error raised on purpose by this package derives from :class:`ArtifactError` and
also from the built-in exception it resembles, so callers may catch either.  Messages
say what happened, to which file, entry or URL, and what to do next.  A bad value of an
``ENZYME_ARTIFACTS_*`` variable raises :class:`enzyme_artifacts._env.EnvironmentValueError`
(a :class:`ValueError` naming the variable) instead.

::

    ArtifactError
    ├── ManifestError            (ValueError)        an Artifacts.toml is malformed
    ├── UnsupportedPlatformError (RuntimeError)      no manifest entry fits this host / LLVM
    ├── LLVMNotFoundError        (FileNotFoundError) no usable shared libLLVM of the wanted major
    ├── ArtifactNotFoundError    (FileNotFoundError) not installed and not fetched
    │   └── OfflineError                             ENZYME_ARTIFACTS_OFFLINE forbids fetching
    ├── DownloadError            (OSError)           every source of an entry failed
    │   ├── HashMismatchError                        size or sha256 differ from the manifest
    │   └── DownloadTimeoutError (TimeoutError)      over the deadline or under the minimum rate
    ├── UnsafeArchiveError       (ValueError)        an archive member would escape its folder,
    │   │                                            or the archive exceeds its bounds
    │   └── CorruptArchiveError                      truncated or unreadable archive
    ├── InvalidOverrideError     (ValueError)        a dev/env/override library was refused
    │   └── PluginValidationError                    ... by the check in a child process
    │       └── ProfileMismatchError                 it has another C API than the one asked for
    ├── NotElfError              (ValueError)        not an ELF file / unreadable dynamic section
    ├── ElfRewriteError          (RuntimeError)      a DT_NEEDED rewrite cannot be done
    └── CacheError               (OSError)           the cache folder is unusable or corrupted
        └── LockTimeoutError     (TimeoutError)      another process held the lock too long
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ArtifactError",
    "ArtifactNotFoundError",
    "CacheError",
    "CorruptArchiveError",
    "DownloadError",
    "DownloadTimeoutError",
    "ElfRewriteError",
    "HashMismatchError",
    "InvalidOverrideError",
    "LLVMNotFoundError",
    "LockTimeoutError",
    "ManifestError",
    "NotElfError",
    "OfflineError",
    "PluginValidationError",
    "ProfileMismatchError",
    "UnsafeArchiveError",
    "UnsupportedPlatformError",
]


class ArtifactError(Exception):
    """Base class of every error raised by :mod:`enzyme_artifacts`."""


class ManifestError(ArtifactError, ValueError):
    """An Artifacts.toml is malformed; the message names the file, the entry and the field."""


class UnsupportedPlatformError(ArtifactError, RuntimeError):
    """The manifest has no entry for this host platform and LLVM major."""


class LLVMNotFoundError(ArtifactError, FileNotFoundError):
    """No shared libLLVM of the wanted major was found or none passed the probes.

    ``major`` is the LLVM major searched for; ``attempts`` every place tried (each with
    ``origin``, ``where``, ``path``, ``outcome``), in search order.
    """

    def __init__(self, message: str, *, major: int | None = None, attempts: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.major = major
        self.attempts = tuple(attempts)


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """The artifact is not installed and was not fetched."""


class OfflineError(ArtifactNotFoundError):
    """``ENZYME_ARTIFACTS_OFFLINE`` is set and the artifact is not in the cache."""


class DownloadError(ArtifactError, OSError):
    """Every download source of an artifact failed (network, HTTP status, truncated body).

    ``status`` is the HTTP status when a server refused (``None`` otherwise); ``reason``
    is ``"status"``, ``"tls"`` (certificate verification failed) or ``""``.
    """

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class HashMismatchError(DownloadError):
    """Downloaded bytes do not match the manifest's size or sha256; nothing was kept."""


class DownloadTimeoutError(DownloadError, TimeoutError):
    """A download went past ``ENZYME_ARTIFACTS_DOWNLOAD_DEADLINE`` or stayed below
    ``ENZYME_ARTIFACTS_MIN_RATE``; the partial file was deleted."""


class UnsafeArchiveError(ArtifactError, ValueError):
    """An archive member would be written outside its folder (absolute, ``..``, a link
    other than a sibling link, a device), or the archive has more members or more bytes
    than its bounds allow; nothing was left in the destination."""


class CorruptArchiveError(UnsafeArchiveError):
    """The archive cannot be read to its end: truncated, damaged or not a tar archive."""


class InvalidOverrideError(ArtifactError, ValueError):
    """A dev or environment override is not a usable LLVMEnzyme library for this LLVM."""


class PluginValidationError(InvalidOverrideError):
    """A library failed the check made in a child process before it is loaded here: it
    could not be loaded (or crashed while loading), lacks a symbol of its C-API profile,
    or a C-API call returned NULL (exported names without a working Enzyme behind them).

    ``library`` is the file checked, ``check`` the step that failed (``"load"``,
    ``"symbols"``, ``"calls"``, ``"probe"`` (no C-API profile gave the right derivatives),
    ``"crash"``, ``"timeout"``, ``"profile"``), ``capi`` the profile asked for (empty when
    any known profile would do).
    """

    def __init__(self, message: str, *, library: str = "", check: str = "", capi: str = "") -> None:
        super().__init__(message)
        self.library = library
        self.check = check
        self.capi = capi


class ProfileMismatchError(PluginValidationError):
    """The library works, but through another C-API profile than the one asked for (the
    manifest entry's ``capi``, ``ENZYME_ARTIFACTS_CAPI``, ``dev --capi``): binding it as
    asked would pass arguments in the wrong slots.

    ``capi`` is the profile asked for, ``found`` the one the probe identified.
    """

    def __init__(self, message: str, *, library: str = "", capi: str = "", found: str = "") -> None:
        super().__init__(message, library=library, check="profile", capi=capi)
        self.found = found


class NotElfError(ArtifactError, ValueError):
    """The file is not an ELF object, or its dynamic section cannot be read."""


class ElfRewriteError(ArtifactError, RuntimeError):
    """A ``DT_NEEDED`` rewrite cannot be done (entry absent, a symbolic link, no room and
    no patchelf)."""


class CacheError(ArtifactError, OSError):
    """The cache folder cannot be used (not writable, corrupted record, lock failure)."""


class LockTimeoutError(CacheError, TimeoutError):
    """Another process held a lock of the cache longer than ``ENZYME_ARTIFACTS_LOCK_TIMEOUT``.

    ``holder`` is what that process wrote beside the lock (``pid``, ``host``, ``since``,
    ``purpose``), empty when it wrote nothing.
    """

    def __init__(self, message: str, *, holder: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.holder = dict(holder or {})
