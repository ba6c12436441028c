"""Writing the artifact manifest (``Artifacts.toml``): the counterpart of
:mod:`enzyme_artifacts.manifest`'s parser.

:func:`render_entries` turns :class:`~enzyme_artifacts.manifest.ArtifactEntry` values into
manifest text that :func:`~enzyme_artifacts.manifest.parse_manifest` reads back to *equal*
entries (both source kinds, every optional field).  :func:`write_manifest` writes such text
atomically and only after parsing it back.  Comments are part of a manifest's meaning for
people (where a binary came from, why a policy applies), so they survive a rewrite:
:func:`read_comments` returns a file's leading comment block and the comment lines written
directly above each entry's ``[[Name]]`` line, keyed by the entry's
:attr:`~enzyme_artifacts.manifest.ArtifactEntry.key`; both render functions take them back.

Invariants: the output is deterministic (same entries and comments, same bytes); an entry's
fields are written in one fixed order; strings use TOML basic strings; nothing here reads the
environment or the network.

>>> from enzyme_artifacts.manifest import ArtifactEntry, TarballSource, parse_manifest
>>> e = ArtifactEntry("LLVMEnzyme", "0.0.289", 15, "x86_64", "linux", "glibc", "cxx11", "v0.0.289",
...                   True, (TarballSource("https://example.org/a.tar.gz", "0" * 64, 1),))
>>> parse_manifest(render_entries([e])).entries == (e,)
True
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from .manifest import ArtifactEntry, TarballSource, WheelSource, parse_manifest

__all__ = ["ManifestComments", "read_comments", "render_entries", "write_manifest"]

_TABLE = re.compile(r"\s*\[\[\s*([A-Za-z][A-Za-z0-9_]*)\s*\]\]\s*(?:#.*)?$")


@dataclass(frozen=True, slots=True)
class ManifestComments:
    """The comments of a manifest file: ``header`` (the leading block, separated from what
    follows by a blank line) and ``entries`` (entry key -> the comment lines directly above
    its table).  Lines are stored without their ``#`` and one following space."""

    header: tuple[str, ...]
    entries: Mapping[str, tuple[str, ...]]


def _q(value: str) -> str:
    """A TOML basic string (JSON's escaping is valid TOML for these values)."""
    return json.dumps(value, ensure_ascii=False)


def _renames(renames: Mapping[str, str]) -> str:
    pairs = ", ".join(f"{_q(k)} = {_q(v)}" for k, v in renames.items())
    return f"    replace_needed = {{ {pairs} }}"


def _comment(lines: Sequence[str]) -> list[str]:
    return [f"# {line}".rstrip() for line in lines]


def render_entries(entries: Sequence[ArtifactEntry], *, comments: Mapping[str, Sequence[str]] | None = None,
                   header: Sequence[str] = ()) -> str:
    """``entries`` as manifest text, in the order given.

    ``comments`` maps an entry key to comment lines written directly above its table;
    ``header`` is the file's leading comment block.  Raises :class:`TypeError` for a source
    of a kind the manifest does not have.
    """
    notes = comments or {}
    out = _comment(header)
    for e in entries:
        if out:
            out.append("")
        out += _comment(notes.get(e.key, ()))
        out.append(f"[[{e.name}]]")
        out.append(f"enzyme_version = {_q(e.enzyme_version)}")
        out.append(f"llvm_version = {e.llvm_version}")
        out.append(f"arch = {_q(e.arch)}")
        out.append(f"os = {_q(e.os)}")
        if e.libc is not None:
            out.append(f"libc = {_q(e.libc)}")
        if e.cxxstring_abi is not None:
            out.append(f"cxxstring_abi = {_q(e.cxxstring_abi)}")
        out.append(f"capi = {_q(e.capi)}")
        out.append(f"lazy = {'true' if e.lazy else 'false'}")
        for s in e.sources:
            out.append("")
            out.append(f"    [[{e.name}.download]]")
            if isinstance(s, TarballSource):
                out.append(f"    url = {_q(s.url)}")
                out.append(f"    sha256 = {_q(s.sha256)}")
                out.append(f"    size = {s.size}")
                if s.replace_needed:
                    out.append(_renames(s.replace_needed))
            elif isinstance(s, WheelSource):
                out.append('    kind = "wheel"')
                out.append(f"    requirement = {_q(s.requirement)}")
                out.append(f"    platform = {_q(s.platform)}")
                out.append(f"    python_version = {_q(s.python_version)}")
                if s.wheel_sha256:
                    out.append(f"    wheel_sha256 = {_q(s.wheel_sha256)}")
                out.append(f"    member = {_q(s.member)}")
                out.append(f"    sha256 = {_q(s.sha256)}")
                if s.size is not None:
                    out.append(f"    size = {s.size}")
                if s.replace_needed:
                    out.append(_renames(s.replace_needed))
                if s.license_members:
                    out.append(f"    license_members = [{', '.join(map(_q, s.license_members))}]")
            else:
                raise TypeError(f"{e.key}: unknown source {s!r}; the manifest has tarball and wheel sources")
    return "\n".join(out) + "\n"


def read_comments(text: str, entries: Sequence[ArtifactEntry]) -> ManifestComments:
    """The comments of manifest ``text`` whose parsed entries are ``entries``.

    The header is the run of comment lines at the top of the file when a blank line (not an
    entry's table) follows it.  An entry's comments are the comment lines directly above its
    ``[[Name]]`` line (a blank line ends the run).  Tables are matched to ``entries`` by name
    and position, as the parser reads them; comments elsewhere (inside an entry, above its
    download tables) are not kept.
    """
    lines = text.splitlines()
    header: list[str] = []
    i = 0
    while i < len(lines) and lines[i].lstrip().startswith("#"):
        i += 1
    if 0 < i < len(lines) and not lines[i].strip():
        header = [_uncomment(line) for line in lines[:i]]
    by_name: dict[str, list[ArtifactEntry]] = {}
    for e in entries:
        by_name.setdefault(e.name, []).append(e)
    seen: dict[str, int] = {}
    found: dict[str, tuple[str, ...]] = {}
    for n, line in enumerate(lines):
        m = _TABLE.match(line)
        if m is None:
            continue
        name = m[1]
        index = seen.get(name, 0)
        seen[name] = index + 1
        if index >= len(by_name.get(name, ())):
            continue
        run: list[str] = []
        j = n - 1
        while j >= 0 and lines[j].lstrip().startswith("#"):
            run.append(_uncomment(lines[j]))
            j -= 1
        if header and j < 0:  # the run reaches the top of the file: it is the header
            run = []
        if run:
            found[by_name[name][index].key] = tuple(reversed(run))
    return ManifestComments(tuple(header), MappingProxyType(found))


def _uncomment(line: str) -> str:
    body = line.lstrip()[1:]
    return body.removeprefix(" ")


def write_manifest(path: str | os.PathLike[str], entries: Sequence[ArtifactEntry], *,
                   comments: Mapping[str, Sequence[str]] | None = None, header: Sequence[str] = ()) -> Path:
    """Write ``entries`` to ``path`` atomically (a ``.partial`` file beside it, renamed into
    place) after parsing the text back.

    Raises :class:`~enzyme_artifacts.errors.ManifestError` when an entry is invalid for the
    parser and :class:`ValueError` when the text does not read back to equal entries;
    ``path`` is left unchanged then.
    """
    target = Path(path)
    text = render_entries(entries, comments=comments, header=header)
    parsed = parse_manifest(text, target).entries
    if tuple(parsed) != tuple(entries):
        raise ValueError(f"the manifest written for {target} does not read back to the entries given")
    tmp = target.with_name(target.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target
