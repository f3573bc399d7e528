// The dashboard: a hash router over two live pages, the workflow list and one workflow.

import { renderChart } from "./chart.js";
import { ComparePage, compareHash } from "./compare.js";
import { renderDag } from "./dag.js";
import { age, clock, duration, escapeHtml, formatSeconds, isActive, statusClass, statusPill } from "./format.js";
import { renderSchedules } from "./schedules.js";
import { StudyView } from "./study.js";
import { TryModel } from "./trymodel.js";

const FAST = 1500, SLOW = 5000;
const MAIN_PARAMS = 12;  // the first parameters with a value, in the pipeline's order; the others fold away
const app = document.getElementById("app");

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(body.error || `${url}: HTTP ${response.status}`), { status: response.status });
  return body;
}

function setLive(state, text) {
  const live = document.getElementById("live");
  live.className = `live ${state}`;
  document.getElementById("live-text").textContent = text;
}

class Poller {
  constructor(tick) { this.tick = tick; this.stopped = false; this.run(); }
  async run() {
    if (this.stopped) return;
    let next = SLOW;
    try { next = await this.tick(); } catch (error) { setLive("offline", `offline: ${error.message}`); }
    if (!this.stopped && next) this.timer = setTimeout(() => this.run(), next);
  }
  stop() { this.stopped = true; clearTimeout(this.timer); }
}

const PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#db2777", "#0891b2", "#ca8a04", "#4b5563"];

// The series of one chart: train/NAME and eval/NAME, then any fan-out item's ("fit[0] train/loss"), one colour each.
function seriesEnding(series, name, first) {
  const tags = Object.keys(series).filter((tag) => tag.endsWith(`/${name}`));
  const own = [`train/${name}`, `eval/${name}`];
  const ordered = [...own.filter((t) => tags.includes(t)), ...tags.filter((t) => !own.includes(t)).sort()];
  return ordered.map((tag, i) => ({
    tag, points: series[tag], color: own.includes(tag) ? first[own.indexOf(tag)] : PALETTE[i % PALETTE.length],
  }));
}

function stepsBar(steps) {
  return `<span class="steps-bar" title="${steps.map((s) => `${s.name}: ${s.status}`).join("\n")}">${steps
    .map((s) => `<span class="seg ${statusClass(s.status)}"></span>`).join("")}</span>`;
}

class ListPage {
  constructor(root) {
    document.title = "Workflows · trainflow";
    root.innerHTML = `
      <section class="page-head"><div><h1>Workflows</h1><p class="sub" id="summary">loading…</p></div>
        <button type="button" class="btn primary" id="compare" disabled title="select two or more runs">Compare</button></section>
      <div class="card flush"><table class="table" id="workflows">
        <thead><tr><th class="pick"></th><th>Name</th><th>Status</th><th>Steps</th><th>Age</th><th>Duration</th><th>Message</th></tr></thead>
        <tbody></tbody></table>
        <div class="empty" id="empty" hidden>No workflows yet. Submit one:
          <code>trainflow submit model-train -p job-name=myjob</code></div></div>
      <div class="card flush" id="schedules" hidden><div class="card-head"><h2>Schedules</h2></div>
        <table class="table"><thead><tr><th>Name</th><th>Schedule</th><th>Policy</th><th>Last run</th><th>Next run</th></tr></thead>
        <tbody></tbody></table></div>`;
    this.body = root.querySelector("#workflows tbody");
    this.schedules = root.querySelector("#schedules");
    this.chosen = new Set();  // the runs ticked for comparison, kept across refreshes
    this.button = root.querySelector("#compare");
    this.button.addEventListener("click", () => { location.hash = compareHash([...this.chosen]); });
    this.poller = new Poller(() => this.refresh());
  }

  choose(name, on) {
    if (on) this.chosen.add(name); else this.chosen.delete(name);
    this.button.disabled = this.chosen.size < 2;
    this.button.textContent = this.chosen.size >= 2 ? `Compare ${this.chosen.size} runs` : "Compare";
  }

  async refresh() {
    const workflows = await getJson("/api/workflows");
    renderSchedules(this.schedules);
    const now = Date.now() / 1000;
    const running = workflows.filter((w) => isActive(w.status)).length;
    document.getElementById("summary").textContent =
      `${workflows.length} workflow${workflows.length === 1 ? "" : "s"} · ${running} running`;
    document.getElementById("empty").hidden = workflows.length > 0;
    this.body.innerHTML = workflows.map((w) => `
      <tr data-workflow="${escapeHtml(w.name)}" data-status="${escapeHtml(w.status)}">
        <td class="pick"><input type="checkbox" aria-label="compare ${escapeHtml(w.name)}"${this.chosen.has(w.name) ? " checked" : ""}></td>
        <td><a class="wf-link" href="#/workflows/${encodeURIComponent(w.name)}">${escapeHtml(w.name)}</a>
            <div class="muted small">${escapeHtml(w.pipeline)}</div></td>
        <td>${statusPill(w.status)}</td>
        <td>${stepsBar(w.steps)} <span class="muted small">${w.steps.filter((s) => s.status === "Succeeded" || s.status === "Cached").length}/${w.steps.length}</span></td>
        <td title="${escapeHtml(clock(w.created_at))}">${age(w.created_at, now)}</td>
        <td>${duration(w.started_at, w.finished_at, now)}</td>
        <td class="message" title="${escapeHtml(w.message)}">${escapeHtml(w.message)}</td>
      </tr>`).join("");
    for (const name of this.chosen) if (!workflows.some((w) => w.name === name)) this.choose(name, false);
    this.body.querySelectorAll("tr").forEach((tr) => tr.querySelector("input").addEventListener("change", (e) => {
      this.choose(tr.dataset.workflow, e.target.checked);
    }));
    this.body.querySelectorAll("tr").forEach((tr) => tr.addEventListener("click", (e) => {
      if (e.target.tagName !== "A" && !e.target.closest(".pick")) location.hash = `#/workflows/${encodeURIComponent(tr.dataset.workflow)}`;
    }));
    setLive(running ? "active" : "idle", `${running ? "live" : "idle"} · updated ${new Date().toLocaleTimeString([], { hour12: false })}`);
    return running ? FAST : SLOW;
  }

  stop() { this.poller.stop(); }
}

class WorkflowPage {
  constructor(root, name) {
    this.name = name;
    this.selected = null;
    this.curvesDone = false;
    document.title = `${name} · trainflow`;
    root.innerHTML = `
      <div class="crumbs"><a href="#/">Workflows</a><span>/</span><span>${escapeHtml(name)}</span></div>
      <section class="page-head"><div><h1 id="wf-name">${escapeHtml(name)} <span id="wf-status"></span></h1>
        <p class="sub" id="wf-meta">loading…</p></div></section>
      <div class="banner" id="wf-message" hidden></div>
      <div class="card"><div class="card-head"><h2>Steps</h2><span class="hint">select a step to see its log</span></div>
        <div class="dag-wrap" id="dag"></div></div>
      <div class="card"><div class="card-head"><h2>Training</h2><span class="hint" id="curve-source"></span></div>
        <div class="progress" id="progress"><div class="progress-fill"></div><span class="progress-text"></span></div>
        <div class="charts">
          <div class="chart-box"><h3><span class="swatch loss"></span>Loss</h3><div id="chart-loss"></div></div>
          <div class="chart-box"><h3><span class="swatch acc"></span>Accuracy</h3><div id="chart-accuracy"></div></div>
        </div>
        <div class="stats" id="stats"></div></div>
      <div class="card" id="study-card" hidden><div class="card-head"><h2>Study</h2><span class="hint" id="study-step"></span></div>
        <div class="charts">
          <div class="chart-box"><h3>Objective by trial, best so far</h3><div id="study-objective"></div></div>
          <div class="chart-box"><h3>Each trial's objective while it trained</h3><div id="study-curves"></div></div>
        </div>
        <div id="study-table"></div></div>
      <div class="grid-2">
        <div class="card" id="try-card" hidden><div class="card-head"><h2>Try the model</h2><span class="hint">draw, release, see what the served model says</span></div>
          <div id="try"></div></div>
        <div class="stack">
          <div class="card"><div class="card-head"><h2>Links</h2></div><ul class="links" id="links"></ul></div>
          <div class="card"><div class="card-head"><h2>Parameters</h2></div><div id="params"></div></div>
        </div>
      </div>
      <div class="card"><div class="card-head"><h2>Logs</h2><div class="tabs" id="log-tabs"></div></div>
        <pre class="log" id="log"></pre></div>`;
    this.root = root;
    this.tryModel = new TryModel(root.querySelector("#try"), name);
    this.study = new StudyView(root.querySelector("#study-card"), name);
    this.poller = new Poller(() => this.refresh());
  }

  async refresh() {
    let view;
    try {
      view = await getJson(`/api/workflows/${encodeURIComponent(this.name)}`);
    } catch (error) {
      if (error.status !== 404) throw error;
      this.root.querySelector("#wf-meta").textContent = error.message;
      setLive("idle", "not found");
      return SLOW;
    }
    const active = isActive(view.status);
    this.view = view;
    this.selected ||= this.defaultStep(view);
    this.renderHead(view);
    renderDag(this.root.querySelector("#dag"), view.dag, this.selected, (step) => this.select(step, view));
    this.renderLinks(view.links);
    this.renderParams(view.params);
    this.renderTabs(view);
    this.root.querySelector("#try-card").hidden = !view.serves_model;  // only where a step serves a model
    this.tryModel.update(view);
    await Promise.all([this.refreshCurves(view), this.refreshLog(view)]);
    setLive(active ? "active" : "idle", `${active ? "live" : "finished"} · updated ${new Date().toLocaleTimeString([], { hour12: false })}`);
    return active ? FAST : SLOW;
  }

  defaultStep(view) {
    const steps = view.steps;
    return (steps.find((s) => s.status === "Failed") || steps.find((s) => s.status === "Running" && !s.service)
      || steps.find((s) => s.name === this.progressStep) || steps[0]).name;
  }

  renderHead(view) {
    const now = view.now;
    const done = view.steps.filter((s) => s.status === "Succeeded" || s.status === "Cached").length;
    this.root.querySelector("#wf-status").innerHTML = statusPill(view.status);
    this.root.querySelector("#wf-meta").innerHTML = [
      `<b>${escapeHtml(view.pipeline)}</b>`, `created ${escapeHtml(clock(view.created_at))} (${age(view.created_at, now)})`,
      `duration ${duration(view.started_at, view.finished_at, now)}`, `${done}/${view.steps.length} steps done`,
    ].join('<span class="sep">·</span>');
    const banner = this.root.querySelector("#wf-message");
    banner.hidden = !view.message;
    banner.className = `banner ${statusClass(view.status)}`;
    banner.textContent = view.message;
  }

  renderLinks(links) {
    this.root.querySelector("#links").innerHTML = links.length ? links.map((l) => `
      <li><span class="link-label">${escapeHtml(l.label)}</span>${l.href
        ? `<a href="${escapeHtml(l.href)}" target="_blank" rel="noopener">${escapeHtml(l.value)}</a>`
        : `<code>${escapeHtml(l.value)}</code>`}</li>`).join("") : '<li class="muted">none yet: they appear as steps start</li>';
  }

  renderParams(params) {
    const row = ([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${v === "" ? '<span class="muted">–</span>' : escapeHtml(v)}</td></tr>`;
    const main = Object.entries(params).filter(([, v]) => v !== "").slice(0, MAIN_PARAMS);
    const rest = Object.entries(params).filter(([k]) => !main.some(([m]) => m === k)).sort();
    const box = this.root.querySelector("#params");
    const open = box.querySelector("details")?.open ? " open" : "";
    box.innerHTML = `<table class="kv">${main.map(row).join("")}</table>
      <details${open}><summary>${rest.length} more</summary><table class="kv">${rest.map(row).join("")}</table></details>`;
  }

  renderTabs(view) {
    this.root.querySelector("#log-tabs").innerHTML = view.steps.map((s) => `
      <button type="button" class="tab ${statusClass(s.status)}${s.name === this.selected ? " active" : ""}" data-step="${escapeHtml(s.name)}">
        <span class="pill-dot"></span>${escapeHtml(s.name)}</button>`).join("");
    this.root.querySelectorAll("#log-tabs .tab").forEach((b) => b.addEventListener("click", () => this.select(b.dataset.step, view)));
  }

  select(step, view) {
    this.selected = step;
    this.logStep = null;
    renderDag(this.root.querySelector("#dag"), view.dag, step, (s) => this.select(s, view));
    this.renderTabs(view);
    this.refreshLog(view, true);
  }

  async refreshLog(view, force = false) {
    const step = view.steps.find((s) => s.name === this.selected);
    if (!step) return;
    const stale = step.status === "Running" || this.logStep !== step.name || this.logStatus !== step.status;
    if (!stale && !force) return;
    const pre = this.root.querySelector("#log");
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8 || this.logStep !== step.name;
    const log = await getJson(`/api/workflows/${encodeURIComponent(this.name)}/logs?step=${encodeURIComponent(step.name)}`);
    if (log.step !== this.selected) return;
    pre.textContent = log.lines.length ? log.lines.join("\n") : `(no output from ${step.name} yet)`;
    pre.dataset.step = step.name;
    if (atBottom) pre.scrollTop = pre.scrollHeight;
    this.logStep = step.name;
    this.logStatus = step.status;
  }

  async refreshCurves(view) {
    await this.study.refresh(isActive(view.status));
    if (this.curvesDone && !isActive(view.status)) return;
    const curves = await getJson(`/api/workflows/${encodeURIComponent(this.name)}/curves`);
    // The step that reports progress events (a training step); before any, the first running one.
    this.progressStep = curves.progress_step || this.progressStep;
    const train = view.steps.find((s) => s.name === this.progressStep)
      || view.steps.find((s) => s.status === "Running" && !s.service) || view.steps.find((s) => s.status === "Pending");
    this.renderCurves(curves, train);
    this.curvesDone = !isActive(view.status);
  }

  renderCurves(curves, train) {
    const s = curves.series;
    const total = curves.total_steps || null;
    const finalAcc = curves.final?.accuracy ?? s["eval/accuracy"]?.at(-1)?.[1];
    const finalLoss = curves.final?.loss ?? s["eval/loss"]?.at(-1)?.[1];
    const waiting = !train ? "no step reported progress"
      : train.status === "Pending" ? `waiting for ${train.name} to start`
      : train.status === "Running" ? "waiting for the first steps" : `${train.name} ${train.status.toLowerCase()}: no curves`;
    const fanOut = Object.keys(s).some((tag) => tag.includes(" "));  // "fit[0] train/loss": the total is over all items
    const xMax = fanOut ? null : total;
    renderChart(this.root.querySelector("#chart-loss"), {
      series: seriesEnding(s, "loss", ["#2563eb", "#ea580c"]), xMax, yLabel: "loss",
      marker: finalLoss !== undefined ? { value: finalLoss, label: `test loss ${finalLoss.toFixed(3)}` } : null, empty: waiting,
    });
    renderChart(this.root.querySelector("#chart-accuracy"), {
      series: seriesEnding(s, "accuracy", ["#16a34a", "#ea580c"]), xMax, yMax: 1, yLabel: "accuracy",
      marker: finalAcc !== undefined ? { value: finalAcc, label: `test ${(finalAcc * 100).toFixed(1)}%` } : null, empty: waiting,
    });
    const fraction = total ? Math.min(1, curves.step / total) : 0;
    const progress = this.root.querySelector("#progress");
    progress.querySelector(".progress-fill").style.width = `${(fraction * 100).toFixed(1)}%`;
    progress.className = `progress ${statusClass(train?.status)}`;
    progress.hidden = !total;
    progress.querySelector(".progress-text").textContent = total ? `step ${curves.step} / ${total}` : "";
    this.root.querySelector("#curve-source").textContent = curves.sources.length ? `from ${curves.sources.join(" + ")}` : "";
    this.renderStats(curves, finalAcc, finalLoss);
  }

  renderStats(curves, finalAcc, finalLoss) {
    const speed = curves.final?.examples_per_sec ?? curves.series["train/examples_per_sec"]?.at(-1)?.[1];
    const stats = [
      ["Test accuracy", finalAcc !== undefined ? `${(finalAcc * 100).toFixed(2)}%` : "–"],
      ["Test loss", finalLoss !== undefined ? finalLoss.toFixed(4) : "–"],
      ["Train accuracy", curves.series["train/accuracy"] ? `${(curves.series["train/accuracy"].at(-1)[1] * 100).toFixed(1)}%` : "–"],
      ["Throughput", speed ? `${Math.round(speed)} ex/s` : "–"],
      ["Workers", curves.final?.world_size ?? "–"],
      ["Train time", curves.final?.train_seconds ? formatSeconds(curves.final.train_seconds) : "–"],
    ];
    this.root.querySelector("#stats").innerHTML = stats.map(([k, v]) =>
      `<div class="stat"><div class="stat-value">${escapeHtml(v)}</div><div class="stat-label">${escapeHtml(k)}</div></div>`).join("");
  }

  stop() { this.poller.stop(); }
}

// Where the workflows run; on a cluster, what this page cannot do there, said once above every page.
async function showBackend() {
  const backend = await getJson("/api/backend");
  if (!backend.limits.length) return;
  const box = document.getElementById("backend-limits");
  box.innerHTML = `<strong>Workflows of Kubernetes namespace ${escapeHtml(backend.namespace || "")}</strong> (read-only:
    submit, stop and delete with <code>trainflow ... --backend kubernetes</code>)
    <ul>${backend.limits.map((line) => `<li>${escapeHtml(line)}</li>`).join("")}</ul>`;
  box.hidden = false;
}
showBackend().catch(() => {});

let page = null;
function route() {
  page?.stop();
  const match = location.hash.match(/^#\/workflows\/(.+)$/);
  const compared = location.hash.match(/^#\/compare\?(.*)$/);
  page = match ? new WorkflowPage(app, decodeURIComponent(match[1]))
    : compared ? new ComparePage(app, new URLSearchParams(compared[1]).getAll("run"), getJson, setLive) : new ListPage(app);
  window.scrollTo(0, 0);
}
window.addEventListener("hashchange", route);
route();
