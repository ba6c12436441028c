"""enzyme_artifacts.manifest_writer, the writer beside the manifest parser (build_recipes is
its user: fragments, mirrors, merged manifests).  Its tests live here until the enzyme_artifacts
test folders take them."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest

from enzyme_artifacts.manifest import (
    ArtifactEntry,
    TarballSource,
    WheelSource,
    bundled_manifest_path,
    load_manifest,
    parse_manifest,
)
from enzyme_artifacts.manifest_writer import read_comments, render_entries, write_manifest

ENTRY = ArtifactEntry("LLVMEnzyme", "0.0.79+ge54814e9", 16, "x86_64", "linux", "glibc", "cxx11", "v0.0.289", True,
                      (TarballSource("https://example.invalid/a.tar.gz", "a" * 64, 10,
                                     MappingProxyType({"libLLVM-16.so.1": "@libllvm"})),))


def test_render_round_trips_the_bundled_manifest_and_its_comments() -> None:
    path = bundled_manifest_path()
    bundled = load_manifest(path)
    text = path.read_text(encoding="utf-8")
    comments = read_comments(text, bundled.entries)
    assert comments.header[0] == "Binaries of the Enzyme LLVM plugin known to enzyme_artifacts."
    (key,) = comments.entries
    assert comments.entries[key][0].startswith("Enzyme v0.0.289 built against LLVM 15")
    again = render_entries(bundled.entries, comments=comments.entries, header=comments.header)
    assert parse_manifest(again, "<rendered>").entries == bundled.entries
    assert again == text  # the bundled file is in the writer's own layout
    assert any(isinstance(s, WheelSource) for e in bundled.entries for s in e.sources)


def test_tarball_renames_and_local_versions_round_trip() -> None:
    text = render_entries([ENTRY], comments={ENTRY.key: ["built by hand", ""]}, header=["a header"])
    assert parse_manifest(text).entries == (ENTRY,)
    assert 'replace_needed = { "libLLVM-16.so.1" = "@libllvm" }' in text
    assert text.startswith("# a header\n\n# built by hand\n#\n[[LLVMEnzyme]]\n")
    kept = read_comments(text, (ENTRY,))
    assert kept.header == ("a header",) and kept.entries == {ENTRY.key: ("built by hand", "")}


def test_comments_directly_above_are_the_entrys(tmp_path: Path) -> None:
    second = ArtifactEntry(**{**{f: getattr(ENTRY, f) for f in ENTRY.__dataclass_fields__}, "llvm_version": 17})
    text = ("# only an entry comment\n[[LLVMEnzyme]]\n" + render_entries([ENTRY]).split("[[LLVMEnzyme]]\n", 1)[1]
            + "\n# second\n" + render_entries([second]))
    entries = parse_manifest(text).entries
    kept = read_comments(text, entries)
    assert kept.header == ()
    assert kept.entries == {ENTRY.key: ("only an entry comment",), second.key: ("second",)}


def test_write_manifest_is_atomic_and_checked(tmp_path: Path) -> None:
    target = tmp_path / "Artifacts.toml"
    write_manifest(target, [ENTRY], header=["h"])
    assert load_manifest(target).entries == (ENTRY,)
    before = target.read_bytes()
    bad = ArtifactEntry(**{**{f: getattr(ENTRY, f) for f in ENTRY.__dataclass_fields__}, "arch": "sparc"})
    with pytest.raises(ValueError):
        write_manifest(target, [bad])
    assert target.read_bytes() == before and not list(tmp_path.glob("*.partial"))
