"""Which LLVMEnzyme library this process should load, and the libLLVM to load before it.

:func:`resolve` is the one question the frontend asks.  The answer, in this order:

1. ``ENZYME_ARTIFACTS_LIBRARY=/path/LLVMEnzyme-N.so`` -- a per-process override, used as
   is after cheap checks (it exists; its ``DT_NEEDED`` names no libLLVM of another major).
   Its LLVM major is the ``llvm`` argument, else ``ENZYME_ARTIFACTS_LLVM_VERSION``, else
   the ``N`` in its file name, else the major of the libLLVM its ``DT_NEEDED`` names;
2. an entry of ``Overrides.toml`` for that major (``enzyme-artifacts dev``), validated
   again when its file changed since it was last validated (see :mod:`.overrides`);
3. the installed artifact for this platform and major (:class:`~.cache.Cache.lookup`,
   no lock, no hashing);
4. an artifact installed as a Python package (a ``py3-none-<platform>`` wheel announcing
   it in the entry point group ``enzyme_artifacts.prefixes``, see :mod:`.prefixes`);
5. a fetch (:meth:`~.cache.Cache.install`), unless ``fetch=False`` or
   ``ENZYME_ARTIFACTS_OFFLINE=1``.

The host platform's C++ string ABI is taken from the libLLVM found, so a cxx03 LLVM
never gets a cxx11 plugin.  The libLLVM's soname is passed to the cache, which binds
the plugin's ``DT_NEEDED`` to it.

C-API profile (``Resolved.capi``): ``ENZYME_ARTIFACTS_CAPI`` when set (it must name a
profile of :mod:`enzyme_artifacts.capi`), else the ``capi`` of the manifest entry for
this platform and major, else, for a library that has no entry (an env override on a
platform the manifest does not cover), the newest profile this package knows.

``llvm=None`` means: ``ENZYME_ARTIFACTS_LLVM_VERSION``; else the major of
``ENZYME_ARTIFACTS_LIBRARY`` when set; else the highest major that has both a manifest
entry (or an override) for this platform and a findable libLLVM.

Environment variables: ``ENZYME_ARTIFACTS_LIBRARY``, ``ENZYME_ARTIFACTS_LLVM_VERSION``,
``ENZYME_ARTIFACTS_CAPI``, ``ENZYME_ARTIFACTS_OFFLINE``, plus those of
:mod:`.llvm`, :mod:`.overrides`, :mod:`.manifest` and :mod:`.cache`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import (
    ArtifactNotFoundError,
    InvalidOverrideError,
    LLVMNotFoundError,
    OfflineError,
    UnsupportedPlatformError,
)

if TYPE_CHECKING:
    from .llvm import LLVMLibrary
    from .manifest import ArtifactEntry, Manifest
    from .platforms import Platform

__all__ = [
    "ENV_CAPI",
    "ENV_LIBRARY",
    "ENV_LLVM_VERSION",
    "ENV_OFFLINE",
    "Resolved",
    "choose_capi",
    "default_llvm_major",
    "host_platform_for",
    "locate",
    "offline",
    "resolve",
]

ENV_LIBRARY = "ENZYME_ARTIFACTS_LIBRARY"
ENV_LLVM_VERSION = "ENZYME_ARTIFACTS_LLVM_VERSION"
ENV_CAPI = "ENZYME_ARTIFACTS_CAPI"
ENV_OFFLINE = "ENZYME_ARTIFACTS_OFFLINE"



@dataclass(frozen=True, slots=True)
class Resolved:
    """The libraries to load, in order: ``llvm.path`` (``RTLD_GLOBAL``), then ``library``.

    Invariants: ``library`` exists; ``llvm.major`` is the LLVM major the library was
    built for (as far as its name and ``DT_NEEDED`` tell); ``capi`` is a profile known
    to :mod:`enzyme_artifacts.capi`.  ``origin`` is ``"env"``, ``"override"``,
    ``"cache"``, ``"package"`` or ``"fetched"``; ``entry`` is the manifest entry behind the library
    (``None`` for an env override or a local build with no entry).
    """

    library: Path
    llvm: LLVMLibrary
    capi: str
    enzyme_version: str | None
    origin: str
    entry: ArtifactEntry | None


def offline() -> bool:
    """True when ``ENZYME_ARTIFACTS_OFFLINE`` asks for no network at all (``1/true/yes/on``).

    Raises :class:`ValueError` naming the variable for a value that is not a boolean.
    """
    from .download import is_offline

    return is_offline()


def _env_major() -> int | None:
    value = os.environ.get(ENV_LLVM_VERSION, "").strip()
    if not value:
        return None
    if not re.fullmatch(r"[1-9][0-9]*", value):
        raise ValueError(f"{ENV_LLVM_VERSION}={value!r} is not an LLVM major version such as 15")
    return int(value)


def _check_major(llvm: int) -> int:
    if isinstance(llvm, bool) or not isinstance(llvm, int) or llvm <= 0:
        raise ValueError(f"llvm must be a positive LLVM major version such as 15, not {llvm!r}")
    return llvm


def choose_capi(entry: ArtifactEntry | None, recorded: str | None = None) -> str:
    """The C-API profile to bind: ``ENZYME_ARTIFACTS_CAPI``, else ``recorded`` (an
    override's own ``capi``), else the entry's, else the newest known profile."""
    from . import capi

    value = os.environ.get(ENV_CAPI, "").strip()
    if value:
        if value not in capi.PROFILES:
            raise InvalidOverrideError(
                f"{ENV_CAPI}={value!r} names no known Enzyme C-API profile "
                f"(known: {', '.join(capi.known_profiles())}); unset it or pick one of those"
            )
        return value
    if recorded:
        return recorded
    if entry is not None:
        return entry.capi
    return newest_profile()


def newest_profile() -> str:
    """The newest C-API profile known to :mod:`enzyme_artifacts.capi` (by version order)."""
    from packaging.version import InvalidVersion, Version

    from . import capi

    def key(p: str) -> tuple[int, object]:
        try:
            return (1, Version(p.lstrip("v")))
        except InvalidVersion:
            return (0, p)

    return max(capi.known_profiles(), key=key)


def host_platform_for(llvm: LLVMLibrary | None) -> Platform:
    """The host platform with the C++ string ABI of ``llvm`` (unknown when ``None``)."""
    from .platforms import host_platform

    return host_platform(llvm.cxxstring_abi if llvm is not None else None)


def _manifest() -> Manifest:
    from .manifest import load_manifest

    return load_manifest()


def _entry_or_none(platform: Platform, llvm: int) -> ArtifactEntry | None:
    try:
        return _manifest().select(platform, llvm)
    except UnsupportedPlatformError:
        return None


def default_llvm_major() -> int:
    """The LLVM major used when a caller passes none (see the module docstring)."""
    env = _env_major()
    if env is not None:
        return env
    lib = os.environ.get(ENV_LIBRARY)
    if lib:
        from .overrides import plugin_llvm_major

        major, _ = plugin_llvm_major(Path(lib))
        if major is not None:
            return major
    from .llvm import search_libllvm
    from .overrides import load_overrides
    from .platforms import host_platform

    majors = {e.llvm_version for e in _manifest().for_platform(host_platform())}
    majors |= set(load_overrides())
    if not majors:
        raise UnsupportedPlatformError(
            f"the manifest {_manifest().path} has no entry for {host_platform()} and no override "
            f"is set; build Enzyme locally and set {ENV_LIBRARY} or run `enzyme-artifacts dev PATH --llvm N`"
        )
    searches = [search_libllvm(m) for m in sorted(majors, reverse=True)]
    for s in searches:
        if s.found is not None:
            return s.major
    if len(searches) == 1:
        raise searches[0].error()
    raise LLVMNotFoundError(
        "no shared libLLVM of any LLVM major with an Enzyme for this platform "
        f"({', '.join(str(s.major) for s in searches)}) was found.\n\n"
        + "\n\n".join(str(s.error()) for s in searches)
    )


# (path, size, mtime_ns, major) of ENZYME_ARTIFACTS_LIBRARY files that passed check_needed
_CHECKED_ENV: set[tuple[str, int, int, int]] = set()


def _env_override(path_text: str, llvm: int | None) -> Resolved:
    from .llvm import find_libllvm
    from .overrides import check_needed, plugin_llvm_major

    path = Path(path_text).expanduser()
    if not path.is_file():
        raise InvalidOverrideError(
            f"{ENV_LIBRARY}={path_text} does not exist or is not a file; "
            f"point it at an LLVMEnzyme-N shared library or unset it"
        )
    if llvm is None:
        llvm = _env_major()
    if llvm is None:
        llvm, _ = plugin_llvm_major(path)
    if llvm is None:
        raise InvalidOverrideError(
            f"cannot tell which LLVM major {path} (from {ENV_LIBRARY}) was built for: its name "
            f"has no LLVMEnzyme-N and its DT_NEEDED names no libLLVM; set {ENV_LLVM_VERSION}=N "
            "or pass llvm=N"
        )
    try:
        st = path.stat()
        memo = (str(path), st.st_size, st.st_mtime_ns, llvm)
    except OSError:
        memo = None
    if memo is None or memo not in _CHECKED_ENV:
        check_needed(path, llvm, what=f"{ENV_LIBRARY}={path}", remedy=f"unset {ENV_LIBRARY}")
        if memo is not None:
            _CHECKED_ENV.add(memo)
    llvm_lib = find_libllvm(llvm)
    entry = _entry_or_none(host_platform_for(llvm_lib), llvm)
    return Resolved(
        library=path,
        llvm=llvm_lib,
        capi=choose_capi(entry),
        enzyme_version=None,
        origin="env",
        entry=entry,
    )


def resolve(llvm: int | None = None, *, fetch: bool = True, progress: bool | None = None) -> Resolved:
    """Decide which Enzyme library to load for LLVM major ``llvm`` (see the module docstring).

    Raises :class:`~.errors.LLVMNotFoundError` (no libLLVM-N),
    :class:`~.errors.UnsupportedPlatformError` (no manifest entry),
    :class:`~.errors.InvalidOverrideError` (an override failed validation),
    :class:`~.errors.OfflineError` (offline and not installed),
    :class:`~.errors.ArtifactNotFoundError` (``fetch=False`` and not installed),
    :class:`~.errors.DownloadError` (every source failed).  ``progress`` controls the
    progress bar of a fetch (``None``: ``ENZYME_ARTIFACTS_PROGRESS``, else on a terminal).
    """
    if llvm is not None:
        _check_major(llvm)
    env_lib = os.environ.get(ENV_LIBRARY)
    if env_lib:
        return _env_override(env_lib, llvm)

    from .llvm import find_libllvm
    from .overrides import get_override, use_override

    major = llvm if llvm is not None else default_llvm_major()
    llvm_lib = find_libllvm(major)
    platform = host_platform_for(llvm_lib)

    override = get_override(major)
    if override is not None:
        entry = _entry_or_none(platform, major)
        capi = choose_capi(entry, recorded=override.capi)
        library = use_override(override, llvm_lib, capi)
        return Resolved(
            library=library,
            llvm=llvm_lib,
            capi=capi,
            enzyme_version=override.enzyme_version,
            origin="override",
            entry=entry,
        )

    from .cache import Cache

    entry = _manifest().select(platform, major)
    cache = Cache()
    installed = cache.lookup(entry, llvm_soname=llvm_lib.soname)
    origin = "cache"
    if installed is None:
        from .prefixes import find_installed

        packaged = find_installed(entry, llvm_lib.soname)
        if packaged is not None:
            return Resolved(
                library=packaged,
                llvm=llvm_lib,
                capi=choose_capi(entry),
                enzyme_version=entry.enzyme_version,
                origin="package",
                entry=entry,
            )
        if offline():
            raise OfflineError(
                f"{entry.key} is not in the cache {cache.root} and {ENV_OFFLINE} forbids fetching it; "
                f"unset {ENV_OFFLINE} (or run `enzyme-artifacts fetch --llvm {major}` while online)"
            )
        if not fetch:
            raise ArtifactNotFoundError(
                f"{entry.key} is not installed in {cache.root}; run `enzyme-artifacts fetch --llvm {major}` "
                "or call locate() with fetch=True"
            )
        installed = cache.install(entry, llvm_soname=llvm_lib.soname, progress=progress)
        origin = "fetched"
    return Resolved(
        library=installed.library,
        llvm=llvm_lib,
        capi=choose_capi(entry),
        enzyme_version=entry.enzyme_version,
        origin=origin,
        entry=entry,
    )


def locate(llvm: int | None = None, *, fetch: bool = True) -> Path:
    """The LLVMEnzyme library for LLVM major ``llvm``: ``resolve(llvm, fetch=fetch).library``."""
    return resolve(llvm, fetch=fetch).library

