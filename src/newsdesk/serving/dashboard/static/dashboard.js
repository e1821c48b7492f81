// newsdesk dashboard: hand-written, no build step, no external asset.
// Read-only views poll the open JSON routes; actions go to the admin API with the key the
// operator typed (sessionStorage only: it never leaves this tab except as X-API-Key).
// Every value from the server is inserted as text (textContent), never as HTML.
"use strict";

const KEY_STORE = "newsdesk.adminKey";
const POLL_MS = 5000;
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function fmt(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x)) return x.toLocaleString("en");
  return x.toFixed(digits);
}
const ms = (s) => (s === null || s === undefined ? "–" : (s * 1000).toFixed(1) + " ms");
const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(2) + "%");

// a table in its own horizontal scroller (the page never scrolls sideways), with a note above
function tableBlock(columns, rows, note) {
  return [note ? el("p", { class: "muted note", text: note }) : null,
    el("div", { class: "scroll" }, table(columns, rows))].filter(Boolean);
}

function table(columns, rows, caption) {
  // columns: [[header, fn(row) -> text|Node, numeric?]]
  const head = el("tr", {}, columns.map(([h, , num]) =>
    el("th", { scope: "col", class: num ? "num" : null, text: h })));
  const body = rows.map((r) => el("tr", {}, columns.map(([, f, num]) => {
    const v = f(r);
    return el("td", { class: num ? "num" : null }, v instanceof Node ? v : fmt(v));
  })));
  return el("table", {}, caption ? el("caption", { class: "muted", text: caption }) : null,
    el("thead", {}, head), el("tbody", {}, body));
}

function setStatus(message, isError = false) {
  const s = $("#status");
  s.textContent = message || "";
  s.classList.toggle("error", Boolean(isError));
}

// -- API ---------------------------------------------------------------------------------------
function adminKey() { return sessionStorage.getItem(KEY_STORE); }

async function api(path, { method = "GET", admin = false, okStatuses = [] } = {}) {
  const headers = { Accept: "application/json" };
  if (admin) {
    const key = adminKey();
    if (!key) throw new Error("enter the admin key first (top of the page)");
    headers["X-API-Key"] = key;
    headers["X-Actor"] = "dashboard";
  }
  const r = await fetch(path, { method, headers });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok && !okStatuses.includes(r.status)) {
    const msg = (body && body.message) || r.statusText;  // the API's error body
    throw new Error(`${method} ${path}: ${r.status} ${msg}`);
  }
  return { status: r.status, body };
}

// -- admin key ---------------------------------------------------------------------------------
function renderKeyState() {
  const has = Boolean(adminKey());
  $("#key-state").textContent = has ? "admin key set for this tab" :
    "read-only: actions need the admin key";
  document.querySelectorAll("[data-admin]").forEach((b) => {
    b.disabled = !has;
    b.title = has ? "" : "enter the admin key first";
  });
}

function setupKeyForm() {
  $("#key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("#admin-key").value.trim();
    if (v) sessionStorage.setItem(KEY_STORE, v);
    $("#admin-key").value = "";
    renderKeyState();
    refresh().then(renderKeyState);
  });
  $("#key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    renderKeyState();
    refresh().then(renderKeyState);
  });
}

// an action: disabled without a key, reports its outcome in the status line, then refreshes
function actionButton(label, ariaLabel, run, cls) {
  const b = el("button", { type: "button", "data-admin": true, "aria-label": ariaLabel,
    class: cls, text: label, disabled: !adminKey() });
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      const msg = await run();
      setStatus(msg);
    } catch (e) {
      setStatus(e.message, true);
    } finally {
      await refresh();
      renderKeyState();
      // the list re-rendered under the button: keyboard users land on the outcome instead
      if (!document.activeElement || document.activeElement === document.body) $("#status").focus();
    }
  });
  return b;
}

// a destructive action asks again inline (no window.confirm: it blocks and is easy to miss)
function confirmButton(label, ariaLabel, run) {
  const b = actionButton(label, ariaLabel, run, "danger");
  let armed = false;
  b.addEventListener("click", (ev) => {
    if (!armed) {
      ev.stopImmediatePropagation();
      armed = true;
      b.textContent = "Confirm: " + label.toLowerCase();
      setTimeout(() => { armed = false; b.textContent = label; }, 8000);
    }
  }, { capture: true });
  return b;
}

// -- plots (inline SVG, drawn here: no chart library needed for lines and intervals) -----------
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
  for (const c of children) n.append(c);
  return n;
}

// W: the drawing's width in CSS pixels, so text keeps its size on a phone and a wide screen
const plotWidth = (box) => Math.max(280, Math.min(760, (box && box.clientWidth) || 600));

function linePlot(points, { label, unit, W = 600 }) {
  const H = 140, P = 36;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${label}: ${points.length ? fmt(points[points.length - 1][1], 2) : "no data"} ${unit} now` });
  root.append(svg("rect", { x: 0, y: 0, width: W, height: H, fill: "#f3f5f7" }));
  if (points.length < 2) {
    const t = svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#4d4d4d" });
    t.textContent = "collecting samples…";
    root.append(t);
    return root;
  }
  const t0 = points[0][0], t1 = points[points.length - 1][0];
  const ymax = Math.max(1e-9, ...points.map((p) => p[1])) * 1.1;
  const x = (t) => P + (W - P - 8) * (t - t0) / Math.max(1e-9, t1 - t0);
  const y = (v) => H - 18 - (H - 30) * v / ymax;
  const d = points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
  root.append(svg("path", { d: d.join(""), fill: "none", stroke: "#0b57d0", "stroke-width": 2 }));
  for (const v of [0, ymax / 1.1]) {
    const t = svg("text", { x: 4, y: y(v) + 4, "font-size": 11, fill: "#4d4d4d" });
    t.textContent = fmt(v, 1);
    root.append(t);
  }
  const cap = svg("text", { x: W - 8, y: H - 4, "text-anchor": "end", "font-size": 11,
    fill: "#4d4d4d" });
  cap.textContent = `last ${Math.round(t1 - t0)} s, ${unit}`;
  root.append(cap);
  return root;
}

// forest plot: one row per variant, its CTR and 95% CI
// zero: draw a reference line at 0 and let the axis go negative (lifts); else clamp at 0 (rates)
function intervalPlot(rows, W = 600, { zero = false, label = "CTR per variant with 95% confidence intervals" } = {}) {
  const rowH = 30, P = Math.min(130, W / 3.5), H = rows.length * rowH + 26;
  const vals = rows.flatMap((r) => [r.lo, r.value, r.hi]).filter((v) => v !== null && v !== undefined);
  if (zero) vals.push(0);
  const lo = vals.length ? Math.min(...vals) : 0, hi = vals.length ? Math.max(...vals) : 0;
  const pad = (hi - lo) * 0.1 || Math.abs(hi) * 0.1 || 0.01;
  const a = zero ? lo - pad : Math.max(0, lo - pad), b = hi + pad;
  const x = (v) => P + (W - P - 16) * (v - a) / Math.max(1e-12, b - a);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${label}: ` +
      rows.map((r) => `${r.name} ${pct(r.value)} [${pct(r.lo)}, ${pct(r.hi)}]`).join("; ") });
  if (zero) {
    root.append(svg("line", { x1: x(0), x2: x(0), y1: 2, y2: H - 18, stroke: "#4d4d4d",
      "stroke-dasharray": "4 3" }));
  }
  rows.forEach((r, i) => {
    const cy = 14 + i * rowH;
    const name = svg("text", { x: 4, y: cy + 4, "font-size": 13, fill: "#1b1b1b" });
    name.textContent = r.name;
    root.append(name);
    if (r.value === null || r.value === undefined) {
      const t = svg("text", { x: P, y: cy + 4, "font-size": 12, fill: "#4d4d4d" });
      t.textContent = "no data yet";
      root.append(t);
      return;
    }
    if (r.lo !== null && r.hi !== null) {
      root.append(svg("line", { x1: x(r.lo), x2: x(r.hi), y1: cy, y2: cy, stroke: "#0b57d0",
        "stroke-width": 3 }));
    }
    root.append(svg("circle", { cx: x(r.value), cy, r: 5, fill: "#13294b" }));
  });
  for (const v of [a, b]) {
    const t = svg("text", { x: x(v), y: H - 4, "font-size": 11, fill: "#4d4d4d",
      "text-anchor": v === a ? "start" : "end" });
    t.textContent = pct(v);
    root.append(t);
  }
  return root;
}

// always-valid p-value after each day, against alpha
function pValuePlot(series, alpha, W = 600) {
  const H = 120, P = 36, n = Math.max(...series.map((s) => s.p.length));
  const x = (i) => P + (W - P - 12) * i / Math.max(1, n - 1);
  const y = (p) => 8 + (H - 30) * (1 - p);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label":
    "always-valid p-value by day: " + series.map((s) => `${s.name} ${s.p.map((p) => fmt(p)).join(", ")}`).join("; ") });
  root.append(svg("line", { x1: P, x2: W - 12, y1: y(alpha), y2: y(alpha), stroke: "#b3261e",
    "stroke-dasharray": "4 3" }));
  const colors = ["#0b57d0", "#1a6e32", "#8a5300"];
  series.forEach((s, k) => {
    const pts = s.p.map((p, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(Math.min(1, p ?? 1)).toFixed(1)}`);
    root.append(svg("path", { d: pts.join(""), fill: "none", stroke: colors[k % 3], "stroke-width": 2 }));
    s.p.forEach((p, i) => root.append(svg("circle", { cx: x(i), cy: y(Math.min(1, p ?? 1)), r: 3, fill: colors[k % 3] })));
  });
  for (const [v, t] of [[1, "1"], [alpha, `α ${alpha}`], [0, "0"]]) {
    const tx = svg("text", { x: 4, y: y(v) + 4, "font-size": 11, fill: "#4d4d4d" });
    tx.textContent = t;
    root.append(tx);
  }
  const cap = svg("text", { x: W - 12, y: H - 4, "text-anchor": "end", "font-size": 11, fill: "#4d4d4d" });
  cap.textContent = `day 1 … ${n}`;
  root.append(cap);
  return root;
}

// -- pages -------------------------------------------------------------------------------------
const traffic = [];  // [unix seconds, total requests] from successive polls

function card(label, value, cls) {
  return el("div", { class: "card" }, el("div", { class: "label", text: label }),
    el("div", { class: "value " + (cls || ""), text: value }));
}

async function loadOverview() {
  const [ready, ov] = await Promise.all([
    api("/readyz", { okStatuses: [503] }), api("/dashboard/api/overview")]);
  const r = ready.body || {};
  const checks = r.checks || {};
  const o = ov.body;
  const cards = [
    card("status", r.status || "unknown", ready.status === 200 ? "ok" : "bad"),
    card("model version", r.model_version || "none"),
    ...Object.entries(checks).map(([k, v]) => card(k.replace("_", " "), v ? "ok" : "failing",
      v ? "ok" : "bad")),
    card("live articles", fmt(o.catalog_size)),
    card("store bootstrap", (r.bootstrap && r.bootstrap.state) || "–"),
  ];
  for (const [name, open] of Object.entries(o.breakers || {})) {
    cards.push(card(`breaker ${name}`, open ? "OPEN" : "closed", open ? "bad" : "ok"));
  }
  $("#health-cards").replaceChildren(...cards);

  const total = o.endpoints.filter((e) => !e.endpoint.startsWith("/dashboard"))
    .reduce((s, e) => s + e.requests, 0);
  traffic.push([o.time, total]);
  if (traffic.length > 120) traffic.shift();
  const rates = [];
  for (let i = 1; i < traffic.length; i++) {
    const dt = traffic[i][0] - traffic[i - 1][0];
    if (dt > 0) rates.push([traffic[i][0], Math.max(0, traffic[i][1] - traffic[i - 1][1]) / dt]);
  }
  $("#traffic-plot").replaceChildren(linePlot(rates, { label:
    "API requests per second (dashboard excluded)", unit: "req/s", W: plotWidth($("#traffic-plot")) }));

  $("#endpoint-table").replaceChildren(...tableBlock([
    ["endpoint", (e) => e.endpoint], ["requests", (e) => e.requests, true],
    ["5xx", (e) => e.errors_5xx, true], ["p50", (e) => ms(e.p50_s), true],
    ["p95", (e) => ms(e.p95_s), true], ["p99", (e) => ms(e.p99_s), true],
  ], o.endpoints.filter((e) => !e.endpoint.startsWith("/dashboard")),
  "since the process started; the dashboard's own requests are left out"));
  $("#stage-table").replaceChildren(...(o.stages.length ? tableBlock([
    ["stage", (s) => s.stage], ["calls", (s) => s.count, true], ["mean", (s) => ms(s.mean_s), true],
    ["p50", (s) => ms(s.p50_s), true], ["p95", (s) => ms(s.p95_s), true],
    ["p99", (s) => ms(s.p99_s), true],
  ], o.stages, "since the process started; quantiles from the histogram buckets") :
    [el("p", { class: "muted", text: "No recommendation served yet." })]));
  $("#ctr-table").replaceChildren(...(o.ctr.length ? tableBlock([
    ["surface", (c) => c.surface], ["variant", (c) => c.variant],
    ["shown", (c) => c.shown, true], ["clicks", (c) => c.clicks, true],
    ["CTR", (c) => pct(c.ctr), true],
  ], o.ctr, "clicks attributed to served slates / articles shown, since the process started") :
    [el("p", { class: "muted", text: "No slate served yet." })]));
}

// CTR of each slate position (1..10, then 11+) as bars
function positionPlot(values, W = 600, label = "CTR by position") {
  const H = 120, P = 40, n = values.length;
  const top = Math.max(1e-9, ...values.filter((v) => v !== null));
  const bw = (W - P - 8) / n;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label":
    `${label}: ` + values.map((v, i) => `${i < 10 ? i + 1 : "11+"} ${pct(v)}`).join(", ") });
  values.forEach((v, i) => {
    const h = v === null ? 0 : (H - 34) * v / top;
    root.append(svg("rect", { x: P + i * bw + 2, y: H - 18 - h, width: Math.max(1, bw - 4),
      height: h, fill: "#0b57d0" }));
    const t = svg("text", { x: P + i * bw + bw / 2, y: H - 4, "text-anchor": "middle",
      "font-size": 11, fill: "#4d4d4d" });
    t.textContent = i < 10 ? String(i + 1) : "11+";
    root.append(t);
  });
  for (const v of [0, top]) {
    const t = svg("text", { x: 2, y: H - 18 - (H - 34) * v / top + 4, "font-size": 11, fill: "#4d4d4d" });
    t.textContent = pct(v);
    root.append(t);
  }
  return root;
}

const secs = (s) => (s === null || s === undefined ? "–" : s < 120 ? `${s.toFixed(1)} s` :
  s < 7200 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`);

function keyValueTable(obj, keyHeader, valueHeader, show = (v) => v) {
  const rows = Object.entries(obj || {});
  if (!rows.length) return el("p", { class: "muted", text: "none" });
  return el("div", { class: "scroll" }, table([[keyHeader, (r) => r[0]],
    [valueHeader, (r) => show(r[1]), true]], rows));
}

// GET /v1/monitoring, as documented in serving/monitoring_schemas.py (the contract)
async function loadMonitoring() {
  const { body } = await api("/dashboard/api/monitoring");
  const root = $("#monitoring-body");
  if (!body.available) {
    root.replaceChildren(el("p", { class: "status" },
      "Drift and data-quality monitoring is not available on this server ",
      el("span", { class: "muted", text: `(${body.reason || "no data"})` }), "."));
    return;
  }
  const m = body.data || {};
  const parts = [];
  const psi = m.psi;
  if (psi) {
    const over = (v) => v !== null && v !== undefined && v > psi.threshold;
    parts.push(el("h3", { text: "Drift of the active model's inputs and score (PSI)" }),
      el("div", { class: "cards" },
        card("model version", psi.model_version || "none"),
        card("score PSI", fmt(psi.score), psi.score === null || psi.score === undefined ? "" :
          over(psi.score) ? "bad" : "ok"),
        card("threshold", fmt(psi.threshold)), card("window (rows)", fmt(psi.window)),
        card("alarm", psi.alarm ? "ALARM" : "no", psi.alarm ? "bad" : "ok")));
    if (psi.reference === false) {
      parts.push(el("p", { class: "muted", text: "This bundle has no drift reference (trained " +
        "before drift monitoring existed): no PSI until a bundle with one serves." }));
    } else if (psi.score === null || psi.score === undefined) {
      parts.push(el("p", { class: "muted", text: "Not enough scored rows in the window yet." }));
    }
    if ((psi.drifted || []).length) {
      parts.push(el("p", { class: "bad", text: `Above the threshold: ${psi.drifted.join(", ")}` }));
    }
    const feats = Object.entries(psi.features || {}).sort((a, b) => b[1] - a[1]);
    if (feats.length) {
      parts.push(el("div", { class: "scroll" }, table([
        ["feature", (f) => f[0]], ["PSI", (f) => f[1], true],
        ["over threshold", (f) => (over(f[1]) ? "yes" : "no")],
      ], feats)));
    }
  }
  const quality = m.quality || [];
  parts.push(el("h3", { text: "Online quality by surface, variant and model" }));
  if (!quality.length) {
    parts.push(el("p", { class: "muted", text: "No slate served yet." }));
  } else {
    const at = (k) => [`CTR@${k}`, (r) => pct((r.ctr_at || {})[k]), true];
    parts.push(...tableBlock([
      ["surface", (r) => r.surface], ["variant", (r) => r.variant],
      ["model", (r) => r.model_version], ["responses", (r) => r.responses, true],
      ["degraded", (r) => pct(r.degraded_share), true], ["shown", (r) => r.shown, true],
      ["clicks", (r) => r.clicks, true], at(1), at(3), at(5), at(10),
      ["topic diversity", (r) => r.topic_diversity, true],
      ["coverage (1 h)", (r) => pct(r.coverage), true],
    ], quality, "since the process started (this worker); coverage: distinct live articles " +
      "shown in the last hour / live articles"));
    for (const r of quality) {
      if (!(r.ctr_by_position || []).some((v) => v)) continue;  // no click yet: nothing to draw
      const name = `${r.surface} / ${r.variant} / ${r.model_version}`;
      parts.push(el("h4", { text: `CTR by slate position: ${name}` }),
        el("div", { class: "plot" }, positionPlot(r.ctr_by_position, plotWidth(root),
          `CTR by position, ${name}`)));
    }
  }
  const dq = m.data_quality;
  if (dq) {
    const cat = dq.catalog || {};
    parts.push(el("h3", { text: "Data quality" }), el("div", { class: "cards" },
      card("clicks on unknown articles", fmt(dq.unknown_article_clicks),
        dq.unknown_article_clicks ? "warn" : "ok"),
      card("live articles", fmt(cat.live_articles)),
      card("newest article age", secs(cat.newest_article_age_s)),
      card("live without embedding", pct(cat.live_without_embedding),
        cat.live_without_embedding ? "warn" : cat.live_without_embedding === 0 ? "ok" : "")),
    el("div", { class: "split3" },
      el("div", {}, el("h4", { text: "Event lag (clock − newest event)" }),
        keyValueTable(dq.event_lag_s, "type", "lag", secs)),
      el("div", {}, el("h4", { text: "Events in the last minute" }),
        keyValueTable(dq.events_last_minute, "type", "events")),
      el("div", {}, el("h4", { text: "Rejected events" }),
        keyValueTable(dq.rejected_events, "reason", "batches"))));
  }
  root.replaceChildren(...parts);
}

function experimentState(e) {
  if (e.killed) return ["killed", "bad"];
  const status = (e.rollout && e.rollout.status) || (e.config && e.config.status) || "unknown";
  return [status, status === "running" ? "ok" : "warn"];
}

const openReports = new Set();

async function loadExperiments() {
  const { body } = await api("/dashboard/api/experiments");
  const root = $("#experiment-list");
  if (!body.enabled) {
    root.replaceChildren(el("p", { class: "muted", text: "Experiments are disabled on this server." }));
    return;
  }
  if (!body.experiments.length) {
    root.replaceChildren(el("p", { class: "muted",
      text: "No experiment yet. Create one with POST /v1/admin/experiments." }));
    return;
  }
  const blocks = body.experiments.map((e) => {
    const [state, cls] = experimentState(e);
    const cfg = e.config || {};
    const id = e.id;
    const reportBox = el("div", { id: `report-${id}`, "aria-live": "polite" });
    const showReport = el("button", { type: "button", class: "secondary",
      "aria-expanded": openReports.has(id) ? "true" : "false", "aria-controls": `report-${id}`,
      text: openReports.has(id) ? "Hide report" : "Show report" });
    showReport.addEventListener("click", () => {
      if (openReports.has(id)) openReports.delete(id); else openReports.add(id);
      refresh();
    });
    const actions = el("div", { class: "actions" }, showReport,
      e.killed ? null : confirmButton("Kill", `Kill experiment ${id}`, async () => {
        const r = await api(`/v1/admin/experiments/${encodeURIComponent(id)}/kill?reason=dashboard`,
          { method: "POST", admin: true });
        return `experiment ${id} killed: everyone gets ${r.body.control}`;
      }));
    if (openReports.has(id)) loadReport(id, reportBox);
    return el("article", { class: "experiment", "data-experiment": id },
      el("h3", {}, id, " ", el("span", { class: `badge ${cls}`, "data-state": state, text: state })),
      el("p", { class: "muted", text: `${cfg.description || ""} (version ${e.version}, layer ${cfg.layer || "–"}, surfaces ${(cfg.surfaces || []).join(", ")})` }),
      el("div", { class: "scroll" }, table([
        ["variant", (v) => v.name], ["weight", (v) => v.weight, true],
        ["serves", (v) => v.bundle ? `bundle ${v.bundle}` : `pipeline ${v.pipeline || "default"}`],
      ], cfg.variants || [])),
      e.rollout ? el("p", { class: "muted",
        text: `rollout: ${e.rollout.status}, stage ${e.rollout.stage}, treatment fraction ${fmt(e.rollout.fraction)}` }) : null,
      actions, reportBox);
  });
  root.replaceChildren(...blocks);
}

async function loadReport(id, box) {
  box.replaceChildren(el("p", { class: "muted", text: "computing the report from the event log…" }));
  try {
    const { status, body } = await api(`/dashboard/api/experiments/${encodeURIComponent(id)}/report`,
      { okStatuses: [404, 409] });
    if (status !== 200) {
      box.replaceChildren(el("p", { class: "muted", text: (body && body.message) || "no report" }));
      return;
    }
    const per = Object.entries(body.per_variant || {});
    const rows = per.map(([name, s]) => ({ name, value: s.ctr.value, lo: s.ctr.ci_low, hi: s.ctr.ci_high }));
    const srm = body.srm || {};
    const parts = [
      el("h4", { text: "Per variant: CTR with 95% confidence interval" }),
      el("div", { class: "scroll" }, table([
        ["variant", (r) => r[0]], ["users", (r) => r[1].users, true], ["shown", (r) => r[1].shown, true],
        ["clicks", (r) => r[1].clicks, true], ["CTR", (r) => pct(r[1].ctr.value), true],
        ["95% CI", (r) => `[${pct(r[1].ctr.ci_low)}, ${pct(r[1].ctr.ci_high)}]`, true],
      ], per)),
      rows.length ? el("div", { class: "plot" }, intervalPlot(rows, plotWidth(box))) : null,
      el("p", {}, "Sample ratio check: ",
        el("strong", { class: srm.mismatch ? "bad" : "ok", text: srm.mismatch ? "MISMATCH" : "ok" }),
        ` (users ${JSON.stringify(srm.counts || [])}, p = ${fmt(srm.p_value)})`),
    ];
    if (body.conclusions_blocked) {
      parts.push(el("p", { class: "bad", text: "Conclusions are blocked: the sample ratio does not match the allocation." }));
    }
    const liftRows = [], pSeries = [];
    for (const [v, metrics] of Object.entries(body.comparisons || {})) {
      const f = (metrics.ctr || {}).fixed || {}, c = (metrics.ctr || {}).cuped || {};
      const seq = (metrics.ctr || {}).sequential || {};
      parts.push(el("p", { text: `${v} vs ${body.control}: CTR lift ${pct(f.rel_lift)} (95% CI [${pct(f.rel_ci_low)}, ${pct(f.rel_ci_high)}]), p = ${fmt(f.p_value)}; ` +
        `CUPED ${pct(c.rel_lift)} [${pct(c.rel_ci_low)}, ${pct(c.rel_ci_high)}]; always-valid p = ${fmt(seq.p_value)}` }));
      liftRows.push({ name: `${v} fixed`, value: f.rel_lift ?? null, lo: f.rel_ci_low ?? null, hi: f.rel_ci_high ?? null },
        { name: `${v} CUPED`, value: c.rel_lift ?? null, lo: c.rel_ci_low ?? null, hi: c.rel_ci_high ?? null });
      if ((seq.daily_p_values || []).length) pSeries.push({ name: v, p: seq.daily_p_values });
    }
    if (liftRows.length) {
      parts.push(el("h4", { text: `Relative CTR lift vs ${body.control}, 95% CI (dashed: no effect)` }),
        el("div", { class: "plot" }, intervalPlot(liftRows, plotWidth(box),
          { zero: true, label: "relative CTR lift with 95% confidence intervals" })));
    }
    if (pSeries.length && Math.max(...pSeries.map((s) => s.p.length)) > 1) {
      parts.push(el("h4", { text: "Always-valid p-value by day (dashed: α)" }),
        el("div", { class: "plot" }, pValuePlot(pSeries, 0.05, plotWidth(box))));
    }
    if (body.verdict) parts.push(el("p", {}, "Verdict: ", el("strong", { text: body.verdict })));
    if (body.allocation_note) parts.push(el("p", { class: "muted", text: body.allocation_note }));
    box.replaceChildren(...parts.filter(Boolean));
  } catch (e) {
    box.replaceChildren(el("p", { class: "bad", text: e.message }));
  }
}

async function loadModels() {
  const { body } = await api("/dashboard/api/models");
  $("#model-cards").replaceChildren(
    card("active", body.active || "none", body.active ? "ok" : "bad"),
    card("previous", body.previous || "none"),
    card("loaded, not serving", (body.staged || []).join(", ") || "none"));
  const rb = $("#rollback");
  rb.disabled = !adminKey() || !body.previous;
  // the held-out figures a reviewer compares across versions, under short headers
  const METRICS = [["valid.auc", "AUC"], ["valid.ndcg@10", "nDCG@10"],
    ["valid_trending.auc", "trending AUC"], ["valid_trending.ndcg@10", "trending nDCG@10"]];
  const present = new Set(body.bundles.flatMap((b) => Object.keys(b.metrics || {})));
  const metricCols = METRICS.filter(([m]) => present.has(m));
  const stateOf = (b) => (b.version === body.active ? "serving" : b.version === body.previous ?
    "previous" : (body.staged || []).includes(b.version) ? "loaded" : "on disk");
  $("#bundle-table").replaceChildren(...(body.bundles.length ? tableBlock([
    ["version", (b) => b.version],
    ["state", stateOf],
    ["action", (b) => (b.version === body.active ? el("span", { class: "muted", text: "serving" }) :
      actionButton("Promote", `Promote model ${b.version}`, async () => {
        const r = await api(`/v1/admin/bundles/${encodeURIComponent(b.version)}/promote`,
          { method: "POST", admin: true });
        return `promoted ${r.body.active} (was ${r.body.previous})`;
      }))],
    ...metricCols.map(([m, h]) => [h, (b) => (b.metrics || {})[m], true]),
    ["created (UTC)", (b) => (b.created_at || "–").replace("T", " ").slice(0, 16)],
  ], body.bundles, "offline metrics from each bundle's manifest, on the held-out last part " +
    "of its training data; trending: the trending baseline on the same rows") :
    [el("p", { class: "muted", text: "No bundle on disk." })]));
}

async function runPreview(ev) {
  if (ev) ev.preventDefault();
  const user = $("#preview-user").value.trim();
  const k = $("#preview-k").value || "10";
  if (!user) return;
  history.replaceState(null, "", `?user=${encodeURIComponent(user)}&k=${encodeURIComponent(k)}`);
  const u = encodeURIComponent(user);
  // a reader's clicks are personal data: the API gives them to the admin key only
  const [rec, recent] = await Promise.all([
    api(`/dashboard/api/preview/${u}?k=${encodeURIComponent(k)}`),
    adminKey() ? api(`/v1/users/${u}/recent?limit=10`, { admin: true }) : null]);
  const b = rec.body;
  $("#preview-meta").textContent = `model ${b.model_version || "none"}` +
    (b.experiment ? `, experiment ${b.experiment} / ${b.variant}` : "") +
    (b.degraded ? ", DEGRADED (fallback slate)" : "") + `, ${b.items.length} items`;
  $("#preview-items").replaceChildren(...b.items.map((it) => el("li", { "data-article": it.article_id },
    el("strong", { text: it.article_id }), ` ${it.category || ""} · score ${fmt(it.score)} · ${it.source}`,
    el("span", { class: "reason", text: it.reason }))));
  if (!recent) {
    $("#recent-clicks").replaceChildren(el("li", { class: "muted",
      text: "enter the admin key to see this reader's recent clicks" }));
    return;
  }
  const clicks = recent.body.clicks;
  $("#recent-clicks").replaceChildren(...(clicks.length ? clicks.map((c) => el("li", {},
    el("strong", { text: c.article_id }), ` ${c.category || "(expired)"} · `,
    el("time", { datetime: new Date(c.timestamp * 1000).toISOString(),
      text: new Date(c.timestamp * 1000).toISOString().replace("T", " ").slice(0, 16) }))) :
    [el("li", { class: "muted", text: "no clicks recorded for this user" })]));
}

// -- wiring ------------------------------------------------------------------------------------
const LOADERS = { overview: loadOverview, monitoring: loadMonitoring,
  experiments: loadExperiments, models: loadModels, preview: null };

function currentPage() {
  const seg = location.pathname.replace(/\/+$/, "").split("/")[2];
  return seg && seg in LOADERS ? seg : "overview";
}

async function refresh() {
  const load = LOADERS[currentPage()];
  if (!load) return;
  try {
    await load();
    document.body.dataset.loaded = "true";
  } catch (e) {
    setStatus(e.message, true);
  }
}

function init() {
  const page = currentPage();
  document.querySelectorAll("section[data-page]").forEach((s) => {
    s.hidden = s.dataset.page !== page;
  });
  document.querySelectorAll("nav a[data-page]").forEach((a) => {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
  });
  document.title = `newsdesk · ${$(`nav a[data-page="${page}"]`).textContent}`;
  setupKeyForm();
  $("#rollback").addEventListener("click", async () => {
    try {
      const r = await api("/v1/admin/rollback", { method: "POST", admin: true });
      setStatus(`rolled back to ${r.body.active} (was ${r.body.previous})`);
    } catch (e) {
      setStatus(e.message, true);
    }
    await refresh();
  });
  $("#preview-form").addEventListener("submit", (ev) => runPreview(ev).then(
    () => { document.body.dataset.loaded = "true"; }, (e) => setStatus(e.message, true)));
  renderKeyState();
  if (page === "preview") {
    const q = new URLSearchParams(location.search);
    if (q.get("user")) {
      $("#preview-user").value = q.get("user");
      if (q.get("k")) $("#preview-k").value = q.get("k");
      runPreview().then(() => { document.body.dataset.loaded = "true"; },
        (e) => setStatus(e.message, true));
    } else {
      document.body.dataset.loaded = "true";
    }
  }
  refresh().then(renderKeyState);
  if (page === "overview" || page === "monitoring") {  // actions pages do not re-render under the user
    // a second sample soon after the first, so the traffic plot has a line within seconds
    setTimeout(() => refresh().then(renderKeyState), 1500);
    setInterval(() => refresh().then(renderKeyState), POLL_MS);
  }
}

init();
