"""The dev workflow: use a local Enzyme build instead of the published artifact.

The counterpart of Julia's ``Enzyme_jll.dev_jll()``; the overrides it writes are kept in
``Overrides.toml`` (:mod:`enzyme_artifacts.overrides`).

* ``dev(N)`` copies the installed artifact (fetched first if needed) into
  ``<dev dir>/LLVMEnzyme-N/override/``, laid out like the artifact (``lib/LLVMEnzyme-N.so``
  plus ``share/licenses``), activates it and returns the override.  The dev dir is
  ``$ENZYME_ARTIFACTS_DEV_DIR``, default ``platformdirs``' user data folder ``/dev``
  (:func:`enzyme_artifacts.paths.dev_root`).  An existing ``override/`` folder is kept as
  it is (it may hold your symlink).  Replace ``override/lib/LLVMEnzyme-N.so`` with a
  symlink to your build; the next resolve validates the new file and uses it.
* ``dev(N, PATH)`` points at a local build directly: a library file, an artifact-like
  prefix or an Enzyme cmake build folder.
* :func:`undev` removes the entry (the dev folder and your build are left on disk).

Validation (:func:`enzyme_artifacts.plugin.validate_plugin`: cheap checks, then child
processes that load the library and identify its C-API profile by differentiating known
functions through each candidate profile) happens before an override is activated and
again, through :func:`check_override`, whenever the file's real path, size or mtime
changed since it last passed: a rebuild of another Enzyme version is bound with the
profile it has now.  Failures raise
:class:`~enzyme_artifacts.errors.InvalidOverrideError` (or its
:class:`~enzyme_artifacts.errors.PluginValidationError`) saying what to do.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .capi import known_profiles
from .errors import InvalidOverrideError, OfflineError
from .overrides import Override, ValidationStamp, load_overrides, update_override
from .paths import dev_root, overrides_path
from .plugin import file_stamp, find_build_library, major_of_build, validate_plugin
from .selection import (
    CAPI_ENV,
    asked_capi,
    check_major,
    default_llvm_major,
    env_major,
    host_platform_for,
    manifest,
)

if TYPE_CHECKING:
    from .llvm import LLVMLibrary

__all__ = ["check_override", "dev", "undev", "use_override"]


def _stamp_for(path: Path, llvm_lib: LLVMLibrary, capi: str) -> ValidationStamp:
    real, size, mtime = file_stamp(path)
    return ValidationStamp(real, size, mtime, str(llvm_lib.path), capi)


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def check_override(ov: Override, llvm_lib: LLVMLibrary) -> tuple[Path, str]:
    """The library of ``ov`` and its C-API profile, validated against ``llvm_lib`` unless
    its file is unchanged since the last validation (real path, size and mtime, same
    libLLVM).

    The profile is the one the library probes as; it must be the one asked for by
    ``ENZYME_ARTIFACTS_CAPI`` or by the override's own ``capi`` (``dev --capi``) when
    either is set.  A fresh validation is remembered in ``Overrides.toml`` (best effort:
    a read-only config folder only means validating again next time).
    """
    remedy = f"fix it or run `enzyme-artifacts undev --llvm {ov.llvm}`"
    what = f"the override for LLVM {ov.llvm} ({ov.library}, from {overrides_path()})"
    library = find_build_library(ov.library, ov.llvm) if ov.library.is_dir() else ov.library
    if not library.exists():
        raise InvalidOverrideError(f"{what} does not exist (a dangling link or a removed build); {remedy}")
    asked, asked_by = asked_capi(recorded=ov.capi)
    try:
        real, size, mtime = file_stamp(library)
    except OSError as e:
        raise InvalidOverrideError(f"{what} cannot be read: {e.strerror or e}; {remedy}") from None
    v = ov.validated
    if (v is not None and (v.file, v.size, v.mtime_ns, v.llvm) == (real, size, mtime, str(llvm_lib.path))
            and asked in (None, v.capi)):
        return library, v.capi
    fix = (f"unset {CAPI_ENV}" if asked_by == CAPI_ENV
           else f"remove its capi from {overrides_path()}, or run `enzyme-artifacts dev` again without --capi")
    capi = validate_plugin(library, llvm_lib, asked, what=what, remedy=remedy, asked_by=asked_by,
                           mismatch_fix=f"{fix}: the library's profile is identified by probing")
    with contextlib.suppress(Exception):  # remembering is an optimisation only
        update_override(ov.llvm, replace(ov, validated=ValidationStamp(real, size, mtime, str(llvm_lib.path), capi)))
    return library, capi


def use_override(ov: Override, llvm_lib: LLVMLibrary, capi: str | None = None) -> Path:
    """The library of ``ov``, validated as :func:`check_override` does; ``capi``, when
    given, is the profile it must have."""
    if capi is not None and capi != ov.capi:
        ov = replace(ov, capi=capi)
    return check_override(ov, llvm_lib)[0]


def _copy_tree(src: Path, dest: Path) -> None:
    from .cache import RECORD_NAME

    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    # The cache's own record describes the cached folder, not this copy: leave it out.
    shutil.copytree(src, tmp, symlinks=True, ignore=lambda d, names: [n for n in names if n == RECORD_NAME])
    for root, dirs, files in os.walk(tmp):
        for name in dirs + files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | stat.S_IWUSR)
    os.replace(tmp, dest)


def dev(
    llvm: int | None = None,
    path: str | os.PathLike[str] | None = None,
    *,
    capi: str | None = None,
    progress: bool | None = None,
) -> Override:
    """Activate an override for LLVM major ``llvm`` and return it (see the module docstring).

    ``llvm=None`` with a ``path`` takes the major the build names (``LLVMEnzyme-N``, or its
    ``DT_NEEDED`` libLLVM); otherwise the default major
    (:func:`enzyme_artifacts.selection.default_llvm_major`).  ``capi`` names the C-API
    profile the library must have (default: ``ENZYME_ARTIFACTS_CAPI``, else whatever it
    probes as); it is written into the override only when given.  The library is
    validated (and its profile identified) before the override is written; the profile
    found is in ``validated.capi``.
    """
    from .cache import Cache
    from .download import OFFLINE_ENV, is_offline
    from .llvm import find_libllvm

    major = major_of_build(Path(path).expanduser()) if llvm is None and path is not None else None
    if major is None:
        major = check_major(llvm) if llvm is not None else default_llvm_major()
    llvm_lib = find_libllvm(major)
    platform = host_platform_for(llvm_lib)
    if path is None:
        entry = manifest().select(platform, major)
        cache = Cache()
        installed = cache.lookup(entry, llvm_soname=llvm_lib.soname)
        if installed is None:
            if is_offline():
                raise OfflineError(
                    f"{entry.key} is not installed and {OFFLINE_ENV} forbids fetching it; "
                    f"run `enzyme-artifacts fetch --llvm {major}` while online first"
                )
            installed = cache.install(entry, llvm_soname=llvm_lib.soname, progress=progress)
        folder = dev_root() / f"LLVMEnzyme-{major}"
        dest = folder / "override"
        if not dest.exists():
            folder.mkdir(parents=True, exist_ok=True)
            _copy_tree(installed.path, dest)
        library = dest / entry.library_relpath
        new = Override(
            llvm=major,
            library=library,
            kind="copy",
            capi=capi,
            enzyme_version=entry.enzyme_version,
            source=f"copy of {entry.key} ({installed.source})",
            created=_now(),
        )
        remedy = f"restore {dest} (delete it and run `enzyme-artifacts dev --llvm {major}` again)"
    else:
        given = Path(path).expanduser().absolute()
        library = find_build_library(given, major)
        new = Override(
            llvm=major, library=library, kind="path", capi=capi, source=f"local build {given}", created=_now()
        )
        remedy = f"point `enzyme-artifacts dev PATH --llvm {major}` at an Enzyme built against LLVM {major}"
    asked, asked_by = (capi, "--capi") if capi is not None else asked_capi()
    if capi is not None and capi not in known_profiles():
        raise InvalidOverrideError(
            f"--capi {capi}: unknown Enzyme C-API profile; known: {', '.join(known_profiles())}. The profile is a "
            "C-API shape, not an Enzyme version nor an LLVM: omit --capi and the build's profile is identified by "
            "probing"
        )
    fix = "omit --capi" if asked_by == "--capi" else f"unset {CAPI_ENV}"
    profile = validate_plugin(library, llvm_lib, asked, what=str(library), remedy=remedy, asked_by=asked_by,
                              mismatch_fix=f"{fix}: the build's profile is identified by probing")
    new = replace(new, validated=_stamp_for(library, llvm_lib, profile))
    update_override(major, new)
    return new


def undev(llvm: int | None = None) -> Override | None:
    """Remove the override for ``llvm`` (default: the only one, else
    ``ENZYME_ARTIFACTS_LLVM_VERSION``).

    Returns the removed override, or ``None`` when there was none.  Files on disk (the
    dev copy, your build) are left alone.  Raises :class:`ValueError` when several
    overrides exist and none is named.
    """
    if llvm is None:
        current = load_overrides()
        if len(current) == 1:
            llvm = next(iter(current))
        elif not current:
            return None
        else:
            llvm = env_major()
            if llvm is None:
                raise ValueError(
                    f"overrides exist for LLVM {', '.join(map(str, sorted(current)))}; say which with --llvm N"
                )
    else:
        check_major(llvm)
    if llvm not in load_overrides():
        return None
    return update_override(llvm, None)
