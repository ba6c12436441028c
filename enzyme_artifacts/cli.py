"""The ``enzyme-artifacts`` command (also ``python -m enzyme_artifacts``).

Commands (each accepts ``--json`` for machine-readable output with stable keys)::

    enzyme-artifacts platform              the host platform triplet and C++ string ABI
    enzyme-artifacts status                what would be loaded, from where, what is missing
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
0     success
1     ``verify`` found problems (that ``--fix`` did not repair)
2     usage error (unknown command or option, bad value, bad environment variable)
3     not found or unsupported: no libLLVM-N, no manifest entry for this platform,
      artifact not installed (``which``) or offline with nothing cached
4     download failed or the bytes did not match their sha256/size, unsafe archive
5     invalid override (``ENZYME_ARTIFACTS_LIBRARY``, ``Overrides.toml``, ``dev PATH``)
6     unusable manifest, cache or config folder
130   interrupted
====  ==============================================================================

Errors are printed as one line on stderr, saying what to do; with ``--json`` an
``{"error": {"type", "message", "exit_code"}}`` object is also written to stdout.
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


def _one_line(e: BaseException) -> str:
    if isinstance(e, errors.LLVMNotFoundError) and hasattr(e, "major"):
        from .llvm import install_commands

        major = e.major
        cmds = install_commands(major)
        return (
            f"no usable shared libLLVM of LLVM {major} was found; install it "
            f"({cmds['debian']} | {cmds['homebrew']} | {cmds['conda']}) or set "
            f"ENZYME_ARTIFACTS_LLVM_LIBRARY; `{PROG} status` lists every place that was tried"
        )
    text = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
    return text or type(e).__name__


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
    return {
        "path": str(lib.path),
        "major": lib.major,
        "version": lib.version,
        "cxx11_abi": lib.cxx11_abi,
        "assertions": lib.assertions,
        "soname": lib.soname,
        "origin": lib.origin,
    }


def _platform_dict(p: Any) -> dict[str, Any]:
    return {
        "platform": str(p),
        "triplet": p.triplet,
        "arch": p.arch,
        "os": p.os,
        "libc": p.libc,
        "cxxstring_abi": p.cxxstring_abi,
    }


def _major(args: argparse.Namespace) -> int:
    if getattr(args, "llvm", None) is not None:
        return int(args.llvm)
    from .resolver import default_llvm_major

    return default_llvm_major()


# ---------------------------------------------------------------------- commands
def cmd_platform(args: argparse.Namespace) -> int:
    from .llvm import search_libllvm
    from .platforms import host_platform

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
    data = _platform_dict(plat)
    data["cxxstring_abi_from"] = abi_from
    _emit(args, data, str(plat))
    return EXIT_OK


def _env_in_effect() -> dict[str, str]:
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("ENZYME_ARTIFACTS_")}


def _status_data(args: argparse.Namespace) -> dict[str, Any]:
    from .cache import Cache
    from .llvm import install_commands, search_libllvm
    from .overrides import dev_root, load_overrides, overrides_path
    from .platforms import host_platform
    from .resolver import ENV_LIBRARY, ENV_LLVM_VERSION, resolve

    data: dict[str, Any] = {"environment": _env_in_effect()}
    next_steps: list[str] = []

    # LLVM major
    major: int | None = None
    try:
        if args.llvm is not None:
            major, source = int(args.llvm), "--llvm"
        elif os.environ.get(ENV_LLVM_VERSION):
            major, source = _major(args), ENV_LLVM_VERSION
        else:
            major, source = _major(args), "highest major with a manifest entry and a libLLVM"
        data["llvm_major"] = {"value": major, "source": source, "error": None}
    except (errors.ArtifactError, ValueError) as e:
        data["llvm_major"] = {"value": None, "source": None, "error": _one_line(e)}

    # libLLVM
    lib = None
    if major is not None:
        search = search_libllvm(major)
        lib = search.found
        data["libllvm"] = {
            "found": lib is not None,
            "library": _llvm_dict(lib) if lib is not None else None,
            "attempts": [
                {"origin": a.origin, "where": a.where, "path": a.path, "outcome": a.outcome}
                for a in search.attempts
            ],
            "install": None if lib is not None else install_commands(major),
        }
        if lib is None:
            cmds = install_commands(major)
            next_steps.append(f"install a shared libLLVM {major}: {cmds['debian']} (Debian/Ubuntu), "
                              f"{cmds['homebrew']} (macOS), {cmds['conda']} (conda)")
    else:
        data["libllvm"] = {"found": False, "library": None, "attempts": [], "install": None}

    # platform
    try:
        plat = host_platform(lib.cxxstring_abi if lib is not None else None)
        data["platform"] = _platform_dict(plat)
    except errors.ArtifactError as e:
        plat = None
        data["platform"] = {"error": _one_line(e)}

    # manifest and cache
    cache = Cache()
    installed_all = cache.installed()
    data["cache"] = {
        "root": str(cache.root),
        "exists": cache.root.is_dir(),
        "artifacts": [
            {
                "key": a.key,
                "path": str(a.path),
                "library": str(a.library),
                "source": a.source,
                "installed_at": a.installed_at,
                "llvm_soname": a.llvm_soname,
            }
            for a in installed_all
        ],
    }
    try:
        from .manifest import load_manifest

        manifest = load_manifest()
        entries = manifest.for_platform(plat) if plat is not None else ()
        rows = []
        for ent in entries:
            inst = cache.lookup(ent, llvm_soname=lib.soname if lib is not None else None)
            rows.append({
                "key": ent.key,
                "enzyme_version": ent.enzyme_version,
                "llvm_version": ent.llvm_version,
                "capi": ent.capi,
                "platform": str(ent.platform),
                "lazy": ent.lazy,
                "sources": [s.describe() for s in ent.sources],
                "installed": inst is not None,
                "path": str(inst.library) if inst is not None else None,
            })
        data["manifest"] = {"path": str(manifest.path), "entries": rows, "total_entries": len(manifest.entries),
                            "error": None}
        if not rows and plat is not None:
            next_steps.append(f"the manifest has no Enzyme for {plat}: build Enzyme and run "
                              f"`{PROG} dev PATH --llvm N`, or set {ENV_LIBRARY}")
    except errors.ArtifactError as e:
        data["manifest"] = {"path": None, "entries": [], "total_entries": 0, "error": _one_line(e)}
        next_steps.append(f"fix the manifest: {_one_line(e)}")

    # overrides
    try:
        ovs = load_overrides()
        data["overrides"] = {
            "file": str(overrides_path()),
            "dev_dir": str(dev_root()),
            "entries": [
                {
                    "llvm": o.llvm,
                    "library": str(o.library),
                    "kind": o.kind,
                    "capi": o.capi,
                    "exists": o.library.exists(),
                    "resolves_to": os.path.realpath(o.library),
                }
                for o in ovs.values()
            ],
            "error": None,
        }
    except errors.ArtifactError as e:
        data["overrides"] = {"file": str(overrides_path()), "dev_dir": str(dev_root()), "entries": [],
                             "error": _one_line(e)}

    # what would be loaded
    would: dict[str, Any] = {"library": None, "origin": None, "capi": None, "llvm": None, "missing": None}
    if major is not None and lib is not None:
        try:
            r = resolve(major, fetch=False)
            would.update(library=str(r.library), origin=r.origin, capi=r.capi, llvm=str(r.llvm.path),
                         enzyme_version=r.enzyme_version)
        except errors.ArtifactNotFoundError as e:
            would["missing"] = _one_line(e)
            next_steps.append(f"download it: `{PROG} fetch --llvm {major}` (or let the first use fetch it)")
        except (errors.ArtifactError, ValueError) as e:
            would["missing"] = _one_line(e)
            if isinstance(e, errors.InvalidOverrideError):
                next_steps.append(f"fix the override or run `{PROG} undev --llvm {major}`")
    else:
        would["missing"] = "a shared libLLVM (see above)"
    data["would_load"] = would
    data["next_steps"] = next_steps
    return data


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
    else:
        out.append("libLLVM:       NOT FOUND")
    if lib["attempts"] and not lib["found"]:
        out.append("  tried:")
        out += [f"    [{a['origin']}] {a['where']}" + (f" -> {a['path']}" if a["path"] else "") + f": {a['outcome']}"
                for a in lib["attempts"]]
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
    return "\n".join(out)


def cmd_status(args: argparse.Namespace) -> int:
    data = _status_data(args)
    _emit(args, data, lambda: _status_text(data))
    return EXIT_OK


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
    from .cache import Cache
    from .llvm import find_libllvm
    from .resolver import _manifest, host_platform_for

    major = _major(args)
    lib = find_libllvm(major)
    entry = _manifest().select(host_platform_for(lib), major)
    cache = Cache()
    found = cache.lookup(entry, llvm_soname=lib.soname)
    origin = "cache"
    if found is None:
        found = cache.install(entry, llvm_soname=lib.soname, progress=None)
        origin = "fetched"
    data = {"path": str(found.library), "key": found.key, "origin": origin, "source": found.source,
            "artifact": str(found.path), "llvm_soname": found.llvm_soname}
    _emit(args, data, str(found.library))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from .cache import Cache
    from .llvm import find_libllvm
    from .manifest import load_manifest
    from .overrides import load_overrides, use_override

    cache = Cache()
    rows: list[dict[str, Any]] = []
    bad = False
    manifest = None
    for inst in cache.installed():
        problems = cache.verify(inst)
        row: dict[str, Any] = {"key": inst.key, "path": str(inst.path), "problems": problems, "fixed": False}
        if problems and args.fix:
            manifest = manifest or load_manifest()
            entry = next((e for e in manifest.entries if e.key == inst.key), None)
            if entry is None:
                cache.remove(inst)
                row["fixed"] = True
                row["action"] = "removed (no longer in the manifest)"
            else:
                cache.remove(inst)
                new = cache.install(entry, llvm_soname=inst.llvm_soname, progress=None)
                left = cache.verify(new)
                row["fixed"] = not left
                row["action"] = "re-fetched"
                row["path"] = str(new.path)
                row["problems_after_fix"] = left
        if problems and not row["fixed"]:
            bad = True
        rows.append(row)
    ov_rows: list[dict[str, Any]] = []
    for ov in load_overrides().values():
        problem = None
        try:
            use_override(ov, find_libllvm(ov.llvm))
        except (errors.ArtifactError, ValueError) as e:
            problem = _one_line(e)
            bad = True
        ov_rows.append({"llvm": ov.llvm, "library": str(ov.library), "problem": problem})
    data = {"ok": not bad, "artifacts": rows, "overrides": ov_rows, "cache": str(cache.root)}

    def text() -> str:
        lines = []
        if not rows:
            lines.append(f"no artifacts installed in {cache.root}")
        for r in rows:
            if not r["problems"]:
                lines.append(f"ok      {r['key']}  {r['path']}")
            else:
                state = "FIXED" if r["fixed"] else "BROKEN"
                lines.append(f"{state:<7} {r['key']}  {r['path']}")
                lines += [f"          {p}" for p in r["problems"]]
        for o in ov_rows:
            lines.append(f"{'ok' if o['problem'] is None else 'BROKEN':<7} override LLVM {o['llvm']}  {o['library']}"
                         + (f"\n          {o['problem']}" if o["problem"] else ""))
        if bad and not args.fix:
            lines.append(f"run `{PROG} verify --fix` to re-fetch broken artifacts")
        return "\n".join(lines)

    _emit(args, data, text)
    return EXIT_PROBLEMS if bad else EXIT_OK


def cmd_dev(args: argparse.Namespace) -> int:
    from .overrides import dev

    ov = dev(args.llvm, args.path, capi=args.capi)
    data = {"llvm": ov.llvm, "library": str(ov.library), "path": str(ov.library), "kind": ov.kind,
            "capi": ov.capi, "enzyme_version": ov.enzyme_version, "source": ov.source}

    def text() -> str:
        lines = [str(ov.library)]
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
    from .overrides import undev

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
    p.add_argument("--capi", metavar="PROFILE", help="C-API profile of a local build, e.g. v0.0.289")
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
        code, message, kind = _exit_code(e), _one_line(e), type(e).__name__
    if want_json:
        json.dump({"error": {"type": kind, "message": message, "exit_code": code}}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code
