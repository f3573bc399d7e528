// Small formatters shared by the views: durations, ages, status classes, HTML escaping.

export function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60), rest = s % 60;
  if (m < 60) return rest ? `${m}m ${rest}s` : `${m}m`;
  const h = Math.floor(m / 60);
  return `${h}h ${m % 60}m`;
}

export function age(timestamp, now) {
  if (!timestamp) return "–";
  const s = Math.max(0, Math.round(now - timestamp));
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (s >= size) return `${Math.floor(s / size)}${unit} ago`;
  }
  return `${s}s ago`;
}

export function duration(start, end, now) {
  if (!start) return "–";
  return formatSeconds((end || now) - start);
}

export function statusClass(status) {
  return `status-${String(status || "Pending").toLowerCase()}`;
}

export function statusPill(status) {
  return `<span class="pill ${statusClass(status)}"><span class="pill-dot"></span>${escapeHtml(status)}</span>`;
}

export function isActive(status) {
  return status === "Pending" || status === "Running";
}

export function clock(timestamp) {
  return timestamp ? new Date(timestamp * 1000).toLocaleString([], { hour12: false }) : "–";
}
