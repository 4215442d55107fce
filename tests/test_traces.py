"""Trace readers on the real public traces and on small bad files: shapes, tick lengths, first values,
conventions, group selection, price joins, and errors that name the file, the position and the field."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.catalog import Catalog
from engine.traces import (
    Convention,
    TraceError,
    bundled_market,
    load_availability,
    load_joint_prices,
    load_market,
    load_windows,
    pool_of_trace_name,
    read_windows,
)
from engine.types import Pool

FIXTURES = Path(__file__).parent / "fixtures"
BUNDLED = Path(__file__).resolve().parents[1] / "engine" / "data"
FEB_15_2023_S = 1676419200.0
APR_22_2023_S = 1682121600.0
ZONES_2023 = (
    "us-east-1a",
    "us-east-1c",
    "us-east-1d",
    "us-east-1f",
    "us-east-2a",
    "us-east-2b",
    "us-west-2a",
    "us-west-2b",
    "us-west-2c",
)


def write_bundle(tmp_path: Path, traces: dict[str, Any], convention: str = "available", gz: bool = False) -> Path:
    doc = {"source": "test aws-01-02-2023", "convention": convention, "traces": traces}
    path = tmp_path / ("bundle.json.gz" if gz else "bundle.json")
    text = json.dumps(doc).encode()
    path.write_bytes(gzip.compress(text) if gz else text)
    return path


def trace(data: list[Any], gap_seconds: Any = 60, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"gap_seconds": gap_seconds}, "data": data, **extra}


# --- names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "pool"),
    [
        ("us-west-2a_v100_1.json", Pool("p3.2xlarge", "us-west-2a")),
        ("us-west-2b_k80_8.json", Pool("p2.8xlarge", "us-west-2b")),
        ("aws-04-19-2023/us-east-1b_intel_64.json", Pool("r5.16xlarge", "us-east-1b")),
        ("gcp-04-30-2023/us-east1-b_c3-88.json", Pool("c3-highcpu-88", "us-east1-b")),
        ("us-east-1a_v100_1", Pool("p3.2xlarge", "us-east-1a")),
        ("ap-northeast-1a_m5.large.json", Pool("m5.large", "ap-northeast-1a")),
    ],
)
def test_trace_names_map_to_pools(name: str, pool: Pool) -> None:
    assert pool_of_trace_name(name) == pool


@pytest.mark.parametrize("name", ["v100_1.json", "us-west-2a.json", "us-west-2_v100_1.json", "notes.json"])
def test_unparseable_trace_names_are_rejected(name: str) -> None:
    with pytest.raises(TraceError, match=r"is not '<zone>_<kind>.json'"):
        pool_of_trace_name(name)


# --- the real availability traces -------------------------------------------------------------------


def test_2023_availability_shape_tick_and_first_values(shared_data: Path) -> None:
    market = load_availability(shared_data / "traces/availability_aws_2023-02-15.json.gz")
    assert market.pools == tuple(Pool("p3.2xlarge", z) for z in ZONES_2023)
    assert market.available.shape == (20158, 9)
    assert market.tick_s == 195.0
    assert market.start_s == FEB_15_2023_S
    assert market.available[0].tolist() == [False] * 6 + [True] * 3
    assert market.spot_price is None


def test_2022_availability_maps_accelerators_to_types(shared_data: Path) -> None:
    market = load_availability(shared_data / "traces/availability_aws_2022-10-26.json.gz")
    assert market.available.shape == (3895, 8)
    assert market.tick_s == 600.0
    assert {p.instance_type for p in market.pools} == {"p2.xlarge", "p2.8xlarge", "p3.2xlarge", "p3.16xlarge"}
    column = market.pools.index(Pool("p3.2xlarge", "us-west-2a"))
    assert market.available[:5, column].tolist() == [True, False, False, True, True]


def test_bundled_copies_equal_the_shared_files(shared_data: Path) -> None:
    for name in ("availability_aws_2023-02-15.json.gz", "prices_p3.2xlarge_2023-02-15.json.gz"):
        assert (BUNDLED / name).read_bytes() == (shared_data / "traces" / name).read_bytes()
    assert (BUNDLED / "ec2_catalog.json.gz").read_bytes() == (shared_data / "catalog/ec2_catalog.json.gz").read_bytes()


def test_bundle_stays_well_under_five_megabytes() -> None:
    assert sum(p.stat().st_size for p in BUNDLED.iterdir() if p.is_file()) < 1_000_000


def test_joint_prices_attach_to_availability(shared_data: Path) -> None:
    availability = load_availability(shared_data / "traces/availability_aws_2023-02-15.json.gz")
    market = load_joint_prices(shared_data / "traces/prices_p3.2xlarge_2023-02-15.json.gz", availability)
    assert market.spot_price is not None
    assert market.spot_price.shape == (20158, 9)
    assert market.spot_price[0].tolist() == [1.6703, 1.2054, 1.1856, 1.2433, 0.918, 0.9399, 0.918, 0.918, 0.918]
    assert market.on_demand_usd_per_hour is not None
    assert market.on_demand_usd_per_hour.tolist() == [3.06] * 9


# --- windows ----------------------------------------------------------------------------------------


def test_windows_count_tick_and_convention(shared_data: Path) -> None:
    path = shared_data / "traces/cant_be_late_windows_us-west-2a_v100_1.json.gz"
    windows = read_windows(path)
    assert len(windows) == 1000
    assert windows.tick_s == 600.0
    assert len(windows.available[0]) == 2221
    raw = json.loads(gzip.decompress(path.read_bytes()))["windows"][0]["data"]
    # the file is in the preempted convention: 0 = available
    assert windows.available[0].tolist() == [v == 0 for v in raw]
    assert windows.start_s[0] == pytest.approx(1667826471.0)  # 2022-11-07T13:07:51Z


def test_load_windows_returns_one_array_per_window(shared_data: Path) -> None:
    path = shared_data / "traces/cant_be_late_windows_us-west-2a_v100_1.json.gz"
    windows = load_windows(path)
    assert len(windows) == 1000
    flipped = load_windows(path, convention="available")
    np.testing.assert_array_equal(flipped[3], ~windows[3])


def test_windows_with_different_gaps_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"convention": "preempted", "windows": [trace([0, 1], 600), trace([0, 0], 300)]}))
    with pytest.raises(TraceError, match=r"w.json: window 1: gap_seconds \[300.0, 600.0\] differ"):
        load_windows(path)


# --- preemption traces: groups, conventions, per-tick prices ----------------------------------------


def test_mixed_gaps_error_lists_groups_and_suggests_select(shared_data: Path) -> None:
    path = shared_data / "traces/preemption_1-node.json.gz"
    with pytest.raises(TraceError) as caught:
        load_availability(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: traces have different gap_seconds")
    assert "aws-04-22-2023/: 32 s" in message
    assert "gcp-04-30-2023/: 30 s" in message
    assert "select='aws-04-19-2023/'" in message


def test_select_loads_one_group_with_its_own_start(shared_data: Path) -> None:
    market = load_availability(shared_data / "traces/preemption_1-node.json.gz", select="aws-04-22-2023/")
    assert market.pools == tuple(
        Pool("p3.2xlarge", z) for z in ("us-east-1c", "us-east-1f", "us-west-2b", "us-west-2c")
    )
    assert market.tick_s == 32.0
    assert market.n_ticks == 19961
    assert market.start_s == APR_22_2023_S


def test_preempted_convention_of_the_file_is_honoured_and_can_be_overridden(shared_data: Path) -> None:
    path = shared_data / "traces/preemption_1-node.json.gz"
    stated = load_availability(path, select="aws-04-22-2023/")
    raw = json.loads(gzip.decompress(path.read_bytes()))["traces"]["aws-04-22-2023/us-east-1f_v100_1.json"]["data"]
    assert stated.available[:5, 1].tolist() == [v == 0 for v in raw[:5]]  # [0, 1, 1, 1, 1] preempted
    overridden = load_availability(path, convention=Convention.AVAILABLE, select="aws-04-22-2023/")
    np.testing.assert_array_equal(overridden.available, ~stated.available)


def test_per_tick_prices_fill_spot_price_when_every_trace_has_them(shared_data: Path) -> None:
    market = load_availability(shared_data / "traces/preemption_1-node.json.gz", select="aws-04-19-2023/")
    assert market.pools[0] == Pool("r5.16xlarge", "us-east-1b")
    assert market.spot_price is not None
    assert market.spot_price.shape == (16090, 3)
    assert market.tick_s == 34.0
    assert (market.spot_price > 0).all()


def test_one_trace_without_prices_leaves_spot_price_empty(shared_data: Path) -> None:
    # us-east-1f in the 2023-04-22 group carries no prices
    market = load_availability(shared_data / "traces/preemption_1-node.json.gz", select="aws-04-22-2023/")
    assert market.spot_price is None


def test_gcp_zones_are_read(shared_data: Path) -> None:
    market = load_availability(shared_data / "traces/preemption_1-node.json.gz", select="gcp-04-30-2023/")
    assert [p.availability_zone for p in market.pools] == [
        "us-central1-a",
        "us-central1-b",
        "us-central1-c",
        "us-east1-b",
    ]
    assert market.tick_s == 30.0


def test_select_that_matches_nothing_lists_the_groups(shared_data: Path) -> None:
    with pytest.raises(TraceError, match=r"no trace name starts with 'aws-2099/'.*'gcp-04-30-2023/'"):
        load_availability(shared_data / "traces/preemption_1-node.json.gz", select="aws-2099/")


def test_fixture_bundle_group_prices_and_cut_to_shortest() -> None:
    market = load_availability(FIXTURES / "mixed_gaps.json", select="aws-01-02-2023/")
    assert market.n_ticks == 3
    assert market.available.tolist() == [[True, True], [False, True], [True, False]]
    assert market.spot_price is not None
    assert market.spot_price.tolist() == [[1.0, 0.5], [1.5, 0.5], [2.0, 0.6]]


# --- bad inputs -------------------------------------------------------------------------------------


def test_null_value_error_names_file_trace_and_position() -> None:
    path = FIXTURES / "bad_trace_gap.json"
    with pytest.raises(TraceError) as caught:
        load_availability(path)
    assert str(caught.value) == f"{path}: trace 'us-east-1a_v100_1.json': data[2] = None is not a number"


@pytest.mark.parametrize(
    ("bad_trace", "expected"),
    [
        (trace([1, "1", 0]), "data[1] = '1' is not a number"),
        (trace([1, True]), "data[1] = True is not a number"),
        (trace([1, 0, -1]), "data[2] = -1 is negative"),
        (trace([]), "field 'data' must be a non-empty list"),
        (trace([1, 0], gap_seconds=0), "field 'metadata.gap_seconds' = 0 is not a positive number"),
        (trace([1, 0], gap_seconds="60"), "field 'metadata.gap_seconds' = '60' is not a positive number"),
        ({"data": [1, 0]}, "field 'metadata.gap_seconds' is missing"),
        (trace([1, 0], prices=[1.0, "x"]), "prices[1] = 'x' is not a number"),
        (trace([1, 0], prices=[1.0, -2.0]), "prices[1] = -2.0 is negative"),
        (trace([1, 0], prices=[1.0]), "field 'prices' has 1 values for 2 ticks"),
        ([1, 0], "expected an object with 'metadata' and 'data'"),
    ],
)
def test_bad_trace_errors_name_file_trace_and_field(tmp_path: Path, bad_trace: Any, expected: str) -> None:
    path = write_bundle(tmp_path, {"us-east-1a_v100_1.json": trace([1, 1, 1]), "us-east-1b_v100_1.json": bad_trace})
    with pytest.raises(TraceError) as caught:
        load_availability(path)
    assert str(caught.value) == f"{path}: trace 'us-east-1b_v100_1.json': {expected}"


def test_nan_in_data_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "us-east-1a_v100_1.json"
    path.write_text('{"convention": "available", "metadata": {"gap_seconds": 60}, "data": [1, NaN]}')
    with pytest.raises(TraceError, match=r"data\[1\] = nan is not a finite number"):
        load_availability(path)


def test_trace_whose_pool_cannot_be_told_is_rejected(tmp_path: Path) -> None:
    path = write_bundle(tmp_path, {"mystery.json": trace([1, 0])})
    with pytest.raises(TraceError, match=r"trace 'mystery.json': cannot tell its pool"):
        load_availability(path)


def test_metadata_can_name_the_pool(tmp_path: Path) -> None:
    named = trace([1, 0])
    named["metadata"].update(instance_type="m5.large", availability_zone="eu-west-1b")
    market = load_availability(write_bundle(tmp_path, {"mystery.json": named}))
    assert market.pools == (Pool("m5.large", "eu-west-1b"),)


def test_two_traces_of_one_pool_are_rejected(tmp_path: Path) -> None:
    path = write_bundle(tmp_path, {"a/us-east-1a_v100_1.json": trace([1]), "b/us-east-1a_v100_1.json": trace([0])})
    with pytest.raises(TraceError, match=r"are both p3.2xlarge@us-east-1a"):
        load_availability(path)


def test_groups_with_different_dates_are_not_aligned(tmp_path: Path) -> None:
    path = write_bundle(
        tmp_path,
        {"aws-01-02-2023/us-east-1a_v100_1.json": trace([1]), "aws-01-05-2023/us-east-1b_v100_1.json": trace([0])},
    )
    with pytest.raises(TraceError, match=r"different start times .*select='aws-01-02-2023/'"):
        load_availability(path)


def test_missing_convention_asks_for_one(tmp_path: Path) -> None:
    path = write_bundle(tmp_path, {"us-east-1a_v100_1.json": trace([1])}, convention="")
    with pytest.raises(TraceError, match="does not say its convention"):
        load_availability(path)
    assert load_availability(path, convention="preempted").available.tolist() == [[False]]


def test_unknown_convention_override_is_rejected(tmp_path: Path) -> None:
    path = write_bundle(tmp_path, {"us-east-1a_v100_1.json": trace([1])})
    with pytest.raises(TraceError, match="'sometimes' is not 'available' or 'preempted'"):
        load_availability(path, convention="sometimes")


def test_gzip_is_detected_by_content(tmp_path: Path) -> None:
    path = write_bundle(tmp_path, {"us-east-1a_v100_1.json": trace([2, 0])}, gz=True)
    renamed = path.rename(tmp_path / "bundle.json")
    assert load_availability(renamed).available.tolist() == [[True], [False]]


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"{not json", "not valid JSON"), (b"[1, 2]", "expected a JSON object"), (b"{}", "expected field 'traces'")],
)
def test_unreadable_files_are_named(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "odd.json"
    path.write_bytes(content)
    with pytest.raises(TraceError, match=f"odd.json: {expected}"):
        load_availability(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"absent.json: no such file"):
        load_availability(tmp_path / "absent.json")


def test_joint_prices_missing_a_pool_are_rejected(tmp_path: Path) -> None:
    availability = load_availability(write_bundle(tmp_path, {"us-east-1a_v100_1.json": trace([1, 0])}))
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"prices": {"us-east-1b_v100_1": [1.0, 1.0]}}))
    with pytest.raises(TraceError, match=r"no prices for pools \['p3.2xlarge@us-east-1a'\]"):
        load_joint_prices(prices, availability)


def test_joint_prices_with_a_bad_on_demand_price_are_rejected(tmp_path: Path) -> None:
    availability = load_availability(write_bundle(tmp_path, {"us-east-1a_v100_1.json": trace([1, 0])}))
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"on_demand_usd_per_hour": -3, "prices": {"us-east-1a_v100_1": [1.0, 1.0]}}))
    with pytest.raises(TraceError, match="'on_demand_usd_per_hour' = -3 is not a positive number"):
        load_joint_prices(prices, availability)


# --- load_market and the bundled market -------------------------------------------------------------


def test_bundled_market_is_the_joint_2023_p3_history() -> None:
    market = bundled_market()
    assert market.pools == tuple(Pool("p3.2xlarge", z) for z in ZONES_2023)
    assert (market.n_ticks, market.n_pools, market.tick_s, market.start_s) == (20158, 9, 195.0, FEB_15_2023_S)
    assert market.spot_price is not None
    assert market.spot_price[0, 0] == 1.6703
    assert market.on_demand_usd_per_hour is not None
    assert market.on_demand_usd_per_hour.tolist() == [3.06] * 9


def test_bundled_market_is_shared_and_read_only() -> None:
    market = bundled_market()
    assert bundled_market() is market
    with pytest.raises(ValueError, match="read-only"):
        market.available[0, 0] = False


def test_load_market_with_joint_prices_matches_the_two_step_load(shared_data: Path) -> None:
    availability = shared_data / "traces/availability_aws_2023-02-15.json.gz"
    prices = shared_data / "traces/prices_p3.2xlarge_2023-02-15.json.gz"
    joined = load_market(availability, prices)
    two_step = load_joint_prices(prices, load_availability(availability))
    assert joined.spot_price is not None
    assert two_step.spot_price is not None
    np.testing.assert_array_equal(joined.spot_price, two_step.spot_price)
    np.testing.assert_array_equal(joined.available, two_step.available)


def test_load_market_without_prices_takes_on_demand_from_the_catalog(shared_data: Path) -> None:
    market = load_market(shared_data / "traces/preemption_1-node.json.gz", select="aws-04-19-2023/")
    expected = Catalog.load_default().on_demand_usd_per_hour("r5.16xlarge", "us-east-1")
    assert market.on_demand_usd_per_hour is not None
    assert market.on_demand_usd_per_hour.tolist() == [expected] * 3
    assert market.spot_price is not None  # the group's own per-tick prices


def test_on_demand_stays_unknown_when_the_catalog_lacks_a_pool(shared_data: Path) -> None:
    market = load_market(shared_data / "traces/preemption_1-node.json.gz", select="gcp-04-30-2023/")
    assert market.on_demand_usd_per_hour is None


@pytest.mark.parametrize("history", ["spot_price_history_p3.json", "spot_price_history_p3.csv"])
def test_load_market_resamples_price_history_onto_the_availability_ticks(history: str) -> None:
    availability = BUNDLED / "availability_aws_2023-02-15.json.gz"
    if history.endswith(".csv"):
        market = load_market(availability, FIXTURES / history, select="us-west-2a")
        columns = {"us-west-2a": 0}
    else:
        market = load_market(availability, FIXTURES / history, select="us-west-2")
        columns = {"us-west-2a": 0, "us-west-2b": 1, "us-west-2c": 2}
    assert market.spot_price is not None
    assert market.spot_price.shape == (20158, len(columns))
    a = market.spot_price[:, columns["us-west-2a"]]
    # 0.918 from 2023-02-14T20:00Z, 1.02 from 01:00Z: tick 18 is 00:58:30, tick 19 is 01:01:45
    assert a[18] == 0.918
    assert a[19] == 1.02
    assert a[-1] == 1.02
    assert 1.5 not in a  # the Windows price is not Linux's
    if "us-west-2b" in columns:
        assert (market.spot_price[:, columns["us-west-2b"]] == 0.95).all()  # before its first price too
        assert (market.spot_price[:, columns["us-west-2c"]] == 0.9).all()
    assert market.on_demand_usd_per_hour is not None
    assert market.on_demand_usd_per_hour.tolist() == [3.06] * len(columns)


def test_price_history_missing_a_pool_is_rejected() -> None:
    with pytest.raises(TraceError, match=r"no Linux/UNIX prices for pools \['p3.2xlarge@us-east-1a'"):
        load_market(BUNDLED / "availability_aws_2023-02-15.json.gz", FIXTURES / "spot_price_history_p3.json")


def test_price_history_outside_the_availability_window_is_rejected(tmp_path: Path) -> None:
    availability = write_bundle(tmp_path, {"us-east-1a_m5.large.json": trace([1, 1, 0])})
    history = tmp_path / "late.csv"
    history.write_text(
        "availability_zone,instance_type,spot_price,timestamp\nus-east-1a,m5.large,0.03,2030-01-01T00:00:00Z\n"
    )
    with pytest.raises(TraceError, match="do not overlap"):
        load_market(availability, history)


def test_bad_price_history_row_surfaces_through_load_market(tmp_path: Path) -> None:
    availability = write_bundle(tmp_path, {"us-east-1a_m5.large.json": trace([1, 1, 0])})
    with pytest.raises(TraceError, match=r"bad_price_line4.csv: line 4: field 'spot_price'"):
        load_market(availability, FIXTURES / "bad_price_line4.csv")
