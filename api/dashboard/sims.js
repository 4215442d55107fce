// The simulations section: submit a deadline-job or fleet backtest, follow its progress, chart the policies.
// Given the page's helpers (its `api` signs requests with the tab's key), returns the form's submit handler.

export function simulations({$, api, svgEl, fmtUsd}) {
  const form = $("sim-form");
  // Only the chosen workload's knobs are enabled: a disabled fieldset is left out of the form's data.
  const showWorkload = () => form.querySelectorAll("fieldset[data-workload]").forEach((set) => {
    set.disabled = set.hidden = set.dataset.workload !== form.workload.value;
  });
  form.workload.onchange = showWorkload;
  showWorkload();

  function requestBody(data) {
    const common = {workload: data.get("workload"), policies: data.getAll("policies"), runs: +data.get("runs")};
    if (common.workload === "fleet") {
      return {...common, fleet_size: +data.get("fleet_size"), hours: +data.get("hours"),
        restart_hours: +data.get("restart_hours"), decision_interval_s: +data.get("decision_interval_s")};
    }
    return {...common, job: {job_hours: +data.get("job_hours"), deadline_hours: +data.get("deadline_hours"),
      restart_overhead_hours: +data.get("restart_overhead_hours")}};
  }

  async function submit(event) {
    event.preventDefault();
    const body = requestBody(new FormData(form));
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

  // What a bar measures and what is written beside it, per workload.
  const MEASURES = {
    deadline: {cost: (r) => r.mean_cost, beside: (r) => `${r.deadline_misses} missed`,
      caption: "mean cost per run (USD), deadline misses beside"},
    fleet: {cost: (r) => r.mean_cost_per_run,
      beside: (r) => `${r.interruptions} interruptions · ${(r.availability * 100).toFixed(2)}% up`,
      caption: "mean fleet cost per run (USD), interruptions and availability beside"},
  };

  function policyChart(result) {
    const m = MEASURES[result.workload] || MEASURES.deadline;
    const rows = Object.entries(result.policies).sort((a, b) => m.cost(a[1]) - m.cost(b[1]));
    const W = 620, rowH = 26, L = 170, R = 250, H = rows.length * rowH + 20;
    const max = Math.max(...rows.map(([, r]) => m.cost(r))) || 1;
    const svg = svgEl("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "mean cost per policy",
      "data-workload": result.workload});
    rows.forEach(([name, r], k) => {
      const yTop = k * rowH + 4, w = m.cost(r) / max * (W - L - R);
      svg.append(svgEl("text", {x: L - 6, y: yTop + 14, "text-anchor": "end"}, name),
        svgEl("rect", {class: "bar" + (k === 0 ? " best" : ""), x: L, y: yTop, width: Math.max(1, w), height: rowH - 8}),
        svgEl("text", {x: L + w + 4, y: yTop + 14}, `${fmtUsd(m.cost(r))} mean` + (k === 0 ? " (cheapest)" : "")
          + ` · ${m.beside(r)}`));
    });
    svg.append(svgEl("text", {x: L, y: H - 2}, m.caption));
    return svg;
  }

  return submit;
}
