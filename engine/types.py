"""Domain types shared by every layer: pools, prices, instances and the decisions made about them.

All are frozen value objects. Time is always an argument in epoch seconds (``*_s``); prices are USD per
hour (``*_usd_per_hour``). Nothing here reads a clock, a file or the network.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class Action(enum.StrEnum):
    """What the engine recommends for one instance."""

    KEEP = "keep"
    REPLACE = "replace"
    FALLBACK_ON_DEMAND = "fallback_on_demand"
    RETURN_TO_SPOT = "return_to_spot"
    HIBERNATE = "hibernate"  # outside the account's schedule: stop it (a spot instance: let it go)
    WAKE = "wake"  # the schedule's window opened: start it again (a spot instance: relaunch it)


class Lifecycle(enum.StrEnum):
    """How an instance is bought."""

    SPOT = "spot"
    ON_DEMAND = "on_demand"
    STOPPED = "stopped"  # hibernated by a schedule: costs nothing, runs nowhere until it wakes


class Rule(enum.StrEnum):
    """The rule that settled a decision: the 'why' in one word, with the numbers beside it."""

    BEST_ALREADY = "best_already"  # the current placement is the best candidate
    BELOW_THRESHOLD = "below_threshold"  # a better pool exists but the saving does not beat the threshold
    DWELL = "dwell"  # hysteresis: the instance moved too recently
    BUDGET = "budget"  # the fleet's disruption budget for the window is spent
    SPREAD = "spread"  # the target pool already holds the fleet's maximum share
    SAVING = "saving"  # moved because the saving beats the threshold
    INTERRUPTED = "interrupted"  # the instance's pool was taken back; it must go somewhere
    FALLBACK = "fallback"  # no spot pool beats on-demand after risk
    RETURN = "return"  # spot beats on-demand again, for long enough
    WAITING = "waiting"  # spot beats on-demand, but not yet for long enough to return
    NO_CAPACITY = "no_capacity"  # nowhere to go: no compatible pool is available
    SCHEDULE = "schedule"  # a hibernation schedule's window closed or opened


@dataclass(frozen=True, slots=True, order=True)
class Pool:
    """A spot capacity pool: one instance type in one availability zone."""

    instance_type: str
    availability_zone: str

    @property
    def region(self) -> str:
        """The region of the zone: ``us-west-2a`` -> ``us-west-2``.

        >>> Pool("p3.2xlarge", "us-west-2a").region
        'us-west-2'
        """
        return region_of_zone(self.availability_zone)

    @property
    def key(self) -> str:
        """A stable string id, ``type@zone``, used in JSON, the database and the API.

        >>> Pool("p3.2xlarge", "us-west-2a").key
        'p3.2xlarge@us-west-2a'
        """
        return f"{self.instance_type}@{self.availability_zone}"

    @classmethod
    def from_key(cls, key: str) -> Pool:
        """Parse ``type@zone``.

        >>> Pool.from_key("m5.large@us-east-1a")
        Pool(instance_type='m5.large', availability_zone='us-east-1a')
        """
        instance_type, sep, zone = key.partition("@")
        if not sep or not instance_type or not zone:
            raise ValueError(f"pool key must be 'instance_type@availability_zone', got {key!r}")
        return cls(instance_type, zone)

    def __str__(self) -> str:
        return self.key


def region_of_zone(availability_zone: str) -> str:
    """Strip the zone letter: AWS ``us-east-1f`` and GCP ``us-central1-a`` alike.

    >>> region_of_zone("us-east-1f")
    'us-east-1'
    >>> region_of_zone("us-central1-a")
    'us-central1'
    """
    if not availability_zone or not availability_zone[-1].isalpha():
        raise ValueError(f"not an availability zone: {availability_zone!r}")
    head, sep, letter = availability_zone.rpartition("-")
    if sep and len(letter) == 1 and head[-1:].isdigit():
        return head
    return availability_zone[:-1]


@dataclass(frozen=True, slots=True)
class PricePoint:
    """One observed spot price of a pool."""

    pool: Pool
    price_usd_per_hour: float
    timestamp_s: float
    product_description: str = "Linux/UNIX"


@dataclass(frozen=True, slots=True)
class AvailabilityPoint:
    """Whether a pool could give (or keep) spot capacity at a moment; ``available=False`` interrupts
    the spot instances running in it."""

    pool: Pool
    available: bool
    timestamp_s: float


@dataclass(frozen=True, slots=True)
class Instance:
    """An instance of the fleet as the engine sees it."""

    instance_id: str
    pool: Pool  # for on-demand instances: where it runs; its type defines what it can be moved to
    lifecycle: Lifecycle = Lifecycle.SPOT
    launched_at_s: float = 0.0
    fleet: str = "default"
    interrupted: bool = False  # the pool took the capacity back; the instance needs a new home


@dataclass(frozen=True, slots=True)
class Candidate:
    """One placement the policy weighed for an instance: a spot pool, or on-demand (``pool`` is the
    instance's current pool and ``lifecycle`` ON_DEMAND)."""

    pool: Pool
    lifecycle: Lifecycle
    price_usd_per_hour: float
    risk: float  # P(interrupted within the risk horizon)
    expected_cost_usd_per_hour: float


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one instance, and why, in numbers."""

    instance_id: str
    action: Action
    rule: Rule
    reason: str
    decided_at_s: float
    from_pool: Pool
    from_lifecycle: Lifecycle
    to_pool: Pool
    to_lifecycle: Lifecycle
    saving_usd_per_hour: float = 0.0
    numbers: Mapping[str, float] = field(default_factory=dict)
    candidates: tuple[Candidate, ...] = ()
    policy: str = ""

    @property
    def changes_placement(self) -> bool:
        """True when carrying the decision out launches or terminates something."""
        return self.action is not Action.KEEP
