"""The ``enzyme-artifacts`` command (also ``python -m enzyme_artifacts``).

Commands (each accepts ``--json`` for machine-readable output with stable keys)::

    enzyme-artifacts --version             the version of enzyme-py this command belongs to
    enzyme-artifacts platform              the host platform triplet and C++ string ABI
    enzyme-artifacts status [--llvm N]     what would be loaded, from where, what is missing:
                                           every place tried, and the command fixing each
    enzyme-artifacts which [--llvm N]      the library that would be loaded (never downloads)
    enzyme-artifacts fetch [--llvm N]      install the published artifact into the cache
    enzyme-artifacts verify [--fix]        re-hash every installed artifact; --fix re-fetches
    enzyme-artifacts dev [PATH] [--llvm N] [--capi PROFILE]
                                           activate a dev copy, or a local build at PATH
    enzyme-artifacts undev [--llvm N]      deactivate the override
    enzyme-artifacts clean [--dry-run] [--all]
                                           remove unreferenced cache content (--all: everything)

Exit codes:

====  ==============================================================================
0     success (``status``: what was asked for can work, a download at most missing)
1     ``verify`` found problems (that ``--fix`` did not repair)
2     usage error (unknown command or option, bad value, bad environment variable)
3     not found or unsupported: no libLLVM-N, no manifest entry for this platform,
      artifact not installed (``which``) or offline with nothing cached (``status``
      exits so too when that is what stops a use)
4     download failed or the bytes did not match their sha256/size, unsafe archive
5     invalid override (``ENZYME_ARTIFACTS_LIBRARY``, ``Overrides.toml``, ``dev PATH``)
6     unusable manifest, cache or config folder
130   interrupted
====  ==============================================================================

Errors are printed as one line on stderr, saying what to do; with ``--json`` an
``{"error": {"type", "message", "exit_code"}}`` object is also written to stdout.
``status`` renders :func:`enzyme_artifacts.status.diagnose`, ``verify`` renders
:func:`enzyme_artifacts.status.verify`: this module parses arguments and renders only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from . import errors

__all__ = [
    "EXIT_CONFIG",
    "EXIT_DOWNLOAD",
    "EXIT_INVALID_OVERRIDE",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_DOWNLOAD = 4
EXIT_INVALID_OVERRIDE = 5
EXIT_CONFIG = 6
EXIT_INTERRUPTED = 130

PROG = "enzyme-artifacts"


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see `{self.prog} --help`)")


def _exit_code(e: BaseException) -> int:
    if isinstance(e, errors.InvalidOverrideError):
        return EXIT_INVALID_OVERRIDE
    if isinstance(e, (errors.LLVMNotFoundError, errors.UnsupportedPlatformError, errors.ArtifactNotFoundError)):
        return EXIT_NOT_FOUND
    if isinstance(e, (errors.DownloadError, errors.UnsafeArchiveError)):
        return EXIT_DOWNLOAD
    if isinstance(e, (errors.ManifestError, errors.CacheError, errors.ArtifactError, OSError)):
        return EXIT_CONFIG
    return EXIT_USAGE  # ValueError from a bad argument or environment variable


# ---------------------------------------------------------------------- output helpers
def _emit(args: argparse.Namespace, data: dict[str, Any], text: str | Callable[[], str]) -> None:
    if args.json:
        json.dump(data, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        out = text() if callable(text) else text
        if out:
            print(out)


def _llvm_dict(lib: Any) -> dict[str, Any]:
    from .status import llvm_dict

    return llvm_dict(lib)


def _major(args: argparse.Namespace) -> int:
    if getattr(args, "llvm", None) is not None:
        return int(args.llvm)
    from .selection import default_llvm_major

    return default_llvm_major()


# ---------------------------------------------------------------------- commands
def cmd_platform(args: argparse.Namespace) -> int:
    from .llvm import search_libllvm
    from .platforms import host_platform
    from .status import platform_dict

    base = host_platform()
    abi_from = None
    plat = base
    try:
        major = _major(args)
        found = search_libllvm(major).found
    except (errors.ArtifactError, ValueError):
        found = None
    if found is not None:
        plat = host_platform(found.cxxstring_abi)
        abi_from = str(found.path)
    data = platform_dict(plat)
    data["cxxstring_abi_from"] = abi_from
    _emit(args, data, str(plat))
    return EXIT_OK


def _tried(rows: list[dict[str, Any]], *, fixes: bool, indent: str = "    ") -> list[str]:
    out = []
    for a in rows:
        where = a["where"] + (f" -> {a['path']}" if a.get("path") and a["path"] != a["where"] else "")
        out.append(f"{indent}[{a['origin']}] {where}: {a['outcome']}")
        if fixes and a.get("fix") and not a.get("accepted"):
            out.append(f"{indent}    fix: {a['fix']}")
    return out


def _status_text(d: dict[str, Any]) -> str:
    out: list[str] = []
    plat = d.get("platform", {})
    out.append(f"Platform:      {plat.get('platform') or plat.get('error')}")
    m = d["llvm_major"]
    out.append(f"LLVM major:    {m['value']} ({m['source']})" if m["value"] is not None
               else f"LLVM major:    unknown: {m['error']}")
    lib = d["libllvm"]
    if lib["found"]:
        li = lib["library"]
        out.append(f"libLLVM:       {li['path']} (LLVM {li['version']}, found via {li['origin']}, "
                   f"{'cxx11' if li['cxx11_abi'] else 'cxx03'} string ABI, "
                   f"assertions {'on' if li['assertions'] else 'off'})")
    elif lib["attempts"] is None:
        out.append(f"libLLVM:       not searched: {lib['not_searched']}")
    else:
        out.append(f"libLLVM:       NOT FOUND (LLVM {', '.join(str(s['major']) for s in lib['searches'])})")
    for s in lib["searches"]:
        out.append(f"  tried for LLVM {s['major']}:")
        out += _tried(s["attempts"], fixes=not s["found"])
    p = d["plugin"]
    if p["found"]:
        whose = f"manifest entry {p['key']}" if p.get("key") else "a local build, no manifest entry"
        out.append(f"LLVMEnzyme:    {p['library']} (from {p['origin']}, C API {p['capi']}, {whose})")
    elif p["would_fetch"]:
        out.append("LLVMEnzyme:    not installed yet (the first use downloads it)")
    else:
        out.append("LLVMEnzyme:    NOT AVAILABLE" + (f": {p['error']}" if p["error"] else ""))
    if p["attempts"]:
        out.append("  tried:")
        out += _tried(p["attempts"], fixes=not p["found"])
    w = d["would_load"]
    if w["library"]:
        out.append(f"Would load:    {w['library']} (from {w['origin']}, C API {w['capi']})")
    else:
        out.append(f"Would load:    nothing yet: {w['missing']}")
    man = d["manifest"]
    total = man["total_entries"]
    out.append(f"Manifest:      {man['path'] or man['error']} ({total} {'entry' if total == 1 else 'entries'}, "
               f"{len(man['entries'])} for this platform)")
    for e in man["entries"]:
        state = f"installed at {e['path']}" if e["installed"] else "not installed"
        out.append(f"  {e['key']}: {state}")
    c = d["cache"]
    out.append(f"Cache:         {c['root']} ({len(c['artifacts'])} artifact(s)"
               + ("" if c["exists"] else ", not created yet") + ")")
    ov = d["overrides"]
    out.append(f"Overrides:     {ov['file']}" + (f" (error: {ov['error']})" if ov["error"] else ""))
    if not ov["entries"]:
        out.append("  none active")
    for o in ov["entries"]:
        extra = "" if o["resolves_to"] == o["library"] else f" -> {o['resolves_to']}"
        out.append(f"  LLVM {o['llvm']}: {o['library']}{extra} ({o['kind']}"
                   + ("" if o["exists"] else ", MISSING") + ")")
    env = d["environment"]
    out.append("Environment:   " + (", ".join(f"{k}={v}" for k, v in env.items()) or "no ENZYME_ARTIFACTS_* set"))
    if d["next_steps"]:
        out.append("Next steps:")
        out += [f"  - {s}" for s in d["next_steps"]]
    elif w["library"]:
        out.append("Ready:         nothing is missing")
    if not d["ok"]:
        out.append("Status:        NOT USABLE as it stands (see above)")
    return "\n".join(out)


def cmd_status(args: argparse.Namespace) -> int:
    from .status import diagnose

    diagnosis = diagnose(args.llvm)
    _emit(args, diagnosis.data, lambda: _status_text(diagnosis.data))
    if diagnosis.ok or diagnosis.error is None:
        return EXIT_OK
    return _exit_code(diagnosis.error)


def cmd_which(args: argparse.Namespace) -> int:
    from .resolver import resolve

    r = resolve(args.llvm, fetch=False)
    real = os.path.realpath(r.library)
    data = {
        "path": real,
        "library": str(r.library),
        "origin": r.origin,
        "capi": r.capi,
        "enzyme_version": r.enzyme_version,
        "key": r.entry.key if r.entry is not None else None,
        "llvm": _llvm_dict(r.llvm),
    }
    _emit(args, data, real)
    return EXIT_OK


def cmd_fetch(args: argparse.Namespace) -> int:
    from .resolver import fetch

    found, origin = fetch(args.llvm)
    data = {"path": str(found.library), "key": found.key, "origin": origin, "source": found.source,
            "artifact": str(found.path), "llvm_soname": found.llvm_soname}
    _emit(args, data, str(found.library))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from .status import verify

    report = verify(fix=args.fix)
    data = report.data
    bad = not report.ok

    def text() -> str:
        lines = []
        if not data["artifacts"]:
            lines.append(f"no artifacts installed in {data['cache']}")
        for r in data["artifacts"]:
            if not r["problems"]:
                lines.append(f"ok      {r['key']}  {r['path']}")
            else:
                state = "FIXED" if r["fixed"] else "BROKEN"
                lines.append(f"{state:<7} {r['key']}  {r['path']}")
                lines += [f"          {p}" for p in r["problems"]]
        for o in data["overrides"]:
            lines.append(f"{'ok' if o['problem'] is None else 'BROKEN':<7} override LLVM {o['llvm']}  {o['library']}"
                         + (f"\n          {o['problem']}" if o["problem"] else ""))
        if bad and not args.fix:
            lines.append(f"run `{PROG} verify --fix` to re-fetch broken artifacts")
        return "\n".join(lines)

    _emit(args, data, text)
    return EXIT_PROBLEMS if bad else EXIT_OK


def cmd_dev(args: argparse.Namespace) -> int:
    from .develop import dev

    ov = dev(args.llvm, args.path, capi=args.capi)
    found = ov.validated.capi if ov.validated is not None else ov.capi
    data = {"llvm": ov.llvm, "library": str(ov.library), "path": str(ov.library), "kind": ov.kind,
            "capi": found, "capi_asked": ov.capi, "enzyme_version": ov.enzyme_version, "source": ov.source}

    def text() -> str:
        from .capi import releases

        lines = [str(ov.library), f"C API {found} ({releases(str(found))}), identified by probing"]
        if ov.kind == "copy":
            lines.append(
                f"Override for LLVM {ov.llvm} active. To use your own build, replace that file with a link:\n"
                f"  ln -sf /path/to/enzyme/build/Enzyme/LLVMEnzyme-{ov.llvm}{ov.library.suffix} {ov.library}\n"
                f"It is validated again whenever it changes. `{PROG} undev --llvm {ov.llvm}` restores the published build."
            )
        else:
            lines.append(f"Override for LLVM {ov.llvm} active; `{PROG} undev --llvm {ov.llvm}` restores the published build.")
        return "\n".join(lines)

    _emit(args, data, text)
    return EXIT_OK


def cmd_undev(args: argparse.Namespace) -> int:
    from .develop import undev

    old = undev(args.llvm)
    data = {"removed": old is not None, "llvm": old.llvm if old else args.llvm,
            "library": str(old.library) if old else None}
    if old is None:
        text = "no override was active" + (f" for LLVM {args.llvm}" if args.llvm else "")
    else:
        text = f"override for LLVM {old.llvm} removed ({old.library} is left on disk)"
    _emit(args, data, text)
    return EXIT_OK


def cmd_clean(args: argparse.Namespace) -> int:
    from .cache import Cache

    cache = Cache()
    removed = cache.clean(dry_run=args.dry_run, everything=args.all)
    data = {"dry_run": args.dry_run, "all": args.all, "removed": [str(p) for p in removed], "cache": str(cache.root)}
    verb = "would remove" if args.dry_run else "removed"
    text = "\n".join(f"{verb} {p}" for p in removed) or f"nothing to remove in {cache.root}"
    _emit(args, data, text)
    return EXIT_OK


# ---------------------------------------------------------------------- parser
def _version() -> str:
    from ._version import DISTRIBUTION, distribution_version

    return f"{distribution_version()} ({DISTRIBUTION})"


def _major_arg(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an LLVM major version such as 15")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(add_help=False)
    top.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    # SUPPRESS: a subcommand without --json must not reset a --json given before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable output on stdout")
    llvm = argparse.ArgumentParser(add_help=False)
    llvm.add_argument("--llvm", type=_major_arg, metavar="N",
                      help="LLVM major (default: ENZYME_ARTIFACTS_LLVM_VERSION, else the highest available)")

    parser = _Parser(prog=PROG, description="Find, fetch, verify and override LLVMEnzyme binaries.",
                     parents=[top])
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str, *parents: argparse.ArgumentParser
            ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(
            name, help=help, description=help, parents=[common, *parents]  # type: ignore[list-item]
        )
        p.set_defaults(func=func)
        return p

    add("platform", cmd_platform, "print the host platform triplet and C++ string ABI", llvm)
    add("status", cmd_status, "what would be loaded, from where, and what is missing", llvm)
    add("which", cmd_which, "print the library that would be loaded (never downloads)", llvm)
    add("fetch", cmd_fetch, "install the published artifact into the cache", llvm)
    p = add("verify", cmd_verify, "re-hash every installed artifact and check overrides")
    p.add_argument("--fix", action="store_true", help="re-fetch artifacts that fail")
    p = add("dev", cmd_dev, "activate a dev copy of the artifact, or a local build at PATH", llvm)
    p.add_argument("path", nargs="?", metavar="PATH",
                   help="a library file or an Enzyme cmake build folder (holding Enzyme/LLVMEnzyme-N.so)")
    p.add_argument("--capi", metavar="PROFILE",
                   help="the C-API profile the build must have, e.g. v0.0.289 (default: the one it probes as)")
    add("undev", cmd_undev, "deactivate the override", llvm)
    p = add("clean", cmd_clean, "remove cache content no index refers to, and left-overs")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    p.add_argument("--all", action="store_true", help="remove every installed artifact too")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    parser = build_parser()
    want_json = "--json" in (list(argv) if argv is not None else sys.argv[1:])
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`... | head`): stop quietly, as other command-line tools do
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except _UsageError as e:
        code, message, kind = EXIT_USAGE, str(e), "UsageError"
    except (errors.ArtifactError, ValueError, OSError, KeyError) as e:
        from .status import summary

        code, message, kind = _exit_code(e), summary(e), type(e).__name__
    if want_json:
        json.dump({"error": {"type": kind, "message": message, "exit_code": code}}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code
