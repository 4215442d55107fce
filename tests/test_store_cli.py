"""`spot-optimizer db upgrade|current` through typer's CliRunner, on temporary SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from actors.store.migrate import head_revision
from api.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_database_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SPOT_DATABASE_URL", "DATABASE_URL", "SPOT_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def tables_of(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_db_upgrade_creates_the_schema_and_is_a_no_op_the_second_time(tmp_path: Path) -> None:
    path = tmp_path / "spot.db"
    url = f"sqlite+aiosqlite:///{path}"
    for _ in range(2):
        result = runner.invoke(app, ["db", "upgrade", "--database-url", url])
        assert result.exit_code == 0, result.output
        assert f"is at revision {head_revision()} (head)" in result.output
    assert tables_of(path) >= {"decisions", "instances", "alembic_version"}


def test_db_current_tells_whether_an_upgrade_is_needed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'spot.db'}"  # the sync spelling is accepted too
    before = runner.invoke(app, ["db", "current", "--database-url", url])
    assert before.exit_code == 0, before.output
    assert "revision none (behind head" in before.output
    assert runner.invoke(app, ["db", "upgrade", "--database-url", url]).exit_code == 0
    after = runner.invoke(app, ["db", "current", "--database-url", url])
    assert f"revision {head_revision()} (head)" in after.output


def test_db_upgrade_defaults_to_the_settings_sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOT_DATA_DIR", str(tmp_path / "data"))
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "decisions" in tables_of(tmp_path / "data" / "spot-optimizer.db")


def test_db_upgrade_uses_the_database_url_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "instances" in tables_of(tmp_path / "env.db")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/spot", "unsupported database 'mysql'"),
        ("not-a-url", "not a database URL: 'not-a-url'"),
        ("postgresql+asyncpg://user:secret@localhost:5432", "names no database"),
        ("", "empty database URL"),
    ],
)
def test_a_bad_url_is_a_clear_error_with_exit_code_2(url: str, message: str) -> None:
    result = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert "secret" not in result.output


def test_an_unreachable_database_is_a_clear_error_with_exit_code_1(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'spot.db'}"
    result = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 1
    assert "cannot open database sqlite+aiosqlite:///" in result.output
    assert "missing-dir does not exist" in result.output
    assert "Traceback" not in result.output
