"""``python -m enzyme_py``: maintenance commands.

``python -m enzyme_py cache info [--json]``   where the disk cache of compiled
                                              derivatives is, its entries and size
``python -m enzyme_py cache clear [--json]``  remove every entry

The folder and bound come from ``ENZYME_PY_CACHE_DIR`` and ``ENZYME_PY_CACHE_MAX_BYTES``
(see :mod:`enzyme_py.diskcache`).  Exit status 0 on success, 2 on a usage or
configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

__all__ = ["main"]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m enzyme_py", description="Maintenance commands of enzyme_py."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cache = sub.add_parser("cache", help="the disk cache of compiled derivatives")
    cache_sub = cache.add_subparsers(dest="action", required=True)
    for action, text in (("info", "show location, entries and size"), ("clear", "remove all entries")):
        p = cache_sub.add_parser(action, help=text)
        p.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    from .diskcache import DiskCache

    try:
        store = DiskCache()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.action == "info":
        info = store.info()
        if args.json:
            print(json.dumps(asdict(info)))
        else:
            state = "enabled" if info.enabled else "disabled (ENZYME_PY_DISK_CACHE=0)"
            print(f"path:     {info.path}")
            print(f"state:    {state}")
            print(f"entries:  {info.entries}")
            print(f"size:     {_size(info.total_bytes)} of {_size(info.max_bytes)}")
        return 0
    entries, freed = store.clear()
    if args.json:
        print(json.dumps({"path": str(store.root), "removed": entries, "bytes": freed}))
    else:
        print(f"removed {entries} entr{'y' if entries == 1 else 'ies'} ({_size(freed)}) from {store.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
