// The operator view: needs the operator credential (kept in this tab's sessionStorage),
// shows the audit chain's status, pooled budgets, datasets, and plots request rates and
// latencies from the node's own metrics, sampled while the page is open.
import { el, explain, getJSON, show } from "./common.js";

const KEY = "fednode.operator";
const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 5000;
const samples = []; // [seconds, total requests]
let timer = null;

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function rows(selector, items, cells) {
  document.querySelector(`${selector} tbody`).replaceChildren(
    ...items.map((item) => el("tr", {}, ...cells(item))));
}

function drawStatus(doc) {
  const audit = doc.audit;
  const line = document.getElementById("op-audit");
  if (!audit.enabled) {
    line.textContent = "The audit log is disabled on this node.";
  } else {
    line.textContent = `${audit.ok ? "Intact" : "Broken"}: ${audit.entries} entries checked` +
      (audit.checkpointsChecked ? ", signed checkpoints checked with the node's key." : ".");
    line.dataset.ok = String(audit.ok);
    line.dataset.entries = String(audit.entries);
    document.getElementById("op-audit-problems").replaceChildren(
      ...audit.problems.map((p) => el("li", { class: "error", text: `line ${p.line}: ${p.kind}: ${p.detail}` })),
      ...audit.notices.map((p) => el("li", { text: `note, line ${p.line}: ${p.kind}: ${p.detail}` })));
    rows("#op-recent", audit.recent, (e) => {
      const q = e.query || {};
      const what = e.event ? `event: ${e.event}` : `${q.method || ""} ${q.path || q.route || ""}`.trim();
      return [el("th", { scope: "row", text: e.seq ?? "" }), el("td", { text: e.ts }),
        el("td", { text: e.requester ?? "" }), el("td", { text: what }),
        el("td", { text: q.outcome ?? "" }),
        el("td", { text: e.budget ? `llr ${e.budget.llr ?? 0}, ε ${e.budget.epsilon ?? 0}` : "" })];
    });
  }
  rows("#op-budgets", doc.budgets || [], (b) => [
    el("th", { scope: "row", text: b.dataset }), el("td", { text: b.class }),
    el("td", { text: `${b.llrSpent.toPrecision(3)} of ${b.llrLimit.toPrecision(3)}` }),
    el("td", { text: `${b.epsilonSpent.toFixed(2)} of ${b.epsilonLimit.toFixed(2)}` })]);
  rows("#op-datasets", doc.datasets, (d) => [
    el("th", { scope: "row", text: d.id }), el("td", { text: d.assembly }),
    el("td", { text: d.samples }), el("td", { text: d.variants }),
    el("td", { text: d.lastIngest ?? "unknown" })]);
}

function quantile(hist, q) {
  if (!hist.count) return 0;
  const target = q * hist.count;
  for (const [le, cumulative] of hist.buckets) if (cumulative >= target) return le ?? Infinity;
  return Infinity;
}

function drawRate() {
  const w = 600, h = 160, pad = 36;
  const rates = samples.slice(1).map(([t, n], i) => [t, (n - samples[i][1]) / (t - samples[i][0])]);
  const plot = svg("svg", { viewBox: `0 0 ${w} ${h}`, role: "img",
    "aria-label": rates.length ? `Requests per second, latest ${rates.at(-1)[1].toFixed(2)}` : "Collecting samples" });
  const top = Math.max(1, ...rates.map(([, r]) => r));
  plot.append(svg("line", { x1: pad, y1: h - pad, x2: w - 4, y2: h - pad, class: "axis" }),
    svg("line", { x1: pad, y1: 4, x2: pad, y2: h - pad, class: "axis" }),
    svg("text", { x: 2, y: 14, class: "tick" }, top.toFixed(1)),
    svg("text", { x: 2, y: h - pad, class: "tick" }, "0"),
    svg("text", { x: pad, y: h - 8, class: "tick" }, `last ${Math.round((POLL_MS * 60) / 60000)} min`));
  if (rates.length) {
    const t0 = rates[0][0], span = Math.max(1, rates.at(-1)[0] - t0);
    const points = rates.map(([t, r]) =>
      `${pad + ((t - t0) / span) * (w - pad - 8)},${h - pad - (r / top) * (h - pad - 8)}`);
    plot.append(svg("polyline", { points: points.join(" "), class: "series" }));
  }
  document.getElementById("op-rate").replaceChildren(plot);
}

function drawLatency(latency) {
  const routes = latency.filter((l) => l.count).sort((a, b) => b.count - a.count).slice(0, 10);
  const w = 600, rowH = 22, left = 230, h = rowH * Math.max(1, routes.length) + 10;
  const ms = routes.map((r) => [quantile(r, 0.5) * 1000, quantile(r, 0.95) * 1000]);
  const finite = ms.flat().filter(Number.isFinite);
  const top = Math.max(1, ...finite);
  const plot = svg("svg", { viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": "Latency by route" });
  routes.forEach((r, i) => {
    const [p50, p95] = ms[i].map((v) => (Number.isFinite(v) ? v : top));
    const y = 5 + i * rowH, scale = (w - left - 90) / top;
    plot.append(svg("text", { x: 0, y: y + 14, class: "tick" }, r.route.slice(0, 34)),
      svg("rect", { x: left, y: y + 2, width: Math.max(1, p95 * scale), height: 16, class: "p95" }),
      svg("rect", { x: left, y: y + 6, width: Math.max(1, p50 * scale), height: 8, class: "p50" }),
      svg("text", { x: left + p95 * scale + 4, y: y + 14, class: "tick" },
        `${p50.toFixed(1)} / ${p95.toFixed(1)} ms`));
  });
  document.getElementById("op-latency").replaceChildren(plot);
}

async function poll(credential) {
  const { status, body } = await getJSON("/portal/operator/metrics", { bearer: credential });
  if (status !== 200) return;
  const total = body.requests.reduce((sum, r) => sum + r.count, 0);
  samples.push([performance.now() / 1000, total]);
  if (samples.length > 61) samples.shift();
  drawRate();
  drawLatency(body.latency);
}

async function open(credential) {
  const error = document.getElementById("op-error");
  const { status, body } = await getJSON("/portal/operator/status", { bearer: credential });
  if (status !== 200) {
    sessionStorage.removeItem(KEY);
    document.getElementById("op-view").hidden = true;
    show(error, `The operator view is refused. ${explain(status, body)}`);
    document.body.dataset.ready = "true";
    return;
  }
  sessionStorage.setItem(KEY, credential);
  show(error, "");
  drawStatus(body);
  document.getElementById("op-view").hidden = false;
  await poll(credential);
  clearInterval(timer);
  timer = setInterval(() => poll(credential), POLL_MS);
  document.body.dataset.ready = "true";
}

document.getElementById("op-form").addEventListener("submit", (event) => {
  event.preventDefault();
  open(document.getElementById("op-token").value.trim());
});
const saved = sessionStorage.getItem(KEY);
if (saved) open(saved); else document.body.dataset.ready = "true";
