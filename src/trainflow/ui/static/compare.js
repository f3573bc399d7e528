// Runs compared: their loss and accuracy curves overlaid, and what `trainflow compare` prints, differences marked.

import { renderChart } from "./chart.js";
import { escapeHtml, isActive, statusPill } from "./format.js";

const COLORS = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777"];

export function compareHash(names) {
  return `#/compare?${new URLSearchParams(names.map((n) => ["run", n]))}`;
}

export class ComparePage {
  constructor(root, names, getJson, setLive) {
    this.names = names;
    this.getJson = getJson;
    this.setLive = setLive;
    document.title = `Compare ${names.length} runs · trainflow`;
    root.innerHTML = `
      <div class="crumbs"><a href="#/">Workflows</a><span>/</span><span>compare</span></div>
      <section class="page-head"><div><h1>Compare ${names.length} runs</h1><p class="sub" id="cmp-meta">loading…</p></div></section>
      <div class="card"><div class="card-head"><h2>Training</h2><span class="hint">one colour per run</span></div>
        <div class="charts">
          <div class="chart-box"><h3>Loss</h3><div id="chart-loss"></div></div>
          <div class="chart-box"><h3>Accuracy</h3><div id="chart-accuracy"></div></div>
        </div></div>
      <div class="card flush"><table class="table compare" id="cmp-table"></table></div>`;
    this.root = root;
    this.stopped = false;
    this.refresh();
  }

  async refresh() {
    if (this.stopped) return;
    let data;
    try {
      data = await this.getJson(`/api/compare?${new URLSearchParams(this.names.map((n) => ["run", n]))}`);
    } catch (error) {
      this.root.querySelector("#cmp-meta").textContent = error.message;
      this.setLive("idle", "cannot compare");
      return;
    }
    this.render(data);
    const active = data.runs.some((r) => isActive(r.status));
    this.setLive(active ? "active" : "idle", `${active ? "live" : "finished"} · updated ${new Date().toLocaleTimeString([], { hour12: false })}`);
    if (active && !this.stopped) this.timer = setTimeout(() => this.refresh(), 1500);
  }

  render(data) {
    const runs = data.runs.map((r, i) => ({ ...r, color: COLORS[i % COLORS.length] }));
    this.root.querySelector("#cmp-meta").innerHTML = runs.map((r) =>
      `<span class="run-key" data-run="${escapeHtml(r.name)}"><span class="swatch" style="background:${r.color}"></span>${escapeHtml(r.name)}</span>`,
    ).join('<span class="sep">·</span>');
    const overlay = (tag) => runs.map((r) => ({ tag: r.name, points: r.series[tag] || [], color: r.color }));
    const xMax = Math.max(0, ...runs.map((r) => r.total_steps || 0)) || null;
    renderChart(this.root.querySelector("#chart-loss"), {
      series: overlay("train/loss"), xMax, yLabel: "loss", empty: "no run has reported a loss",
    });
    renderChart(this.root.querySelector("#chart-accuracy"), {
      series: overlay("train/accuracy"), xMax, yMax: 1, yLabel: "accuracy", empty: "no run has reported an accuracy",
    });
    const cell = (v) => (v === null || v === undefined ? '<span class="muted">–</span>'
      : escapeHtml(typeof v === "number" ? +v.toFixed(4) : v));
    const rows = data.rows.map((row) => `
      <tr class="${row.differs ? "differs" : ""}" data-row="${escapeHtml(row.label)}"><th>${row.differs ? '<span class="differs-mark" title="differs between the runs">*</span>' : ""}${escapeHtml(row.label)}</th>${row.label === "status"
        ? row.values.map((v) => `<td>${statusPill(v)}</td>`).join("") : row.values.map((v) => `<td>${cell(v)}</td>`).join("")}</tr>`);
    this.root.querySelector("#cmp-table").innerHTML = `<thead><tr><th></th>${runs.map((r) =>
      `<th><a href="#/workflows/${encodeURIComponent(r.name)}" style="color:${r.color}">${escapeHtml(r.name)}</a></th>`).join("")}</tr></thead>
      <tbody>${rows.join("")}</tbody>`;
  }

  stop() { this.stopped = true; clearTimeout(this.timer); }
}
