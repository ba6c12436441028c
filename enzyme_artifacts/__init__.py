"""enzyme_artifacts: which LLVMEnzyme-N binary goes with this machine and its LLVM, and where it is.

A JLL-style loader in the manner of Julia's Enzyme_jll and Pkg artifacts: a manifest of
published binaries (``Artifacts.toml``), a verified, content-addressed cache filled
lazily, discovery of the host's shared libLLVM-N, and developer overrides.

>>> import enzyme_artifacts
>>> enzyme_artifacts.locate(llvm=15)  # doctest: +SKIP
PosixPath('/home/me/.cache/enzyme-artifacts/...')

The public names below are imported lazily (PEP 562), so ``import enzyme_artifacts``
does no I/O and loads none of the submodules.  Environment variables (all prefixed
``ENZYME_ARTIFACTS_``) are listed in the README and in the docstrings of
:mod:`.resolver`, :mod:`.llvm`, :mod:`.overrides`, :mod:`.manifest`, :mod:`.cache` and
:mod:`.download`.
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
    "DownloadError",
    "HashMismatchError",
    "InstalledArtifact",
    "InvalidOverrideError",
    "LLVMLibrary",
    "LLVMNotFoundError",
    "Manifest",
    "ManifestError",
    "OfflineError",
    "Override",
    "Platform",
    "Resolved",
    "UnsafeArchiveError",
    "UnsupportedPlatformError",
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
    "HashMismatchError": "errors",
    "UnsafeArchiveError": "errors",
    "InvalidOverrideError": "errors",
    "CacheError": "errors",
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
    "dev": "overrides",
    "undev": "overrides",
}

if TYPE_CHECKING:
    from .cache import Cache, InstalledArtifact
    from .errors import (
        ArtifactError,
        ArtifactNotFoundError,
        CacheError,
        DownloadError,
        HashMismatchError,
        InvalidOverrideError,
        LLVMNotFoundError,
        ManifestError,
        OfflineError,
        UnsafeArchiveError,
        UnsupportedPlatformError,
    )
    from .llvm import LLVMLibrary, find_libllvm
    from .manifest import ArtifactEntry, Manifest, load_manifest
    from .overrides import Override, dev, undev
    from .platforms import Platform, host_platform
    from .resolver import Resolved, locate, resolve


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
