// shoal dashboard: plain JS, no build step. The status arrives over SSE (/api/stream) once a
// second; lists (items, calls, events, agents) are fetched every two seconds. Every number the
// page shows keeps its raw value in data-value. Text from the journal is set with textContent only.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const headers = { "X-Shoal-Token": token };
const history = [];
let itemFilter = "";
let itemLimit = 200;
let runId = null;

const $ = (id) => document.getElementById(id);

function fmtCount(v) {
  if (v === null || v === undefined) return "-";
  if (Math.abs(v) < 10000) return Math.round(v).toLocaleString("en-US");
  if (Math.abs(v) < 1e6) return (v / 1000).toFixed(1) + "k";
  return (v / 1e6).toFixed(1) + "M";
}
function fmtMoney(v) {
  if (v === null || v === undefined) return "-";
  if (v !== 0 && Math.abs(v) < 0.0001) return "$" + v.toPrecision(2);
  if (v !== 0 && Math.abs(v) < 0.01) return "$" + v.toFixed(4);
  return "$" + v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}
function fmtDuration(s) {
  if (s === null || s === undefined || !isFinite(s) || s < 0) return "-";
  const t = Math.round(s);
  if (t < 60) return t + "s";
  const m = Math.floor(t / 60), sec = t % 60;
  if (m < 60) return m + "m" + String(sec).padStart(2, "0") + "s";
  return Math.floor(m / 60) + "h" + String(m % 60).padStart(2, "0") + "m";
}
function fmtTime(ts) {
  return ts ? new Date(ts * 1000).toLocaleTimeString("en-GB") : "-";
}
function fmtPct(v) {
  return v === null || v === undefined ? "-" : Math.round(v) + "%";
}

function setNum(id, value, fmt) {
  const el = $(id);
  el.dataset.value = value === null || value === undefined ? "" : String(value);
  el.textContent = (fmt || fmtCount)(value);
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function fillTable(id, rows, build) {
  const body = $(id).querySelector("tbody");
  const fresh = document.createElement("tbody");
  for (const row of rows) {
    const tr = document.createElement("tr");
    build(tr, row);
    fresh.appendChild(tr);
  }
  body.replaceWith(fresh);
}

function usageCell(tr, model, kinds) {
  const td = cell(tr, "");
  const budget = model.budget, usage = model.usage;
  if (!budget) { td.textContent = "-"; return; }
  for (const kind of kinds) {
    const limit = budget.limits[kind];
    if (limit === undefined) continue;
    const used = usage ? usage.per_minute[kind] || 0 : 0;
    const pct = usage ? usage.percent[kind] : null;
    const wrap = document.createElement("div");
    wrap.className = "usage";
    const label = document.createElement("span");
    label.textContent = (kinds.length > 1 ? kind + " " : "") + fmtCount(used) + " / " + fmtCount(limit) + " " + fmtPct(pct);
    label.dataset.value = pct === null || pct === undefined ? "" : String(pct);
    label.dataset.kind = kind;
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.style.width = Math.min(100, pct || 0) + "%";
    if ((pct || 0) > 90) fill.className = "hot";
    bar.appendChild(fill);
    wrap.append(label, bar);
    td.appendChild(wrap);
  }
  if (budget.learning) td.appendChild(document.createTextNode(" (learning)"));
}

function renderStatus(s) {
  $("note").hidden = !s.note;
  $("note").textContent = s.note || "";
  $("live").textContent = "updated " + fmtTime(s.now);
  if (!s.job) { $("state").textContent = "no job"; return; }
  const run = s.run, items = s.items, totals = s.totals, cost = s.cost, w = s.workers;
  $("job").textContent = s.job;
  $("state").textContent = run.stopping ? run.state + " (" + run.stopping + ")" : run.state;
  $("state").className = "badge " + run.state;
  $("run-id").textContent = run.id + (run.runs > 1 ? " of " + run.runs : "");
  $("advice").textContent = advice(s).join("\n");
  $("advice").hidden = !$("advice").textContent;
  $("gate").textContent = s.gate ? s.gate.line : "";
  $("gate").hidden = !s.gate;
  const batches = s.batches || [];
  $("batches").hidden = batches.length === 0;
  fillTable("batches", batches, (tr, b) => {
    cell(tr, b.batch_id || "(being submitted)");
    cell(tr, b.provider);
    cell(tr, b.model);
    cell(tr, b.state);
    cell(tr, fmtCount(b.requests), "num");
    cell(tr, Object.entries(b.counts || {}).filter(([, n]) => n).map(([k, n]) => n + " " + k).join(", "));
    cell(tr, fmtDuration(b.age_s), "num");
  });
  $("elapsed").textContent = fmtDuration(run.elapsed_s);
  setNum("items-done", items.done);
  setNum("items-total", items.total);
  setNum("items-pending", items.pending);
  setNum("items-running", items.running);
  setNum("items-flagged", items.needs_review);
  setNum("items-failed", items.failed);
  $("items-bar").style.width = (items.total ? (100 * s.progress.finished) / items.total : 0) + "%";
  setNum("in-flight", w ? w.in_flight : null);
  setNum("ceiling", w ? w.ceiling : null);
  setNum("waiting", w ? w.waiting : null);
  setNum("sent", w ? w.sent : null);
  setNum("replayed", w ? w.replayed : null);
  setNum("rate-limited", totals.run.rate_limited);
  setNum("retries", totals.run.retries);
  setNum("calls-run", totals.run.calls);
  setNum("calls-job", totals.job.calls);
  setNum("tokens-in", totals.job.input_tokens);
  setNum("tokens-out", totals.job.output_tokens);
  setNum("tokens-cached", totals.job.cached_tokens);
  setNum("cost-spent", cost.spent_usd, fmtMoney);
  setNum("cost-run", cost.run_usd, fmtMoney);
  setNum("cost-projected", cost.projected_usd, fmtMoney);
  setNum("cost-max", cost.max_usd, fmtMoney);
  setNum("eta", s.progress.eta_s, fmtDuration);
  setNum("per-minute", s.progress.per_minute, (v) => (v === null || v === undefined ? "-" : v.toFixed(1)));

  const phaseOf = (name) => (name === null ? "" : name);
  fillTable("stages", s.stages, (tr, st) => {
    cell(tr, phaseOf(st.phase)); cell(tr, st.name);
    for (const k of ["pending", "running", "done", "needs_review", "failed", "calls", "input_tokens", "output_tokens"]) {
      cell(tr, fmtCount(st[k]), "num");
    }
    cell(tr, fmtMoney(st.cost_usd), "num");
    // Where time went, per call: model time against queue wait (slot and rate budget).
    for (const k of ["model_s", "queue_s"]) {
      cell(tr, st.calls && st[k] !== undefined ? (st[k] / st.calls).toFixed(2) + "s" : "-", "num");
    }
  });
  fillTable("models", s.models, (tr, m) => {
    const shared = m.budget && m.budget.shared;
    // A budget shared through Redis: how many processes use it now.
    cell(tr, shared ? `${m.model} (shared by ${shared.processes})` : m.model);
    usageCell(tr, m, ["rpm"]);
    usageCell(tr, m, m.budget && m.budget.limits.itpm !== undefined ? ["itpm", "otpm"] : ["tpm"]);
    cell(tr, m.budget ? fmtPct(100 * m.budget.factor) : "-", "num");
    cell(tr, m.budget && m.budget.paused_for_s ? fmtDuration(m.budget.paused_for_s) : "-", "num");
    cell(tr, fmtCount(m.run.rate_limited), "num");
    cell(tr, fmtCount(m.run.retries), "num");
    cell(tr, fmtCount(m.job.calls), "num");
    cell(tr, fmtMoney(m.job.cost_usd), "num");
  });
  const cluster = s.cluster || [];
  $("cluster-section").hidden = cluster.length === 0;
  fillTable("cluster", cluster, (tr, wk) => {
    cell(tr, wk.name); cell(tr, wk.node);
    cell(tr, fmtCount(wk.done), "num"); cell(tr, fmtCount(wk.running), "num");
    cell(tr, fmtDuration(wk.busy_s), "num"); cell(tr, wk.lost ? "lost" : "up");
  });
  history.push([s.now, s.progress.finished]);
  if (history.length > 600) history.shift();
  drawSpark();
  if (run.id !== runId) { runId = run.id; loadSource(); }
}

// What the terminal view says below its tables: an interrupted run, and models whose max_tokens
// reservation, not the provider, holds throughput back.
function advice(s) {
  const lines = [];
  if (s.run.state === "interrupted") {
    lines.push("interrupted: the job's process is gone; run the same command again to resume");
  }
  for (const m of s.models) {
    const r = m.reservation;
    if (!r || !r.limiting || !r.limiting.length) continue;
    const k = r.limiting[0];
    lines.push(m.model + ": max_tokens " + fmtCount(r.max_tokens) + ", not the provider, limits throughput: " +
      "reservations fill " + fmtPct(r.reserved_percent[k]) + " of " + k.toUpperCase() + ", answers use " +
      fmtPct(r.used_percent[k]) + "; the longest answers so far (" + fmtCount(r.output_max) +
      " tokens) suggest max_tokens " + fmtCount(r.suggested_max_tokens));
  }
  return lines;
}

function drawSpark() {
  const svg = $("spark");
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  if (history.length < 2) return;
  const t0 = history[0][0], t1 = history[history.length - 1][0];
  const ymax = Math.max(1, ...history.map((p) => p[1]));
  const pts = history.map(([t, y]) => {
    const x = t1 > t0 ? ((t - t0) / (t1 - t0)) * 400 : 0;
    return x.toFixed(1) + "," + (78 - (y / ymax) * 74).toFixed(1);
  });
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", pts.join(" "));
  line.setAttribute("class", "spark");
  svg.appendChild(line);
}

async function getJSON(path) {
  const response = await fetch(path, { headers, cache: "no-store" });
  if (!response.ok) throw new Error(path + ": " + response.status);
  return response.json();
}

async function loadItems() {
  const query = "/api/items?limit=" + itemLimit + (itemFilter ? "&status=" + encodeURIComponent(itemFilter) : "");
  const data = await getJSON(query);
  $("items-shown").textContent = String(data.items.length);
  $("items-filtered").textContent = String(data.total);
  $("items-more").hidden = data.items.length >= data.total;
  fillTable("items", data.items, (tr, it) => {
    cell(tr, it.id); cell(tr, it.stage || ""); cell(tr, it.status, "status " + it.status);
    cell(tr, it.attempts, "num"); cell(tr, it.calls, "num");
    cell(tr, fmtCount(it.input_tokens), "num"); cell(tr, fmtCount(it.output_tokens), "num");
    cell(tr, fmtMoney(it.cost_usd), "num"); cell(tr, it.file || ""); cell(tr, it.error || "", "error");
  });
}

async function loadCalls() {
  const data = await getJSON("/api/calls?limit=100");
  fillTable("calls", data.calls, (tr, c) => {
    cell(tr, fmtTime(c.created_at)); cell(tr, c.item); cell(tr, c.stage); cell(tr, c.model);
    cell(tr, c.outcome, "status " + c.outcome); cell(tr, c.attempt, "num");
    cell(tr, fmtCount(c.input_tokens), "num"); cell(tr, fmtCount(c.output_tokens), "num");
    cell(tr, fmtCount(c.cached_tokens), "num"); cell(tr, fmtMoney(c.cost_usd), "num");
    cell(tr, c.latency_s.toFixed(2) + "s", "num"); cell(tr, c.queue_s.toFixed(2) + "s", "num");
    cell(tr, c.error || "", "error");
  });
}

async function loadEvents() {
  const data = await getJSON("/api/events?limit=200");
  $("events-none").hidden = data.events.length > 0;
  $("events").hidden = data.events.length === 0;
  fillTable("events", data.events, (tr, e) => {
    const detail = Object.assign({}, e.detail);
    const item = detail.item || ""; delete detail.item;
    cell(tr, fmtTime(e.ts)); cell(tr, e.kind, "status " + e.kind); cell(tr, e.model || "");
    cell(tr, item); cell(tr, Object.keys(detail).length ? JSON.stringify(detail) : "", "error");
  });
}

async function loadAgents() {
  const data = await getJSON("/api/agents");
  const rows = data.agents.map((a) => ({ who: a.id, item: a.item, messages: a.messages, step: a.step, at: a.updated_at }))
    .concat(data.running.map((r) => ({ who: "item " + r.id, item: r.id, messages: "", step: "running " + (r.stage || ""), at: r.since })));
  $("agents-none").hidden = rows.length > 0;
  $("agents").hidden = rows.length === 0;
  fillTable("agents", rows, (tr, a) => {
    cell(tr, a.who); cell(tr, a.item || ""); cell(tr, a.messages, "num"); cell(tr, a.step); cell(tr, fmtTime(a.at));
  });
}

async function loadSource() {
  const data = await getJSON("/api/source");
  $("command").textContent = data.command || "-";
  $("source").textContent = data.text || "(no plan, script or prompt recorded for this job)";
}

async function refreshLists() {
  try {
    await Promise.all([loadItems(), loadCalls(), loadEvents(), loadAgents()]);
  } catch (err) {
    $("live").textContent = "error: " + err.message;
  }
}

function connect() {
  const source = new EventSource("/api/stream?token=" + encodeURIComponent(token));
  source.addEventListener("status", (event) => renderStatus(JSON.parse(event.data)));
  source.onerror = () => { $("live").textContent = "reconnecting…"; };
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of $("filters").querySelectorAll("button")) {
    button.addEventListener("click", () => {
      for (const other of $("filters").querySelectorAll("button")) other.classList.remove("on");
      button.classList.add("on");
      itemFilter = button.dataset.status;
      itemLimit = 200;
      loadItems();
    });
  }
  $("items-more").addEventListener("click", () => { itemLimit += 200; loadItems(); });
  connect();
  refreshLists();
  setInterval(refreshLists, 2000);
});
