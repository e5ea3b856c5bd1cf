// The dashboard: polls /__admin/ui/state every second and redraws; the clock buttons call the
// control API (POST /__admin/clock/advance). Data is written with textContent, never as HTML.
"use strict";

const POLL_MS = 1000;
let lastState = null;
let lastText = "";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function iso(ms) {
  return ms === null || ms === undefined ? "-" : new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

function relative(ms, origin) {
  const s = (ms - origin) / 1000;
  return (s >= 0 ? "+" : "") + (Math.abs(s) >= 120 ? (s / 60).toFixed(1) + " min" : s.toFixed(1) + " s");
}

function fill(tableId, rows, columns) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren();
  if (rows.length === 0) {
    body.append(el("tr", {}, el("td", { class: "empty", colspan: String(columns) }, "none")));
    return;
  }
  body.append(...rows);
}

function settings(obj, skip) {
  return Object.entries(obj)
    .filter(([k, v]) => !skip.includes(k) && v !== null && v !== false && v !== 0 && v !== "")
    .filter(([k]) => k !== "max_hold_ms" || obj.reorder)
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(", ") || "(defaults)";
}

function renderTasks(state) {
  document.getElementById("task-count").textContent =
    state.task_count > state.tasks.length ? `${state.tasks.length} newest of ${state.task_count}` : `${state.task_count}`;
  fill("tasks", state.tasks.map((t) => {
    const origin = t.timeline[0].planned_ms;
    const timeline = el("div", { class: "timeline" }, ...t.timeline.map((p) =>
      el("span", {
        class: `phase ${p.status}${p.reached ? " reached" : ""}`,
        title: `planned ${iso(p.planned_ms)}` + (p.reached ? `, reached ${iso(p.at_ms)}` : ""),
      }, p.reached ? `\u2713 ${p.status} ${relative(p.at_ms, origin)}`
                   : `${p.status} ${relative(p.planned_ms, origin)} planned`)));
    const video = t.task_result.videos[0];
    return el("tr", { "data-task-id": t.task_id },
      el("td", {}, t.account),
      el("td", { class: "mono" }, t.task_id),
      el("td", {}, t.task_info.external_task_id || ""),
      el("td", {}, el("span", { class: `badge status ${t.task_status}` }, t.task_status),
        t.task_status_msg ? el("div", {}, t.task_status_msg) : null),
      el("td", {}, timeline),
      el("td", {}, iso(t.updated_at)),
      el("td", {}, video ? el("a", { href: video.url }, "mp4") : ""));
  }), 7);
}

function renderCallbacks(state) {
  fill("callbacks", state.deliveries.slice().reverse().map((d) =>
    el("tr", { class: d.error || (d.http_status && d.http_status >= 300) ? "refusal" : "" },
      el("td", {}, d.seq), el("td", { class: "mono" }, d.task_id), el("td", {}, d.task_status),
      el("td", {}, d.attempt), el("td", { class: "mono" }, d.url),
      el("td", { class: "code" }, d.http_status ?? "-"), el("td", {}, d.error || ""),
      el("td", {}, d.chaos || ""), el("td", {}, d.latency_ms.toFixed(1)))), 9);
}

function renderJournal(state) {
  fill("journal", state.journal.slice().reverse().map((e) =>
    el("tr", { class: e.code !== 0 ? "refusal" : "" },
      el("td", {}, e.seq), el("td", { class: "nowrap" }, iso(e.clock_ms)), el("td", {}, e.method),
      el("td", { class: "mono" }, e.path + (e.query ? "?" + e.query : "")),
      el("td", {}, e.operation || ""), el("td", { class: "nowrap" }, e.account || ""),
      el("td", {}, e.http_status), el("td", { class: "code" }, e.code),
      el("td", {}, e.rule || ""), el("td", {}, e.message || ""),
      el("td", {}, e.latency_ms.toFixed(1)))), 11);
}

function renderFaults(state) {
  fill("faults", state.faults.map((f) =>
    el("tr", {}, el("td", { class: "mono" }, f.fault_id ?? f.id ?? ""), el("td", {}, f.kind),
      el("td", {}, settings(f, f.kind === "error" ? ["id", "kind", "hits"] : ["id", "kind", "hits", "code"])), el("td", {}, f.hits ?? ""))), 4);
  const scopes = [["global", state.chaos.global], ...Object.entries(state.chaos.scopes)];
  fill("chaos", scopes.map(([scope, s]) =>
    el("tr", {}, el("td", {}, scope), el("td", {}, settings(s, []))) ), 2);
}

function render(state) {
  const c = state.clock;
  document.getElementById("clock-now").textContent = `${iso(c.now_ms)} (${c.now_ms})`;
  document.getElementById("clock-mode").textContent = c.mode;
  document.getElementById("clock-speed").textContent = `x${c.speed}`;
  document.getElementById("clock-next").textContent =
    c.next_due_ms === null ? "none due" : `${iso(c.next_due_ms)} (${relative(c.next_due_ms, c.now_ms)})`;
  renderTasks(state);
  renderCallbacks(state);
  renderJournal(state);
  renderFaults(state);
}

async function refresh() {
  const live = document.getElementById("live");
  try {
    const response = await fetch("/__admin/ui/state", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const text = await response.text();
    if (text !== lastText) {  // redraw only on change, so a selection or a hover survives
      lastText = text;
      lastState = JSON.parse(text);
      render(lastState);
    }
    live.className = "live ok";
    live.textContent = `live, updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    live.className = "live down";
    live.textContent = `mock unreachable (${error.message})`;
  }
}

async function advance(ms) {
  const message = document.getElementById("clock-message");
  message.textContent = "";
  const response = await fetch("/__admin/clock/advance", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ms, wait_callbacks: false }),  // the poll shows deliveries as they come
  });
  const answer = await response.json();
  message.className = answer.code !== 0 ? "message error" : "message";
  message.textContent = answer.code !== 0
    ? `${answer.code}: ${answer.message}` : `${answer.data.events.length} transition(s) fired`;
  await refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-ms]")) {
    button.addEventListener("click", () => advance(Number(button.dataset.ms)));
  }
  document.getElementById("advance-next").addEventListener("click", () => {
    const c = lastState && lastState.clock;
    if (c && c.next_due_ms !== null) advance(Math.max(0, c.next_due_ms - c.now_ms));
  });
  refresh();
  (function loop() { setTimeout(async () => { await refresh(); loop(); }, POLL_MS); })();
});
