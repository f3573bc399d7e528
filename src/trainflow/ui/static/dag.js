// The step DAG as SVG: one column per dependency level, edges as curves, nodes coloured by status.

import { escapeHtml, formatSeconds, statusClass } from "./format.js";

const NODE_W = 184, NODE_H = 58, COL_GAP = 64, ROW_GAP = 22, PAD = 12;
const ICONS = {
  Succeeded: '<path d="M-4 0l3 3 5-6" />',
  Cached: '<path d="M-4 0l3 3 5-6" />',
  Failed: '<path d="M-3.5 -3.5l7 7M3.5 -3.5l-7 7" />',
  Running: '<circle r="3" class="spin-dot" />',
  Pending: '<circle r="1.6" />',
  Skipped: '<path d="M-4 0h8" />',
  Omitted: '<path d="M-4 0h8" />',
};

function layout(nodes) {
  const columns = {};
  for (const node of nodes) (columns[node.level] ||= []).push(node);
  const tallest = Math.max(...Object.values(columns).map((c) => c.length));
  const height = tallest * NODE_H + (tallest - 1) * ROW_GAP + PAD * 2;
  const positions = {};
  for (const [level, column] of Object.entries(columns)) {
    const columnHeight = column.length * NODE_H + (column.length - 1) * ROW_GAP;
    const top = (height - columnHeight) / 2;
    column.sort((a, b) => a.row - b.row).forEach((node, i) => {
      positions[node.name] = { x: PAD + Number(level) * (NODE_W + COL_GAP), y: top + i * (NODE_H + ROW_GAP) };
    });
  }
  const levels = Object.keys(columns).length;
  return { positions, width: PAD * 2 + levels * NODE_W + (levels - 1) * COL_GAP, height };
}

function subtitle(node) {
  if (node.status === "Running") return node.service ? "service · starting…" : `running · ${formatSeconds(node.duration)}`;
  if (node.status === "Cached") return node.message;
  if (node.status === "Succeeded") return node.service ? `service · up in ${formatSeconds(node.duration)}` : formatSeconds(node.duration);
  if (node.status === "Failed") return `failed after ${formatSeconds(node.duration)}`;
  if (node.status === "Pending") return "waiting";
  return node.status.toLowerCase();
}

function edgePath(from, to) {
  const x1 = from.x + NODE_W, y1 = from.y + NODE_H / 2, x2 = to.x - 6, y2 = to.y + NODE_H / 2;
  const mid = (x1 + x2) / 2;
  return `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`;
}

export function renderDag(container, dag, selected, onSelect) {
  const { positions, width, height } = layout(dag.nodes);
  const status = Object.fromEntries(dag.nodes.map((n) => [n.name, n.status]));
  const edges = dag.edges.map(([a, b]) =>
    `<path class="edge ${statusClass(status[a])}" d="${edgePath(positions[a], positions[b])}" marker-end="url(#arrow)" />`).join("");
  const nodes = dag.nodes.map((node) => {
    const p = positions[node.name];
    const title = node.message ? `<title>${escapeHtml(node.message)}</title>` : "";
    return `<g class="node ${statusClass(node.status)}${node.name === selected ? " selected" : ""}" data-step="${escapeHtml(node.name)}"
              data-status="${escapeHtml(node.status)}" transform="translate(${p.x},${p.y})" tabindex="0" role="button">${title}
      <rect class="node-box" width="${NODE_W}" height="${NODE_H}" rx="10" />
      <rect class="node-bar" width="5" height="${NODE_H - 16}" x="0" y="8" rx="2" />
      <g class="node-icon" transform="translate(24,${NODE_H / 2})"><circle r="10" />${ICONS[node.status] || ICONS.Pending}</g>
      <text class="node-name" x="42" y="25">${escapeHtml(node.name)}</text>
      <text class="node-sub" x="42" y="43">${escapeHtml(subtitle(node))}</text>
    </g>`;
  }).join("");
  container.innerHTML = `<svg class="dag" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="workflow steps">
    <defs><marker id="arrow" viewBox="0 0 10 10" refX="8" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
      <path d="M0,0 L10,5 L0,10 z" class="arrow" /></marker></defs>${edges}${nodes}</svg>`;
  container.querySelectorAll("g.node").forEach((g) => {
    const select = () => onSelect(g.dataset.step);
    g.addEventListener("click", select);
    g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") select(); });
  });
}
