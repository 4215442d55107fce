// The Spot Optimizer dashboard: REST for history, then the WebSocket for live events, resumed after a drop.
// The API key comes from the URL fragment (never sent to the server) or the form, and stays in this tab.
import {simulations} from "/dashboard/sims.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const TOPICS = ["decisions", "prices", "instances", "alerts"];
const MAX_POINTS = 1500, MAX_DECISIONS = 200, DAY_S = 86400, PAGE = 1000;
const fmtUsd = (v) => (v == null || !isFinite(v) ? "–" : "$" + v.toFixed(v >= 100 ? 0 : v >= 1 ? 2 : 4));
const fmtPct = (v) => (v == null || !isFinite(v) ? "–" : Math.round(v * 100) + "%");
const fmtClock = (s) => (s ? new Date(s * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC" : "–");

// Exposed for the browser test: counters that must stay at zero, and the socket to observe reconnects.
const debug = window.spotDashboard = {duplicates: 0, gaps: 0, connects: 0, ws: null};

let key = null, scope = null, state = null, ws = null, retryMs = 1000, generation = 0, renderQueued = false;

function freshState() {
  return {
    pools: new Map(),        // pool -> {series: [[t, price]], avail: [[t, bool]], od, risk, risks: [[t, r]], fc}
    instances: new Map(),    // instance_id -> instance json
    touched: new Map(),      // instance_id -> {action, rule, at} for the last non-keep decision
    decisions: [],           // newest first, unique by seq
    events: new Map(),       // seq -> non-keep decision {action, rule, at}: the counts
    countsTruncated: false,
    seen: {},                // stream -> last seq applied: sent in `resume`
    clock: 0, startClock: 0, riskHorizonH: 1, savedUsd: 0, savingsFrom: 0, openSeq: null, feed: null,
  };
}

async function api(path, options = {}) {
  const response = await fetch(path, {...options, headers: {Authorization: "Bearer " + key,
    ...(options.body ? {"Content-Type": "application/json"} : {}), ...(options.headers || {})}});
  if (response.status === 401) { signOut("key refused (401)"); throw new Error("unauthorized"); }
  if (!response.ok) throw new Error(path + ": " + response.status + " " + (await response.text()));
  return response.json();
}

function setConn(stateName, text) { const el = $("conn"); el.dataset.state = stateName; el.textContent = text; }

// ---- sign in, scope, views -------------------------------------------------------------------------
function signOut(message) {
  sessionStorage.removeItem("spotKey"); key = null; generation++;
  if (ws) { ws.onclose = null; ws.close(); ws = null; }
  $("login").hidden = false; $("scope").hidden = true; $("live-view").hidden = true; $("sims-view").hidden = true;
  $("login-error").textContent = message || ""; setConn("offline", "signed out");
}

async function signIn() {
  key = sessionStorage.getItem("spotKey");
  if (!key) { signOut(); return; }
  $("login").hidden = true;
  let accounts;
  try { accounts = (await api("/api/v1/accounts")).accounts; } catch (e) { return; }
  const accountSel = $("account");
  accountSel.replaceChildren(...accounts.map((a) => new Option(a.account, a.account)));
  const saved = JSON.parse(sessionStorage.getItem("spotScope") || "null");
  const pick = accounts.find((a) => saved && a.account === saved.account) || accounts[0];
  $("scope").hidden = false;
  if (!pick) { setConn("offline", "no accounts for this key"); return; }
  accountSel.value = pick.account;
  const fillRegions = (account, wanted) => {
    const regions = accounts.find((a) => a.account === account).regions;
    $("region").replaceChildren(...regions.map((r) => new Option(r, r)));
    $("region").value = regions.includes(wanted) ? wanted : regions[0];
  };
  fillRegions(pick.account, saved && saved.region);
  accountSel.onchange = () => { fillRegions(accountSel.value); choose(); };
  $("region").onchange = choose;
  showView(); choose();
}

function choose() {
  scope = {account: $("account").value, region: $("region").value};
  sessionStorage.setItem("spotScope", JSON.stringify(scope));
  start();
}

function showView() {
  const sims = location.hash === "#simulations";
  $("live-view").hidden = sims; $("sims-view").hidden = !sims;
  $("nav-live").toggleAttribute("aria-current", !sims); $("nav-sims").toggleAttribute("aria-current", sims);
  if (sims) $("nav-sims").setAttribute("aria-current", "page"); else $("nav-live").setAttribute("aria-current", "page");
}

// ---- history from REST, then live ------------------------------------------------------------------
const stream = (topic) => `${scope.account}/${scope.region}/${topic}`;
const base = () => `/api/v1/accounts/${encodeURIComponent(scope.account)}/regions/${encodeURIComponent(scope.region)}`;

async function start() {
  const mine = ++generation;
  if (ws) { ws.onclose = null; ws.close(); ws = null; }
  state = freshState(); scheduleRender();
  setConn("reconnecting", "loading history…");
  try {
    const [history, latest, fleet, recent, forecasts] = await Promise.all([
      api(base() + "/prices/history?limit=5000"), api(base() + "/prices"), api(base() + "/instances"),
      api(base() + "/decisions?limit=50"), api(base() + "/forecasts")]);
    const moves = await Promise.all(["replace", "fallback_on_demand", "return_to_spot", "hibernate", "wake"].map(
      (action) => api(base() + `/decisions?limit=${PAGE}&action=${action}`)));
    if (mine !== generation) return;
    for (const tick of history.ticks) applyPrices(tick, stream("prices"), tick.seq);
    applyLatest(latest); applyForecasts(forecasts);
    for (const i of fleet.instances) state.instances.set(i.instance_id, i);
    for (const page of moves) {
      state.countsTruncated ||= page.next_before != null;
      for (const d of page.decisions) countDecision(d);
    }
    for (const d of recent.decisions.slice().reverse()) applyDecision(d, stream("decisions"), d.seq, false);
    state.startClock = state.clock;
    // savings before the page opened: from the oldest price tick loaded (or, when a page of moves was
    // full, the oldest move in it: before that the placements are unknown)
    let fromS = history.ticks.length ? history.ticks[0].at_s : state.clock;
    for (const page of moves) {
      if (page.next_before != null) fromS = Math.max(fromS, page.decisions[page.decisions.length - 1].decided_at_s);
    }
    state.savingsFrom = fromS;
    state.savedUsd = pastSavings(moves.flatMap((page) => page.decisions), fromS, state.clock);
  } catch (e) {
    if (mine === generation && key) { setConn("offline", "history failed; retrying"); setTimeout(start, 3000); }
    return;
  }
  connect(mine);
  pollForecasts(mine);
}

async function connect(mine) {
  if (mine !== generation) return;
  setConn("reconnecting", debug.connects ? "reconnecting…" : "connecting…");
  let token;
  try { token = (await api("/api/v1/ws-tokens", {method: "POST"})).token; } catch (e) { return retry(mine); }
  if (mine !== generation) return;
  const socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws?token="
    + encodeURIComponent(token));
  ws = debug.ws = socket;
  socket.onmessage = (msg) => onMessage(socket, JSON.parse(msg.data));
  socket.onerror = () => {};  // onclose follows and reconnects
  socket.onclose = (event) => {
    if (ws !== socket) return;
    ws = null;
    if (event.code === 4401) { signOut("key refused by the stream"); return; }
    retry(mine);
  };
}

function retry(mine) {
  if (mine !== generation || !key) return;
  setConn("reconnecting", `disconnected; reconnecting in ${Math.round(retryMs / 1000)} s…`);
  setTimeout(() => connect(mine), retryMs * (0.75 + Math.random() / 2));
  retryMs = Math.min(retryMs * 2, 15000);
}

function onMessage(socket, m) {
  switch (m.type) {
    case "hello": {
      debug.connects++;
      // resume first (no gap since what REST or the last socket gave); subscribe then adds only the rest
      const mineStreams = Object.fromEntries(Object.entries(state.seen).filter(([s]) => s.startsWith(stream(""))));
      if (Object.keys(mineStreams).length) socket.send(JSON.stringify({type: "resume", streams: mineStreams}));
      socket.send(JSON.stringify({type: "subscribe", account: scope.account, regions: [scope.region], topics: TOPICS}));
      return;
    }
    case "subscribed": retryMs = 1000; setConn("live", `live · ${scope.account} / ${scope.region}`); return;
    case "resumed": case "pong": case "unsubscribed": return;
    case "gap": debug.gaps++; console.warn("stream gap", m.stream, m.detail); return;
    case "resync": return;  // the server closes next; onclose resumes from state.seen
    case "error": console.warn("server:", m.error, m.detail); return;
    case "heartbeat": return;
    case "decision": return applyDecision(m.data, m.stream, m.seq, true);
    case "price": return applyPrices(m.data, m.stream, m.seq);
    case "instances": return applyInstances(m.data, m.stream, m.seq);
    case "alert": return applyAlert(m.data, m.stream, m.seq);
    default: return;
  }
}

// Returns false for an event already applied: a duplicate is counted and dropped, a gap counted.
function accept(name, seq) {
  if (seq == null) return true;
  const last = state.seen[name];
  if (last != null && seq <= last) { debug.duplicates++; return false; }
  if (last != null && seq > last + 1 && name.endsWith("/decisions")) debug.gaps++;
  state.seen[name] = seq;
  return true;
}

function advance(t) {
  if (!t || t <= state.clock) return;
  if (state.savingsFrom && state.clock) state.savedUsd += savingRate() * (t - state.clock) / 3600;
  state.clock = t;
}

function pool(name) {
  let p = state.pools.get(name);
  if (!p) state.pools.set(name, p = {series: [], avail: [], od: null, risk: null, risks: [], fc: null});
  return p;
}

const push = (list, point) => { list.push(point); if (list.length > MAX_POINTS) list.splice(0, list.length - MAX_POINTS); };

function applyPrices(tick, name, seq) {
  if (!accept(name, seq)) return;
  advance(tick.at_s);
  for (const p of tick.prices) push(pool(p.pool).series, [tick.at_s, p.price_usd_per_hour]);
  for (const a of tick.availability) push(pool(a.pool).avail, [tick.at_s, a.available]);
  scheduleRender();
}

function applyLatest(latest) {
  state.feed = latest.feed;
  for (const p of latest.prices) {
    const entry = pool(p.pool);
    entry.od = p.on_demand_usd_per_hour;  // risk comes from /forecasts, which states its horizon
    const last = entry.series[entry.series.length - 1];
    if (!last || last[0] < p.observed_at_s) push(entry.series, [p.observed_at_s, p.price_usd_per_hour]);
    if (!entry.avail.length) entry.avail.push([p.observed_at_s, p.available]);
  }
}

function applyForecasts(f) {
  advance(f.now_s);
  state.riskHorizonH = f.risk_horizon_s / 3600;
  for (const p of f.pools) {
    const entry = pool(p.pool);
    entry.risk = p.risk;
    if (f.now_s != null) push(entry.risks, [f.now_s, p.risk]);  // null before the first tick
    const h = f.forecast_usd_per_hour || p.forecast_usd_per_hour || {};
    entry.fc = h["3600"] != null && f.now_s != null ? {at: f.now_s + 3600, price: h["3600"]} : null;
  }
  scheduleRender();
}

async function pollForecasts(mine) {
  while (mine === generation && key) {
    await new Promise((r) => setTimeout(r, 5000));
    if (mine !== generation || document.hidden) continue;
    try { applyForecasts(await api(base() + "/forecasts")); applyLatest(await api(base() + "/prices")); } catch (e) { /* next poll */ }
  }
}

function applyInstances(data, name, seq) {
  if (!accept(name, seq)) return;
  advance(data.at_s);
  state.instances = new Map(data.instances.map((i) => [i.instance_id, i]));
  scheduleRender();
}

function applyAlert(data, name, seq) { if (accept(name, seq)) advance(data.at_s); }

function countDecision(d) {
  if (d.action !== "keep") state.events.set(d.seq, {action: d.action, rule: d.rule, at: d.decided_at_s});
}

function applyDecision(d, name, seq, live) {
  if (!accept(name, seq)) return;
  advance(d.decided_at_s);
  countDecision(d);
  state.decisions.unshift(d);
  if (state.decisions.length > MAX_DECISIONS) state.decisions.length = MAX_DECISIONS;
  if (d.action !== "keep") state.touched.set(d.instance_id, {action: d.action, rule: d.rule, at: d.decided_at_s, live});
  scheduleRender();
}

// ---- derived numbers -------------------------------------------------------------------------------
function hourlyCost(i) {
  const p = state.pools.get(i.pool);
  if (!p) return null;
  if (i.lifecycle === "on_demand") return p.od;
  if (i.lifecycle === "stopped") return 0;  // hibernated: costs nothing
  const last = p.series[p.series.length - 1];
  return last ? last[1] : null;
}

function savingRate() {
  let rate = 0;
  for (const i of state.instances.values()) {
    const p = state.pools.get(i.pool), cost = hourlyCost(i);
    if (p && p.od != null && cost != null) rate += p.od - cost;
  }
  return rate;
}

// Each instance's placements rebuilt from the stored moves (non-keep decisions: `from` before, `to` after),
// priced with its pool's spot price steps from the history; on-demand time saves nothing.
function pastSavings(moves, fromS, toS) {
  let usd = 0;
  for (const inst of state.instances.values()) {
    const mine = moves.filter((d) => d.instance_id === inst.instance_id && d.decided_at_s >= fromS && d.decided_at_s <= toS)
      .sort((a, b) => a.decided_at_s - b.decided_at_s);
    let t = fromS, placement = mine.length ? mine[0].from : inst;
    for (const d of mine) { usd += spotSaving(placement, t, d.decided_at_s); t = d.decided_at_s; placement = d.to; }
    usd += spotSaving(placement, t, toS);
  }
  return usd;
}

function spotSaving(placement, fromS, toS) {
  const p = placement && placement.lifecycle === "spot" ? state.pools.get(placement.pool) : null;
  if (!p || p.od == null) return 0;
  let usd = 0;
  p.series.forEach(([t, price], k) => {  // before the first known price: counted as nothing
    const a = Math.max(fromS, t), b = Math.min(toS, k + 1 < p.series.length ? p.series[k + 1][0] : Infinity);
    if (b > a) usd += (p.od - price) * (b - a) / 3600;
  });
  return usd;
}

function counts(sinceS) {
  const c = {interruptions: 0, replacements: 0, fallbacks: 0, returns: 0, hibernations: 0};
  for (const e of state.events.values()) {
    if (e.at < sinceS) continue;
    if (e.rule === "interrupted") c.interruptions++;
    if (e.action === "replace") c.replacements++;
    if (e.action === "fallback_on_demand") c.fallbacks++;
    if (e.action === "return_to_spot") c.returns++;
    if (e.action === "hibernate") c.hibernations++;
  }
  return c;
}

// ---- rendering (batched: the replay can send hundreds of events a second) -----------------------------
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => { renderQueued = false; if (state) render(); }, 250);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  return node;
}

function render() {
  if ($("live-view").hidden) return;
  renderSummary(); renderCharts(); renderFleet(); renderDecisions();
}

function renderSummary() {
  const hours = state.savingsFrom ? (state.clock - state.savingsFrom) / 3600 : 0;
  $("savings").textContent = "$" + state.savedUsd.toFixed(2);
  $("savings-rate").textContent = `${fmtUsd(savingRate())}/h now · over ${hours.toFixed(1)} h since `
    + fmtClock(state.savingsFrom).slice(5, 16);
  $("stat-savings").title = "Computed in this page, for the instances in the fleet now: the on-demand price minus "
    + "what each pays (its pool's spot price, or on-demand), times region-clock time, from "
    + fmtClock(state.savingsFrom) + ". Before the page opened, placements come from the stored moves (replace, "
    + "fallback, return, hibernate and wake decisions, taken to happen when decided) and prices from the loaded price history; since "
    + "then from the live events. Prices and placements are held between events. An estimate, not a bill.";
  const all = counts(0), day = counts(state.clock - DAY_S), more = state.countsTruncated ? "≥" : "";
  $("counts").tBodies[0].replaceChildren(...[["interruptions", "interruptions"], ["replacements", "replacements"],
    ["fallbacks to on-demand", "fallbacks"], ["returns to spot", "returns"], ["hibernations", "hibernations"]].map(([label, k]) =>
    el("tr", {}, el("th", {text: label}), el("td", {text: more + all[k]}), el("td", {text: "/ " + day[k]}))));
  $("stat-counts").title = "Counted in this page from the region's stored decisions (up to " + PAGE + " per action "
    + "at load, ≥ when there were more) and the live ones since: interruptions are decisions with rule "
    + "'interrupted'; the last 24 h are measured on the region's clock (the replay's time), not the wall clock.";
  $("clock").textContent = fmtClock(state.clock);
  const feed = state.feed;
  $("feed-health").textContent = feed ? "feed " + feed.state + (feed.detail ? ": " + feed.detail : "") : "";
}

function renderCharts() {
  const fleetPools = new Map();  // pool -> "2 spot, 1 on-demand"
  const tally = new Map();
  for (const i of state.instances.values()) {
    if (i.lifecycle === "stopped") continue;  // a hibernated instance holds no pool
    const t = tally.get(i.pool) || {spot: 0, on_demand: 0};
    t[i.lifecycle === "spot" ? "spot" : "on_demand"]++; tally.set(i.pool, t);
  }
  for (const [name, t] of tally) {
    fleetPools.set(name, [t.spot ? t.spot + " spot" : "", t.on_demand ? t.on_demand + " on-demand" : ""].filter(Boolean).join(", "));
  }
  const names = [...state.pools.keys()].sort();
  $("charts").replaceChildren(...names.map((name) => chart(name, state.pools.get(name), fleetPools.get(name) || "")));
}

function chart(name, p, inFleet) {
  const W = 320, H = 170, L = 38, R = 30, T = 8, B = 20;
  const t1 = Math.max(state.clock, p.series.length ? p.series[p.series.length - 1][0] : 0) + 1;
  const t0 = Math.min(...[p.series[0], p.avail[0]].filter(Boolean).map((x) => x[0]), t1 - 3600);
  const tEnd = p.fc ? Math.max(t1, p.fc.at) : t1;
  const yMax = Math.max(p.od || 0, ...p.series.map((s) => s[1]), p.fc ? p.fc.price : 0) * 1.1 || 1;
  const x = (t) => L + (t - t0) / (tEnd - t0) * (W - L - R), y = (v) => T + (1 - v / yMax) * (H - T - B);
  const yr = (r) => T + (1 - r) * (H - T - B);
  const svg = svgEl("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `spot price of ${name}`,
    "data-points": String(p.series.length)});
  const defs = svgEl("defs"), hatch = svgEl("pattern", {id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse",
    patternTransform: "rotate(45)"});
  hatch.append(svgEl("rect", {width: 6, height: 6, fill: "#f6f8fa"}), svgEl("line", {x1: 0, y1: 0, x2: 0, y2: 6,
    stroke: "#afb8c1", "stroke-width": 2}));
  defs.append(hatch); svg.append(defs);
  // no-capacity spells: availability is a step function from its change points
  for (let k = 0; k < p.avail.length; k++) {
    if (p.avail[k][1]) continue;
    const a = Math.max(p.avail[k][0], t0), b = k + 1 < p.avail.length ? p.avail[k + 1][0] : t1;
    if (b > a) svg.append(svgEl("rect", {class: "nocap", x: x(a), y: T, width: Math.max(1, x(b) - x(a)), height: H - T - B}));
  }
  svg.append(svgEl("line", {class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B}));
  for (const v of [0, yMax / 2 / 1.1, yMax / 1.1]) {
    svg.append(svgEl("text", {x: L - 3, y: y(v) + 3, "text-anchor": "end"}, fmtUsd(v)));
  }
  svg.append(svgEl("text", {x: W - R + 3, y: yr(1) + 7}, "100%"), svgEl("text", {x: W - R + 3, y: yr(0)}, "0%"));
  svg.append(svgEl("text", {x: L, y: H - 5}, fmtClock(t0).slice(5, 16)),
    svgEl("text", {x: W - R, y: H - 5, "text-anchor": "end"}, fmtClock(tEnd).slice(5, 16)));
  if (p.od != null) {
    svg.append(svgEl("line", {class: "od", x1: L, x2: W - R, y1: y(p.od), y2: y(p.od)}),
      svgEl("text", {x: L + 3, y: y(p.od) - 3}, "on-demand " + fmtUsd(p.od)));
  }
  if (p.series.length) {
    let d = "";
    p.series.forEach(([t, v], k) => {
      d += k ? `H${x(t).toFixed(1)}V${y(v).toFixed(1)}` : `M${x(Math.max(t, t0)).toFixed(1)},${y(v).toFixed(1)}`;
    });
    d += `H${x(t1).toFixed(1)}`;
    svg.append(svgEl("path", {class: "spot", d}));
    const last = p.series[p.series.length - 1][1];
    if (p.fc) {
      svg.append(svgEl("path", {class: "fc", d: `M${x(t1)},${y(last)}L${x(p.fc.at)},${y(p.fc.price)}`}),
        svgEl("circle", {class: "fcdot", cx: x(p.fc.at), cy: y(p.fc.price), r: 2.5}));
    }
  }
  if (p.risks.length) {
    const d = p.risks.map(([t, r], k) => `${k ? "L" : "M"}${x(Math.max(t, t0)).toFixed(1)},${yr(r).toFixed(1)}`).join("");
    svg.append(svgEl("path", {class: "risk", d: p.risks.length > 1 ? d : d + `h3`}));
  }
  const last = p.series.length ? p.series[p.series.length - 1][1] : null;
  const available = p.avail.length ? p.avail[p.avail.length - 1][1] : null;
  const title = el("h3", {}, el("span", {text: (inFleet ? "★ " : "") + name}),
    el("small", {text: `spot ${fmtUsd(last)}/h · risk ${fmtPct(p.risk)} in ${state.riskHorizonH} h · ${available === false ? "no capacity" : "available"}`
      + (p.fc ? ` · forecast ${fmtUsd(p.fc.price)}` : "") + (inFleet ? ` · fleet here: ${inFleet}` : "")}));
  return el("figure", {class: "chart" + (inFleet ? " in-fleet" : ""), "data-pool": name}, title, svg);
}

function renderFleet() {
  const rows = [...state.instances.values()].sort((a, b) => a.instance_id.localeCompare(b.instance_id)).map((i) => {
    const p = state.pools.get(i.pool), touched = state.touched.get(i.instance_id);
    const recent = touched && touched.live && state.clock - touched.at <= 6 * 3600;
    const risk = i.lifecycle === "spot" ? fmtPct(p && p.risk) : `– (${i.lifecycle.replace("_", "-")})`;
    return el("tr", {class: recent ? "touched" : "", "data-instance": i.instance_id},
      el("td", {text: i.instance_id, "data-label": "instance"}), el("td", {text: i.pool, "data-label": "pool"}),
      el("td", {text: i.lifecycle.replace("_", "-") + (i.interrupted ? " (interrupted)" : ""), "data-label": "lifecycle"}),
      el("td", {class: "num", text: fmtUsd(hourlyCost(i)), "data-label": "$/h"}),
      el("td", {class: "num", text: risk, "data-label": "risk"}),
      el("td", {"data-label": "last change", text: touched ? `${recent ? "▶ " : ""}${touched.action} (${touched.rule}) ${fmtClock(touched.at).slice(5, 16)}` : "–"}));
  });
  $("fleet").tBodies[0].replaceChildren(...rows);
}

function renderDecisions() {
  const filter = $("action-filter").value;
  const items = state.decisions.filter((d) => !filter || d.action === filter).map((d) => {
    const open = state.openSeq === d.seq;
    const button = el("button", {"aria-expanded": String(open)},
      el("span", {class: "action " + d.action, text: d.action.replaceAll("_", " ")}),
      el("span", {class: "meta", text: ` ${d.instance_id} · rule ${d.rule} · ${fmtClock(d.decided_at_s).slice(5, 16)} · #${d.seq}`}),
      el("span", {class: "reason", text: d.reason}));
    button.onclick = () => { state.openSeq = open ? null : d.seq; renderDecisions(); };
    const li = el("li", {"data-seq": String(d.seq), "data-action": d.action}, button);
    if (open) li.append(candidates(d));
    return li;
  });
  $("decisions").replaceChildren(...items);
}

function candidates(d) {
  const head = el("tr", {}, ...["pool", "lifecycle", "$/h", "risk", "expected $/h"].map((h) => el("th", {text: h})));
  const rows = (d.candidates || []).map((c) => el("tr", {},
    el("td", {text: c.pool + (d.to && c.pool === d.to.pool && c.lifecycle === d.to.lifecycle ? " ← chosen" : "")}),
    el("td", {text: c.lifecycle}), el("td", {class: "num", text: fmtUsd(c.price_usd_per_hour)}),
    el("td", {class: "num", text: fmtPct(c.risk)}), el("td", {class: "num", text: fmtUsd(c.expected_cost_usd_per_hour)})));
  return el("table", {class: "candidates"}, el("thead", {}, head), el("tbody", {}, ...rows));
}

// ---- boot --------------------------------------------------------------------------------------------
const fromHash = new URLSearchParams(location.hash.slice(1)).get("key");
if (fromHash) { sessionStorage.setItem("spotKey", fromHash); history.replaceState(null, "", location.pathname); }
$("login").onsubmit = (e) => { e.preventDefault(); sessionStorage.setItem("spotKey", $("key").value.trim()); signIn(); };
$("signout").onclick = () => signOut();
$("action-filter").onchange = () => state && renderDecisions();
$("sim-form").onsubmit = simulations({$, api, svgEl, fmtUsd});
window.addEventListener("hashchange", () => { if (key) { showView(); scheduleRender(); } });
signIn();
