"""The instance catalog: facts and prices as the bundled file states them, and which types and pools can
take over a workload."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from engine import catalog as catalog_module
from engine.catalog import (
    Catalog,
    CatalogError,
    InstanceTypeSpec,
    UnknownInstanceType,
    UnknownRegion,
    compatible_pools,
    region_catalog,
)
from engine.types import Instance, Pool

BUNDLED = Path(catalog_module.__file__).parent / "data" / "ec2_catalog.json.gz"


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    with gzip.open(BUNDLED, "rt", encoding="utf-8") as fh:
        doc: dict[str, Any] = json.load(fh)
    return doc


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load_default()


def instance(instance_type: str = "m5.large", zone: str = "us-east-1a") -> Instance:
    return Instance(instance_id="i-0", pool=Pool(instance_type, zone))


def tiny_doc(**overrides: Any) -> dict[str, Any]:
    """A two-type catalog document; keyword arguments replace fields of ``small.large``."""
    small = {
        "vcpus": 2,
        "memory_mib": 4096,
        "architectures": ["x86_64"],
        "gpus": [],
        "accelerators": [],
        "spot_supported": True,
        "burstable": False,
        "bare_metal": False,
        "on_demand_usd_per_hour": {"xx-test-1": 0.1},
    }
    small.update(overrides)
    big = {**small, "vcpus": 4, "memory_mib": 8192, "on_demand_usd_per_hour": {"xx-test-1": 0.19}}
    return {
        "instance_types": {"small.large": small, "small.xlarge": big},
        "regions": {
            "xx-test-1": {"availability_zones": {"xx-test-1a": ["small.large"], "xx-test-1b": ["small.large"]}}
        },
    }


# --- facts and prices -------------------------------------------------------------------------------


def test_default_catalog_is_loaded_once_and_shared() -> None:
    assert Catalog.load_default() is Catalog.load_default()
    assert len(Catalog.load_default()) == 1424


def test_spec_reports_the_gpu_model_count_and_memory(catalog: Catalog) -> None:
    spec = catalog.spec("p3.8xlarge")
    assert (spec.gpu_name, spec.gpu_count, spec.gpu_memory_mib) == ("V100", 4, 16384)
    assert spec.vcpus == 32
    assert spec.architectures == ("x86_64",)


def test_spec_of_a_cpu_type_has_no_gpu(catalog: Catalog) -> None:
    spec = catalog.spec("m5.large")
    assert spec.gpu_name is None
    assert spec.gpu_count == 0
    assert (spec.vcpus, spec.memory_mib) == (2, 8192)
    assert not spec.burstable


def test_specs_are_immutable(catalog: Catalog) -> None:
    spec = catalog.spec("m5.large")
    with pytest.raises(AttributeError):
        spec.vcpus = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.on_demand_usd_per_hour["us-east-1"] = 0.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("instance_type", "region"),
    [("m5.large", "us-east-1"), ("p3.2xlarge", "us-west-2"), ("g4dn.xlarge", "eu-west-1"), ("t3.large", "us-east-2")],
)
def test_on_demand_price_matches_the_file(
    catalog: Catalog, raw: dict[str, Any], instance_type: str, region: str
) -> None:
    expected = raw["instance_types"][instance_type]["on_demand_usd_per_hour"][region]
    assert catalog.on_demand_usd_per_hour(instance_type, region) == expected


def test_on_demand_prices_of_every_type_match_the_file(catalog: Catalog, raw: dict[str, Any]) -> None:
    for name, entry in raw["instance_types"].items():
        assert dict(catalog.spec(name).on_demand_usd_per_hour) == entry["on_demand_usd_per_hour"]


def test_p3_price_filled_by_hand_for_us_west_2(catalog: Catalog) -> None:
    assert catalog.on_demand_usd_per_hour("p3.2xlarge", "us-west-2") == 3.06


def test_unpriced_region_gives_none(catalog: Catalog) -> None:
    assert catalog.on_demand_usd_per_hour("p3.2xlarge", "af-south-1") is None


def test_unknown_type_error_names_it_and_suggests_close_names(catalog: Catalog) -> None:
    with pytest.raises(UnknownInstanceType) as caught:
        catalog.spec("m5.larg")
    message = str(caught.value)
    assert message.startswith("unknown instance type 'm5.larg'")
    assert "did you mean" in message
    assert "m5.large" in caught.value.suggestions


def test_unknown_type_is_a_key_error(catalog: Catalog) -> None:
    with pytest.raises(KeyError):
        catalog.on_demand_usd_per_hour("x9.huge", "us-east-1")


def test_unknown_type_without_close_names_says_so_plainly(catalog: Catalog) -> None:
    with pytest.raises(UnknownInstanceType) as caught:
        catalog.spec("qqqqqqqq")
    assert str(caught.value) == "unknown instance type 'qqqqqqqq'"


# --- zones ------------------------------------------------------------------------------------------


def test_zones_of_a_region_are_listed_sorted(catalog: Catalog, raw: dict[str, Any]) -> None:
    zones = catalog.zones("us-east-1")
    assert zones == tuple(sorted(raw["regions"]["us-east-1"]["availability_zones"]))
    assert "us-east-1f" in zones


def test_offered_zones_come_from_the_offerings(catalog: Catalog, raw: dict[str, Any]) -> None:
    by_zone = raw["regions"]["us-east-1"]["availability_zones"]
    expected = tuple(sorted(z for z, types in by_zone.items() if "m5.large" in types))
    assert catalog.offered_zones("m5.large", "us-east-1") == expected
    assert "us-east-1e" not in expected


def test_retired_types_are_offered_nowhere(catalog: Catalog) -> None:
    assert catalog.offered_zones("p3.2xlarge", "us-east-1") == ()


def test_unknown_region_error_suggests_close_names(catalog: Catalog) -> None:
    with pytest.raises(UnknownRegion, match="did you mean us-east-1"):
        catalog.zones("us-east1")


# --- compatibility ----------------------------------------------------------------------------------


def test_p3_2xlarge_is_compatible_with_the_four_v100_type_when_its_price_is_allowed(catalog: Catalog) -> None:
    types = catalog.compatible_types("p3.2xlarge", "us-east-1", max_price_ratio=4.0)
    assert types == ["p3.2xlarge", "p3.8xlarge"]


def test_default_price_ratio_keeps_the_four_times_dearer_p3_8xlarge_out(catalog: Catalog) -> None:
    # p3.8xlarge costs 4x p3.2xlarge on demand: too big a jump under the default cap of 2x.
    assert catalog.compatible_types("p3.2xlarge", "us-east-1") == ["p3.2xlarge"]


def test_gpu_workloads_never_move_to_another_gpu_model_or_to_cpu(catalog: Catalog) -> None:
    types = catalog.compatible_types("p3.2xlarge", "us-east-1", max_price_ratio=1000.0)
    assert all(catalog.spec(t).gpu_name == "V100" for t in types)
    assert not any(t.startswith("g4dn") for t in types)
    assert "p3.16xlarge" in types


def test_cpu_workloads_are_never_offered_gpu_or_accelerator_types(catalog: Catalog) -> None:
    types = catalog.compatible_types("m5.large", "us-east-1", max_price_ratio=1000.0)
    for name in types:
        spec = catalog.spec(name)
        assert spec.gpu_count == 0
        assert spec.accelerator_count == 0


def test_m5_large_moves_to_bigger_and_sibling_x86_types(catalog: Catalog) -> None:
    types = catalog.compatible_types("m5.large", "us-east-1")
    assert {"m5.large", "m5.xlarge", "m5a.large"} <= set(types)


def test_m5_large_is_not_compatible_with_arm_or_burstable_types(catalog: Catalog) -> None:
    types = catalog.compatible_types("m5.large", "us-east-1")
    assert "m6g.large" not in types
    assert not any(catalog.spec(t).burstable for t in types)
    assert not any(t.startswith("t3") for t in types)


def test_burstable_workload_may_move_to_fixed_performance_types(catalog: Catalog) -> None:
    types = catalog.compatible_types("t3.large", "us-east-1")
    assert "t3a.large" in types
    assert "m5.large" in types


def test_compatible_types_meet_every_rule(catalog: Catalog) -> None:
    source = catalog.spec("c5.large")
    base = catalog.on_demand_usd_per_hour("c5.large", "us-east-1")
    assert base is not None
    for name in catalog.compatible_types("c5.large", "us-east-1"):
        spec = catalog.spec(name)
        price = spec.on_demand_usd_per_hour["us-east-1"]
        assert "x86_64" in spec.architectures
        assert spec.vcpus >= source.vcpus
        assert spec.memory_mib >= source.memory_mib
        assert spec.spot_supported
        assert not spec.bare_metal
        assert price <= 2.0 * base


def test_compatible_types_are_sorted_by_on_demand_price_and_include_the_type(catalog: Catalog) -> None:
    types = catalog.compatible_types("m5.large", "us-east-1")
    prices = [catalog.on_demand_usd_per_hour(t, "us-east-1") for t in types]
    assert "m5.large" in types
    assert prices == sorted(prices)  # type: ignore[type-var]


def test_price_ratio_bounds_the_list(catalog: Catalog) -> None:
    narrow = catalog.compatible_types("m5.large", "us-east-1", max_price_ratio=1.0)
    wide = catalog.compatible_types("m5.large", "us-east-1", max_price_ratio=3.0)
    assert set(narrow) < set(wide)
    assert "m5.xlarge" not in narrow


def test_type_unpriced_in_the_region_has_only_itself(catalog: Catalog) -> None:
    assert catalog.compatible_types("p3.2xlarge", "af-south-1") == ["p3.2xlarge"]


def test_bare_metal_workload_stays_on_bare_metal() -> None:
    doc = tiny_doc(bare_metal=True)
    doc["instance_types"]["small.xlarge"]["bare_metal"] = False
    assert Catalog.from_json(doc).compatible_types("small.large", "xx-test-1") == ["small.large"]


def test_types_without_spot_are_left_out() -> None:
    doc = tiny_doc()
    doc["instance_types"]["small.xlarge"]["spot_supported"] = False
    assert Catalog.from_json(doc).compatible_types("small.large", "xx-test-1") == ["small.large"]


def test_a_spec_built_by_hand_compares_by_value() -> None:
    a = InstanceTypeSpec("x.large", 2, 4096, ("x86_64",))
    assert a == InstanceTypeSpec("x.large", 2, 4096, ("x86_64",))
    assert hash(a) == hash(InstanceTypeSpec("x.large", 2, 4096, ("x86_64",)))


# --- pools ------------------------------------------------------------------------------------------


def test_compatible_pools_pair_each_type_with_the_zones_offering_it(catalog: Catalog) -> None:
    pools = catalog.compatible_pools(instance("m5.large", "us-east-1a"))
    for pool in pools:
        assert pool.availability_zone in catalog.offered_zones(pool.instance_type, "us-east-1")
    assert Pool("m5.large", "us-east-1a") in pools
    assert Pool("m5a.large", "us-east-1b") in pools
    assert not any(p.instance_type == "m6g.large" for p in pools)


def test_compatible_pools_use_the_given_zones_for_retired_types(catalog: Catalog) -> None:
    pools = catalog.compatible_pools(
        instance("p3.2xlarge", "us-east-1a"), zones=["us-east-1c", "us-east-1a"], max_price_ratio=4.0
    )
    assert pools == [
        Pool("p3.2xlarge", "us-east-1a"),
        Pool("p3.2xlarge", "us-east-1c"),
        Pool("p3.8xlarge", "us-east-1a"),
        Pool("p3.8xlarge", "us-east-1c"),
    ]


def test_compatible_pools_always_hold_the_instances_own_pool(catalog: Catalog) -> None:
    # p3 is absent from today's offerings; the instance still runs somewhere.
    assert catalog.compatible_pools(instance("p3.2xlarge", "us-west-2b")) == [Pool("p3.2xlarge", "us-west-2b")]


def test_compatible_pools_are_ordered_cheapest_type_first(catalog: Catalog) -> None:
    pools = catalog.compatible_pools(instance("m5.large"))
    prices = [catalog.on_demand_usd_per_hour(p.instance_type, "us-east-1") for p in pools]
    assert prices == sorted(prices)  # type: ignore[type-var]


def test_module_level_compatible_pools_use_the_bundled_catalog(catalog: Catalog) -> None:
    assert compatible_pools(instance("m5.large")) == catalog.compatible_pools(instance("m5.large"))


def test_module_level_compatible_pools_accept_another_catalog() -> None:
    tiny = Catalog.from_json(tiny_doc())
    pools = compatible_pools(instance("small.large", "xx-test-1a"), catalog=tiny)
    assert pools == [Pool("small.large", "xx-test-1a"), Pool("small.large", "xx-test-1b")]


# --- malformed documents ----------------------------------------------------------------------------


def test_catalog_without_instance_types_is_rejected() -> None:
    with pytest.raises(CatalogError, match="instance_types"):
        Catalog.from_json({"regions": {}})


def test_bad_field_error_names_the_type_and_field() -> None:
    with pytest.raises(CatalogError, match=r"'small.large': field 'vcpus' = 'two'"):
        Catalog.from_json(tiny_doc(vcpus="two"))


def test_negative_on_demand_price_is_rejected() -> None:
    with pytest.raises(CatalogError, match=r"on_demand_usd_per_hour\['xx-test-1'\]"):
        Catalog.from_json(tiny_doc(on_demand_usd_per_hour={"xx-test-1": -1}))


# --- one region's part (what a region actor holds) ----------------------------------------------------


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "ap-southeast-2"])
def test_a_region_catalog_answers_about_its_region_as_the_whole_one_does(catalog: Catalog, region: str) -> None:
    part = region_catalog(region)
    assert part.zones(region) == catalog.zones(region)
    for instance_type in catalog.instance_types[::7]:  # every 7th type: ~200 per region, a second or so
        price = catalog.on_demand_usd_per_hour(instance_type, region)
        if price is None:  # unpriced in the region: the actor's rule treats it as compatible with itself alone
            assert instance_type not in part or part.on_demand_usd_per_hour(instance_type, region) is None
            continue
        assert part.on_demand_usd_per_hour(instance_type, region) == price
        assert part.offered_zones(instance_type, region) == catalog.offered_zones(instance_type, region)
        assert part.compatible_types(instance_type, region) == catalog.compatible_types(instance_type, region)


def test_a_region_catalog_holds_only_its_regions_prices() -> None:
    part = region_catalog("us-east-1")
    assert part.regions == ("us-east-1",)
    assert part.on_demand_usd_per_hour("p3.2xlarge", "us-west-2") is None
    assert region_catalog("us-east-1") is part


def test_a_region_catalog_of_an_unknown_region_knows_no_type() -> None:
    part = region_catalog("xx-nowhere-1")
    assert len(part) == 0
    with pytest.raises(UnknownRegion):
        part.zones("xx-nowhere-1")
