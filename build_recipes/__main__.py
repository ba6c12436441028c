"""``python -m build_recipes``: see :mod:`build_recipes.cli`."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
