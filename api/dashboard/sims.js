// The simulations section: submit a deadline-job backtest, follow its progress, chart the policies' costs.
// Given the page's helpers (its `api` signs requests with the tab's key), returns the form's submit handler.

export function simulations({$, api, svgEl, fmtUsd}) {
  async function submit(event) {
    event.preventDefault();
    const form = new FormData($("sim-form"));
    const body = {workload: "deadline", job: {job_hours: +form.get("job_hours"), deadline_hours: +form.get("deadline_hours"),
      restart_overhead_hours: +form.get("restart_overhead_hours")}, policies: form.getAll("policies"), runs: +form.get("runs")};
    $("sim-chart").replaceChildren();
    try {
      let sim = await api("/api/v1/simulations", {method: "POST", body: JSON.stringify(body)});
      $("sim-progress").hidden = false;
      while (sim.status === "queued" || sim.status === "running") {
        $("sim-status").textContent = `${sim.id}: ${sim.status}, ${Math.round(sim.progress * 100)}% of shards done`;
        $("sim-progress").value = sim.progress;
        await new Promise((r) => setTimeout(r, 1000));
        sim = await api("/api/v1/simulations/" + sim.id);
      }
      $("sim-progress").value = 1;
      if (sim.status !== "succeeded") { $("sim-status").textContent = `${sim.id}: ${sim.status}: ${sim.error || ""}`; return; }
      const result = await api(sim.result_path);
      $("sim-status").textContent = `${sim.id}: succeeded, ${result.runs} runs`;
      $("sim-chart").replaceChildren(policyChart(result));
    } catch (e) { $("sim-status").textContent = "failed: " + e.message; }
  }

  function policyChart(result) {
    const rows = Object.entries(result.policies).sort((a, b) => a[1].mean_cost - b[1].mean_cost);
    const W = 560, rowH = 26, L = 130, R = 190, H = rows.length * rowH + 20;
    const max = Math.max(...rows.map(([, r]) => r.mean_cost)) || 1;
    const svg = svgEl("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "mean cost per policy"});
    rows.forEach(([name, r], k) => {
      const yTop = k * rowH + 4, w = r.mean_cost / max * (W - L - R);
      svg.append(svgEl("text", {x: L - 6, y: yTop + 14, "text-anchor": "end"}, name),
        svgEl("rect", {class: "bar" + (k === 0 ? " best" : ""), x: L, y: yTop, width: Math.max(1, w), height: rowH - 8}),
        svgEl("text", {x: L + w + 4, y: yTop + 14}, `${fmtUsd(r.mean_cost)} mean` + (k === 0 ? " (cheapest)" : "")
          + ` · ${r.deadline_misses} missed`));
    });
    svg.append(svgEl("text", {x: L, y: H - 2}, "mean cost per run (USD), deadline misses beside"));
    return svg;
  }

  return submit;
}
