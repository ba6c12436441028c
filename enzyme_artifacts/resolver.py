"""Which LLVMEnzyme library this process should load, and the libLLVM to load before it.

:func:`resolve` is the one question the frontend asks.  The answer, in this order:

1. ``ENZYME_ARTIFACTS_LIBRARY=/path/LLVMEnzyme-N.so`` -- a per-process override.  Its LLVM
   major is the ``llvm`` argument, else ``ENZYME_ARTIFACTS_LLVM_VERSION``, else the ``N``
   in its file name, else the major of the libLLVM its ``DT_NEEDED`` names.  It is
   validated exactly as ``enzyme-artifacts dev PATH`` validates a build -- cheap checks,
   then child processes that load it and identify its C-API profile by differentiating
   known functions through each candidate profile
   (:func:`enzyme_artifacts.plugin.validate_plugin`, remembered by path, size and mtime)
   -- before anything loads it here.  It is a local build: its profile is the one it
   probes as (unless ``ENZYME_ARTIFACTS_CAPI`` asks for one), and ``entry`` is None;
2. an entry of ``Overrides.toml`` for that major (``enzyme-artifacts dev``), validated
   again when its file changed since it was last validated (:mod:`.develop`);
3. the installed artifact for this platform and major (:meth:`.cache.Cache.lookup`,
   no lock, no hashing);
4. an artifact installed as a Python package (a ``py3-none-<platform>`` wheel announcing
   it in the entry point group ``enzyme_artifacts.prefixes``, see :mod:`.prefixes`);
5. a fetch (:meth:`.cache.Cache.install`), unless ``fetch=False`` or
   ``ENZYME_ARTIFACTS_OFFLINE=1``.

The binary of a manifest entry (3-5) must probe as the entry's ``capi``: one that probes
as another profile is refused (:class:`~.errors.ProfileMismatchError`) at its first use,
and by ``enzyme-artifacts fetch``.  The LLVM major and the profile asked for are chosen
by :mod:`.selection`; the libLLVM's soname is passed to the cache, which binds the
plugin's ``DT_NEEDED`` to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .download import OFFLINE_ENV as ENV_OFFLINE
from .download import is_offline
from .errors import (
    ArtifactNotFoundError,
    InvalidOverrideError,
    OfflineError,
    UnsupportedPlatformError,
)
from .selection import CAPI_ENV as ENV_CAPI
from .selection import LIBRARY_ENV as ENV_LIBRARY
from .selection import LLVM_VERSION_ENV as ENV_LLVM_VERSION
from .selection import (
    asked_capi,
    check_major,
    default_llvm_major,
    entry_or_none,
    env_library,
    env_major,
    host_platform_for,
    manifest,
)

if TYPE_CHECKING:
    from .cache import InstalledArtifact
    from .llvm import LLVMLibrary
    from .manifest import ArtifactEntry

__all__ = [
    "ENV_CAPI",
    "ENV_LIBRARY",
    "ENV_LLVM_VERSION",
    "ENV_OFFLINE",
    "Explanation",
    "Resolved",
    "Step",
    "explain",
    "fetch",
    "locate",
    "offline",
    "resolve",
]


@dataclass(frozen=True, slots=True)
class Resolved:
    """The libraries to load, in order: ``llvm.path`` (``RTLD_GLOBAL``), then ``library``.

    Invariants: ``library`` exists; ``llvm.major`` is the LLVM major the library was
    built for (as far as its name and ``DT_NEEDED`` tell); ``capi`` is the profile the
    library probed as, in a child process, against that libLLVM.  ``origin`` is
    ``"env"``, ``"override"``, ``"cache"``, ``"package"`` or ``"fetched"``; ``entry`` is
    the manifest entry whose binary the library is (``None`` for ``ENZYME_ARTIFACTS_LIBRARY``
    and for an override naming a local build, whatever the manifest has for that major).
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
    return is_offline()


@dataclass(frozen=True, slots=True)
class Step:
    """One place :func:`resolve` looked for the library, and what it found there.

    ``origin`` is ``"env"``, ``"override"``, ``"cache"``, ``"package"`` or ``"fetch"``;
    ``fix`` is the command (or setting) that would make this place give a library, when
    it gave none.
    """

    origin: str
    where: str
    outcome: str
    accepted: bool = False
    fix: str | None = None


@dataclass(frozen=True, slots=True)
class Explanation:
    """What :func:`resolve` would do, without downloading: the answer (or the error that
    stops it) and every step.  ``would_fetch`` means only a download is missing, which
    the first use (or ``enzyme-artifacts fetch``) makes."""

    resolved: Resolved | None
    steps: tuple[Step, ...]
    error: Exception | None
    would_fetch: bool = False


def _env_override(path_text: str, llvm: int | None, steps: list[Step] | None) -> Resolved:
    from .llvm import find_libllvm
    from .plugin import plugin_llvm_major, validate_plugin

    where = f"{ENV_LIBRARY}={path_text}"
    unset = f"unset {ENV_LIBRARY}, or point it at a working LLVMEnzyme-N library"
    path = Path(path_text).expanduser()
    if not path.is_file():
        if steps is not None:
            steps.append(Step("env", where, "no such file", fix=unset))
        raise InvalidOverrideError(
            f"{ENV_LIBRARY}={path_text} does not exist or is not a file; "
            f"point it at an LLVMEnzyme-N shared library or unset it"
        )
    if llvm is None:
        llvm = env_major()
    if llvm is None:
        llvm, _ = plugin_llvm_major(path)
    if llvm is None:
        if steps is not None:
            steps.append(Step("env", where, "its LLVM major cannot be told", fix=f"set {ENV_LLVM_VERSION}=N"))
        raise InvalidOverrideError(
            f"cannot tell which LLVM major {path} (from {ENV_LIBRARY}) was built for: its name "
            f"has no LLVMEnzyme-N and its DT_NEEDED names no libLLVM; set {ENV_LLVM_VERSION}=N "
            "or pass llvm=N"
        )
    llvm_lib = find_libllvm(llvm)
    asked, asked_by = asked_capi()  # a local build: only ENZYME_ARTIFACTS_CAPI may ask for a profile
    try:
        capi = validate_plugin(path, llvm_lib, asked, what=f"{ENV_LIBRARY}={path}",
                               remedy=f"fix it or unset {ENV_LIBRARY}", asked_by=asked_by,
                               mismatch_fix=f"unset {ENV_CAPI}: the library's profile is identified by probing")
    except InvalidOverrideError as e:
        if steps is not None:
            steps.append(Step("env", where, f"refused: {e}", fix=unset))
        raise
    if steps is not None:
        steps.append(Step("env", where, f"accepted (probed in a child process: C API {capi})", accepted=True))
    # A local build: the manifest entry of this major (if any) describes another binary.
    return Resolved(library=path, llvm=llvm_lib, capi=capi, enzyme_version=None, origin="env", entry=None)


def _resolve(llvm: int | None, fetch: bool, progress: bool | None, steps: list[Step] | None) -> Resolved:
    if llvm is not None:
        check_major(llvm)
    env_lib = env_library()
    if env_lib:
        return _env_override(env_lib, llvm, steps)
    if steps is not None:
        steps.append(Step("env", ENV_LIBRARY, "not set"))

    from .develop import check_override
    from .llvm import find_libllvm
    from .overrides import get_override
    from .paths import overrides_path

    major = llvm if llvm is not None else default_llvm_major()
    llvm_lib = find_libllvm(major)
    platform = host_platform_for(llvm_lib)

    where = f"{overrides_path()} [LLVMEnzyme.{major}]" if steps is not None else ""
    override = get_override(major)
    if override is not None:
        entry = entry_or_none(platform, major) if override.kind == "copy" else None
        try:
            library, capi = check_override(override, llvm_lib)
        except InvalidOverrideError as e:
            if steps is not None:
                steps.append(Step("override", where, f"refused: {e}",
                                  fix=f"fix {override.library} or run `enzyme-artifacts undev --llvm {major}`"))
            raise
        if steps is not None:
            steps.append(Step("override", where, f"accepted: {library}", accepted=True))
        return Resolved(
            library=library,
            llvm=llvm_lib,
            capi=capi,
            enzyme_version=override.enzyme_version,
            origin="override",
            entry=entry,
        )
    if steps is not None:
        steps.append(Step("override", where, "none"))

    from .cache import Cache

    current = manifest()
    try:
        entry = current.select(platform, major)
    except UnsupportedPlatformError:
        if steps is not None:
            steps.append(Step("cache", f"the manifest {current.path}", f"has no entry for {platform} and LLVM {major}",
                              fix=f"build Enzyme for LLVM {major} and run `enzyme-artifacts dev PATH --llvm {major}`"))
        raise
    cache = Cache()
    installed = cache.lookup(entry, llvm_soname=llvm_lib.soname)
    origin = "cache"
    if installed is None:
        if steps is not None:
            steps.append(Step("cache", f"{cache.root} ({entry.key})", "not installed"))
        from .prefixes import ENTRY_POINT_GROUP, find_installed

        packaged = find_installed(entry, llvm_lib.soname)
        if packaged is not None:
            capi = _check_artifact(entry, packaged, llvm_lib, steps, "package",
                                   f"entry point group {ENTRY_POINT_GROUP}")
            if steps is not None:
                steps.append(Step("package", f"entry point group {ENTRY_POINT_GROUP}", f"accepted: {packaged}",
                                  accepted=True))
            return Resolved(
                library=packaged,
                llvm=llvm_lib,
                capi=capi,
                enzyme_version=entry.enzyme_version,
                origin="package",
                entry=entry,
            )
        if steps is not None:
            steps.append(Step("package", f"entry point group {ENTRY_POINT_GROUP}", f"no package provides {entry.key}"))
        sources = "; ".join(s.describe() for s in entry.sources) if steps is not None else ""
        if offline():
            if steps is not None:
                steps.append(Step("fetch", sources, f"not allowed: {ENV_OFFLINE} is set",
                                  fix=f"unset {ENV_OFFLINE} and run `enzyme-artifacts fetch --llvm {major}`"))
            raise OfflineError(
                f"{entry.key} is not in the cache {cache.root} and {ENV_OFFLINE} forbids fetching it; "
                f"unset {ENV_OFFLINE} (or run `enzyme-artifacts fetch --llvm {major}` while online)"
            )
        if not fetch:
            if steps is not None:
                steps.append(Step("fetch", sources, "not done here; the first use downloads it",
                                  fix=f"enzyme-artifacts fetch --llvm {major}"))
            raise ArtifactNotFoundError(
                f"{entry.key} is not installed in {cache.root}; run `enzyme-artifacts fetch --llvm {major}` "
                "or call locate() with fetch=True"
            )
        try:
            installed = cache.install(entry, llvm_soname=llvm_lib.soname, progress=progress)
        except Exception as e:
            if steps is not None:
                steps.append(Step("fetch", sources, f"failed: {e}", fix=f"enzyme-artifacts fetch --llvm {major}"))
            raise
        capi = _check_artifact(entry, installed.library, llvm_lib, steps, "fetch", sources)
        if steps is not None:
            steps.append(Step("fetch", sources, f"installed: {installed.library}", accepted=True))
        origin = "fetched"
    else:
        capi = _check_artifact(entry, installed.library, llvm_lib, steps, "cache", f"{cache.root} ({entry.key})")
        if steps is not None:
            steps.append(Step("cache", f"{cache.root} ({entry.key})", f"installed: {installed.library}", accepted=True))
    return Resolved(
        library=installed.library,
        llvm=llvm_lib,
        capi=capi,
        enzyme_version=entry.enzyme_version,
        origin=origin,
        entry=entry,
    )


def _check_artifact(entry: ArtifactEntry, library: Path, llvm_lib: LLVMLibrary, steps: list[Step] | None,
                    origin: str, where: str) -> str:
    """The profile of a manifest entry's binary, which must be the entry's ``capi`` (or
    ``ENZYME_ARTIFACTS_CAPI``'s): probed once per file, then remembered."""
    from .plugin import validate_plugin

    asked, asked_by = asked_capi(entry)
    try:
        return validate_plugin(
            library, llvm_lib, asked, what=f"the artifact {entry.key} ({library})", asked_by=asked_by,
            remedy=f"remove it (`enzyme-artifacts clean`) and fetch it again (`enzyme-artifacts fetch --llvm "
                   f"{entry.llvm_version}`)",
            mismatch_fix=f"the manifest's capi for {entry.key} is wrong: correct it, or set {ENV_CAPI} to the "
                         "profile found to bind this binary as it is",
        )
    except InvalidOverrideError as e:
        if steps is not None:
            found = getattr(e, "found", None)
            fix = (f"set {ENV_CAPI}={found}, or correct the capi of {entry.key} in the manifest" if found
                   else f"enzyme-artifacts clean --all && enzyme-artifacts fetch --llvm {entry.llvm_version}")
            steps.append(Step(origin, where, f"refused: {e}", fix=fix))
        raise


def resolve(llvm: int | None = None, *, fetch: bool = True, progress: bool | None = None) -> Resolved:
    """Decide which Enzyme library to load for LLVM major ``llvm`` (see the module docstring).

    Raises :class:`~.errors.LLVMNotFoundError` (no libLLVM-N),
    :class:`~.errors.UnsupportedPlatformError` (no manifest entry),
    :class:`~.errors.InvalidOverrideError` (an override failed validation; a
    :class:`~.errors.PluginValidationError` when the child-process check refused it),
    :class:`~.errors.OfflineError` (offline and not installed),
    :class:`~.errors.ArtifactNotFoundError` (``fetch=False`` and not installed),
    :class:`~.errors.DownloadError` (every source failed).  ``progress`` controls the
    progress bar of a fetch (``None``: ``ENZYME_ARTIFACTS_PROGRESS``, else on a terminal).
    """
    return _resolve(llvm, fetch, progress, None)


def explain(llvm: int | None = None) -> Explanation:
    """What :func:`resolve` would answer, step by step, without downloading anything.

    Errors are returned, not raised (``error``), except a :class:`ValueError` for a bad
    ``llvm`` argument.
    """
    from .errors import ArtifactError

    if llvm is not None:
        check_major(llvm)
    steps: list[Step] = []
    try:
        resolved = _resolve(llvm, False, False, steps)
    except OfflineError as e:
        return Explanation(None, tuple(steps), e)
    except ArtifactNotFoundError as e:
        return Explanation(None, tuple(steps), e, would_fetch=True)
    except (ArtifactError, ValueError) as e:
        return Explanation(None, tuple(steps), e)
    return Explanation(resolved, tuple(steps), None)


def fetch(llvm: int | None = None, *, progress: bool | None = None) -> tuple[InstalledArtifact, str]:
    """Make the published artifact for LLVM major ``llvm`` (default: as :func:`resolve`
    chooses) present in the cache, whatever overrides say; return it and ``"cache"`` or
    ``"fetched"`` (``enzyme-artifacts fetch``)."""
    from .cache import Cache
    from .llvm import find_libllvm

    major = check_major(llvm) if llvm is not None else default_llvm_major()
    lib = find_libllvm(major)
    entry = manifest().select(host_platform_for(lib), major)
    cache = Cache()
    found = cache.lookup(entry, llvm_soname=lib.soname)
    how = "cache"
    if found is None:
        found, how = cache.install(entry, llvm_soname=lib.soname, progress=progress), "fetched"
    _check_artifact(entry, found.library, lib, None, how, "")
    return found, how


def locate(llvm: int | None = None, *, fetch: bool = True) -> Path:
    """The LLVMEnzyme library for LLVM major ``llvm``: ``resolve(llvm, fetch=fetch).library``."""
    return resolve(llvm, fetch=fetch).library

