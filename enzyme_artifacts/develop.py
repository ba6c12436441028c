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

Validation (:func:`enzyme_artifacts.plugin.validate_plugin`: cheap checks, then a child
process that loads the library and calls it) happens before an override is activated
and again, through :func:`use_override`, whenever the file's real path, size or mtime
changed since it last passed.  Failures raise
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

from .errors import InvalidOverrideError, OfflineError
from .overrides import Override, ValidationStamp, load_overrides, update_override
from .paths import dev_root, overrides_path
from .plugin import file_stamp, find_build_library, major_of_build, validate_plugin
from .selection import (
    check_major,
    choose_capi,
    default_llvm_major,
    entry_or_none,
    env_major,
    host_platform_for,
    manifest,
)

if TYPE_CHECKING:
    from .llvm import LLVMLibrary

__all__ = ["dev", "undev", "use_override"]


def _stamp_for(path: Path, llvm_lib: LLVMLibrary, capi: str) -> ValidationStamp:
    real, size, mtime = file_stamp(path)
    return ValidationStamp(real, size, mtime, str(llvm_lib.path), capi)


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _effective_capi(ov: Override, llvm_lib: LLVMLibrary) -> str:
    return choose_capi(entry_or_none(host_platform_for(llvm_lib), ov.llvm), recorded=ov.capi)


def use_override(ov: Override, llvm_lib: LLVMLibrary, capi: str | None = None) -> Path:
    """The library of ``ov``, validated against ``llvm_lib`` unless its file is unchanged
    since the last validation (real path, size and mtime, same libLLVM and profile).

    ``capi`` is the C-API profile it will be bound with (default: as
    :func:`enzyme_artifacts.resolve` chooses it: ``ENZYME_ARTIFACTS_CAPI``, the
    override's ``capi``, the manifest entry's).  A fresh validation is remembered in
    ``Overrides.toml`` (best effort: a read-only config folder only means validating
    again next time).
    """
    remedy = f"fix it or run `enzyme-artifacts undev --llvm {ov.llvm}`"
    what = f"the override for LLVM {ov.llvm} ({ov.library}, from {overrides_path()})"
    library = find_build_library(ov.library, ov.llvm) if ov.library.is_dir() else ov.library
    if not library.exists():
        raise InvalidOverrideError(f"{what} does not exist (a dangling link or a removed build); {remedy}")
    capi = capi or _effective_capi(ov, llvm_lib)
    try:
        stamp = _stamp_for(library, llvm_lib, capi)
    except OSError as e:
        raise InvalidOverrideError(f"{what} cannot be read: {e.strerror or e}; {remedy}") from None
    if ov.validated == stamp:
        return library
    validate_plugin(library, llvm_lib, capi, what=what, remedy=remedy)
    with contextlib.suppress(Exception):  # remembering is an optimisation only
        update_override(ov.llvm, replace(ov, validated=stamp))
    return library


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
    profile of a local build (default: ``ENZYME_ARTIFACTS_CAPI``, else the manifest
    entry's, else the newest).  The library is validated before the override is written.
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
        profile = capi or choose_capi(entry)
        new = Override(
            llvm=major,
            library=library,
            kind="copy",
            capi=profile,
            enzyme_version=entry.enzyme_version,
            source=f"copy of {entry.key} ({installed.source})",
            created=_now(),
        )
        remedy = f"restore {dest} (delete it and run `enzyme-artifacts dev --llvm {major}` again)"
    else:
        given = Path(path).expanduser().absolute()
        library = find_build_library(given, major)
        profile = capi or choose_capi(entry_or_none(platform, major))
        new = Override(
            llvm=major, library=library, kind="path", capi=profile, source=f"local build {given}", created=_now()
        )
        remedy = f"point `enzyme-artifacts dev PATH --llvm {major}` at an Enzyme built against LLVM {major}"
    validate_plugin(library, llvm_lib, profile, what=str(library), remedy=remedy)
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
