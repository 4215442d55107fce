"""AWS spot price history: JSON and CSV in, sorted price points and a resampled market trace out; every
malformed row is named by file, row and field."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.price_history import (
    parse_timestamp_s,
    price_points_to_market_trace,
    read_price_history,
)
from engine.traces import TraceError
from engine.types import Pool, PricePoint

FIXTURES = Path(__file__).parent / "fixtures"
FEB_15_2023_S = 1676419200.0  # 2023-02-15T00:00:00Z
HOUR_S = 3600.0


def record(**overrides: Any) -> dict[str, Any]:
    """One AWS-style history record; keyword arguments replace or (with None) drop fields."""
    base: dict[str, Any] = {
        "AvailabilityZone": "us-east-1a",
        "InstanceType": "m5.large",
        "ProductDescription": "Linux/UNIX",
        "SpotPrice": "0.035000",
        "Timestamp": "2023-02-15T00:00:00.000Z",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def write_json(tmp_path: Path, records: list[dict[str, Any]], name: str = "prices.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"SpotPriceHistory": records}))
    return path


def write_csv(tmp_path: Path, lines: list[str], name: str = "prices.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def point(price: float, timestamp_s: float, zone: str = "us-east-1a", product: str = "Linux/UNIX") -> PricePoint:
    return PricePoint(Pool("m5.large", zone), price, timestamp_s, product)


# --- reading ----------------------------------------------------------------------------------------


def test_reads_aws_json_with_string_prices_and_mixed_offsets() -> None:
    points = read_price_history(FIXTURES / "spot_price_history_p3.json")
    assert len(points) == 5
    assert [p.timestamp_s for p in points] == sorted(p.timestamp_s for p in points)
    first = points[0]
    assert first.pool == Pool("p3.2xlarge", "us-west-2c")
    assert first.price_usd_per_hour == 0.9
    by_zone = {p.pool.availability_zone: p for p in points if p.product_description == "Linux/UNIX"}
    assert by_zone["us-west-2b"].timestamp_s == FEB_15_2023_S + HOUR_S  # 03:00+02:00 is 01:00Z
    assert by_zone["us-west-2b"].price_usd_per_hour == 0.95


def test_keeps_the_product_description() -> None:
    points = read_price_history(FIXTURES / "spot_price_history_p3.json")
    assert {p.product_description for p in points} == {"Linux/UNIX", "Windows"}


def test_reads_csv_with_aws_header_and_blank_lines() -> None:
    points = read_price_history(FIXTURES / "spot_price_history_p3.csv")
    assert [(p.pool.availability_zone, p.price_usd_per_hour) for p in points] == [
        ("us-west-2a", 0.918),
        ("us-west-2a", 1.02),
        ("us-west-2b", 0.95),
    ]


def test_reads_gzipped_snake_case_csv_without_product_column() -> None:
    points = read_price_history(FIXTURES / "spot_price_history_snake.csv.gz")
    assert [(p.pool.availability_zone, p.timestamp_s, p.price_usd_per_hour) for p in points] == [
        ("us-east-1a", FEB_15_2023_S, 0.035),
        ("us-east-1b", FEB_15_2023_S, 0.036),
        ("us-east-1a", FEB_15_2023_S + HOUR_S, 0.04),
    ]
    assert {p.product_description for p in points} == {"Linux/UNIX"}


def test_gzipped_json_is_read_the_same(tmp_path: Path) -> None:
    plain = FIXTURES / "spot_price_history_p3.json"
    packed = tmp_path / "history.json.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert read_price_history(packed) == read_price_history(plain)


def test_bare_list_of_records_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text(json.dumps([record()]))
    assert read_price_history(path) == [point(0.035, FEB_15_2023_S)]


def test_numeric_spot_price_is_accepted(tmp_path: Path) -> None:
    points = read_price_history(write_json(tmp_path, [record(SpotPrice=0.05)]))
    assert points[0].price_usd_per_hour == 0.05


def test_timestamp_without_offset_is_utc() -> None:
    assert parse_timestamp_s("2023-02-15T00:00:00") == FEB_15_2023_S


# --- malformed input --------------------------------------------------------------------------------


def test_csv_error_names_file_line_and_field() -> None:
    path = FIXTURES / "bad_price_line4.csv"
    with pytest.raises(TraceError) as caught:
        read_price_history(path)
    assert str(caught.value) == f"{path}: line 4: field 'spot_price': 'abc' is not a number"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"SpotPrice": "abc"}, "record 2: field 'spot_price': 'abc' is not a number"),
        ({"SpotPrice": "-0.1"}, "record 2: field 'spot_price': '-0.1' is negative"),
        ({"SpotPrice": "nan"}, "record 2: field 'spot_price': 'nan' is not a finite number"),
        ({"SpotPrice": True}, "record 2: field 'spot_price': True is not a number"),
        ({"Timestamp": None}, "record 2: field 'timestamp' is missing"),
        ({"Timestamp": "yesterday"}, "record 2: field 'timestamp': 'yesterday' is not an ISO-8601 time"),
        ({"InstanceType": None}, "record 2: field 'instance_type' is missing"),
        ({"AvailabilityZone": ""}, "record 2: field 'availability_zone' is missing"),
        ({"AvailabilityZone": "us-east-1"}, "record 2: field 'availability_zone': 'us-east-1' is not a zone"),
        ({"Region": "us-east-1"}, "record 2: unknown field 'Region'"),
    ],
)
def test_json_error_names_file_record_and_field(tmp_path: Path, overrides: dict[str, Any], expected: str) -> None:
    path = write_json(tmp_path, [record(), record(**overrides)])
    with pytest.raises(TraceError) as caught:
        read_price_history(path)
    assert str(caught.value).startswith(f"{path}: {expected}")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["availability_zone,instance_type,spot_price,timestamp,region"], "line 1: unknown column 'region'"),
        (["availability_zone,instance_type,spot_price"], "line 1: missing column 'timestamp'"),
        (
            ["availability_zone,instance_type,spot_price,timestamp", "us-east-1a,m5.large,0.03"],
            "line 2: 3 fields, the header has 4",
        ),
        (
            ["availability_zone,instance_type,spot_price,timestamp", "", "us-east-1a,m5.large,0.03,"],
            "line 3: field 'timestamp' is missing",
        ),
        (
            ["availability_zone,instance_type,spot_price,timestamp", "us-east-1a,m5.large,0.03,2023-13-01"],
            "line 2: field 'timestamp': '2023-13-01' is not an ISO-8601 time",
        ),
    ],
)
def test_csv_structure_errors_name_the_line(tmp_path: Path, lines: list[str], expected: str) -> None:
    path = write_csv(tmp_path, lines)
    with pytest.raises(TraceError) as caught:
        read_price_history(path)
    assert str(caught.value).startswith(f"{path}: {expected}")


def test_empty_json_history_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="the price history is empty"):
        read_price_history(write_json(tmp_path, []))


def test_header_only_csv_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="the price history is empty"):
        read_price_history(write_csv(tmp_path, ["availability_zone,instance_type,spot_price,timestamp"]))


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(TraceError, match="empty"):
        read_price_history(path)


def test_unknown_top_level_field_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "odd.json"
    path.write_text(json.dumps({"SpotPriceHistory": [record()], "Prices": []}))
    with pytest.raises(TraceError, match="unknown top-level field 'Prices'"):
        read_price_history(path)


def test_invalid_json_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"SpotPriceHistory": [')
    with pytest.raises(TraceError, match=r"broken.json: not valid JSON"):
        read_price_history(path)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no such file"):
        read_price_history(tmp_path / "absent.json")


# --- resampling -------------------------------------------------------------------------------------


def test_resample_is_a_step_function_that_holds_the_last_price() -> None:
    points = [point(1.0, 100.0), point(2.0, 250.0), point(3.0, 400.0)]
    trace = price_points_to_market_trace(points, tick_s=100.0)
    assert trace.start_s == 100.0
    assert trace.spot_price is not None
    assert trace.spot_price[:, 0].tolist() == [1.0, 1.0, 2.0, 3.0]


def test_ticks_before_a_pools_first_price_take_that_price() -> None:
    points = [point(1.0, 0.0, "us-east-1a"), point(5.0, 200.0, "us-east-1b"), point(6.0, 300.0, "us-east-1b")]
    trace = price_points_to_market_trace(points, tick_s=100.0)
    assert trace.pools == (Pool("m5.large", "us-east-1a"), Pool("m5.large", "us-east-1b"))
    assert trace.spot_price is not None
    assert trace.spot_price.tolist() == [[1.0, 5.0], [1.0, 5.0], [1.0, 5.0], [1.0, 6.0]]


def test_price_history_says_every_pool_is_available() -> None:
    trace = price_points_to_market_trace([point(1.0, 0.0), point(2.0, 1000.0)], tick_s=60.0)
    assert trace.available.all()
    assert trace.available.shape == (17, 1)
    assert trace.on_demand_usd_per_hour is None


def test_explicit_window_is_inclusive_at_both_ends() -> None:
    trace = price_points_to_market_trace([point(1.0, 50.0), point(2.0, 150.0)], 50.0, start_s=0.0, end_s=300.0)
    assert trace.n_ticks == 7
    assert trace.spot_price is not None
    assert trace.spot_price[:, 0].tolist() == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]


def test_input_order_does_not_matter() -> None:
    points = [point(3.0, 400.0), point(1.0, 100.0), point(2.0, 250.0)]
    a = price_points_to_market_trace(points, tick_s=50.0)
    b = price_points_to_market_trace(sorted(points, key=lambda p: p.timestamp_s), tick_s=50.0)
    assert a.spot_price is not None
    assert b.spot_price is not None
    np.testing.assert_array_equal(a.spot_price, b.spot_price)


def test_linux_prices_are_chosen_when_products_are_mixed() -> None:
    points = [point(1.0, 0.0), point(9.0, 0.0, product="Windows")]
    trace = price_points_to_market_trace(points, tick_s=60.0)
    assert trace.spot_price is not None
    assert trace.spot_price.tolist() == [[1.0]]


def test_another_product_can_be_asked_for() -> None:
    points = [point(1.0, 0.0), point(9.0, 0.0, product="Windows")]
    trace = price_points_to_market_trace(points, tick_s=60.0, product_description="Windows")
    assert trace.spot_price is not None
    assert trace.spot_price.tolist() == [[9.0]]


def test_mixed_products_without_linux_must_be_chosen() -> None:
    points = [point(1.0, 0.0, product="SUSE Linux"), point(9.0, 0.0, product="Windows")]
    with pytest.raises(ValueError, match="mixes products"):
        price_points_to_market_trace(points, tick_s=60.0)


def test_no_points_or_a_bad_tick_is_rejected() -> None:
    with pytest.raises(ValueError, match="no price points"):
        price_points_to_market_trace([], tick_s=60.0)
    with pytest.raises(ValueError, match="tick_s"):
        price_points_to_market_trace([point(1.0, 0.0)], tick_s=0.0)


def test_file_to_trace_round_trip() -> None:
    points = read_price_history(FIXTURES / "spot_price_history_snake.csv")
    trace = price_points_to_market_trace(points, tick_s=1800.0)
    assert trace.start_s == FEB_15_2023_S
    assert trace.spot_price is not None
    assert trace.spot_price.tolist() == [[0.035, 0.036], [0.035, 0.036], [0.04, 0.036]]
