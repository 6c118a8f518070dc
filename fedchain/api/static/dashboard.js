// fedchain dashboard: reads the aggregator's public API every few seconds and draws the round
// history (tables and inline SVG plots). No framework, no chart library, nothing fetched from
// elsewhere. Every string that comes from the API is inserted as text, never as HTML.
"use strict";

const POLL_MS = 3000;
const MAX_DETAILS = 60;            // rounds whose /rounds/{id} detail is fetched (newest)
const UNITS = { "options-iv": { rmse: "vol points", mae: "vol points", max_abs_err: "vol points" } };
const HIGHER_IS_BETTER = new Set(["accuracy", "acc", "f1", "auc"]);

const state = {
  rounds: [], nodes: [], health: null, deployment: null, details: new Map(), task: null,
  metric: null, selected: null, verifyRound: null, verifyPinned: false, lastOk: null,
};

// ---------------------------------------------------------------------------------------------
const $ = (sel) => document.querySelector(sel);
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
const short = (h) => (h ? `${h.slice(0, 10)}…${h.slice(-4)}` : "–");
const addr = (a) => (a ? `${a.slice(0, 8)}…${a.slice(-4)}` : "–");
const gas = (g) => (g === null || g === undefined ? "–" : Number(g).toLocaleString("en-US"));
function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(1) : a >= 1 ? v.toFixed(3) : v.toPrecision(3);
}
function blobLink(hash) {
  if (!hash) return document.createTextNode("–");
  return el("a", { href: `/blobs/${hash}`, class: "hash", title: hash, target: "_blank", rel: "noopener" }, short(hash));
}
async function getJSON(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

// ---------------------------------------------------------------------------------------------
async function refresh() {
  try {
    const [health, page, nodes] = await Promise.all([
      getJSON("/health"), getJSON("/rounds?limit=500"), getJSON("/nodes?limit=500"),
    ]);
    state.health = health;
    state.rounds = page.items.slice().sort((a, b) => a.round_id - b.round_id);
    state.nodes = nodes.items;
    if (!state.deployment) state.deployment = await getJSON("/deployment").catch(() => null);
    await fetchDetails();
    await fetchTask();
    state.lastOk = new Date();
    $("#error").hidden = true;
  } catch (err) {
    $("#error").hidden = false;
    $("#error").textContent = `cannot read the API (${err.message}); retrying every ${POLL_MS / 1000} s`;
    $("#health").className = "pill down";
    $("#health").textContent = "unreachable";
  }
  render();
}

// A closed round's detail is final once its report is indexed (or it expired): fetched once.
function detailFinal(d) {
  return d && d.status !== "open" && (d.status === "expired" || d.metrics !== null || d.report_error);
}
async function fetchDetails() {
  const wanted = state.rounds.slice(-MAX_DETAILS).filter((r) => !detailFinal(state.details.get(r.round_id)));
  const got = await Promise.all(wanted.map((r) => getJSON(`/rounds/${r.round_id}`).catch(() => null)));
  got.forEach((d) => d && state.details.set(d.round_id, d));
}
async function fetchTask() {
  if (state.task || !state.rounds.length) return;
  try {
    const cfg = await getJSON(`/blobs/${state.rounds[0].config_hash}`);
    state.task = { name: cfg.task, strategy: cfg.strategy && cfg.strategy.name, mode: cfg.mode };
  } catch (_) { /* the config is public; if not served yet, try again next poll */ }
}

// ---------------------------------------------------------------------------------------------
function metricKeys() {
  const keys = [];
  for (const r of state.rounds) for (const [k, v] of Object.entries(r.metrics || {}))
    if (typeof v === "number" && !keys.includes(k)) keys.push(k);
  return keys;
}
function chooseMetric(keys) {
  if (state.metric && keys.includes(state.metric)) return state.metric;
  return ["rmse", "accuracy", "loss"].find((k) => keys.includes(k)) || keys[0] || null;
}
function unitOf(metric) {
  const t = state.task && state.task.name;
  return (t && UNITS[t] && UNITS[t][metric]) || "";
}
function metricLabel(metric) {
  if (!metric) return "metric";
  const u = unitOf(metric);
  const name = metric === "rmse" ? "RMSE" : metric;
  return u ? `${name} (${u})` : name;
}

function render() {
  const keys = metricKeys();
  state.metric = chooseMetric(keys);
  renderHeader();
  renderCards();
  renderMetricSelect(keys);
  renderMetricPlot();
  renderGasPlot();
  renderRoundsTable();
  renderLineage();
  renderParticipation();
  renderDetail();
  renderVerify();
}

function renderHeader() {
  const h = state.health;
  if (h) {
    const pill = $("#health");
    if (!$("#error").hidden) return;
    pill.className = `pill ${h.status}`;
    pill.textContent = h.status === "ok" ? "healthy" : "degraded";
    pill.title = h.detail || "chain, index and round loop are fine";
    $("#chain").textContent = `chain ${h.chain_id} · block ${h.block ?? "?"} · indexed ${h.indexed_block ?? "?"} · `
      + `contract ${addr(h.rounds_contract)}`;
    $("#chain").title = h.rounds_contract;
  }
  if (state.lastOk) $("#updated").textContent = `updated ${state.lastOk.toLocaleTimeString()}`;
}

function renderCards() {
  const rs = state.rounds;
  const count = (s) => rs.filter((r) => r.status === s).length;
  $("#card-rounds").textContent = rs.length;
  $("#card-rounds-sub").textContent = `${count("finalized")} finalized · ${count("expired")} expired · ${count("open")} open`;
  const m = state.metric;
  const pts = rs.filter((r) => r.metrics && typeof r.metrics[m] === "number");
  $("#card-metric-label").textContent = m ? `latest val ${metricLabel(m)}` : "latest metric";
  const sub = $("#card-metric-sub");
  sub.textContent = "";
  if (pts.length) {
    const last = pts[pts.length - 1], first = pts[0];
    $("#card-metric").textContent = fmt(last.metrics[m]);
    if (pts.length > 1) {
      const change = (last.metrics[m] - first.metrics[m]) / Math.abs(first.metrics[m] || 1) * 100;
      const good = HIGHER_IS_BETTER.has(m) ? change > 0 : change < 0;
      sub.append(el("span", { class: good ? "good" : "badv" }, `${change > 0 ? "+" : ""}${change.toFixed(1)}%`),
        ` since round ${first.round_id} (round ${last.round_id})`);
    } else sub.textContent = `round ${last.round_id}`;
  } else $("#card-metric").textContent = "–";
  const active = state.nodes.filter((n) => n.active).length;
  $("#card-nodes").textContent = active;
  const took = new Set();
  for (const d of state.details.values()) for (const u of d.updates || []) took.add(u.node.toLowerCase());
  $("#card-nodes-sub").textContent = `active of ${state.nodes.length} admitted · ${took.size} have committed`;
  let total = 0;
  for (const r of rs) total += gasOf(r).total;
  $("#card-gas").textContent = total ? gas(total) : "–";
  $("#card-gas-sub").textContent = rs.length ? `≈ ${gas(Math.round(total / rs.length))} per round, nodes' commits included` : "";
}

function renderMetricSelect(keys) {
  const sel = $("#metric-select");
  const want = keys.join(",");
  if (sel.dataset.keys !== want) {
    sel.textContent = "";
    for (const k of keys) sel.append(el("option", { value: k }, k));
    sel.dataset.keys = want;
  }
  if (state.metric) sel.value = state.metric;
}

// ---------------------------------------------------------------------------------------------
function niceTicks(lo, hi, n = 5) {
  if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
  const raw = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((s) => s * mag).find((s) => raw <= s) || raw;
  const start = Math.floor(lo / step) * step, end = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let v = start; v <= end + step / 2; v += step) ticks.push(+v.toPrecision(12));
  return ticks;
}
function frame(box) {
  const W = box.clientWidth || 600, H = 240, L = 56, R = 16, T = 24, B = 30;
  return { W, H, L, R, T, B, iw: W - L - R, ih: H - T - B };
}

function renderMetricPlot() {
  const plot = $("#metric-plot");
  plot.textContent = "";
  const m = state.metric;
  $("#plot-title").textContent = m ? `validation ${metricLabel(m)} over rounds` : "validation metric over rounds";
  const pts = state.rounds.filter((r) => r.metrics && typeof r.metrics[m] === "number")
    .map((r) => ({ x: r.round_id, y: r.metrics[m] }));
  const f = frame($("#metric-plot-box"));
  plot.setAttribute("viewBox", `0 0 ${f.W} ${f.H}`);
  plot.dataset.points = String(pts.length);
  plot.dataset.rounds = pts.map((p) => p.x).join(",");
  if (!pts.length) {
    plot.append(svg("text", { x: f.W / 2, y: f.H / 2, "text-anchor": "middle" }, "no finalized round yet"));
    return;
  }
  const xs = pts.map((p) => p.x), ys = pts.map((p) => p.y);
  const x0 = Math.min(...xs, 1) - 0.5, x1 = Math.max(...xs) + 0.5;
  const yt = niceTicks(Math.min(...ys), Math.max(...ys));
  const y0 = yt[0], y1 = yt[yt.length - 1];
  const X = (x) => f.L + (x - x0) / (x1 - x0) * f.iw;
  const Y = (y) => f.T + (1 - (y - y0) / (y1 - y0 || 1)) * f.ih;
  for (const t of yt) {
    plot.append(svg("line", { x1: f.L, x2: f.W - f.R, y1: Y(t), y2: Y(t), stroke: "#e3e8ef" }));
    plot.append(svg("text", { x: f.L - 8, y: Y(t) + 4, "text-anchor": "end" }, fmt(t)));
  }
  const every = Math.max(1, Math.ceil(xs.length / 12));
  xs.forEach((x, i) => {
    if (i % every === 0 || i === xs.length - 1)
      plot.append(svg("text", { x: X(x), y: f.H - 10, "text-anchor": "middle" }, x));
  });
  const defs = svg("defs");
  const grad = svg("linearGradient", { id: "area", x1: 0, x2: 0, y1: 0, y2: 1 });
  grad.append(svg("stop", { offset: "0%", "stop-color": "#3b5bdb", "stop-opacity": 0.22 }),
    svg("stop", { offset: "100%", "stop-color": "#3b5bdb", "stop-opacity": 0.02 }));
  defs.append(grad);
  plot.append(defs);
  const line = pts.map((p, i) => `${i ? "L" : "M"}${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`).join(" ");
  const base = Y(y0).toFixed(1);
  plot.append(svg("path", { d: `${line} L${X(pts[pts.length - 1].x).toFixed(1)},${base} L${X(pts[0].x).toFixed(1)},${base} Z`,
    fill: "url(#area)" }));
  plot.append(svg("path", { d: line, fill: "none", stroke: "#3b5bdb", "stroke-width": 2.5, "stroke-linejoin": "round" }));
  const labelEvery = Math.max(1, Math.ceil(pts.length / 10));
  pts.forEach((p, i) => {
    const c = svg("circle", { cx: X(p.x), cy: Y(p.y), r: 4.5, fill: "#fff", stroke: "#3b5bdb", "stroke-width": 2,
      "data-round": p.x, class: "point" });
    c.append(svg("title", {}, `round ${p.x}: ${m} ${fmt(p.y)}`));
    plot.append(c);
    if (i % labelEvery === 0 || i === pts.length - 1)
      plot.append(svg("text", { x: X(p.x), y: Y(p.y) - 10, "text-anchor": "middle", class: "val" }, fmt(p.y)));
  });
  plot.append(svg("text", { x: 12, y: f.T + f.ih / 2, transform: `rotate(-90 12 ${f.T + f.ih / 2})`,
    "text-anchor": "middle" }, metricLabel(m)));
}

function gasOf(r) {
  const d = state.details.get(r.round_id);
  const seen = new Set();
  let commits = 0;
  for (const u of (d && d.updates) || []) {
    if (u.gas_used && !seen.has(u.tx_hash)) { seen.add(u.tx_hash); commits += u.gas_used; }
  }
  const open = r.open_gas_used || 0, close = r.close_gas_used || 0;
  return { open, commits, close, total: open + commits + close };
}

function renderGasPlot() {
  const plot = $("#gas-plot");
  plot.textContent = "";
  const rs = state.rounds.slice(-40);
  const f = frame(plot.parentElement);
  plot.setAttribute("viewBox", `0 0 ${f.W} ${f.H}`);
  if (!rs.length) {
    plot.append(svg("text", { x: f.W / 2, y: f.H / 2, "text-anchor": "middle" }, "no round yet"));
    return;
  }
  const data = rs.map((r) => ({ id: r.round_id, ...gasOf(r) }));
  const yt = niceTicks(0, Math.max(...data.map((d) => d.total), 1), 4);
  const top = yt[yt.length - 1];
  const Y = (v) => f.T + (1 - v / top) * f.ih;
  for (const t of yt) {
    plot.append(svg("line", { x1: f.L, x2: f.W - f.R, y1: Y(t), y2: Y(t), stroke: "#e3e8ef" }));
    plot.append(svg("text", { x: f.L - 8, y: Y(t) + 4, "text-anchor": "end" }, t >= 1000 ? `${t / 1000}k` : t));
  }
  const slot = f.iw / data.length, bw = Math.min(42, slot * 0.6);
  data.forEach((d, i) => {
    const cx = f.L + slot * (i + 0.5);
    let acc = 0;
    for (const [key, color] of [["open", "#94a3b8"], ["commits", "#74c0fc"], ["close", "#3b5bdb"]]) {
      if (!d[key]) continue;
      const rect = svg("rect", { x: cx - bw / 2, width: bw, y: Y(acc + d[key]), height: Y(acc) - Y(acc + d[key]),
        fill: color, rx: 2, "data-round": d.id });
      rect.append(svg("title", {}, `round ${d.id}: ${key} ${gas(d[key])} gas`));
      plot.append(rect);
      acc += d[key];
    }
    const every = Math.max(1, Math.ceil(data.length / 12));
    if (i % every === 0 || i === data.length - 1)
      plot.append(svg("text", { x: cx, y: f.H - 10, "text-anchor": "middle" }, d.id));
  });
}

// ---------------------------------------------------------------------------------------------
function rejections(d) {
  if (!d) return [];
  const out = (d.updates || []).filter((u) => u.accepted === false).map((u) => `${addr(u.node)}: ${u.reason || "rejected"}`);
  for (const s of d.skipped || []) out.push(`${addr(s.node)}: relay skipped (${s.reason})`);
  if (d.report_error) out.push(d.report_error);
  return out;
}

function renderRoundsTable() {
  const body = $("#rounds-table tbody");
  body.textContent = "";
  $("#metric-col").textContent = metricLabel(state.metric);
  for (const r of state.rounds.slice().reverse()) {
    const d = state.details.get(r.round_id);
    const isOpen = r.status === "open";
    const rej = rejections(d);
    const rejected = isOpen ? "–" : Math.max(0, (r.commit_count || 0) - (r.accepted_count || 0));
    const m = r.metrics && r.metrics[state.metric];
    const tr = el("tr", { "data-round": r.round_id, class: state.selected === r.round_id ? "selected" : null },
      el("td", {}, String(r.round_id)),
      el("td", {}, el("span", { class: `status ${r.status}` }, r.status)),
      el("td", { class: "num" }, `${r.commit_count}/${r.eligible_count}`),
      el("td", { class: "num" }, isOpen ? "–" : String(r.accepted_count)),
      el("td", { class: "num" }, String(rejected)),
      el("td", { class: rej.length ? "reason" : "muted" }, rej.length ? rej.join("; ") : (isOpen ? "round open" : "none")),
      el("td", { class: "num" }, typeof m === "number" ? fmt(m) : "–"),
      el("td", { class: "num" }, gas(r.open_gas_used)),
      el("td", { class: "num" }, gas(r.close_gas_used)),
      el("td", {}, blobLink(r.global_model_hash)),
      el("td", {}, blobLink(r.report_hash)));
    tr.addEventListener("click", () => {
      state.selected = r.round_id; state.verifyRound = r.round_id; state.verifyPinned = true; render();
    });
    body.append(tr);
  }
  $("#rounds-table").dataset.rounds = state.rounds.map((r) => r.round_id).join(",");
}

function renderLineage() {
  const ol = $("#lineage");
  ol.textContent = "";
  if (!state.rounds.length) { ol.append(el("li", {}, "no round yet")); return; }
  const genesis = state.rounds[0].base_model_hash;
  ol.append(el("li", {}, el("strong", {}, "genesis"), blobLink(genesis), el("span", { class: "muted small" }, "round 1's base")));
  let last = genesis;
  for (const r of state.rounds) {
    const ok = r.base_model_hash === last;
    const check = el("span", { class: `check ${ok ? "ok" : "bad"}`, title: `base ${r.base_model_hash}` },
      ok ? "✓ base = previous model" : `✗ base ${short(r.base_model_hash)}`);
    const out = r.status === "finalized" ? blobLink(r.global_model_hash)
      : el("span", { class: "muted" }, r.status === "open" ? "training…" : "expired: model unchanged");
    ol.append(el("li", { class: r.status }, el("span", {}, `round ${r.round_id}`), out, check));
    if (r.status === "finalized" && r.global_model_hash) last = r.global_model_hash;
  }
}

function renderParticipation() {
  const table = $("#participation");
  const head = table.querySelector("thead"), body = table.querySelector("tbody");
  head.textContent = ""; body.textContent = "";
  const rounds = state.rounds.slice(-12);
  head.append(el("tr", {}, el("th", {}, "node"), el("th", { class: "num" }, "accepted"),
    ...rounds.map((r) => el("th", { class: "num" }, `r${r.round_id}`))));
  const byNode = new Map(state.nodes.map((n) => [n.address.toLowerCase(), n]));
  for (const d of state.details.values()) for (const u of d.updates || [])
    if (!byNode.has(u.node.toLowerCase())) byNode.set(u.node.toLowerCase(), { address: u.node, active: null });
  for (const n of byNode.values()) {
    let accepted = 0, committed = 0;
    for (const d of state.details.values()) for (const u of d.updates || [])
      if (u.node.toLowerCase() === n.address.toLowerCase()) { committed += 1; if (u.accepted) accepted += 1; }
    const cells = rounds.map((r) => {
      const d = state.details.get(r.round_id);
      const u = d && (d.updates || []).find((x) => x.node.toLowerCase() === n.address.toLowerCase());
      if (!u) return el("td", { class: "cell none" }, "·");
      if (u.accepted === false) return el("td", { class: "cell rej", title: u.reason || "rejected" }, "✗");
      if (u.accepted && typeof u.weight === "number")
        return el("td", { class: "cell acc", title: `${u.num_samples} samples` }, `${(u.weight * 100).toFixed(0)}%`);
      return el("td", { class: "cell", title: "committed; report pending" }, "•");
    });
    body.append(el("tr", {}, el("td", { class: "hash", title: n.address }, addr(n.address) + (n.active === false ? " (removed)" : "")),
      el("td", { class: "num" }, `${accepted}/${committed}`), ...cells));
  }
}

function renderDetail() {
  const rid = state.selected ?? (state.rounds.length ? state.rounds[state.rounds.length - 1].round_id : null);
  const box = $("#detail-body");
  box.textContent = "";
  if (rid === null) { box.textContent = "no round yet"; return; }
  const d = state.details.get(rid);
  $("#detail-title").textContent = `round ${rid}: updates`;
  if (!d) { box.textContent = "loading…"; return; }
  const strat = d.strategy ? `${d.strategy.name}` : (state.task && state.task.strategy) || "";
  box.append(el("p", { class: "small" },
    `${d.status} · ${d.commit_count} of ${d.eligible_count} eligible committed · quorum ${d.min_updates}`
    + (strat ? ` · rule ${strat}` : "") + " · config ", blobLink(d.config_hash), " · base ", blobLink(d.base_model_hash)));
  const t = el("table", {}, el("thead", {}, el("tr", {}, ...["node", "update", "samples", "weight", "outcome", "gas"]
    .map((h) => el("th", { class: ["samples", "weight", "gas"].includes(h) ? "num" : null }, h)))));
  const tb = el("tbody");
  for (const u of d.updates || []) {
    const outcome = u.accepted === true ? el("span", { class: "check ok" }, "accepted")
      : u.accepted === false ? el("span", { class: "reason" }, u.reason || "rejected") : el("span", { class: "muted" }, "pending");
    tb.append(el("tr", {}, el("td", { class: "hash", title: u.node }, addr(u.node)), el("td", {}, blobLink(u.update_hash)),
      el("td", { class: "num" }, String(u.num_samples)),
      el("td", { class: "num" }, typeof u.weight === "number" ? `${(u.weight * 100).toFixed(1)}%` : "–"),
      el("td", {}, outcome), el("td", { class: "num" }, gas(u.gas_used))));
  }
  if (!(d.updates || []).length) tb.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "no commitment yet")));
  t.append(tb);
  box.append(el("div", { class: "scroll" }, t));
}

function renderVerify() {
  const sel = $("#verify-round");
  const closed = state.rounds.filter((r) => r.status === "finalized").map((r) => r.round_id);
  const want = closed.join(",");
  if (sel.dataset.rounds !== want) {
    sel.textContent = "";
    for (const id of closed.slice().reverse()) sel.append(el("option", { value: id }, id));
    sel.dataset.rounds = want;
  }
  if (!closed.length) { $("#verify-cmd").textContent = "# no finalized round yet"; return; }
  // Follows the newest finalized round until the reader picks one.
  if (!state.verifyPinned || !closed.includes(state.verifyRound)) state.verifyRound = closed[closed.length - 1];
  sel.value = String(state.verifyRound);
  const dep = state.deployment || {};
  const rpc = dep.rpc_url || "http://YOUR-RPC:8545";
  const contract = (dep.contracts && dep.contracts.TrainingRounds && dep.contracts.TrainingRounds.address)
    || (state.health && state.health.rounds_contract) || "0x…";
  $("#verify-cmd").textContent = `fedchain verify --round ${state.verifyRound} \\\n  --rpc-url ${rpc} \\\n`
    + `  --api-url ${location.origin} \\\n  --contract ${contract} \\\n  --dev-account 1   # or --keystore FILE`;
}

// ---------------------------------------------------------------------------------------------
$("#metric-select").addEventListener("change", (e) => { state.metric = e.target.value; render(); });
$("#verify-round").addEventListener("change", (e) => {
  state.verifyRound = Number(e.target.value); state.verifyPinned = true; renderVerify();
});
window.addEventListener("resize", () => { renderMetricPlot(); renderGasPlot(); });
refresh();
setInterval(refresh, POLL_MS);
