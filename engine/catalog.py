"""The EC2 instance catalog: what each instance type is, what it costs on demand, where it is offered,
and which other types could run the same workload.

The catalog is data, not I/O: :meth:`Catalog.from_json` takes the parsed document, and
:func:`default_catalog` reads the copy bundled under ``engine/data`` once per process (on first use,
never at import time). The bundled file is a snapshot (see ``engine/data/README.md``); live prices from
the AWS APIs are meant to replace it when credentials are present.

Compatibility is deliberately conservative — a replacement must run the workload *unchanged*:

* the same CPU architecture (the sets of supported architectures intersect);
* at least as many vCPUs and at least as much memory;
* GPUs (and other accelerators such as Inferentia) of the same model, by name, at least as many; a
  type without them never gets offered one that has them (paying for an idle V100 is never a saving);
* spot supported, and priced on demand in the region (an unpriced type cannot be weighed);
* no bare-metal types for a virtualised workload, and only bare metal for a bare-metal one;
* no burstable (T-family) types for a non-burstable workload: their CPU credits run out under a steady
  load and the instance then runs at a fraction of a core, which the vCPU count does not show. A
  burstable workload may move to a burstable or a fixed-performance type;
* not absurdly larger: on-demand price at most ``max_price_ratio`` (default 2.0) times the original's,
  because a spot discount rarely covers more than that and the policy's candidate list stays short.
"""

from __future__ import annotations

import difflib
import functools
import gzip
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

from engine.types import Instance, Pool

DEFAULT_MAX_PRICE_RATIO = 2.0
_BUNDLED_CATALOG = "ec2_catalog.json.gz"


class CatalogError(ValueError):
    """The catalog document is malformed; the message names the instance type and the field."""


class UnknownInstanceType(KeyError):
    """An instance type the catalog does not know; the message suggests close names."""

    def __init__(self, instance_type: str, suggestions: Iterable[str] = ()) -> None:
        self.instance_type = instance_type
        self.suggestions = tuple(suggestions)
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        self.message = f"unknown instance type {instance_type!r}{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return self.message


class UnknownRegion(KeyError):
    """A region the catalog does not know; the message suggests close names."""

    def __init__(self, region: str, suggestions: Iterable[str] = ()) -> None:
        self.region = region
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        self.message = f"unknown region {region!r}{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class InstanceTypeSpec:
    """The facts about one instance type that placement decisions need."""

    name: str
    vcpus: int
    memory_mib: int
    architectures: tuple[str, ...]
    gpu_name: str | None = None
    gpu_count: int = 0
    gpu_memory_mib: int = 0  # per GPU
    spot_supported: bool = True
    current_generation: bool = True
    burstable: bool = False
    on_demand_usd_per_hour: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )  # region -> Linux on-demand price; a region absent = price unknown
    bare_metal: bool = False
    accelerator_name: str | None = None  # non-GPU accelerators (Inferentia, Trainium, ...)
    accelerator_count: int = 0

    @property
    def family(self) -> str:
        """The family part of the name.

        >>> InstanceTypeSpec("m5a.large", 2, 8192, ("x86_64",)).family
        'm5a'
        """
        return self.name.partition(".")[0]


def spec_from_json(name: str, doc: Mapping[str, Any]) -> InstanceTypeSpec:
    """Build a spec from one ``instance_types`` entry of the catalog file; errors name the field."""

    def need(key: str, kind: type) -> Any:
        value = doc.get(key)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise CatalogError(f"instance type {name!r}: field {key!r} = {value!r} is not a {kind.__name__}")
        return value

    gpus = doc.get("gpus") or []
    accelerators = doc.get("accelerators") or []
    prices = doc.get("on_demand_usd_per_hour") or {}
    if not isinstance(gpus, list) or not isinstance(accelerators, list) or not isinstance(prices, dict):
        raise CatalogError(f"instance type {name!r}: 'gpus', 'accelerators' or 'on_demand_usd_per_hour'")
    for region, price in prices.items():
        if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
            raise CatalogError(f"instance type {name!r}: on_demand_usd_per_hour[{region!r}] = {price!r}")
    gpu = gpus[0] if gpus else {}
    accelerator = accelerators[0] if accelerators else {}
    return InstanceTypeSpec(
        name=name,
        vcpus=int(need("vcpus", int)),
        memory_mib=int(need("memory_mib", int)),
        architectures=tuple(need("architectures", list)),
        gpu_name=gpu.get("name"),
        gpu_count=sum(int(g.get("count", 0)) for g in gpus),
        gpu_memory_mib=int(gpu.get("memory_mib") or 0),
        spot_supported=bool(doc.get("spot_supported", True)),
        current_generation=bool(doc.get("current_generation", True)),
        burstable=bool(doc.get("burstable", False)),
        on_demand_usd_per_hour=MappingProxyType({r: float(p) for r, p in prices.items()}),
        bare_metal=bool(doc.get("bare_metal", False)),
        accelerator_name=accelerator.get("name"),
        accelerator_count=sum(int(a.get("count", 0)) for a in accelerators),
    )


def can_run(source: InstanceTypeSpec, target: InstanceTypeSpec) -> bool:
    """True when ``target`` can run what runs on ``source``, unchanged (prices aside).

    >>> m5 = InstanceTypeSpec("m5.large", 2, 8192, ("x86_64",))
    >>> can_run(m5, InstanceTypeSpec("m5.xlarge", 4, 16384, ("x86_64",)))
    True
    >>> can_run(m5, InstanceTypeSpec("m6g.large", 2, 8192, ("arm64",)))
    False
    >>> can_run(m5, InstanceTypeSpec("t3.large", 2, 8192, ("x86_64",), burstable=True))
    False
    """
    if target.name == source.name:
        return True
    return (
        bool(set(source.architectures) & set(target.architectures))
        and target.vcpus >= source.vcpus
        and target.memory_mib >= source.memory_mib
        and target.gpu_name == source.gpu_name
        and target.gpu_count >= source.gpu_count
        and target.accelerator_name == source.accelerator_name
        and target.accelerator_count >= source.accelerator_count
        and target.spot_supported
        and target.bare_metal == source.bare_metal
        and (source.burstable or not target.burstable)
    )


class Catalog:
    """Instance facts, on-demand prices and per-zone offerings, indexed for the questions the engine
    asks. Build one with :meth:`from_json` or share the bundled one via :meth:`load_default`."""

    def __init__(
        self,
        specs: Mapping[str, InstanceTypeSpec],
        zones_by_region: Mapping[str, Mapping[str, Iterable[str]]],
    ) -> None:
        self._specs = dict(specs)
        self._zones = {region: tuple(sorted(zones)) for region, zones in zones_by_region.items()}
        offered: dict[tuple[str, str], list[str]] = {}
        for region, zones in zones_by_region.items():
            for zone in sorted(zones):
                for instance_type in zones[zone]:
                    offered.setdefault((instance_type, region), []).append(zone)
        self._offered = {key: tuple(zones) for key, zones in offered.items()}
        # the catalog never changes, and policies ask the same question every tick
        self._compatible: dict[tuple[str, str, float], tuple[str, ...]] = {}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Catalog:
        """Build from the parsed catalog document (format in ``engine/data/README.md``)."""
        types_doc = doc.get("instance_types")
        regions_doc = doc.get("regions", {})
        if not isinstance(types_doc, dict) or not types_doc:
            raise CatalogError("catalog: field 'instance_types' must be a non-empty object")
        if not isinstance(regions_doc, dict):
            raise CatalogError("catalog: field 'regions' must be an object")
        specs = {}
        for name, entry in types_doc.items():
            if not isinstance(entry, dict):
                raise CatalogError(f"instance type {name!r}: expected an object")
            specs[name] = spec_from_json(name, entry)
        zones_by_region: dict[str, dict[str, list[str]]] = {}
        for region, entry in regions_doc.items():
            zones = entry.get("availability_zones") if isinstance(entry, dict) else None
            if not isinstance(zones, dict):
                raise CatalogError(f"region {region!r}: field 'availability_zones' must be an object")
            zones_by_region[region] = zones
        return cls(specs, zones_by_region)

    @classmethod
    def load_default(cls) -> Catalog:
        """The catalog bundled with the package, read once per process."""
        return default_catalog()

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, instance_type: object) -> bool:
        return instance_type in self._specs

    @property
    def instance_types(self) -> tuple[str, ...]:
        return tuple(sorted(self._specs))

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(sorted(self._zones))

    def spec(self, instance_type: str) -> InstanceTypeSpec:
        """The facts about one type; :class:`UnknownInstanceType` (a KeyError) with suggestions."""
        try:
            return self._specs[instance_type]
        except KeyError:
            close = difflib.get_close_matches(instance_type, self._specs, n=3, cutoff=0.6)
            raise UnknownInstanceType(instance_type, close) from None

    def on_demand_usd_per_hour(self, instance_type: str, region: str) -> float | None:
        """Linux on-demand price in a region, or None when the catalog does not know it."""
        return self.spec(instance_type).on_demand_usd_per_hour.get(region)

    def zones(self, region: str) -> tuple[str, ...]:
        """The availability zones of a region, sorted."""
        try:
            return self._zones[region]
        except KeyError:
            raise UnknownRegion(region, difflib.get_close_matches(region, self._zones, n=3)) from None

    def offered_zones(self, instance_type: str, region: str) -> tuple[str, ...]:
        """Zones of the region that offer the type today (empty for retired types such as p3)."""
        self.spec(instance_type)
        self.zones(region)
        return self._offered.get((instance_type, region), ())

    def compatible_types(
        self, instance_type: str, region: str, max_price_ratio: float = DEFAULT_MAX_PRICE_RATIO
    ) -> list[str]:
        """Types that can run the same workload in the region, cheapest on demand first; always
        includes ``instance_type`` itself. When the type has no known price in the region, nothing
        can be weighed against it and the answer is the type alone."""
        key = (instance_type, region, max_price_ratio)
        if key not in self._compatible:
            self._compatible[key] = self._find_compatible(instance_type, region, max_price_ratio)
        return list(self._compatible[key])

    def _find_compatible(self, instance_type: str, region: str, max_price_ratio: float) -> tuple[str, ...]:
        source = self.spec(instance_type)
        base = source.on_demand_usd_per_hour.get(region)
        if base is None:
            return (instance_type,)
        limit = base * max_price_ratio
        priced: list[tuple[float, str]] = [(base, instance_type)]
        for name, target in self._specs.items():
            price = target.on_demand_usd_per_hour.get(region)
            if name == instance_type or price is None or price > limit:
                continue
            if can_run(source, target):
                priced.append((price, name))
        return tuple(name for _, name in sorted(priced))

    def compatible_pools(
        self,
        instance: Instance,
        zones: Iterable[str] | None = None,
        max_price_ratio: float = DEFAULT_MAX_PRICE_RATIO,
    ) -> list[Pool]:
        """Spot pools an instance could move to: compatible types x zones of its region.

        With ``zones`` given (e.g. the zones a trace covers), every compatible type is paired with each
        of them; otherwise each type with the zones that offer it today. The instance's own pool is
        always included, since it evidently exists even when the offerings snapshot lacks it.
        """
        region = instance.pool.region
        wanted = None if zones is None else tuple(sorted(set(zones)))
        types = self.compatible_types(instance.pool.instance_type, region, max_price_ratio)
        rank = {name: i for i, name in enumerate(types)}
        pools = {instance.pool}
        for name in types:
            type_zones = wanted if wanted is not None else self._offered.get((name, region), ())
            pools.update(Pool(name, zone) for zone in type_zones)
        return sorted(pools, key=lambda p: (rank.get(p.instance_type, -1), p.availability_zone))


def _bundled_document() -> dict[str, Any]:
    with (resources.files("engine") / "data" / _BUNDLED_CATALOG).open("rb") as raw:
        doc: dict[str, Any] = json.loads(gzip.decompress(raw.read()))
    return doc


@functools.lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    """The bundled catalog, parsed on first use and shared afterwards (it is read-only)."""
    return Catalog.from_json(_bundled_document())


def region_document(doc: Mapping[str, Any], region: str) -> dict[str, Any]:
    """The part of a catalog document that questions about ``region`` need: the types priced there (with
    that price alone) and the region's zones and offerings.

    >>> doc = {"instance_types": {"a.large": {"on_demand_usd_per_hour": {"r1": 1.0, "r2": 2.0}},
    ...                           "b.large": {"on_demand_usd_per_hour": {"r2": 3.0}}},
    ...        "regions": {"r1": {"availability_zones": {"r1a": ["a.large"]}}, "r2": {}}}
    >>> part = region_document(doc, "r1")
    >>> part["instance_types"]
    {'a.large': {'on_demand_usd_per_hour': {'r1': 1.0}}}
    >>> part["regions"]
    {'r1': {'availability_zones': {'r1a': ['a.large']}}}
    """
    types = {}
    for name, entry in doc.get("instance_types", {}).items():
        prices = entry.get("on_demand_usd_per_hour") if isinstance(entry, dict) else None
        if isinstance(prices, dict) and region in prices:
            types[name] = {**entry, "on_demand_usd_per_hour": {region: prices[region]}}
    regions = doc.get("regions", {})
    return {"instance_types": types, "regions": {region: regions[region]} if region in regions else {}}


@functools.lru_cache(maxsize=4)
def region_catalog(region: str) -> Catalog:
    """The bundled catalog's part for one region (:func:`region_document`), for a process that only asks
    about that region: about it, it answers as the whole catalog does, in half the memory."""
    doc = region_document(_bundled_document(), region)
    if doc["instance_types"]:
        return Catalog.from_json(doc)
    return Catalog({}, {r: entry["availability_zones"] for r, entry in doc["regions"].items()})  # nothing priced


def compatible_pools(
    instance: Instance,
    zones: Iterable[str] | None = None,
    max_price_ratio: float = DEFAULT_MAX_PRICE_RATIO,
    catalog: Catalog | None = None,
) -> list[Pool]:
    """:meth:`Catalog.compatible_pools` on the bundled catalog (or the one given)."""
    return (catalog or default_catalog()).compatible_pools(instance, zones, max_price_ratio)
