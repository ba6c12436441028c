"""enzyme_artifacts: which LLVMEnzyme-N binary goes with this machine and its LLVM, and where it is.

A JLL-style loader in the manner of Julia's Enzyme_jll and Pkg artifacts: a manifest of
published binaries (``Artifacts.toml``), a verified, content-addressed cache filled
lazily, discovery of the host's shared libLLVM-N, and developer overrides.

>>> import enzyme_artifacts
>>> enzyme_artifacts.locate(llvm=15)  # doctest: +SKIP
PosixPath('/home/me/.cache/enzyme-artifacts/...')

The public names below are imported lazily (PEP 562), so ``import enzyme_artifacts``
does no I/O and loads none of the submodules.  ``__version__`` is the version of the
``enzyme-py`` distribution (:mod:`._version`).

Modules, each one concern (none imports another in a cycle):

=================  =================================================================
``platforms``      platform triplets; the host's
``manifest``       ``Artifacts.toml``: entries and their sources
``capi``           Enzyme C-API profiles: symbols, signatures, the calls checked
``download``       verified HTTP(S)/file downloads: retries, resume, deadline, rate
``_extract``       safe, bounded tarball extraction
``_wheel``         an artifact from one member of a wheel found by pip's configuration
``_lock``          the inter-process lock that says who holds it
``cache``          the content-addressed store
``elf``            reading and rewriting ``DT_NEEDED`` (public)
``plugin``         inspecting a library: its LLVM major, cheap checks, the child check
``llvm``           finding a shared libLLVM-N (one module per OS)
``selection``      which LLVM major and which C-API profile
``overrides``      ``Overrides.toml``
``develop``        the ``dev``/``undev`` workflow
``resolver``       ``resolve()``: env, override, cache, package, fetch
``status``         the diagnosis behind ``status`` and ``verify``
``cli``            the ``enzyme-artifacts`` command (parsing and rendering only)
``paths``          every folder, from one ``PlatformDirs``
``_env``           the one reader of environment variables
=================  =================================================================

Environment variables (all optional; an empty value means unset):

=====================================  ==============================================
``ENZYME_ARTIFACTS_LIBRARY``           an LLVMEnzyme library to use as is (validated
                                       in a child process first)
``ENZYME_ARTIFACTS_LLVM_VERSION``      the LLVM major to use when none is passed
``ENZYME_ARTIFACTS_CAPI``              the C-API profile a library must probe as
``ENZYME_ARTIFACTS_LLVM_LIBRARY``      a shared libLLVM tried before any other place
``ENZYME_ARTIFACTS_MANIFEST``          a manifest replacing the bundled one
``ENZYME_ARTIFACTS_CACHE``             the cache root
``ENZYME_ARTIFACTS_CONFIG``            the folder of ``Overrides.toml``
``ENZYME_ARTIFACTS_DEV_DIR``           where ``dev`` copies artifacts
``ENZYME_ARTIFACTS_OFFLINE``           ``1``: no network at all
``ENZYME_ARTIFACTS_MIRROR``            a base URL replacing that of tarball URLs
``ENZYME_ARTIFACTS_ALLOW_HTTP``        ``1``: allow plain http to non-loopback hosts
``ENZYME_ARTIFACTS_CONNECT_TIMEOUT``   seconds to connect (10)
``ENZYME_ARTIFACTS_READ_TIMEOUT``      the longest silence in seconds (60)
``ENZYME_ARTIFACTS_DOWNLOAD_DEADLINE`` seconds one download may take in all (1200)
``ENZYME_ARTIFACTS_MIN_RATE``          bytes/s over each read-timeout window (4K)
``ENZYME_ARTIFACTS_RETRIES``           retries per download (4)
``ENZYME_ARTIFACTS_PROGRESS``          ``0``/``1``: the progress bar off/on
``ENZYME_ARTIFACTS_LOCK_TIMEOUT``      seconds to wait for the install lock (1800)
``ENZYME_ARTIFACTS_MAX_MEMBERS``       members an archive may have (1000)
``ENZYME_ARTIFACTS_MAX_EXPANSION``     bytes of members per byte of archive (32)
=====================================  ==============================================
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "ArtifactEntry",
    "ArtifactError",
    "ArtifactNotFoundError",
    "Cache",
    "CacheError",
    "CorruptArchiveError",
    "DownloadError",
    "DownloadTimeoutError",
    "HashMismatchError",
    "InstalledArtifact",
    "InvalidOverrideError",
    "LLVMLibrary",
    "LLVMNotFoundError",
    "LockTimeoutError",
    "Manifest",
    "ManifestError",
    "OfflineError",
    "Override",
    "Platform",
    "PluginValidationError",
    "ProfileMismatchError",
    "Resolved",
    "UnsafeArchiveError",
    "UnsupportedPlatformError",
    "__version__",
    "dev",
    "find_libllvm",
    "host_platform",
    "load_manifest",
    "locate",
    "resolve",
    "undev",
]

_LAZY: dict[str, str] = {
    "ArtifactError": "errors",
    "ManifestError": "errors",
    "UnsupportedPlatformError": "errors",
    "LLVMNotFoundError": "errors",
    "ArtifactNotFoundError": "errors",
    "OfflineError": "errors",
    "DownloadError": "errors",
    "DownloadTimeoutError": "errors",
    "HashMismatchError": "errors",
    "UnsafeArchiveError": "errors",
    "CorruptArchiveError": "errors",
    "InvalidOverrideError": "errors",
    "PluginValidationError": "errors",
    "ProfileMismatchError": "errors",
    "CacheError": "errors",
    "LockTimeoutError": "errors",
    "Platform": "platforms",
    "host_platform": "platforms",
    "ArtifactEntry": "manifest",
    "Manifest": "manifest",
    "load_manifest": "manifest",
    "Cache": "cache",
    "InstalledArtifact": "cache",
    "LLVMLibrary": "llvm",
    "find_libllvm": "llvm",
    "Resolved": "resolver",
    "resolve": "resolver",
    "locate": "resolver",
    "Override": "overrides",
    "dev": "develop",
    "undev": "develop",
}

if TYPE_CHECKING:
    from .cache import Cache, InstalledArtifact
    from .develop import dev, undev
    from .errors import (
        ArtifactError,
        ArtifactNotFoundError,
        CacheError,
        CorruptArchiveError,
        DownloadError,
        DownloadTimeoutError,
        HashMismatchError,
        InvalidOverrideError,
        LLVMNotFoundError,
        LockTimeoutError,
        ManifestError,
        OfflineError,
        PluginValidationError,
        ProfileMismatchError,
        UnsafeArchiveError,
        UnsupportedPlatformError,
    )
    from .llvm import LLVMLibrary, find_libllvm
    from .manifest import ArtifactEntry, Manifest, load_manifest
    from .overrides import Override
    from .platforms import Platform, host_platform
    from .resolver import Resolved, locate, resolve

    __version__: str


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from ._version import distribution_version

        value: Any = distribution_version()
    else:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
