"""Plots for ``spot-optimizer simulate --plot``: the cost distribution per policy, and cost against
interruptions. matplotlib (Agg, no display) lives at the edge only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt


def plot_policies(
    out: Path,
    title: str,
    costs: Mapping[str, npt.NDArray[np.float64]],
    interruptions: Mapping[str, npt.NDArray[np.float64]],
    interruption_label: str,
    cost_label: str = "cost per run (USD)",
) -> None:
    """Left: cost distribution per policy (box plot). Right: mean cost vs mean interruptions."""
    names: Sequence[str] = list(costs)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    left.boxplot([costs[n] for n in names], showfliers=False)
    left.set_xticks(range(1, len(names) + 1), names, rotation=20)
    left.set_ylabel(cost_label)
    left.set_title("cost distribution")
    for name in names:
        right.scatter(float(np.mean(interruptions[name])), float(np.mean(costs[name])), s=60, label=name)
        right.annotate(
            name,
            (float(np.mean(interruptions[name])), float(np.mean(costs[name]))),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=8,
        )
    right.set_xlabel(interruption_label)
    right.set_ylabel(f"mean {cost_label}")
    right.set_title("cost vs interruptions")
    right.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
