// The schedules card of the workflow list: each schedule with its last run (a link) and its next run.

import { clock, escapeHtml } from "./format.js";

export async function renderSchedules(card) {
  const response = await fetch("/api/schedules", { cache: "no-store" });
  const schedules = response.ok ? await response.json() : [];
  card.hidden = schedules.length === 0;
  card.querySelector("tbody").innerHTML = schedules.map((s) => `
    <tr data-schedule="${escapeHtml(s.name)}">
      <td>${escapeHtml(s.name)}<div class="muted small">${escapeHtml(s.pipeline)}</div></td>
      <td><code>${escapeHtml(s.schedule)}</code> <span class="muted small">${escapeHtml(s.timezone)}</span></td>
      <td>${escapeHtml(s.concurrency_policy)}${s.suspended ? " · suspended" : ""}</td>
      <td>${s.last_run ? `<a href="#/workflows/${encodeURIComponent(s.last_run)}">${escapeHtml(s.last_run)}</a>` : "–"}</td>
      <td>${s.next_run_at ? escapeHtml(clock(s.next_run_at)) : "–"}</td>
    </tr>`).join("");
}
