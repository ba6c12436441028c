"""The source step: GitHub-shaped release archives (no LICENSE) over real HTTP, the license
fetched on its own and verified, and the version label read from the source itself."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from build_recipes.recipe import Recipe
from build_recipes.source import (
    SourceError,
    archive_commit,
    fetch_source,
    find_licenses,
    locate_checkout,
    read_cmake_version,
)
from enzyme_artifacts.hashes import sha256_bytes, sha256_file

from .conftest import (
    LICENSE_TEXT,
    git,
    git_checkout,
    github_archive,
    recipe_copy,
    requested,
    serve_files,
    write_enzyme_tree,
)

ARCHIVE = "/archive/refs/tags/v0.0.289.tar.gz"
LICENSE = "/raw/v0.0.289/LICENSE"


def _github(tmp_path: Path) -> tuple[Path, str]:
    """A tagged Enzyme-shaped repository and the archive GitHub would serve for the tag."""
    commit = git_checkout(tmp_path / "repo", tag="v0.0.289")
    return github_archive(tmp_path / "repo", "v0.0.289", tmp_path / "v0.0.289.tar.gz"), commit


def _served_recipe(recipe: Recipe, tmp_path: Path, base: str, archive: Path, license_bytes: bytes) -> Recipe:
    return recipe_copy(recipe, tmp_path, url=base + "/archive/refs/tags/v{version}.tar.gz",
                       sha256=sha256_file(archive), license_url=base + "/raw/v{version}/LICENSE",
                       license_sha256=sha256_bytes(license_bytes))


def test_the_archive_is_shaped_like_githubs(tmp_path: Path) -> None:
    archive, commit = _github(tmp_path)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert all(n.startswith("Enzyme-0.0.289") for n in names)
    assert "Enzyme-0.0.289/enzyme/CMakeLists.txt" in names
    assert not any(n.endswith("/LICENSE") for n in names)  # export-ignore, as upstream
    assert archive_commit(archive) == commit


def test_fetch_then_license_from_its_own_url(recipe: Recipe, tmp_path: Path, httpserver: HTTPServer) -> None:
    archive, commit = _github(tmp_path)
    base = serve_files(httpserver, {ARCHIVE: archive, LICENSE: LICENSE_TEXT})
    r = _served_recipe(recipe, tmp_path, base, archive, LICENSE_TEXT)
    work = tmp_path / "work"
    tree = fetch_source(r, work)
    assert tree.cmake_dir == tree.root / "enzyme" and tree.root.name == "Enzyme-0.0.289"
    assert not (tree.root / "LICENSE").exists()
    assert (tree.version.label, tree.version.commit, tree.version.cmake) == ("0.0.289", commit, "0.0.79")
    assert (tree.url, tree.sha256) == (f"{base}{ARCHIVE}", sha256_file(archive))
    licenses = find_licenses(tree, r, work)
    path, where = licenses["LICENSE"]
    assert path.read_bytes() == LICENSE_TEXT
    assert where == f"{base}{LICENSE} (sha256 {sha256_bytes(LICENSE_TEXT)})"
    assert requested(httpserver) == [ARCHIVE, LICENSE]
    fetch_source(r, work)  # verified copies are reused: no second request
    find_licenses(tree, r, work)
    assert requested(httpserver) == [ARCHIVE, LICENSE]


def test_a_license_with_another_digest_is_refused(recipe: Recipe, tmp_path: Path, httpserver: HTTPServer) -> None:
    archive, _ = _github(tmp_path)
    base = serve_files(httpserver, {ARCHIVE: archive, LICENSE: b"not the license\n"})
    r = _served_recipe(recipe, tmp_path, base, archive, LICENSE_TEXT)
    tree = fetch_source(r, tmp_path / "work")
    with pytest.raises(SourceError, match=r"sha256 mismatch for .*/LICENSE.* the file was deleted"):
        find_licenses(tree, r, tmp_path / "work")
    assert not (tmp_path / "work" / "licenses" / "LICENSE").exists()


def test_a_tree_without_license_and_no_source_for_it(recipe: Recipe, tmp_path: Path) -> None:
    text = recipe.path.read_text(encoding="utf-8")
    start = text.index("[[source.license]]")
    end = text.index("\n\n", start)
    p = tmp_path / "enzyme.toml"
    p.write_text(text[:start] + text[end:], encoding="utf-8")
    from build_recipes.recipe import load_recipe

    r = load_recipe(p)
    assert r.source.licenses == ()
    tree = locate_checkout(write_enzyme_tree(tmp_path / "tree", license=False), r)
    with pytest.raises(SourceError, match=r"never packaged without its license.*\[\[source.license\]\]"):
        find_licenses(tree, r, tmp_path / "work")


def test_fetch_refuses_a_wrong_digest(recipe: Recipe, tmp_path: Path, httpserver: HTTPServer) -> None:
    archive, _ = _github(tmp_path)
    base = serve_files(httpserver, {ARCHIVE: archive})
    r = recipe_copy(recipe, tmp_path, url=base + "/archive/refs/tags/v{version}.tar.gz", sha256="0" * 64)
    with pytest.raises(SourceError, match="sha256 mismatch .* the file was deleted"):
        fetch_source(r, tmp_path / "work")
    assert not (tmp_path / "work" / "v0.0.289.tar.gz").exists()
    assert not (tmp_path / "work" / "src").exists()


def test_an_unreachable_source_says_what_to_do(recipe: Recipe, tmp_path: Path, httpserver: HTTPServer) -> None:
    base = serve_files(httpserver, {})
    r = recipe_copy(recipe, tmp_path, url=base + "/archive/refs/tags/v{version}.tar.gz")
    with pytest.raises(SourceError, match=r"cannot download the Enzyme source .*404.*--source-dir"):
        fetch_source(r, tmp_path / "work")


def test_unset_digest_says_what_to_do(recipe: Recipe, tmp_path: Path) -> None:
    r = recipe_copy(recipe, tmp_path, url="http://127.0.0.1:9/v{version}.tar.gz", drop_sha256=True)
    assert r.source.sha256 is None
    with pytest.raises(SourceError, match=r"has no \[source\] sha256 .* --source-dir"):
        fetch_source(r, tmp_path / "work")


def test_checkout_root_or_enzyme_folder(recipe: Recipe, tmp_path: Path) -> None:
    root = write_enzyme_tree(tmp_path / "Enzyme")
    for given in (root, root / "enzyme"):
        tree = locate_checkout(given, recipe)
        assert (tree.root, tree.cmake_dir) == (root.resolve(), (root / "enzyme").resolve())
    with pytest.raises(SourceError, match="is not an Enzyme checkout"):
        locate_checkout(tmp_path, recipe)
    assert find_licenses(locate_checkout(root, recipe), recipe)["LICENSE"] == (
        root.resolve() / "LICENSE", "LICENSE of the source tree")


def test_labels_of_git_checkouts(recipe: Recipe, tmp_path: Path) -> None:
    repo = tmp_path / "Enzyme"
    commit = git_checkout(repo, tag="v0.0.289")
    tagged = locate_checkout(repo, recipe).version
    assert (tagged.label, tagged.commit, tagged.describe) == ("0.0.289", commit, f"v0.0.289-0-g{commit[:7]}")
    (repo / "enzyme" / "Enzyme" / "extra.c").write_text("int extra;\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "after the tag")
    later = locate_checkout(repo, recipe).version
    head = git(repo, "rev-parse", "HEAD")
    assert later.label == f"0.0.289.post1+g{head[:8]}" and not later.dirty
    (repo / "enzyme" / "Enzyme" / "extra.c").write_text("int extra = 1;\n")
    dirty = locate_checkout(repo, recipe).version
    assert dirty.label == f"0.0.289.post1+g{head[:8]}.dirty" and "uncommitted changes" in dirty.how


def test_labels_without_tags_or_git(recipe: Recipe, tmp_path: Path) -> None:
    commit = git_checkout(tmp_path / "untagged")
    v = locate_checkout(tmp_path / "untagged", recipe).version
    assert v.label == f"0.0.79+g{commit[:8]}" and v.describe is None
    assert "CMake version 0.0.79 and commit" in v.how
    plain = locate_checkout(write_enzyme_tree(tmp_path / "plain"), recipe).version
    assert plain.label == "0.0.79+unknown" and "--enzyme-version" in plain.how
    # A tree inside someone else's repository is not that repository's commit.
    outer = tmp_path / "outer"
    git_checkout(outer)
    inner = write_enzyme_tree(outer / "vendor" / "Enzyme")
    assert locate_checkout(inner, recipe).version.label == "0.0.79+unknown"


def test_cmake_version_spellings(tmp_path: Path) -> None:
    (tmp_path / "CMakeLists.txt").write_text("project(Enzyme VERSION 1.2.3 LANGUAGES C)\n")
    assert read_cmake_version(tmp_path) == "1.2.3"
    (tmp_path / "CMakeLists.txt").write_text("project(Enzyme)\n")
    assert read_cmake_version(tmp_path) is None
