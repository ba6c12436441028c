"""Every environment variable :mod:`build_recipes` reads, read through
:mod:`enzyme_artifacts._env` (one parser, one error type for the three packages).

========================================  =================================================
``ENZYME_RECIPES_RECIPE``                 a recipe file replacing the bundled
                                          ``build_recipes/enzyme.toml`` (``--recipe`` wins)
``ENZYME_RECIPES_LLVM``                   the LLVM major of a CI cell: cibuildwheel's
                                          commands build it, the wheel project packs it
``ENZYME_RECIPES_PLATFORM``               the recipe platform of a CI cell (cibuildwheel's
                                          commands)
``ENZYME_RECIPES_ARTIFACTS``              the artifact folder the wheel project packs
                                          (default ``<repository>/out/artifacts``)
``ENZYME_RECIPES_ROOT``                   the repository holding ``build_recipes/`` for the
                                          wheel project (default: two folders above it)
``SOURCE_DATE_EPOCH``                     member mtime in tarballs (the reproducible-builds
                                          convention; default 0)
``ENZYME_RECIPES_INSTALL_ROUTE``          read by ``build_recipes/ci/install-llvm.sh``: force a
                                          route (debian, manylinux, alpine, macos, windows)
``ENZYME_RECIPES_DRY_RUN``                read by ``build_recipes/ci/install-llvm.sh``: ``1``
                                          prints its commands instead of running them
========================================  =================================================

An empty value means unset.  The names used before the common prefix
(``ENZYME_RECIPE``, ``ENZYME_WHEEL_LLVM``, ``ENZYME_WHEEL_ARTIFACTS``) are refused with a
message naming the new one, so an old setting never silently stops working.
"""

from __future__ import annotations

import os
from pathlib import Path

from enzyme_artifacts import _env

from .errors import RecipeError

__all__ = [
    "ARTIFACTS",
    "DRY_RUN",
    "INSTALL_ROUTE",
    "LLVM",
    "PLATFORM",
    "RECIPE",
    "RENAMED",
    "ROOT",
    "SOURCE_DATE_EPOCH",
    "artifacts_dir",
    "llvm_major",
    "platform_key",
    "recipe_path",
    "repository_root",
    "source_date_epoch",
]

RECIPE = "ENZYME_RECIPES_RECIPE"
LLVM = "ENZYME_RECIPES_LLVM"
PLATFORM = "ENZYME_RECIPES_PLATFORM"
ARTIFACTS = "ENZYME_RECIPES_ARTIFACTS"
ROOT = "ENZYME_RECIPES_ROOT"
SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"
INSTALL_ROUTE = "ENZYME_RECIPES_INSTALL_ROUTE"  # read by build_recipes/ci/install-llvm.sh
DRY_RUN = "ENZYME_RECIPES_DRY_RUN"              # read by build_recipes/ci/install-llvm.sh

RENAMED = {"ENZYME_RECIPE": RECIPE, "ENZYME_WHEEL_LLVM": LLVM, "ENZYME_WHEEL_ARTIFACTS": ARTIFACTS}
"""Old variable name -> its name today."""


def _refuse_old_name(new: str) -> None:
    for old, now in RENAMED.items():
        if now == new and _env.text(old) is not None and _env.text(new) is None:
            raise RecipeError(f"{old} was renamed {new}: set {new}={os.environ[old].strip()!r} instead "
                              f"and unset {old}")


def recipe_path() -> Path | None:
    """``$ENZYME_RECIPES_RECIPE`` as a path, or None."""
    _refuse_old_name(RECIPE)
    return _env.path(RECIPE)


def llvm_major() -> int | None:
    """``$ENZYME_RECIPES_LLVM`` (an LLVM major, at least 1), or None."""
    _refuse_old_name(LLVM)
    if _env.text(LLVM) is None:
        return None
    return _env.integer(LLVM, 0, minimum=1)


def platform_key() -> str | None:
    """``$ENZYME_RECIPES_PLATFORM``, or None."""
    return _env.text(PLATFORM)


def artifacts_dir() -> Path | None:
    """``$ENZYME_RECIPES_ARTIFACTS`` as a path, or None."""
    _refuse_old_name(ARTIFACTS)
    return _env.path(ARTIFACTS)


def repository_root() -> Path | None:
    """``$ENZYME_RECIPES_ROOT`` as a path, or None."""
    return _env.path(ROOT)


def source_date_epoch() -> int:
    """Member mtime of tarballs: ``$SOURCE_DATE_EPOCH`` (seconds, not negative), else 0.

    Raises :class:`enzyme_artifacts._env.EnvironmentValueError` (a ``ValueError``) for a
    value that is not such an integer.
    """
    return _env.integer(SOURCE_DATE_EPOCH, 0, minimum=0)
