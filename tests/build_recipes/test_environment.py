"""build_recipes' environment variables: one prefix, one reader, old names refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

import build_recipes
from build_recipes import environment
from build_recipes.errors import RecipeError
from enzyme_artifacts._env import EnvironmentValueError

from .conftest import REPO, run_cli


def test_every_variable_has_the_prefix_and_is_documented() -> None:
    names = [environment.RECIPE, environment.LLVM, environment.PLATFORM, environment.ARTIFACTS, environment.ROOT,
             environment.INSTALL_ROUTE, environment.DRY_RUN]
    assert all(n.startswith("ENZYME_RECIPES_") for n in names)
    for name in [*names, environment.SOURCE_DATE_EPOCH]:
        assert f"``{name}``" in (build_recipes.__doc__ or ""), name
        assert f"``{name}``" in (environment.__doc__ or ""), name
    setup = REPO / "build_recipes" / "wheel_project" / "setup.py"
    sources = "\n".join(p.read_text() for p in (REPO / "build_recipes").rglob("*.py")
                        if p.name != "environment.py" and p != setup)
    assert "os.environ.get(\"ENZYME_" not in sources and "os.environ[\"ENZYME_" not in sources
    # The wheel project reads one variable itself: the one that says where build_recipes is.
    direct = [line for line in setup.read_text().splitlines() if "os.environ" in line]
    assert len(direct) == 1 and '"ENZYME_RECIPES_ROOT"' in direct[0]


def test_readers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert environment.llvm_major() is None and environment.recipe_path() is None
    monkeypatch.setenv("ENZYME_RECIPES_LLVM", " 16 ")
    monkeypatch.setenv("ENZYME_RECIPES_RECIPE", str(tmp_path / "r.toml"))
    assert environment.llvm_major() == 16 and environment.recipe_path() == tmp_path / "r.toml"
    monkeypatch.setenv("ENZYME_RECIPES_LLVM", "sixteen")
    with pytest.raises(EnvironmentValueError, match="ENZYME_RECIPES_LLVM='sixteen' is not valid"):
        environment.llvm_major()
    monkeypatch.setenv("ENZYME_RECIPES_LLVM", "")
    assert environment.llvm_major() is None  # empty means unset


@pytest.mark.parametrize(("old", "new", "reader"), [
    ("ENZYME_RECIPE", "ENZYME_RECIPES_RECIPE", environment.recipe_path),
    ("ENZYME_WHEEL_LLVM", "ENZYME_RECIPES_LLVM", environment.llvm_major),
    ("ENZYME_WHEEL_ARTIFACTS", "ENZYME_RECIPES_ARTIFACTS", environment.artifacts_dir),
])
def test_old_names_are_refused_by_name(monkeypatch: pytest.MonkeyPatch, old: str, new: str, reader) -> None:
    monkeypatch.setenv(old, "15")
    with pytest.raises(RecipeError, match=f"{old} was renamed {new}: set {new}='15' instead and unset {old}"):
        reader()
    monkeypatch.setenv(new, "15")
    reader()  # the new name set: the old one is ignored


def test_the_cli_reports_a_bad_value_as_usage(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "ENZYME_RECIPE": str(tmp_path / "x.toml")}
    proc = run_cli("plan", env=env)
    assert proc.returncode == 2 and "ENZYME_RECIPE was renamed ENZYME_RECIPES_RECIPE" in proc.stderr
    assert "Traceback" not in proc.stderr
