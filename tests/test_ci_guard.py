"""Under CI=true a missing PostgreSQL fails the run; on a developer machine it skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNREACHABLE = "postgresql+asyncpg://postgres@127.0.0.1:1/test"


def run_one_postgres_test(ci: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CI": ci, "SPOT_TEST_DATABASE_URL": UNREACHABLE}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-header",
         "tests/test_store.py", "-k", "concurrent and postgres"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.slow
def test_a_missing_postgres_fails_under_ci_and_skips_elsewhere() -> None:
    in_ci = run_one_postgres_test("true")
    assert in_ci.returncode == 1, in_ci.stdout
    assert "a missing PostgreSQL is a failure" in in_ci.stdout
    locally = run_one_postgres_test("")
    assert locally.returncode == 0, locally.stdout
    assert " skipped" in locally.stdout and " passed" not in locally.stdout
