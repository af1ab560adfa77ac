// The Health page: charts of the deployment's metrics (GET /metrics, Prometheus text, read
// every 2 s with the admin key): function latency p50/p99, calls and errors per second, OCC
// retries per second, commits per second, live sessions and subscriptions.

import { h, mount, notice, errorText } from "../ui.js";

const INTERVAL_MS = 2000;
const POINTS = 60; // two minutes of samples

const SERIES = [
  { id: "latency", title: "Function latency (ms)", lines: ["p50", "p99"] },
  { id: "calls", title: "Calls per second", lines: ["calls"] },
  { id: "errors", title: "Errors per second", lines: ["errors"] },
  { id: "occ", title: "OCC retries per second", lines: ["occ"] },
  { id: "commits", title: "Commits per second", lines: ["commits"] },
  { id: "sessions", title: "Live sessions", lines: ["sessions"] },
  { id: "subscriptions", title: "Subscriptions", lines: ["subscriptions"] },
];

export function render(root, deployment) {
  const status = h("div", {});
  const cards = new Map();
  const history = new Map(SERIES.map((s) => [s.id, s.lines.map(() => [])]));
  mount(
    root,
    h(
      "section",
      { class: "panel" },
      h("h2", {}, "Health"),
      h("p", { class: "muted" }, "From /metrics every 2 s; rates over the last interval."),
      status,
      h(
        "div",
        { class: "metrics" },
        SERIES.map((s) => {
          const value = h("div", { class: "value" }, "…");
          const chart = svg("svg", { class: "chart", viewBox: `0 0 ${POINTS} 100`, preserveAspectRatio: "none" });
          cards.set(s.id, { value, chart, spec: s });
          return h("div", { class: "panel metric", "data-metric": s.id }, h("div", { class: "muted" }, s.title), value, chart);
        }),
      ),
    ),
  );

  let previous = null;
  let stopped = false;
  async function sample() {
    let text;
    try {
      text = await deployment.http("GET", "/metrics");
    } catch (err) {
      mount(status, notice("error", errorText(err), "health-error"));
      return;
    }
    mount(status);
    const now = { at: performance.now(), metrics: parse(text) };
    const values = compute(previous, now);
    previous = now;
    for (const s of SERIES) {
      const card = cards.get(s.id);
      const lines = history.get(s.id);
      s.lines.forEach((line, i) => {
        lines[i].push(values[line]);
        if (lines[i].length > POINTS) lines[i].shift();
      });
      card.value.textContent = s.lines.map((line) => format(values[line])).join(" / ");
      draw(card.chart, lines);
    }
  }
  sample();
  const timer = setInterval(() => {
    if (!stopped) sample();
  }, INTERVAL_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

/** Prometheus text -> [{name, labels, value}] */
export function parse(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    out.push({ name: match[1], labels, value: Number(match[4]) });
  }
  return out;
}

function sum(metrics, name) {
  return metrics.filter((m) => m.name === name).reduce((total, m) => total + m.value, 0);
}

/** Cumulative latency buckets (le -> count) summed over every function. */
function buckets(metrics) {
  const out = new Map();
  for (const m of metrics) {
    if (m.name !== "reactor_function_duration_seconds_bucket") continue;
    const le = m.labels.le === "+Inf" ? Infinity : Number(m.labels.le);
    out.set(le, (out.get(le) || 0) + m.value);
  }
  return [...out.entries()].sort((a, b) => a[0] - b[0]);
}

export function quantile(deltas, q) {
  const total = deltas.length ? deltas[deltas.length - 1][1] : 0;
  if (!total) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, count] of deltas) {
    if (count >= rank) {
      if (le === Infinity) return lower * 1000;
      const share = count === below ? 0 : (rank - below) / (count - below);
      return (lower + (le - lower) * share) * 1000;
    }
    lower = le;
    below = count;
  }
  return null;
}

function compute(previous, now) {
  const m = now.metrics;
  const out = {
    sessions: sum(m, "reactor_live_sessions"),
    subscriptions: sum(m, "reactor_subscriptions"),
  };
  const counters = {
    calls: "reactor_function_executions_total",
    errors: "reactor_function_errors_total",
    occ: "reactor_occ_retries_total",
    commits: "reactor_commits_total",
  };
  const current = buckets(m);
  if (previous === null) {
    for (const key of Object.keys(counters)) out[key] = null;
    out.p50 = quantile(current, 0.5);
    out.p99 = quantile(current, 0.99);
    return out;
  }
  const seconds = (now.at - previous.at) / 1000;
  for (const [key, name] of Object.entries(counters)) {
    out[key] = Math.max(0, sum(m, name) - sum(previous.metrics, name)) / seconds;
  }
  const before = new Map(buckets(previous.metrics));
  const deltas = current.map(([le, count]) => [le, count - (before.get(le) || 0)]);
  out.p50 = quantile(deltas, 0.5);
  out.p99 = quantile(deltas, 0.99);
  return out;
}

function format(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (Number.isInteger(value)) return String(value);
  return value < 10 ? value.toFixed(2) : value.toFixed(1);
}

function svg(tag, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function draw(chart, lines) {
  const all = lines.flat().filter((v) => typeof v === "number");
  const top = Math.max(1e-9, ...all) * 1.1;
  chart.replaceChildren(
    ...lines.map((points, i) => {
      const coords = points
        .map((v, x) => (typeof v === "number" ? `${x},${(100 - (v / top) * 100).toFixed(2)}` : null))
        .filter(Boolean)
        .join(" ");
      return svg("polyline", {
        points: coords,
        class: i === 0 ? "first" : "second",
        "vector-effect": "non-scaling-stroke",
      });
    }),
  );
}
