"""The exception tree of :mod:`enzyme_artifacts`.

Every error raised on purpose by this package derives from :class:`ArtifactError` and
also from the built-in exception it resembles, so callers may catch either.  Messages
say what happened, to which file, entry or URL, and what to do next.

::

    ArtifactError
    ├── ManifestError            (ValueError)        an Artifacts.toml is malformed
    ├── UnsupportedPlatformError (RuntimeError)      no manifest entry fits this host / LLVM
    ├── LLVMNotFoundError        (FileNotFoundError) no usable shared libLLVM of the wanted major
    ├── ArtifactNotFoundError    (FileNotFoundError) not installed and not fetched
    │   └── OfflineError                             ENZYME_ARTIFACTS_OFFLINE forbids fetching
    ├── DownloadError            (OSError)           every source of an entry failed
    │   └── HashMismatchError                        size or sha256 differ from the manifest
    ├── UnsafeArchiveError       (ValueError)        an archive member would escape its folder
    ├── InvalidOverrideError     (ValueError)        a dev/override library failed validation
    └── CacheError               (OSError)           the cache folder is unusable or corrupted
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "ArtifactNotFoundError",
    "CacheError",
    "DownloadError",
    "HashMismatchError",
    "InvalidOverrideError",
    "LLVMNotFoundError",
    "ManifestError",
    "OfflineError",
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
    """No shared libLLVM of the wanted major was found or none passed the probes."""


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """The artifact is not installed and was not fetched."""


class OfflineError(ArtifactNotFoundError):
    """``ENZYME_ARTIFACTS_OFFLINE`` is set and the artifact is not in the cache."""


class DownloadError(ArtifactError, OSError):
    """Every download source of an artifact failed (network, HTTP status, truncated body)."""


class HashMismatchError(DownloadError):
    """Downloaded bytes do not match the manifest's size or sha256; nothing was kept."""


class UnsafeArchiveError(ArtifactError, ValueError):
    """An archive member would be written outside its folder (absolute, ``..``, link, device)."""


class InvalidOverrideError(ArtifactError, ValueError):
    """A dev or environment override is not a usable LLVMEnzyme library for this LLVM."""


class CacheError(ArtifactError, OSError):
    """The cache folder cannot be used (not writable, corrupted record, lock failure)."""
