/**
 * The live dashboard of `brigade up` (`/dashboard` on the admin listener): one self-contained
 * HTML page, no external asset (works offline, passes any CSP that allows inline code on its
 * own origin), which polls `/dashboard/data` every second and draws inline SVG charts:
 * requests per second per tier with 5xx, latency percentiles (p50/p95/p99) of each tier over the
 * last minutes, the workers of both tiers and their state, the app workers' health as the web
 * workers see them, and the cache hit ratio. It keeps polling through reloads and restarts of
 * the stack (a failed poll shows "reconnecting" and the next one resumes).
 */

const css = `
:root { --fg:#1d2433; --muted:#6b7385; --bg:#f6f7f9; --card:#fff; --line:#e3e6eb;
  --web:#2b6cd4; --app:#1a9a6c; --err:#d2453b; --p95:#c98a12; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
header { display:flex; align-items:baseline; gap:1rem; padding:.8rem 1.2rem; background:#1d2433; color:#fff; }
header h1 { margin:0; font-size:1.05rem; font-weight:600; }
header .meta { color:#b9c0cf; font-size:.85rem; }
#state { padding:.1rem .5rem; border-radius:.8rem; font-size:.8rem; font-weight:600; background:#556; }
#state.ready { background:#1a9a6c; } #state.starting { background:#c98a12; } #state.stopping, #state.offline { background:#d2453b; }
main { display:grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap:1rem; padding:1rem 1.2rem; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:.8rem 1rem; min-width:0; }
section h2 { margin:0 0 .5rem; font-size:.9rem; font-weight:600; }
.legend { display:flex; gap:.9rem; font-size:.78rem; color:var(--muted); margin-bottom:.3rem; flex-wrap:wrap; }
.legend i { display:inline-block; width:.8rem; height:.2rem; vertical-align:middle; margin-right:.3rem; }
svg { width:100%; height:170px; display:block; }
table { width:100%; border-collapse:collapse; font-size:.8rem; }
th, td { text-align:left; padding:.22rem .4rem; border-bottom:1px solid var(--line); white-space:nowrap; }
th { color:var(--muted); font-weight:500; }
.pill { padding:0 .4rem; border-radius:.6rem; font-size:.75rem; background:#e9ecf1; }
.pill.ready, .pill.up { background:#d5f2e6; color:#0f6d4b; } .pill.booting, .pill.unready, .pill.draining { background:#fbeccd; color:#7a5200; }
.pill.stopping, .pill.failed, .pill.down, .pill.unhealthy { background:#f8d9d6; color:#8c231b; }
.big { font-size:2rem; font-weight:600; } .muted { color:var(--muted); }
`;

const script = `
const $ = (id) => document.getElementById(id);
const fmtMs = (s) => s == null ? "–" : s < 1 ? (s * 1000).toFixed(s < 0.01 ? 2 : 1) + " ms" : s.toFixed(2) + " s";
const fmtAge = (ms) => { const s = Math.floor(ms / 1000); return s < 60 ? s + "s" : s < 3600 ? Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s" : Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m"; };
const mib = (b) => (b / 1048576).toFixed(1) + " MiB";
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const SVGNS = "http://www.w3.org/2000/svg";

function chart(svg, samples, series, opts) {
  const W = 600, H = 170, L = 46, B = 18, T = 6;
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  svg.setAttribute("preserveAspectRatio", "none");
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const now = samples.length ? samples[samples.length - 1].t : Date.now();
  const span = opts.span;
  let max = opts.min || 0;
  for (const s of series) for (const p of samples) { const v = s.get(p); if (v != null && v > max) max = v; }
  if (max <= 0) max = 1;
  if (!opts.fixed) max *= 1.1;
  const x = (t) => L + (W - L - 4) * (1 - (now - t) / span);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const el = (name, attrs, text) => { const e = document.createElementNS(SVGNS, name); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text != null) e.textContent = text; svg.appendChild(e); return e; };
  el("rect", { x: L, y: T, width: W - L - 4, height: H - T - B, fill: "#fbfcfd", stroke: "#e3e6eb" });
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i, yy = y(v);
    el("line", { x1: L, x2: W - 4, y1: yy, y2: yy, stroke: "#eef0f3" });
    el("text", { x: L - 4, y: yy + 4, "text-anchor": "end", "font-size": 10, fill: "#6b7385" }, opts.fmt(v));
  }
  for (let m = 0; m <= span / 60000; m++) {
    const xx = x(now - m * 60000);
    el("text", { x: xx, y: H - 4, "text-anchor": m === 0 ? "end" : "middle", "font-size": 10, fill: "#6b7385" }, m === 0 ? "now" : "-" + m + "m");
  }
  for (const s of series) {
    let d = "", pen = false;
    for (const p of samples) {
      const v = s.get(p);
      if (v == null || now - p.t > span) { pen = false; continue; }
      d += (pen ? "L" : "M") + x(p.t).toFixed(1) + " " + y(v).toFixed(1);
      pen = true;
    }
    if (d) el("path", { d, fill: "none", stroke: s.color, "stroke-width": 2, "stroke-dasharray": s.dash || "", "vector-effect": "non-scaling-stroke" });
  }
}

function legend(id, series) {
  $(id).innerHTML = series.map((s) => '<span><i style="background:' + s.color + '"></i>' + esc(s.label) + "</span>").join("");
}

const rpsSeries = [
  { label: "web req/s", color: "var(--web)", get: (p) => p.rps.web },
  { label: "app req/s", color: "var(--app)", get: (p) => p.rps.app },
  { label: "5xx/s (web)", color: "var(--err)", get: (p) => p.errors.web },
];
const latSeries = (tier) => [
  { label: tier + " p50", color: "var(--" + tier + ")", get: (p) => p.p50[tier] },
  { label: tier + " p95", color: "var(--p95)", get: (p) => p.p95[tier], dash: "5 3" },
  { label: tier + " p99", color: "var(--err)", get: (p) => p.p99[tier], dash: "2 3" },
];
const cacheSeries = [{ label: "hit ratio", color: "var(--web)", get: (p) => p.cacheHitRatio == null ? null : p.cacheHitRatio * 100 }];
legend("rps-legend", rpsSeries);
legend("lat-web-legend", latSeries("web"));
legend("lat-app-legend", latSeries("app"));
legend("cache-legend", cacheSeries);

let polls = 0;
async function poll() {
  let d;
  try {
    const r = await fetch("/dashboard/data", { cache: "no-store" });
    if (!r.ok) throw new Error("status " + r.status);
    d = await r.json();
  } catch (e) {
    $("state").textContent = "reconnecting";
    $("state").className = "offline";
    return;
  }
  polls++;
  document.body.dataset.polls = String(polls);
  const s = d.status;
  $("state").textContent = s.stopping ? "stopping" : s.ready ? "ready" : "starting";
  $("state").className = s.stopping ? "stopping" : s.ready ? "ready" : "starting";
  $("meta").textContent = "master " + s.pid + " · up " + fmtAge(d.now - s.startedAt) + " · app " + s.app + " (" + s.workerClass + ") · " + s.listeners.join(", ");
  $("gen").textContent = "app generation " + s.tiers.app.generation + " · web generation " + s.tiers.web.generation;
  document.body.dataset.appGeneration = String(s.tiers.app.generation);
  const span = 5 * 60000;
  chart($("rps"), d.samples, rpsSeries, { span, fmt: (v) => v >= 100 ? Math.round(v) : v.toFixed(1) });
  chart($("lat-web"), d.samples, latSeries("web"), { span, fmt: fmtMs });
  chart($("lat-app"), d.samples, latSeries("app"), { span, fmt: fmtMs });
  chart($("cache"), d.samples, cacheSeries, { span, min: 100, fixed: true, fmt: (v) => Math.round(v) + "%" });
  const last = d.samples[d.samples.length - 1];
  $("now-rps").textContent = last ? Math.round(last.rps.web) + " req/s" : "–";
  const rows = [];
  for (const tier of ["web", "app"]) {
    for (const w of s.tiers[tier].workers) {
      rows.push("<tr><td>" + tier + "</td><td>" + w.id + "</td><td>" + w.pid + '</td><td><span class="pill ' + esc(w.state) + '">' + esc(w.state) + "</span></td><td>" + w.generation + "</td><td>" + fmtAge(w.ageMs) + "</td><td>" + w.requests + "</td><td>" + w.inflight + "</td><td>" + mib(w.rss) + "</td><td>" + fmtMs(w.lagP99) + "</td></tr>");
    }
  }
  $("workers").innerHTML = rows.join("");
  $("peers").innerHTML = s.peers.length === 0 ? '<tr><td colspan="3" class="muted">no app worker ready</td></tr>' : s.peers.map((p) =>
    "<tr><td>" + esc(p.address.replace(/^.*\\//, "")) + "</td><td>" + (p.pid || "–") + "</td><td>" +
    (p.views.length ? p.views.map((v) => '<span class="pill ' + esc(v.state) + '">' + esc(v.state) + "</span> " + v.active + " active, " + v.requests + " sent, " + v.failures + " failed").join("<br>") : '<span class="muted">not reported yet</span>') + "</td></tr>").join("");
  if (s.cache) {
    const c = s.cache, hits = (c.HIT || 0) + (c.STALE || 0) + (c.UPDATING || 0) + (c.REVALIDATED || 0), all = hits + (c.MISS || 0) + (c.EXPIRED || 0);
    $("cache-now").textContent = all ? Math.round(hits / all * 100) + "% hits" : "no lookups yet";
  } else $("cache-now").textContent = "cache off";
  $("reload").textContent = s.lastReload ? "last reload: " + new Date(s.lastReload.at).toLocaleTimeString() + " " + (s.lastReload.ok ? "complete" : "rolled back: " + s.lastReload.reason) : "no reload yet";
}
poll();
setInterval(poll, 1000);
`;

export function dashboardPage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Brigade dashboard</title>
<style>${css}</style>
</head>
<body>
<header><h1>Brigade</h1><span id="state">…</span><span class="meta" id="meta"></span></header>
<main>
<section><h2>Requests per second <span class="muted" id="now-rps"></span></h2><div class="legend" id="rps-legend"></div><svg id="rps" role="img" aria-label="requests per second"></svg></section>
<section><h2>Latency, web tier (client to last byte)</h2><div class="legend" id="lat-web-legend"></div><svg id="lat-web" role="img" aria-label="web latency"></svg></section>
<section><h2>Latency, app tier</h2><div class="legend" id="lat-app-legend"></div><svg id="lat-app" role="img" aria-label="app latency"></svg></section>
<section><h2>Cache <span class="muted" id="cache-now"></span></h2><div class="legend" id="cache-legend"></div><svg id="cache" role="img" aria-label="cache hit ratio"></svg></section>
<section><h2>Workers <span class="muted" id="gen"></span></h2><table><thead><tr><th>tier</th><th>slot</th><th>pid</th><th>state</th><th>gen</th><th>age</th><th>requests</th><th>in flight</th><th>memory</th><th>lag p99</th></tr></thead><tbody id="workers"></tbody></table><p class="muted" id="reload"></p></section>
<section><h2>App workers as the web tier sees them</h2><table><thead><tr><th>socket</th><th>pid</th><th>per web worker</th></tr></thead><tbody id="peers"></tbody></table></section>
</main>
<script>${script}</script>
</body>
</html>
`;
}
