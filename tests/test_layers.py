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
