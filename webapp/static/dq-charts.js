// Inline SVG charts: the memory gauge, queue depth by priority over time, and the precision level over time.
import { svg } from "./dq-dom.js";
import { BANDS, LEVELS, isNumber, percent } from "./dq-format.js";

const BAND_FILL = { comfortable: "#d8f0de", moderate: "#eaf3c6", tight: "#fce8c0", critical: "#f9d2b6", emergency: "#f5c0c0" };
const BAND_INK = { comfortable: "#276749", moderate: "#5f6f12", tight: "#975a16", critical: "#b7470f", emergency: "#b42318" };
export const PRIORITY_COLORS = ["#b42318", "#d9480f", "#e67700", "#c29b00", "#5c940d", "#2b8a3e", "#0c8599", "#1971c2", "#5f3dc4", "#868e96"];
export const LEVEL_COLORS = { fp16: "#1971c2", int8: "#2b8a3e", int4: "#e67700", int2: "#b42318" };

export function bandOf(fraction, edges) {
  return BANDS[edges.filter((edge) => fraction >= edge).length];
}

export function thresholdEdges(thresholds) {
  const t = thresholds || {};
  const edges = [t.memory_comfortable, t.memory_moderate, t.memory_tight, t.memory_critical];
  return edges.every(isNumber) ? edges : [0.4, 0.6, 0.75, 0.85];
}

/** A horizontal memory gauge: the five bands as coloured zones, their edges marked, the reading as a bar. */
export function memoryGauge(fraction, thresholds, label) {
  const W = 420, X0 = 10, SPAN = 400;
  const edges = thresholdEdges(thresholds);
  const x = (f) => X0 + SPAN * Math.min(Math.max(f, 0), 1);
  const bounds = [0, ...edges, 1];
  const zones = BANDS.map((band, i) => svg("rect", {
    x: x(bounds[i]), y: 12, width: Math.max(x(bounds[i + 1]) - x(bounds[i]), 0), height: 22, fill: BAND_FILL[band],
  }, svg("title", { text: `${band}: ${percent(bounds[i], 0)} to ${percent(bounds[i + 1], 0)} used` })));
  const ticks = edges.map((edge) => [
    svg("line", { x1: x(edge), x2: x(edge), y1: 8, y2: 38, stroke: "#4a5568", "stroke-width": 1.5 }),
    svg("text", { x: x(edge), y: 52, "text-anchor": "middle", class: "tick", text: percent(edge, 0) }),
  ]);
  const known = isNumber(fraction);
  const band = known ? bandOf(fraction, edges) : null;
  const bar = known
    ? [
        svg("rect", { x: X0, y: 18, width: x(fraction) - X0, height: 10, rx: 2, fill: BAND_INK[band], class: "gauge-bar" }),
        svg("path", { d: `M ${x(fraction)} 10 l -5 -7 h 10 z`, fill: "#1a202c" }),
      ]
    : [svg("text", { x: X0 + SPAN / 2, y: 28, "text-anchor": "middle", class: "tick", text: "no reading" })];
  const summary = known
    ? `${label}: ${percent(fraction)} used, ${band} band; band edges at ${edges.map((e) => percent(e, 0)).join(", ")}`
    : `${label}: no memory reading`;
  return svg("svg", { viewBox: `0 0 ${W} 58`, class: "gauge", role: "img", "aria-label": summary },
    svg("title", { text: summary }), zones, svg("rect", { x: X0, y: 12, width: SPAN, height: 22, fill: "none", stroke: "#a0aec0" }),
    bar, ticks,
    svg("text", { x: X0, y: 52, class: "tick", text: "0%" }),
    svg("text", { x: X0 + SPAN, y: 52, "text-anchor": "end", class: "tick", text: "100%" }));
}

const CW = 560, CH = 210, M = { l: 40, r: 14, t: 12, b: 28 };

function timeAxis(now, windowMs) {
  const x = (t) => M.l + ((t - (now - windowMs)) / windowMs) * (CW - M.l - M.r);
  const parts = [];
  const stepMs = windowMs >= 8 * 60000 ? 2 * 60000 : 60000;
  for (let ago = 0; ago <= windowMs; ago += stepMs) {
    const px = x(now - ago);
    parts.push(svg("line", { x1: px, x2: px, y1: M.t, y2: CH - M.b, class: "grid" }));
    parts.push(svg("text", { x: px, y: CH - 8, "text-anchor": ago === windowMs ? "start" : ago === 0 ? "end" : "middle",
      class: "tick", text: ago === 0 ? "now" : `−${Math.round(ago / 60000)} min` }));
  }
  return { x, parts };
}

function niceMax(value) {
  if (value <= 4) return 4;
  const step = 10 ** Math.floor(Math.log10(value));
  return Math.ceil(value / step) * step;
}

/** Stacked areas of jobs waiting per priority, with the running count as a dashed line. */
export function queueChart(samples, now, windowMs) {
  const shown = samples.filter((s) => s.t >= now - windowMs);
  const priorities = [...new Set(shown.flatMap((s) => Object.keys(s.byPriority).filter((p) => s.byPriority[p] > 0)))]
    .map(Number).sort((a, b) => a - b);
  const top = niceMax(Math.max(0, ...shown.map((s) => s.depth), ...shown.map((s) => s.running || 0)));
  const { x, parts } = timeAxis(now, windowMs);
  const y = (v) => CH - M.b - (v / top) * (CH - M.t - M.b);
  const grid = [0, top / 2, top].map((v) => [
    svg("line", { x1: M.l, x2: CW - M.r, y1: y(v), y2: y(v), class: "grid" }),
    svg("text", { x: M.l - 6, y: y(v) + 4, "text-anchor": "end", class: "tick", text: String(v) }),
  ]);
  const areas = [];
  const below = shown.map(() => 0);
  for (const p of priorities) {
    const upper = shown.map((s, i) => below[i] + (s.byPriority[String(p)] || 0));
    if (shown.length > 1) {
      const upperEdge = shown.map((s, i) => `${x(s.t).toFixed(1)},${y(upper[i]).toFixed(1)}`);
      const lowerEdge = shown.map((s, i) => `${x(s.t).toFixed(1)},${y(below[i]).toFixed(1)}`).reverse();
      areas.push(svg("polygon", { points: [...upperEdge, ...lowerEdge].join(" "), fill: PRIORITY_COLORS[p] || "#868e96", "fill-opacity": 0.75 },
        svg("title", { text: `priority ${p}` })));
    }
    upper.forEach((v, i) => { below[i] = v; });
  }
  const running = shown.length > 1
    ? svg("polyline", { points: shown.map((s) => `${x(s.t).toFixed(1)},${y(s.running || 0).toFixed(1)}`).join(" "),
        fill: "none", stroke: "#1a202c", "stroke-width": 1.5, "stroke-dasharray": "4 3" })
    : null;
  const last = shown[shown.length - 1];
  const label = last ? `Queue depth over the last ${windowMs / 60000} minutes; now ${last.depth} waiting and ${last.running} running`
    : "Queue depth: no reading yet";
  return { priorities, node: svg("svg", { viewBox: `0 0 ${CW} ${CH}`, class: "chart-svg", role: "img", "aria-label": label },
    svg("title", { text: label }), parts, grid, areas, running) };
}

/** The level the service would choose (a step line) and each finished job's level (dots) over time. */
export function levelChart(recommended, jobs, now, windowMs) {
  const { x, parts } = timeAxis(now, windowMs);
  const row = (level) => M.t + 14 + LEVELS.indexOf(level) * ((CH - M.t - M.b - 28) / (LEVELS.length - 1));
  const rows = LEVELS.map((level) => [
    svg("line", { x1: M.l, x2: CW - M.r, y1: row(level), y2: row(level), class: "grid" }),
    svg("text", { x: M.l - 6, y: row(level) + 4, "text-anchor": "end", class: "tick", text: level }),
  ]);
  const segments = [];
  let run = [];
  const flush = () => { if (run.length) segments.push(run); run = []; };
  for (const s of recommended.filter((r) => r.t >= now - windowMs)) {
    if (!LEVELS.includes(s.level)) { flush(); continue; }
    if (run.length) run.push([x(s.t), row(run[run.length - 1][2])]);
    run.push([x(s.t), row(s.level), s.level]);
  }
  flush();
  const lines = segments.map((points) => svg("polyline", {
    points: points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" "),
    fill: "none", stroke: "#4a5568", "stroke-width": 2,
  }));
  const shownJobs = jobs.filter((j) => j.t >= now - windowMs && LEVELS.includes(j.level));
  const dots = shownJobs.map((j) => svg("circle", { cx: x(j.t), cy: row(j.level), r: 4.5, fill: LEVEL_COLORS[j.level],
    stroke: "#fff", "stroke-width": 1, class: "job-dot" }, svg("title", { text: `job ${j.id}: ${j.level}` })));
  const label = `Precision level over the last ${windowMs / 60000} minutes: ${shownJobs.length} finished jobs shown`;
  return svg("svg", { viewBox: `0 0 ${CW} ${CH}`, class: "chart-svg", role: "img", "aria-label": label },
    svg("title", { text: label }), parts, rows, lines, dots);
}
