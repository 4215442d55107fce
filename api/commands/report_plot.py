"""The chart of ``spot-optimizer report savings``: per day or month, what the fleet cost against the same
hours on demand, and its instance-hours by lifecycle. matplotlib (Agg, no display) lives at the edge only."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from api.report_schemas import SavingsReportOut


def plot_savings(out: Path, body: SavingsReportOut) -> None:
    """Top: on-demand cost and actual cost per row (all regions summed), savings % on a second axis.
    Bottom: instance-hours stacked by lifecycle (spot, on-demand, hibernated)."""
    labels = [row.label for row in body.regions[0].rows] if body.regions else []
    def summed(name: str) -> np.ndarray:
        return np.array([sum(getattr(region.rows[k], name) for region in body.regions) for k in range(len(labels))],
                        dtype=np.float64)
    on_demand, actual = summed("on_demand_cost_usd"), summed("actual_cost_usd")
    x = np.arange(len(labels))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(8.0, 0.45 * len(labels) + 3), 7.5), sharex=True)
    top.bar(x - 0.2, on_demand, 0.4, label="same hours on demand", color="#b0b7c3")
    top.bar(x + 0.2, actual, 0.4, label="actual cost", color="#2f7ed8")
    top.set_ylabel("USD")
    pct = np.divide(on_demand - actual, on_demand, out=np.full_like(on_demand, np.nan), where=on_demand > 0) * 100
    right = top.twinx()
    right.plot(x, pct, color="#2b9348", marker="o", label="savings %")
    right.set_ylabel("savings %")
    right.set_ylim(bottom=min(0.0, float(np.nanmin(pct)) if np.isfinite(pct).any() else 0.0))
    handles = top.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    top.legend(handles, [str(h.get_label()) for h in handles], loc="lower left", bbox_to_anchor=(0.0, 1.0),
               ncol=3, fontsize=8, frameon=False)
    total_saved = float(on_demand.sum() - actual.sum())
    fig.suptitle(f"{body.account} {', '.join(r.region for r in body.regions)}: saved ${total_saved:,.2f} "
                  f"over {body.period} ({body.granularity})")
    floor = np.zeros(len(labels))
    for name, color in (("spot_hours", "#2f7ed8"), ("on_demand_hours", "#f4a261"), ("hibernated_hours", "#8d99ae")):
        hours = summed(name)
        bottom.bar(x, hours, 0.6, bottom=floor, label=name.replace("_hours", "").replace("_", "-"), color=color)
        floor += hours
    bottom.set_ylabel("instance-hours")
    bottom.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=3, fontsize=8, frameon=False)
    bottom.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
