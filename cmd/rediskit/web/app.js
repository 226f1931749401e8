// rediskit dashboard: reads /api/snapshot once, then follows /api/events
// (server-sent events, one snapshot a second); falls back to polling when the
// event stream is not available. Charts are drawn on canvas, no library.
"use strict";

const HISTORY = 120; // points kept per chart (two minutes at 1/s)
const series = {}; // name -> array of numbers (or arrays of 2 numbers)

function push(name, v) {
  const s = series[name] || (series[name] = []);
  s.push(v);
  if (s.length > HISTORY) s.shift();
}

const css = getComputedStyle(document.documentElement);
const COLORS = [css.getPropertyValue("--c1").trim(), css.getPropertyValue("--c2").trim()];

function draw(id, name, opts = {}) {
  const canvas = document.getElementById(id);
  const data = series[name] || [];
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const lines = data.length && Array.isArray(data[0]) ? data[0].length : 1;
  let max = opts.max || 0;
  for (const p of data) for (const v of [].concat(p)) if (isFinite(v) && v > max) max = v;
  if (max <= 0) max = 1;
  max *= opts.max ? 1 : 1.15;
  const left = 44, bottom = 16, top = 6, pw = w - left - 4, ph = h - top - bottom;
  ctx.strokeStyle = css.getPropertyValue("--line").trim();
  ctx.fillStyle = css.getPropertyValue("--muted").trim();
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 3; i++) {
    const y = top + ph - (ph * i) / 3;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + pw, y); ctx.stroke();
    ctx.fillText(fmt((max * i) / 3), 2, y + 4);
  }
  ctx.fillText("-2m", left, h - 2);
  ctx.fillText("now", left + pw - 22, h - 2);
  for (let l = 0; l < lines; l++) {
    ctx.strokeStyle = COLORS[l % COLORS.length];
    ctx.lineWidth = 2;
    ctx.beginPath();
    let started = false;
    data.forEach((p, i) => {
      const v = [].concat(p)[l];
      if (!isFinite(v)) { started = false; return; }
      const x = left + pw - ((data.length - 1 - i) * pw) / (HISTORY - 1);
      const y = top + ph - (Math.min(v, max) / max) * ph;
      if (!started) { ctx.moveTo(x, y); started = true; } else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
}

function fmt(v) {
  if (!isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
  if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
  if (a >= 10 || a === 0) return v.toFixed(0);
  if (a >= 1) return v.toFixed(1);
  return v.toFixed(2);
}

function int(v) { return isFinite(v) ? (Math.abs(v) >= 1e4 ? fmt(v) : String(Math.round(v))) : "–"; }

function plural(n, word) { return `${int(n)} ${word}${n === 1 ? "" : "s"}`; }

function bytes(n) {
  if (!isFinite(n)) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n.toFixed(0)) + " " + u[i];
}

function text(id, v) { document.getElementById(id).textContent = v; }

function setPill(id, label, state) {
  const el = document.getElementById(id);
  el.textContent = label + ": " + state;
  el.dataset.state = state;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    if (typeof c === "object" && c !== null) { td.textContent = c.text; if (c.cls) td.className = c.cls; }
    else td.textContent = c;
    tr.appendChild(td);
  }
  return tr;
}

// record adds one snapshot's points to the chart series.
function record(s) {
  const c = s.cache || {};
  const lat = s.client.latency_ms, pool = s.client.pool;
  push("ops", s.server.ops_per_sec);
  push("lat", [lat.p50, lat.p99]);
  push("hit", c.hits + c.misses > 0 ? (100 * c.hits) / (c.hits + c.misses) : NaN);
  push("pool", [pool.in_use, pool.idle]);
  push("sessions", s.sessions.active);
  push("mem", s.server.used_memory / 1048576);
}

// nearRows lists the demo cache's near tier (cache.NearStats).
function nearRows(n) {
  if (!n) return [];
  const state = n.mode === "disabled" ? "off" : `${n.mode}, ${n.serving ? "serving" : "not serving"}`;
  return [
    row(["near tier", { text: state, cls: n.serving ? "status-ok" : "" }]),
    ...[
      ["near hits", n.hits], ["near negative hits", n.negative_hits], ["near misses", n.misses],
      ["near fills", n.fills], ["near invalidations", n.invalidations], ["near evictions", n.evictions],
      ["near flushes", n.flushes], ["near entries", n.entries],
    ].map(([k, v]) => row([k, { text: int(v), cls: "num" }])),
    row(["near bytes", { text: bytes(n.bytes), cls: "num" }]),
  ];
}

function render(s) {
  record(s);
  text("target", s.target || "");
  setPill("health-pill", "health", s.health.status);
  // Eviction risks (a policy that can evict session keys, or one that
  // cannot be read): shown until the health report stops giving them.
  const warnings = s.health.warnings || [];
  const warnEl = document.getElementById("warnings");
  warnEl.hidden = warnings.length === 0;
  warnEl.replaceChildren(...warnings.map((w) => {
    const d = document.createElement("div");
    d.textContent = "⚠ " + w;
    return d;
  }));
  setPill("breaker-pill", "breaker", s.breaker);

  const ops = s.server.ops_per_sec;
  const lat = s.client.latency_ms;
  const c = s.cache || {};
  const hit = c.hits + c.misses > 0 ? (100 * c.hits) / (c.hits + c.misses) : NaN;
  const pool = s.client.pool;

  text("kpi-ops", fmt(ops));
  text("kpi-ops-sub", `client: ${fmt(s.client.commands_per_sec)} cmd/s`);
  text("kpi-lat", `${fmt(lat.p50)} / ${fmt(lat.p99)} ms`);
  text("kpi-hit", isFinite(hit) ? hit.toFixed(1) + "%" : "–");
  text("kpi-hit-sub", `${int(c.hits)} hits · ${int(c.misses)} misses · ${int((c.near || {}).hits)} near hits`);
  text("kpi-pool", `${pool.in_use} / ${pool.idle}`);
  text("kpi-pool-sub", `${pool.total} conns · ${int(pool.waits)} waits (${fmt(pool.wait_ms)} ms) · ${int(pool.timeouts)} timeouts`);
  text("kpi-sessions", int(s.sessions.active));
  text("kpi-sessions-sub", plural(s.sessions.users, "user"));
  text("kpi-mem", bytes(s.server.used_memory));
  text("kpi-mem-sub", `${int(s.server.keys)} keys · ${int(s.server.connected_clients)} clients`);

  draw("ch-ops", "ops");
  draw("ch-lat", "lat");
  draw("ch-hit", "hit", { max: 100 });
  draw("ch-pool", "pool");
  draw("ch-sessions", "sessions");
  draw("ch-mem", "mem");

  const nodes = document.querySelector("#nodes tbody");
  nodes.replaceChildren(...(s.health.nodes || []).map((n) => row([
    n.addr, n.role || "–", n.version || "–",
    { text: n.ok ? "up" : "down", cls: n.ok ? "status-ok" : "status-down" },
    n.ok ? fmt(n.latency_ms) + " ms" : "–", n.error || "",
  ])));

  const cache = document.querySelector("#cache tbody");
  cache.replaceChildren(...[
    ["loads", c.loads], ["deduplicated loads", c.dedup_loads], ["loader errors", c.load_errors],
    ["stale served", c.stale_served], ["lease waits", c.lease_waits], ["decode failures", c.decode_failures],
    ["retries", s.client.retries], ["ambiguous writes", s.client.ambiguous],
    ["caller deadlines", s.client.deadlines],
  ].map(([k, v]) => row([k, { text: int(v), cls: "num" }])),
  ...nearRows(c.near));

  const errs = document.getElementById("errors");
  if (s.errors && s.errors.length) {
    errs.replaceChildren(...s.errors.slice().reverse().map((e) => {
      const li = document.createElement("li");
      const t = document.createElement("time");
      t.textContent = new Date(e.time).toLocaleTimeString();
      li.append(t, e.message);
      return li;
    }));
  } else {
    errs.replaceChildren(Object.assign(document.createElement("li"), { className: "muted", textContent: "none" }));
  }
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

function live(on) { document.getElementById("live-pill").classList.toggle("on", on); }

function poll() {
  fetch("/api/snapshot").then((r) => r.json()).then((s) => { render(s); live(true); })
    .catch(() => live(false)).finally(() => setTimeout(poll, 1000));
}

function follow() {
  if (window.EventSource) {
    const es = new EventSource("/api/events");
    es.onmessage = (ev) => { render(JSON.parse(ev.data)); live(true); };
    es.onerror = () => live(false);
  } else {
    poll();
  }
}

// The server keeps the last two minutes: charts start full, not empty.
fetch("/api/history").then((r) => r.json()).then((h) => { for (const s of h) record(s); })
  .catch(() => {}).finally(follow);
window.addEventListener("resize", () => { for (const id of ["ops", "lat", "hit", "pool", "sessions", "mem"]) draw("ch-" + id, id, id === "hit" ? { max: 100 } : {}); });
