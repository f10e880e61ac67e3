// rfarm dashboard: a hash-routed page that polls the coordinator's JSON API
// (see README "Dashboard and HTTP API") and redraws. Everything shown comes
// from Redis through /api; nothing is built with innerHTML from data.
"use strict";

const POLL_MS = 2000;
const view = document.getElementById("view");
const statusEl = document.getElementById("status");
let timer = null;
let charts = {};
let current = "";

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path) {
  const r = await fetch(path, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function fmtNum(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return Number(v).toLocaleString(undefined, { maximumFractionDigits: digits ?? 1 });
}

function fmtBytes(v) {
  if (!v) return "0 B";
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
  return v.toFixed(i ? 1 : 0) + " " + u[i];
}

function fmtDuration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

function fmtTime(ms) {
  return ms ? new Date(ms).toLocaleTimeString() : "–";
}

function stateCell(state) {
  return el("td", { class: "state " + (state || "") }, state || "–");
}

function setStatus(text, error) {
  statusEl.textContent = text;
  statusEl.className = "status" + (error ? " error" : "");
}

// ---- overview ----

const SERIES = [
  ["frames_per_s", "Throughput (frames/s)"],
  ["queue_depth", "Queue depth (segments)"],
  ["workers_alive", "Workers alive"],
  ["segments_in_flight", "Segments in flight"],
];

function drawOverview() {
  const cards = el("div", { class: "cards", id: "cards" });
  const grid = el("div", { class: "charts" });
  charts = {};
  for (const [name, title] of SERIES) {
    const canvas = el("canvas", { id: "chart-" + name });
    grid.append(el("div", { class: "chart" }, el("h3", {}, title), canvas));
    if (window.Chart) {
      charts[name] = new window.Chart(canvas, {
        type: "line",
        data: { labels: [], datasets: [{ label: title, data: [], borderColor: "#2f6fdf",
                                         backgroundColor: "rgba(47,111,223,0.12)", fill: true,
                                         pointRadius: 0, tension: 0.2 }] },
        options: { animation: false, responsive: true, maintainAspectRatio: false,
                   plugins: { legend: { display: false } },
                   scales: { y: { beginAtZero: true } } },
      });
    }
  }
  view.replaceChildren(el("h2", {}, "Overview"), cards, grid);
}

async function refreshOverview() {
  const m = await api("/api/metrics?points=180");
  const g = m.gauges, c = m.counters;
  const card = (label, value) =>
    el("div", { class: "card" }, el("div", { class: "label" }, label),
       el("div", { class: "value" }, value));
  const last = (m.series.frames_per_s || []).slice(-1)[0];
  document.getElementById("cards").replaceChildren(
    card("Workers alive", fmtNum(g.workers_alive ?? 0, 0)),
    card("Queue depth", fmtNum(g.queue_depth ?? 0, 0)),
    card("Segments in flight", fmtNum(g.segments_in_flight ?? 0, 0)),
    card("Jobs active", fmtNum(g.jobs_active ?? 0, 0)),
    card("Throughput", (last ? fmtNum(last[1]) : "0") + " fps"),
    card("Jobs done", fmtNum(c.jobs_done ?? 0, 0)),
    card("Jobs failed", fmtNum(c.jobs_failed ?? 0, 0)),
    card("Frames stitched", fmtNum(c.frames_stitched ?? 0, 0)),
    card("Received", fmtBytes(c.bytes_received ?? 0)),
  );
  for (const [name] of SERIES) {
    const ch = charts[name];
    if (!ch) continue;
    const pts = m.series[name] || [];
    ch.data.labels = pts.map((p) => fmtTime(p[0]));
    ch.data.datasets[0].data = pts.map((p) => p[1]);
    ch.update();
  }
}

// ---- jobs ----

const STATES = ["", "queued", "running", "paused", "done", "failed", "cancelled"];
let jobFilter = { batch: "", state: "" };

function drawJobs() {
  const batchSel = el("select", { id: "filter-batch" }, el("option", { value: "" }, "all batches"));
  const stateSel = el("select", { id: "filter-state" });
  for (const s of STATES) stateSel.append(el("option", { value: s }, s || "all states"));
  stateSel.value = jobFilter.state;
  batchSel.onchange = () => { jobFilter.batch = batchSel.value; refresh(); };
  stateSel.onchange = () => { jobFilter.state = stateSel.value; refresh(); };
  view.replaceChildren(
    el("h2", {}, "Jobs"),
    el("div", { class: "filters" }, el("label", {}, "Batch ", batchSel),
       el("label", {}, "State ", stateSel)),
    el("div", { id: "jobs-table" }));
  api("/api/batches?limit=200").then((b) => {
    for (const x of b.batches)
      batchSel.append(el("option", { value: x.id }, (x.name || x.id) + " (" + x.id + ")"));
    batchSel.value = jobFilter.batch;
  }).catch(() => {});
}

function progressCell(id, p) {
  return el("td", {},
    el("progress", { class: "job-progress", "data-job": id, max: 1, value: p || 0 }),
    " " + fmtNum((p || 0) * 100, 0) + "%");
}

async function refreshJobs() {
  const q = new URLSearchParams({ limit: "500" });
  if (jobFilter.batch) q.set("batch", jobFilter.batch);
  if (jobFilter.state) q.set("state", jobFilter.state);
  const data = await api("/api/jobs?" + q);
  const head = el("tr", {}, ...["Job", "Batch", "State", "Progress", "Frames", "Rate", "ETA",
                                "Created"].map((h) => el("th", {}, h)));
  const rows = data.jobs.map((j) => el("tr", { "data-job": j.id },
    el("td", {}, el("a", { href: "#/job/" + encodeURIComponent(j.id) }, j.id)),
    el("td", {}, j.batch || "–"),
    stateCell(j.state),
    progressCell(j.id, j.progress),
    el("td", {}, fmtNum(j.frames_rendered ?? 0, 0) + " / " + fmtNum(j.frames_to_render ?? 0, 0)),
    el("td", {}, j.rate_fps ? fmtNum(j.rate_fps) + " fps" : "–"),
    el("td", {}, fmtDuration(j.eta_s)),
    el("td", {}, fmtTime(j.created_ms))));
  const box = document.getElementById("jobs-table");
  if (!box) return;
  box.replaceChildren(rows.length ? el("table", { id: "jobs" }, head, ...rows)
                                  : el("div", { class: "empty" }, "No jobs match."));
}

// ---- one job ----

function drawJob(id) {
  view.replaceChildren(el("h2", {}, "Job " + id), el("div", { id: "job-body" }));
}

function timeline(job) {
  const segs = job.segment_list || [];
  const now = Date.now();
  const starts = segs.map((s) => s.started_ms).filter(Boolean);
  const t0 = Math.min(job.started_ms || now, ...starts);
  const t1 = Math.max(job.finished_ms || now, ...segs.map((s) => s.finished_ms || 0));
  const span = Math.max(1, t1 - t0);
  const box = el("div", { class: "timeline", id: "timeline" });
  for (const s of segs) {
    const track = el("div", { class: "tl-track" });
    if (s.started_ms) {
      const end = s.state === "running" ? now : (s.finished_ms || now);
      const bar = el("div", { class: "tl-bar " + (s.state || ""),
                              title: `segment ${s.k}: ${s.state}, attempt ${s.attempt ?? 0}` });
      bar.style.left = ((s.started_ms - t0) / span * 100).toFixed(2) + "%";
      bar.style.width = Math.max(0.5, (end - s.started_ms) / span * 100).toFixed(2) + "%";
      track.append(bar);
    }
    const retries = s.failures ? ` · ${s.failures} failed` : "";
    box.append(el("div", { class: "tl-row", "data-seg": s.k },
      el("span", { class: "tl-label" }, `#${s.k} ${s.worker || "–"}${retries}`), track));
  }
  return box;
}

async function refreshJob(id) {
  const j = await api("/api/jobs/" + encodeURIComponent(id));
  const kv = el("dl", { class: "kv" });
  const add = (k, v) => kv.append(el("dt", {}, k), el("dd", {}, v));
  add("State", el("span", { class: "state " + j.state }, j.state));
  add("Progress", el("span", {},
    el("progress", { class: "job-progress", "data-job": j.id, max: 1, value: j.progress || 0 }),
    " " + fmtNum((j.progress || 0) * 100, 0) + "%"));
  add("Frames", `${fmtNum(j.frames_rendered ?? 0, 0)} rendered of ${fmtNum(j.frames_to_render ?? 0, 0)}; ` +
      `${fmtNum(j.frames_stitched ?? 0, 0)} of ${fmtNum(j.frames ?? 0, 0)} written`);
  add("Rate / ETA", `${j.rate_fps ? fmtNum(j.rate_fps) + " fps" : "–"} / ${fmtDuration(j.eta_s)}`);
  add("Engine", j.engine || "–");
  add("Batch", j.batch || "–");
  add("Segments", `${j.segments_done ?? 0} of ${j.segments ?? 0} done`);
  add("Output", j.output_url ? el("a", { href: j.output_url, id: "output-link" }, j.output)
                             : (j.output || "–"));
  if (j.error) add("Error", j.error);
  const segRows = (j.segment_list || []).map((s) => el("tr", {},
    el("td", {}, s.k), stateCell(s.state), el("td", {}, s.worker || "–"),
    el("td", {}, s.attempt ?? 0), el("td", {}, s.failures ?? 0),
    el("td", {}, fmtTime(s.started_ms)), el("td", {}, fmtTime(s.finished_ms)),
    el("td", {}, s.render_ms ? fmtNum(s.render_ms / 1000, 2) + " s" : "–"),
    el("td", { class: "wrap" }, s.error || "")));
  const segHead = el("tr", {}, ...["#", "State", "Worker", "Attempt", "Failures", "Started",
                                   "Finished", "Render", "Error"].map((h) => el("th", {}, h)));
  const body = document.getElementById("job-body");
  if (!body) return;
  body.replaceChildren(kv, el("h2", { style: "margin-top:16px" }, "Segments"), timeline(j),
                       el("table", { id: "segments" }, segHead, ...segRows),
                       el("h2", { style: "margin-top:16px" }, "Log"),
                       el("pre", { class: "log" }, (j.log || []).join("\n")));
}

// ---- workers ----

function drawWorkers() {
  view.replaceChildren(el("h2", {}, "Workers"), el("div", { id: "workers-table" }));
}

async function refreshWorkers() {
  const data = await api("/api/workers");
  const head = el("tr", {}, ...["Worker", "State", "Now rendering", "fps", "GPUs", "Capacity",
                                "Segments", "Failures", "Last seen", "Host", "Engines"]
    .map((h) => el("th", {}, h)));
  const now = data.now_ms;
  const rows = data.workers.map((w) => el("tr", { "data-worker": w.id },
    el("td", {}, w.id), stateCell(w.state), el("td", {}, w.current || "–"),
    el("td", {}, fmtNum(w.fps ?? 0)), el("td", {}, w.gpus ?? 0), el("td", {}, w.capacity ?? 0),
    el("td", {}, w.segments_done ?? 0), el("td", {}, w.failures ?? 0),
    el("td", {}, w.last_seen_ms ? fmtDuration((now - w.last_seen_ms) / 1000) + " ago" : "–"),
    el("td", {}, w.hostname || "–"), el("td", {}, w.engines || "–")));
  const box = document.getElementById("workers-table");
  if (!box) return;
  box.replaceChildren(rows.length ? el("table", { id: "workers" }, head, ...rows)
                                  : el("div", { class: "empty" }, "No workers yet."));
}

// ---- routing and polling ----

function route() {
  const h = location.hash.replace(/^#/, "") || "/";
  if (h.startsWith("/job/")) return { view: "job", id: decodeURIComponent(h.slice(5)) };
  if (h === "/jobs") return { view: "jobs" };
  if (h === "/workers") return { view: "workers" };
  return { view: "overview" };
}

async function refresh() {
  const r = route();
  try {
    if (r.view === "overview") await refreshOverview();
    else if (r.view === "jobs") await refreshJobs();
    else if (r.view === "workers") await refreshWorkers();
    else await refreshJob(r.id);
    setStatus("updated " + new Date().toLocaleTimeString(), false);
  } catch (e) {
    setStatus(e.message, true);
  }
}

function show() {
  const r = route();
  const key = r.view + ":" + (r.id || "");
  if (key !== current) {
    current = key;
    for (const c of Object.values(charts)) c.destroy();
    charts = {};
    if (r.view === "overview") drawOverview();
    else if (r.view === "jobs") drawJobs();
    else if (r.view === "workers") drawWorkers();
    else drawJob(r.id);
    for (const a of document.querySelectorAll("nav a"))
      a.classList.toggle("active", a.dataset.view === (r.view === "job" ? "jobs" : r.view));
  }
  refresh();
  clearInterval(timer);
  timer = setInterval(refresh, POLL_MS);
}

window.addEventListener("hashchange", show);
show();
