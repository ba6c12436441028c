"""The package's shape: one concern per module, no import cycles (imports inside functions
count, those under ``if TYPE_CHECKING:`` do not), one environment reader, typed public
modules, nothing done at import time."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import enzyme_artifacts
from enzyme_artifacts import errors

from ..support.child import check_python
from ..support.graphs import cycles

PACKAGE = Path(enzyme_artifacts.__file__).parent
ROOT = PACKAGE.parent
DOCS = ROOT / "docs" / "artifacts.md"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                stack.extend(child.orelse)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child
            stack.append(child)


def internal_edges() -> dict[str, set[str]]:
    """module -> the package modules it imports (a submodule also imports its packages,
    unless the importer lives inside them)."""
    mods = sources()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        base = name.split(".") if is_pkg else name.split(".")[:-1]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    anchor = base[: len(base) - node.level + 1]
                    prefix = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                for alias in node.names:
                    sub = f"{prefix}.{alias.name}"
                    targets.append(sub if sub in mods else prefix)
            for target in targets:
                if not target.startswith("enzyme_artifacts"):
                    continue
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    dep = ".".join(parts[:i])
                    if dep in mods and dep != name and not name.startswith(dep + "."):
                        graph[name].add(dep)
    return graph


def test_zero_import_cycles() -> None:
    graph = internal_edges()
    assert graph["enzyme_artifacts.resolver"] >= {"enzyme_artifacts.selection", "enzyme_artifacts.develop"}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_type_checking_imports_do_not_count() -> None:
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .x import y\n"
                     "def f():\n    from .z import w\n")
    assert [n.module for n in _imports(tree) if isinstance(n, ast.ImportFrom)] == ["typing", "z"]


def test_overrides_and_resolver_no_longer_import_each_other() -> None:
    graph = internal_edges()
    assert "enzyme_artifacts.resolver" not in graph["enzyme_artifacts.overrides"]
    assert graph["enzyme_artifacts.overrides"] <= {
        "enzyme_artifacts._lock", "enzyme_artifacts.errors", "enzyme_artifacts.paths"}


def test_every_environment_read_goes_through_env() -> None:
    offenders = []
    for name, path in sources().items():
        if name == "enzyme_artifacts._env":
            continue
        text = path.read_text()
        for pattern in (r"os\.environ", r"os\.getenv", r"\bgetenv\(", r"from os import .*environ"):
            if re.search(pattern, text):
                offenders.append(f"{name}: {pattern}")
    assert offenders == []


def test_variables_are_listed_in_the_package_docstring_and_the_docs() -> None:
    used: set[str] = set()
    for path in sources().values():
        used |= set(re.findall(r"ENZYME_ARTIFACTS_[A-Z_]+[A-Z]", path.read_text()))
    used.discard("ENZYME_ARTIFACTS_")
    assert len(used) >= 20
    doc = enzyme_artifacts.__doc__ or ""
    docs = DOCS.read_text()
    assert sorted(v for v in used if f"``{v}``" not in doc) == []
    table = [line for line in docs.splitlines() if line.startswith("| `ENZYME_ARTIFACTS_")]
    assert sorted(v for v in used if not any(re.match(rf"\| `{v}[`=]", row) for row in table)) == []


def test_the_private_elf_module_is_gone_and_the_public_one_is_typed() -> None:
    assert not (PACKAGE / "_elf.py").exists()
    elf = importlib.import_module("enzyme_artifacts.elf")
    assert set(elf.__all__) >= {"read_needed", "read_soname", "replace_needed", "is_elf", "NotElfError"}


def public_modules() -> list[str]:
    return [m for m in sources() if not any(part.startswith("_") for part in m.split(".")[1:])]


@pytest.mark.parametrize("name", public_modules())
def test_public_modules_declare_all(name: str) -> None:
    module = importlib.import_module(name)
    assert isinstance(getattr(module, "__all__", None), list), f"{name} has no __all__"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert missing == []
    assert module.__doc__, f"{name} has no docstring"


def test_the_old_public_names_stay_importable() -> None:
    from enzyme_artifacts import capi, hashes, manifest, platforms

    assert callable(capi.required_symbols) and callable(capi.signature_markers)
    assert callable(manifest.load_manifest) and callable(platforms.host_platform)
    assert callable(hashes.sha256_file)
    for name in ("ArtifactError", "UnsupportedPlatformError", "LLVMNotFoundError", "InvalidOverrideError"):
        assert issubclass(getattr(errors, name), Exception)
    from enzyme_artifacts._wheel import install_from_wheel
    from enzyme_artifacts.llvm import find_libllvm
    from enzyme_artifacts.prefixes import ENTRY_POINT_GROUP

    assert callable(install_from_wheel) and callable(find_libllvm) and ENTRY_POINT_GROUP


def test_every_error_is_in_the_tree_and_resembles_a_builtin() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.ArtifactError)
        if cls is not errors.ArtifactError:
            builtins = [b for b in cls.__mro__ if b.__module__ == "builtins" and b not in (object, Exception,
                                                                                          BaseException)]
            assert builtins, f"{name} subclasses no built-in exception"
        assert cls.__doc__ and name in (errors.__doc__ or ""), f"{name} is not documented in the tree"


def test_paths_are_pathlib_paths() -> None:
    from enzyme_artifacts import paths

    for name in ("cache_root", "config_dir", "data_dir", "dev_root", "overrides_path", "validations_dir"):
        fn = getattr(paths, name)
        assert inspect.signature(fn).return_annotation in ("Path", Path)
        assert isinstance(fn(), Path)
    resolver = importlib.import_module("enzyme_artifacts.resolver")
    assert inspect.signature(resolver.locate).return_annotation in ("Path", Path)


def test_import_is_fast_lazy_and_does_no_io(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    code = """
import json, sys, time
t = time.perf_counter()
import enzyme_artifacts
elapsed = time.perf_counter() - t
loaded = sorted(m for m in sys.modules if m.startswith('enzyme_artifacts.'))
heavy = [m for m in ('requests', 'elftools', 'packaging.tags', 'platformdirs', 'tqdm', 'filelock',
                     'importlib.metadata') if m in sys.modules]
print(json.dumps({"elapsed": elapsed, "loaded": loaded, "heavy": heavy}))
"""
    env = {"HOME": str(home), "XDG_CACHE_HOME": str(home / "c"), "XDG_CONFIG_HOME": str(home / "k"),
           "XDG_DATA_HOME": str(home / "d"), "PATH": "/usr/bin:/bin"}
    best = min((json.loads(check_python(code, env=env)) for _ in range(3)), key=lambda r: r["elapsed"])
    assert best["loaded"] == [] and best["heavy"] == []
    assert best["elapsed"] < 0.050, best
    assert list(home.iterdir()) == []


def test_importing_every_module_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    names = [m for m in sources() if not m.endswith(("__main__", "_plugin_child"))]
    code = f"import importlib\nfor m in {names!r}:\n    importlib.import_module(m)\nprint('ok')\n"
    env = {"HOME": str(home), "XDG_CACHE_HOME": str(home / "c"), "XDG_CONFIG_HOME": str(home / "k"),
           "XDG_DATA_HOME": str(home / "d"), "PATH": "/usr/bin:/bin"}
    assert check_python(code, env=env).strip() == "ok"
    assert list(home.iterdir()) == []


def test_the_version_has_one_source() -> None:
    from importlib.metadata import version

    import enzyme_py
    from enzyme_artifacts._version import _from_pyproject, distribution_version

    assert enzyme_artifacts.__version__ == distribution_version() == version("enzyme-py")
    assert enzyme_py.__version__ == enzyme_artifacts.__version__  # one version source
    assert _from_pyproject("enzyme-py") == version("enzyme-py")  # the fallback agrees
    assert _from_pyproject("another-project") is None
    assert "__version__" in dir(enzyme_artifacts)


def test_version_without_installed_metadata(tmp_path: Path) -> None:
    """Run from the source tree with the distribution's metadata hidden: pyproject answers."""
    code = f"""
import importlib.metadata as md, sys
real = md.version
def version(name):
    if name == "enzyme-py":
        raise md.PackageNotFoundError(name)
    return real(name)
md.version = version
sys.path.insert(0, {str(ROOT)!r})
import enzyme_artifacts
print(enzyme_artifacts.__version__)
"""
    import tomllib

    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert check_python(code).strip() == expected
