// A run's study: the objective of each trial with the best so far, each trial's curve, and the trials table.

import { renderChart } from "./chart.js";
import { escapeHtml } from "./format.js";

const COLORS = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626", "#65a30d"];

export class StudyView {
  constructor(card, name) {
    this.card = card;
    this.name = name;
    this.done = false;
  }

  async refresh(active) {
    if (this.done) return;
    const response = await fetch(`/api/workflows/${encodeURIComponent(this.name)}/trials`);
    if (!response.ok) return;
    const { studies } = await response.json();
    this.done = !active;
    if (!studies.length) return;
    this.card.hidden = false;
    this.render(studies[0]);
  }

  render(study) {
    const trials = study.trials;
    const ended = trials.filter((t) => t.value !== null);
    const best = trials.map((t, i) => [t.number, study.best_so_far[i]]).filter((p) => p[1] !== null);
    renderChart(this.card.querySelector("#study-objective"), {
      series: [
        { tag: study.metric, color: COLORS[0], points: ended.map((t) => [t.number, t.value]) },
        { tag: "best so far", color: COLORS[2], points: best },
      ],
      yLabel: study.metric,
      xLabel: "trial",
      empty: "no trial has ended yet",
    });
    renderChart(this.card.querySelector("#study-curves"), {
      series: trials.map((t, i) => ({ tag: `#${t.number} ${t.state}`, color: COLORS[i % COLORS.length], points: t.curve })),
      yLabel: study.metric,
      empty: "no trial has reported yet",
    });
    const names = [...new Set(trials.flatMap((t) => Object.keys(t.params)))];
    const head = ["", "#", ...names, study.metric, "state", "steps"].map((h) => `<th>${escapeHtml(h)}</th>`).join("");
    const rows = trials.map((t) => `<tr class="${t.best ? "best" : ""}"><td>${t.best ? "★" : ""}</td><td>${t.number}</td>`
      + names.map((n) => `<td>${escapeHtml(t.params[n] ?? "–")}</td>`).join("")
      + `<td>${t.value === null ? "–" : t.value.toFixed(4)}</td><td>${escapeHtml(t.state)}</td><td>${t.steps}</td></tr>`).join("");
    this.card.querySelector("#study-step").textContent = `${study.step}: ${trials.length} trials`;
    this.card.querySelector("#study-table").innerHTML = `<table class="trials"><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table>`;
  }
}
