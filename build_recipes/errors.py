"""The exceptions of :mod:`build_recipes`: one base, leaves that also subclass a built-in.

Every error raised on purpose by the recipes is a :class:`RecipesError`; the command line
maps :class:`RecipeError` and :class:`UnknownProfileError` (bad input) to exit status 2 and
every other one to exit status 1.  Messages say what happened, to which file, and what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .checks import CheckReport

__all__ = [
    "BinaryCheckError",
    "BuildError",
    "PublishError",
    "RecipeError",
    "RecipesError",
    "SourceError",
    "UnknownProfileError",
    "UnsafeArchiveError",
    "WheelError",
]


class RecipesError(Exception):
    """Base of every error :mod:`build_recipes` raises on purpose."""


class RecipeError(RecipesError, ValueError):
    """The recipe file (or a value given for it) is malformed; the message names the file
    and the field."""


class UnknownProfileError(RecipesError, ValueError):
    """A C-API profile name that ``enzyme_artifacts.capi`` does not know."""


class SourceError(RecipesError, RuntimeError):
    """The Enzyme source or its license could not be obtained, verified or recognised."""


class UnsafeArchiveError(SourceError):
    """An archive member would land outside the destination, or is a device, FIFO or
    an unsafe link; nothing was extracted."""


class BuildError(RecipesError, RuntimeError):
    """CMake, the compiler or the build environment failed; the message says which step."""


class BinaryCheckError(RecipesError, RuntimeError):
    """A library failed the binary checks; ``report`` holds every result."""

    def __init__(self, report: CheckReport) -> None:
        super().__init__(
            f"{report.path} failed the binary checks ({', '.join(r.name for r in report.failures)}); "
            f"nothing was packaged:\n{report.format()}"
        )
        self.report = report


class PublishError(RecipesError, RuntimeError):
    """A fragment, a tarball, the mirror or the target manifest is inconsistent; nothing was
    overwritten."""


class WheelError(RecipesError, RuntimeError):
    """An artifact folder or a wheel does not have the expected content."""
