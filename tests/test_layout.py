"""The layout shows the architecture: artifacts -> native bindings -> compilation -> call
layer -> public API, with data flowing one way.

* zero import cycles in every package, counting imports made inside functions (imports
  under ``if TYPE_CHECKING:`` do not count);
* no module of enzyme_py outside its native layer calls an ``LLVM*`` or Enzyme C-API
  symbol, and the native layer imports nothing above it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.graphs import cycles

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("enzyme_artifacts", "enzyme_py", "build_recipes", "benchmarks")


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


ALL = {name: path for pkg in PACKAGES for name, path in _modules(pkg).items()}


def _is_package(name: str) -> bool:
    return ALL.get(name, Path()).name == "__init__.py"


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    for sub in ast.walk(child):
                        ids.add(id(sub))
    return ids


def _imports(name: str, path: Path) -> Iterator[str]:
    """The internal modules ``name`` imports (anywhere but under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_blocks(tree)
    package = name if _is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name
                while target and target not in ALL:
                    target = target.rpartition(".")[0]
                if target:
                    yield target
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod not in ALL:
                continue
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                yield sub if sub in ALL else mod


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in ALL.items():
        edges = set(_imports(name, path)) - {name}
        # importing a submodule runs its package's __init__ first: that edge is implied and
        # is not counted (else every package importing its own submodules is a cycle)
        graph[name] = {e for e in edges if not (_is_package(e) and name.startswith(e + "."))}
    return graph


def test_the_sources_are_found() -> None:
    assert "enzyme_py._native.library" in ALL and "enzyme_artifacts.cli" in ALL


@pytest.mark.parametrize("package", PACKAGES)
def test_zero_import_cycles(package: str) -> None:
    graph = {k: v for k, v in _graph().items() if k.split(".")[0] == package}
    assert cycles(graph) == []


def test_the_native_layer_imports_nothing_above_it() -> None:
    graph = _graph()
    allowed = ("enzyme_py._native", "enzyme_py.errors", "enzyme_py.config", "enzyme_artifacts")
    bad = {
        mod: sorted(e for e in edges if not e.startswith(allowed))
        for mod, edges in graph.items()
        if mod.startswith("enzyme_py._native")
    }
    assert {k: v for k, v in bad.items() if v} == {}


def _enzyme_symbols() -> set[str]:
    from enzyme_py._native.ffi import capi_v0_0_289

    return set(capi_v0_0_289.FUNCTIONS) | {"CustomErrorHandler", "EnzymeFastMath"}


def test_no_llvm_or_enzyme_calls_outside_the_native_layer() -> None:
    enzyme = _enzyme_symbols()
    offenders = []
    for name, path in ALL.items():
        if not name.startswith("enzyme_py") or name.startswith("enzyme_py._native"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            attr = node.attr if isinstance(node, ast.Attribute) else None
            if attr and (re.match(r"LLVM[A-Z][a-z]", attr) or attr in enzyme):
                offenders.append(f"{name}:{node.lineno} {attr}")
    assert offenders == []
