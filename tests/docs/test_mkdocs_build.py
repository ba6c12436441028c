"""The site builds with ``mkdocs build --strict``: links, anchors, navigation and the API
reference (mkdocstrings) are all resolved."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.docs.examples import DOCS, REPO
from tests.support.child import run_python


def nav_pages(nav: object) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, list):
        return set().union(*(nav_pages(item) for item in nav))
    if isinstance(nav, dict):
        return set().union(*(nav_pages(value) for value in nav.values()))
    return set()


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    proc = run_python("from mkdocs.__main__ import cli; cli()",
                      args=["build", "--strict", "--config-file", str(REPO / "mkdocs.yml"),
                            "--site-dir", str(site)],
                      cwd=REPO, extra_env={"NO_MKDOCS_2_WARNING": "1"}, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reference = (site / "reference" / "enzyme_py" / "index.html").read_text(encoding="utf-8")
    for name in ("enzyme_py.autodiff", "enzyme_py.gradient", "enzyme_py.jacobian",
                 "enzyme_py.hvp", "enzyme_py.autodiff_thunk", "enzyme_py.Module"):
        assert f'id="{name}"' in reference, f"{name} missing from the API reference"
    artifacts = (site / "reference" / "enzyme_artifacts" / "index.html").read_text("utf-8")
    assert 'id="enzyme_artifacts.resolve"' in artifacts
    recipes = (site / "reference" / "build_recipes" / "index.html").read_text("utf-8")
    assert 'id="build_recipes.recipe.load_recipe"' in recipes


def test_every_page_is_in_the_navigation_and_strict_is_on() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["strict"] is True
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages == nav_pages(config["nav"])
