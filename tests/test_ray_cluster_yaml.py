"""ray_cluster.yaml is a valid Ray cluster launcher config: checked against the schema Ray ships."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import ray
import yaml

ROOT = Path(__file__).resolve().parents[1]


def load_config() -> dict:
    return yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())


def test_cluster_config_validates_against_the_ray_schema() -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(load_config(), schema)


def test_workers_are_spot_with_an_on_demand_fallback_and_bounds() -> None:
    config = load_config()
    types = config["available_node_types"]
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    market = {n: t["node_config"].get("InstanceMarketOptions", {}).get("MarketType") for n, t in workers.items()}
    spot = [name for name, kind in market.items() if kind == "spot"]
    on_demand = [name for name, kind in market.items() if kind is None]
    assert spot and on_demand
    for t in workers.values():
        assert 0 <= t["min_workers"] <= t["max_workers"] <= config["max_workers"]
    assert config["provider"]["type"] == "aws"
    assert any("pip install -e ~/spot-optimizer" in c for c in config["setup_commands"])


def test_the_schema_check_catches_a_broken_config() -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    broken = load_config()
    broken["max_workers"] = "many"
    try:
        jsonschema.validate(broken, schema)
    except jsonschema.ValidationError:
        return
    raise AssertionError("a string max_workers passed the schema")
