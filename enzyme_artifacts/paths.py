"""Every folder enzyme_artifacts uses, derived from one :class:`platformdirs.PlatformDirs`.

=================  ==================================  ====================================
folder             default (``PlatformDirs``)           environment override
=================  ==================================  ====================================
cache root         ``user_cache_path``                  ``ENZYME_ARTIFACTS_CACHE``
config folder      ``user_config_path``                 ``ENZYME_ARTIFACTS_CONFIG``
dev folder         ``user_data_path / "dev"``           ``ENZYME_ARTIFACTS_DEV_DIR``
=================  ==================================  ====================================

Derived paths: ``Overrides.toml`` in the config folder (:func:`overrides_path`); the
records of libraries validated in a child process under ``<cache root>/validated``
(:func:`validations_dir`).  The application name is ``enzyme-artifacts`` (no author
folder).  Nothing here creates a folder: callers create what they write into, when
they write.  The environment is read at every call.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from . import _env

if TYPE_CHECKING:
    from platformdirs import PlatformDirs

__all__ = [
    "APP_NAME",
    "CACHE_ENV",
    "CONFIG_ENV",
    "DEV_DIR_ENV",
    "OVERRIDES_FILE",
    "cache_root",
    "config_dir",
    "data_dir",
    "dev_root",
    "overrides_path",
    "platform_dirs",
    "validations_dir",
]

APP_NAME = "enzyme-artifacts"
CACHE_ENV = "ENZYME_ARTIFACTS_CACHE"
CONFIG_ENV = "ENZYME_ARTIFACTS_CONFIG"
DEV_DIR_ENV = "ENZYME_ARTIFACTS_DEV_DIR"
OVERRIDES_FILE = "Overrides.toml"


@functools.cache
def platform_dirs() -> PlatformDirs:
    """The one ``PlatformDirs("enzyme-artifacts")`` of this package (created on first use)."""
    from platformdirs import PlatformDirs

    return PlatformDirs(APP_NAME, appauthor=False)


def cache_root() -> Path:
    """``$ENZYME_ARTIFACTS_CACHE``, else ``platform_dirs().user_cache_path``."""
    return _env.path(CACHE_ENV) or Path(platform_dirs().user_cache_path)


def config_dir() -> Path:
    """``$ENZYME_ARTIFACTS_CONFIG``, else ``platform_dirs().user_config_path``."""
    return _env.path(CONFIG_ENV) or Path(platform_dirs().user_config_path)


def data_dir() -> Path:
    """``platform_dirs().user_data_path`` (no override: the dev folder has its own)."""
    return Path(platform_dirs().user_data_path)


def dev_root() -> Path:
    """``$ENZYME_ARTIFACTS_DEV_DIR``, else ``data_dir() / "dev"``."""
    return _env.path(DEV_DIR_ENV) or data_dir() / "dev"


def overrides_path() -> Path:
    """``Overrides.toml`` in :func:`config_dir`."""
    return config_dir() / OVERRIDES_FILE


def validations_dir() -> Path:
    """``<cache root>/validated``: one record per library that passed the child check."""
    return cache_root() / "validated"
