"""A region actor's process imports what it runs and nothing more: every module costs every actor's
process its memory (bench/memory.py measures it). What it must not pull in, and the seams that keep it so."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from actors.store.migrate import alembic_config, head_revision

ROOT = Path(__file__).resolve().parent.parent
# Packages a region actor never uses: the API's (served by the API process), the AWS SDK (an AWS account's
# actor loads it when it is created), plotting, migrations (the API process migrates; actors only check the
# revision) and river.drift with scipy.stats (the engine has its own Page-Hinkley test).
NEVER_IN_A_REPLAY_ACTOR = ("fastapi", "starlette", "uvicorn", "matplotlib", "aioboto3", "aiobotocore", "botocore",
                           "boto3", "alembic", "mako", "scipy.stats", "river.drift", "asyncpg", "typer", "rich",
                           "httpx", "websockets", "prometheus_client")


def modules_after_import(module: str) -> set[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=120)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_a_region_actor_module_imports_none_of_the_apis_or_the_clouds_packages() -> None:
    loaded = modules_after_import("actors.remote")
    assert "actors.region" in loaded
    assert sorted(m for m in NEVER_IN_A_REPLAY_ACTOR if m in loaded) == []


def test_the_head_revision_read_from_the_migration_files_is_alembics() -> None:
    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.mark.ray
def test_a_region_actor_reserves_the_configured_memory_from_rays_scheduler(ray_session) -> None:
    import ray

    from actors.region import RegionConfig
    from actors.supervisor import Supervisor

    reserved_mib = 64
    before = ray.available_resources().get("memory", 0.0)
    handle = Supervisor(actor_memory_mb=reserved_mib).get_or_create(RegionConfig("memory-test", "us-east-1"))
    try:
        assert ray.get(handle.ready.remote(), timeout=120)
        deadline = time.monotonic() + 30  # the scheduler's view is refreshed asynchronously
        while before - ray.available_resources().get("memory", 0.0) < reserved_mib * 2**20:
            assert time.monotonic() < deadline, "the actor reserved no memory"
            time.sleep(0.1)
    finally:
        ray.kill(handle)
