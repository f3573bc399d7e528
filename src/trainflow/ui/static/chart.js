// Line charts as SVG, by hand: axes, grid, one or more series, an optional marker for the final value.

import { escapeHtml } from "./format.js";

const W = 560, H = 230, M = { top: 16, right: 18, bottom: 34, left: 52 };

function niceTicks(min, max, count) {
  const span = max - min || 1;
  const step0 = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * magnitude).find((s) => span / s <= count) || step0;
  const ticks = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(+v.toFixed(10));
  return ticks;
}

function formatTick(v) {
  if (Math.abs(v) >= 1000) return `${+(v / 1000).toFixed(2)}k`;
  return String(+v.toFixed(3));
}

export function renderChart(container, { series, xMax, yMin, yMax, yLabel, marker, empty, xLabel = "step" }) {
  const points = series.flatMap((s) => s.points);
  if (!points.length) {
    container.innerHTML = `<div class="chart-empty">${escapeHtml(empty || "No data yet")}</div>`;
    return;
  }
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const x1 = Math.max(xMax || 0, ...xs), x0 = 0;
  let lo = yMin ?? Math.min(...ys), hi = yMax ?? Math.max(...ys);
  if (yMin === undefined) lo = Math.max(0, lo - (hi - lo) * 0.08);
  if (hi === lo) hi = lo + 1;
  const sx = (x) => M.left + ((x - x0) / (x1 - x0 || 1)) * (W - M.left - M.right);
  const sy = (y) => H - M.bottom - ((y - lo) / (hi - lo)) * (H - M.top - M.bottom);
  const yTicks = niceTicks(lo, hi, 5), xTicks = niceTicks(x0, x1, 6);
  const grid = yTicks.map((t) => `<line class="grid" x1="${M.left}" x2="${W - M.right}" y1="${sy(t)}" y2="${sy(t)}" />
      <text class="tick" x="${M.left - 8}" y="${sy(t) + 4}" text-anchor="end">${formatTick(t)}</text>`).join("")
    + xTicks.map((t) => `<text class="tick" x="${sx(t)}" y="${H - M.bottom + 18}" text-anchor="middle">${formatTick(t)}</text>`).join("");
  const shown = series.filter((s) => s.points.length);
  const legend = shown.length > 1 ? shown.map((s, i) => `<text class="legend" x="${W - M.right - 4}" y="${M.top + 10 + i * 14}"
      text-anchor="end" style="fill:${s.color}">${escapeHtml(s.tag)}</text>`).join("") : "";
  const lines = shown.map((s) => {
    const d = s.points.map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
    const area = `${d}L${sx(s.points.at(-1)[0]).toFixed(1)},${H - M.bottom}L${sx(s.points[0][0]).toFixed(1)},${H - M.bottom}Z`;
    const last = s.points.at(-1);
    return `<path class="area" d="${area}" style="fill:${s.color}" />
      <path class="series" data-tag="${escapeHtml(s.tag)}" data-points="${s.points.length}" d="${d}" style="stroke:${s.color}" />
      <circle class="last" cx="${sx(last[0])}" cy="${sy(last[1])}" r="3.5" style="fill:${s.color}" />`;
  }).join("");
  // The label goes on the side of the line away from where the curves end, so it never sits on them.
  const ends = series.filter((s) => s.points.length).map((s) => s.points.at(-1)[1]);
  const curvesEndAbove = marker && ends.length && ends.every((y) => y >= marker.value);
  const labelY = marker ? sy(marker.value) + (curvesEndAbove ? 14 : -6) : 0;
  const mark = marker ? `<g class="marker"><line x1="${M.left}" x2="${W - M.right}" y1="${sy(marker.value)}" y2="${sy(marker.value)}" />
      <text x="${W - M.right - 4}" y="${labelY}" text-anchor="end">${escapeHtml(marker.label)}</text></g>` : "";
  container.innerHTML = `<svg class="chart" viewBox="0 0 ${W} ${H}" preserveAspectRatio="xMidYMid meet" role="img" aria-label="${escapeHtml(yLabel)}">
    ${grid}<line class="axis" x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" />
    ${lines}${mark}${legend}
    <text class="axis-label" x="${(W + M.left) / 2}" y="${H - 4}" text-anchor="middle">${escapeHtml(xLabel)}</text></svg>`;
}
