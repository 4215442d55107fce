"""The layers import one way: api -> actors -> engine. engine/ stays pure; Ray is the actors' business."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "engine": {"ray", "fastapi", "starlette", "sqlmodel", "sqlalchemy", "aioboto3", "botocore", "asyncpg",
               "aiosqlite", "uvicorn", "actors", "api"},
    "actors": {"api", "fastapi", "starlette"},
    "api": {"ray"},  # Ray runtime code (ray.init, tasks, actor kills) lives in actors/
}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_what_is_below_it(layer: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_top_levels(path) & FORBIDDEN[layer])
        for path in (ROOT / layer).rglob("*.py")
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, f"{layer}/ imports across layers: {offenders}"


def test_the_layer_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import ray\nfrom sqlalchemy import select\n")
    assert imported_top_levels(bad) >= {"ray", "sqlalchemy"}


@pytest.mark.parametrize("line", ["import ray", "from ray import remote", "import ray.exceptions",
                                  "from ray.util import ActorPool"])
def test_ray_imported_anywhere_in_api_is_caught(tmp_path: Path, line: str) -> None:
    """Even inside a function, as the old lazy ``import ray`` of the web layer was."""
    bad = tmp_path / "lazy.py"
    bad.write_text(f"def start() -> None:\n    {line}\n")
    assert imported_top_levels(bad) & FORBIDDEN["api"] == {"ray"}


def engine_import_graph() -> dict[str, set[str]]:
    """Each engine module and the engine modules it imports (inside functions too; type-only imports
    and a package a module lives in are left out: the first never run, the second is loaded first)."""
    modules = {".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
               for path in (ROOT / "engine").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        type_only = {id(node) for guard in ast.walk(tree) if isinstance(guard, ast.If)
                     and ast.unparse(guard.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                     for statement in guard.body for node in ast.walk(statement)}
        imported: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {m for m in imported if m in modules and m != name and not name.startswith(m + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_no_engine_module_imports_one_that_imports_it_back() -> None:
    assert find_cycle(engine_import_graph()) is None


def test_the_cycle_check_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
