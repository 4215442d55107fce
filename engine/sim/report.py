"""Per-run results -> the JSON the CLI writes: ``{"workload", "runs", "policies": {NAME: metrics}}``.

Missed deadlines are counted and listed by run, never dropped from the averages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine.sim.deadline import DeadlineOutcome

MAX_LISTED_MISSES = 100


def merge_outcomes(parts: Sequence[DeadlineOutcome]) -> DeadlineOutcome:
    """Concatenate the shards of one policy (in run order)."""
    if not parts:
        raise ValueError("nothing to merge")
    fields = ("cost_usd", "finish_tick", "spot_ticks", "on_demand_ticks", "idle_ticks", "restarts", "preemptions")
    merged = {f: np.concatenate([getattr(p, f) for p in parts]) for f in fields}
    return DeadlineOutcome(policy=parts[0].policy, deadline_ticks=parts[0].deadline_ticks, **merged)


def deadline_metrics(outcome: DeadlineOutcome, labels: Sequence[str]) -> dict[str, Any]:
    """Summary of one policy over all runs.

    >>> out = DeadlineOutcome("x", np.array([1.0, 3.0]), np.array([5, 9], np.int32), np.array([4, 0], np.int32),
    ...                       np.array([1, 9], np.int32), np.array([0, 0], np.int32),
    ...                       np.array([1, 1], np.int32), np.array([0, 0], np.int32), 8)
    >>> m = deadline_metrics(out, ["a", "b"])
    >>> m["mean_cost"], m["deadline_misses"], m["missed_runs"]
    (2.0, 1, ['b'])
    """
    cost = outcome.cost_usd
    missed = np.flatnonzero(outcome.missed)
    return {
        "mean_cost": round(float(cost.mean()), 4),
        "p50_cost": round(float(np.percentile(cost, 50)), 4),
        "p90_cost": round(float(np.percentile(cost, 90)), 4),
        "deadline_misses": int(missed.size),
        "missed_runs": [labels[i] for i in missed[:MAX_LISTED_MISSES]],
        "unfinished_runs": int((outcome.finish_tick < 0).sum()),
        "mean_ticks_spot": round(float(outcome.spot_ticks.mean()), 3),
        "mean_ticks_on_demand": round(float(outcome.on_demand_ticks.mean()), 3),
        "mean_ticks_idle": round(float(outcome.idle_ticks.mean()), 3),
        "mean_restarts": round(float(outcome.restarts.mean()), 3),
        "mean_preemptions": round(float(outcome.preemptions.mean()), 3),
        "mean_finish_ticks": round(float(outcome.finish_tick[outcome.finish_tick >= 0].mean()), 3)
        if (outcome.finish_tick >= 0).any()
        else None,
    }


def deadline_report(
    outcomes: Mapping[str, DeadlineOutcome], labels: Sequence[str], settings: Mapping[str, Any]
) -> dict[str, Any]:
    """The deadline workload's JSON document."""
    n_runs = len(labels)
    return {
        "workload": "deadline",
        "runs": n_runs,
        "settings": dict(settings),
        "policies": {name: deadline_metrics(out, labels) for name, out in outcomes.items()},
    }
