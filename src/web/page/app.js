// The hopdns dashboard: plain JavaScript, no library, nothing loaded from elsewhere (the
// server sends CSP default-src 'self'). One module: the API client, then one part per view.
// The HTTP API it reads is described in docs/dashboard.md.

const OUTCOMES = ["cached", "resolved", "redirected", "blocked", "failed"];
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

const state = {
  view: "overview",
  session: { logged_in: false, csrf: null, auth_configured: false },
  overview: null,
  window: "hour",
  live: false,
  pollTimer: null,
  lastTick: 0,
  pausedUntil: null,
  offset: 0, // server clock minus ours, in seconds, from each overview's "now"
};

// ---- API -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** One JSON request; POSTs carry the CSRF token once logged in. */
async function api(path, body) {
  const init = { credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    if (state.session.csrf) init.headers["X-CSRF-Token"] = state.session.csrf;
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, `hopdns is not reachable (${e.message})`);
  }
  let data = null;
  try {
    data = await res.json();
  } catch (e) {
    data = null;
  }
  if (!res.ok) {
    const why = data && data.error ? data.error : `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, why);
  }
  return data;
}

function showError(message) {
  const el = $("error");
  el.textContent = message;
  el.hidden = !message;
}

// ---- formatting ------------------------------------------------------------------------

const intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const fmtInt = (n) => (n == null ? "–" : intFmt.format(n));

function fmtNum(n, digits) {
  if (n == null || Number.isNaN(n)) return "–";
  return n.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function fmtPct(ratio) {
  if (ratio == null || Number.isNaN(ratio)) return "–";
  return `${fmtNum(ratio * 100, 1)} %`;
}

function fmtMs(ms) {
  if (ms == null || Number.isNaN(ms)) return "–";
  if (ms >= 1000) return `${fmtNum(ms / 1000, 2)} s`;
  return `${fmtNum(ms, ms < 10 ? 2 : 1)} ms`;
}

function fmtBytes(n) {
  if (n == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${fmtNum(n, i === 0 ? 0 : 1)} ${units[i]}`;
}

const pad = (n) => String(n).padStart(2, "0");

function fmtClock(unixSecs, withSeconds) {
  const d = new Date(unixSecs * 1000);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return withSeconds ? `${hm}:${pad(d.getSeconds())}` : hm;
}

function fmtAgo(unixSecs) {
  if (unixSecs == null) return "never";
  const s = Math.max(0, Math.round(serverNow() - unixSecs));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(unixSecs * 1000).toLocaleString();
}

function fmtDuration(secs) {
  secs = Math.max(0, Math.floor(secs));
  const m = Math.floor(secs / 60);
  return m > 0 ? `${m} min ${pad(secs % 60)} s` : `${secs} s`;
}

const serverNow = () => Date.now() / 1000 + state.offset;

/** Creates an element with text and attributes; `children` are appended. */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c != null) e.append(c);
  }
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

// ---- views and navigation --------------------------------------------------------------

const VIEWS = {
  overview: { load: loadOverview, every: 0 },
  top: { load: loadTop, every: 10000 },
  log: { load: loadLog, every: 3000 },
  rules: { load: loadRules, every: 10000 },
  actions: { load: loadActions, every: 0 },
};
let viewTimer = null;

function showView(name) {
  if (!VIEWS[name]) name = "overview";
  state.view = name;
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.dataset.view !== name;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  clearInterval(viewTimer);
  viewTimer = null;
  refreshView();
  const every = VIEWS[name].every;
  if (every) viewTimer = setInterval(() => refreshView(true), every);
}

/** Loads the current view; `background` refreshes skip work the user did not ask for. */
async function refreshView(background) {
  const name = state.view;
  if (background && name === "log" && !$("log-follow").checked) return;
  try {
    await VIEWS[name].load();
    if (!background) showError("");
  } catch (e) {
    showError(e.message);
  }
}

// ---- overview --------------------------------------------------------------------------

async function loadOverview() {
  const data = await api(`/api/overview?window=${state.window}`);
  state.overview = data;
  applyOverview(data);
  drawChart();
}

/**
 * Fills the tiles and the blocking state from an overview or an SSE tick. A tick covers the
 * last hour: while the day is shown, it updates only what does not depend on the window
 * (queries per second, the cache now, the pause).
 */
function applyOverview(o, windowed = true) {
  // The server sends whole seconds: its clock is half a second on, on average.
  state.offset = o.now + 0.5 - Date.now() / 1000;
  $("t-qps").textContent = fmtNum(o.qps, o.qps < 10 ? 2 : 1);
  $("t-entries").textContent = fmtInt(o.cache.entries);
  $("t-bytes").textContent = fmtBytes(o.cache.bytes);
  state.pausedUntil = o.blocking ? o.blocking.paused_until : null;
  showBlocking();
  if (!windowed) return;
  const t = o.totals;
  $("t-queries").textContent = fmtInt(t.queries);
  $("t-blocked").textContent = t.queries ? fmtPct(t.blocked / t.queries) : "–";
  $("t-hit").textContent = fmtPct(o.cache.hit_ratio);
  $("t-p50").textContent = fmtMs(o.latency_ms.p50);
  $("t-p90").textContent = fmtMs(o.latency_ms.p90);
  $("t-p99").textContent = fmtMs(o.latency_ms.p99);
  $("t-upstream").textContent = fmtNum(o.upstream_per_query, 2);
}

/** An SSE tick: the newest bucket replaces or extends the hour's series. */
function onTick(tick) {
  state.live = true;
  state.lastTick = Date.now();
  // How many ticks arrived: tests and benches/web/ read it to see the stream is flowing.
  $("conn").dataset.ticks = String(Number($("conn").dataset.ticks || 0) + 1);
  stopPolling();
  setConn("live");
  const o = state.overview;
  if (o && state.window === "hour" && tick.series && tick.series.length) {
    const newest = tick.series[tick.series.length - 1];
    const series = o.series;
    const last = series[series.length - 1];
    if (last && last.t === newest.t) {
      series[series.length - 1] = newest;
    } else if (!last || newest.t > last.t) {
      series.push(newest);
      while (series.length > 1 && series[series.length - 1].t - series[0].t >= 3600) series.shift();
    }
    o.totals = tick.totals || totalsOf(series);
    o.now = tick.now;
  }
  applyOverview(tick, state.window === "hour");
  if (state.view === "overview" && state.window === "hour") drawChart();
}

function totalsOf(series) {
  const t = { queries: 0 };
  for (const k of OUTCOMES) t[k] = 0;
  for (const b of series) {
    for (const k of OUTCOMES) {
      t[k] += b[k] || 0;
      t.queries += b[k] || 0;
    }
  }
  return t;
}

/** The stacked bar chart of the overview's series, drawn as SVG. */
function drawChart() {
  const o = state.overview;
  const box = $("chart");
  if (!o) return;
  const series = o.series || [];
  // Drawn at the box's own size, so text keeps its shape on a phone.
  const W = Math.max(240, box.clientWidth || 720);
  const H = Math.max(120, box.clientHeight || 220);
  const left = 44;
  const bottom = 20;
  const top = 8;
  const plotW = W - left - 4;
  const plotH = H - top - bottom;
  const step = o.step || 10;
  const span = state.window === "day" ? 86400 : 3600;
  const end = series.length ? series[series.length - 1].t + step : o.now;
  const start = end - span;
  const max = Math.max(1, ...series.map((b) => OUTCOMES.reduce((s, k) => s + (b[k] || 0), 0)));
  const yMax = niceCeil(max);
  const barW = (plotW * step) / span;

  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    width: W,
    height: H,
    class: "bars",
    "aria-hidden": "true",
  });
  // Horizontal grid lines with their query counts.
  for (let i = 0; i <= 4; i += 1) {
    const v = (yMax * i) / 4;
    const y = top + plotH - (plotH * i) / 4;
    root.append(svg("line", { x1: left, x2: W - 4, y1: y, y2: y, class: "grid" }));
    const label = svg("text", { x: left - 4, y: y + 4, class: "axis", "text-anchor": "end" });
    label.textContent = fmtNum(v, v < 10 ? 1 : 0);
    root.append(label);
  }
  // Time labels: every 10 minutes for the hour, every 4 hours for the day (half as many
  // on a narrow screen).
  const narrow = W < 500 ? 2 : 1;
  const tick = (state.window === "day" ? 4 * 3600 : 600) * narrow;
  for (let t = Math.ceil(start / tick) * tick; t <= end; t += tick) {
    const x = left + ((t - start) / span) * plotW;
    root.append(svg("line", { x1: x, x2: x, y1: top + plotH, y2: top + plotH + 4, class: "grid" }));
    const label = svg("text", { x, y: H - 4, class: "axis", "text-anchor": "middle" });
    label.textContent = fmtClock(t, false);
    root.append(label);
  }
  for (const b of series) {
    if (b.t < start) continue;
    const x = left + ((b.t - start) / span) * plotW;
    let y = top + plotH;
    const g = svg("g", {});
    const parts = [];
    for (const k of OUTCOMES) {
      const v = b[k] || 0;
      if (!v) continue;
      const h = (v / yMax) * plotH;
      y -= h;
      g.append(svg("rect", { x, y, width: Math.max(barW * 0.85, 0.5), height: h, class: `s-${k}` }));
      parts.push(`${k} ${fmtInt(v)}`);
    }
    if (parts.length) {
      const title = svg("title", {});
      title.textContent = `${fmtClock(b.t, true)}–${fmtClock(b.t + step, true)}: ${parts.join(", ")}`;
      g.append(title);
      root.append(g);
    }
  }
  box.replaceChildren(root);
  const totals = o.totals || totalsOf(series);
  const per = step >= 60 ? `${step / 60} min` : `${step} s`;
  $("chart-caption").textContent =
    `Queries per ${per} bar over the last ${state.window}, stacked by outcome: ` +
    OUTCOMES.map((k) => `${fmtInt(totals[k])} ${k}`).join(", ") + ".";
  box.setAttribute(
    "aria-label",
    `Queries over the last ${state.window} by outcome: ` +
      OUTCOMES.map((k) => `${totals[k]} ${k}`).join(", "),
  );
}

/** The smallest of 1, 2, 5 × 10^k at or above `v`: a round top for the y axis. */
function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// ---- live updates: SSE, polling when the stream is down --------------------------------

function setConn(text) {
  const c = $("conn");
  c.textContent = text;
  c.className = text === "live" ? "good" : text === "offline" ? "bad" : "";
}

function startEvents() {
  if (!("EventSource" in window)) {
    startPolling();
    return;
  }
  const es = new EventSource("/api/events");
  es.addEventListener("tick", (ev) => {
    try {
      onTick(JSON.parse(ev.data));
    } catch (e) {
      showError(`bad event from hopdns: ${e.message}`);
    }
  });
  // The browser reconnects by itself; meanwhile poll so the numbers stay fresh.
  es.addEventListener("error", () => {
    state.live = false;
    startPolling();
  });
  // A stream that opens but stays silent counts as down too.
  setInterval(() => {
    if (state.live && Date.now() - state.lastTick > 7000) {
      state.live = false;
      startPolling();
    }
  }, 2000);
}

function startPolling() {
  if (state.pollTimer) return;
  setConn("polling");
  const poll = async () => {
    try {
      const o = await api(`/api/overview?window=${state.window}`);
      state.overview = o;
      applyOverview(o);
      if (state.view === "overview") drawChart();
      if (!state.live) setConn("polling");
    } catch (e) {
      setConn("offline");
    }
  };
  state.pollTimer = setInterval(poll, 5000);
}

function stopPolling() {
  clearInterval(state.pollTimer);
  state.pollTimer = null;
}

// ---- top lists -------------------------------------------------------------------------

async function loadTop() {
  const window_ = $("top-window").value;
  const n = $("top-n").value;
  const kinds = [
    ["domains", "top-domains", "queries"],
    ["blocked", "top-blocked", "blocked queries"],
    ["clients", "top-clients", "queries"],
  ];
  const lists = await Promise.all(
    kinds.map(([kind]) => api(`/api/top?kind=${kind}&window=${window_}&n=${n}`)),
  );
  kinds.forEach(([, id, what], i) => renderTop($(id), lists[i].items, what));
}

function renderTop(box, items, what) {
  if (!items.length) {
    box.replaceChildren(el("p", { class: "muted", text: "Nothing in this window." }));
    return;
  }
  const max = Math.max(...items.map((i) => i.count));
  const ol = el("ol", { class: "toplist" });
  for (const item of items) {
    const bar = el("span", { class: "bar", "aria-hidden": "true" });
    bar.style.width = `${(100 * item.count) / max}%`;
    ol.append(
      el(
        "li",
        { title: `${item.key}: ${fmtInt(item.count)} ${what}` },
        bar,
        el("span", { class: "key", text: item.key }),
        el("span", { class: "count", text: fmtInt(item.count) }),
      ),
    );
  }
  box.replaceChildren(ol);
}

// ---- query log and traces --------------------------------------------------------------

function logQuery() {
  const p = new URLSearchParams();
  for (const [id, key] of [
    ["log-client", "client"],
    ["log-name", "name"],
    ["log-qtype", "qtype"],
    ["log-outcome", "outcome"],
    ["log-rcode", "rcode"],
    ["log-limit", "limit"],
  ]) {
    const v = $(id).value.trim();
    if (v) p.set(key, key === "qtype" ? v.toUpperCase() : v);
  }
  return p.toString();
}

async function loadLog() {
  const data = await api(`/api/log?${logQuery()}`);
  const body = $("log-table").tBodies[0];
  const rows = data.entries.map((e) => {
    const d = new Date(e.t);
    const time = `${fmtClock(e.t / 1000, true)}.${String(d.getMilliseconds()).padStart(3, "0")}`;
    const trace = el("button", {
      type: "button",
      class: "link",
      text: e.name,
      title: `Trace ${e.name} ${e.qtype} hop by hop`,
    });
    trace.addEventListener("click", () => openTrace(e.name, e.qtype, trace));
    // The rule names its file and line in parentheses: the cell shows the name and action,
    // the tooltip the whole of it.
    const ruleName = e.rule ? e.rule.replace(/ \(.*\)$/, "") : "";
    const rule = e.rule ? `${ruleName}${e.action ? ` (${e.action})` : ""}` : "";
    const tr = el(
      "tr",
      { "data-name": e.name, "data-outcome": e.outcome, class: `o-${e.outcome}` },
      el("td", { text: time, title: d.toLocaleString() }),
      el("td", { text: e.client }),
      el("td", {}, trace),
      el("td", { text: e.qtype }),
      el("td", {}, el("span", { class: `tag s-${e.outcome}`, text: e.outcome, title: e.cache || null })),
      el("td", { text: e.rcode }),
      el("td", { text: rule, title: e.rule ? `${e.rule}${e.action ? `, action ${e.action}` : ""}` : null }),
      el("td", { class: "num", text: fmtInt(e.upstream) }),
      el("td", { class: "num", text: fmtNum(e.latency_ms, 1) }),
      el("td", { text: e.proto }),
    );
    return tr;
  });
  body.replaceChildren(...rows);
  $("log-empty").hidden = rows.length > 0;
}

let traceOpener = null;

function closeTrace() {
  $("trace").hidden = true;
  if (traceOpener) traceOpener.focus();
}

let traceQuestion = null;

async function openTrace(name, qtype, opener) {
  traceOpener = opener || null;
  traceQuestion = { name, qtype };
  const box = $("trace");
  const hops = $("trace-hops");
  box.hidden = false;
  $("trace-title").textContent = `Trace of ${name} ${qtype}`;
  hops.replaceChildren(el("li", { class: "muted", text: "Resolving…" }));
  box.focus();
  if (!state.session.logged_in) {
    hops.replaceChildren(
      el("li", { class: "muted", text: "Tracing sends queries to authorities: log in under Actions first." }),
    );
    return;
  }
  try {
    const q = new URLSearchParams({ name, type: qtype });
    if ($("trace-fresh").checked) q.set("fresh", "1");
    const res = await fetch(`/api/trace?${q}`, {
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": state.session.csrf || "" },
    });
    const data = await res.json().catch(() => null);
    if (!res.ok) throw new Error(data && data.error ? data.error : `${res.status} ${res.statusText}`);
    hops.replaceChildren(...data.events.map(renderHop));
    if (!data.events.length) hops.replaceChildren(el("li", { class: "muted", text: "No events." }));
  } catch (e) {
    hops.replaceChildren(el("li", { class: "bad", text: `Trace failed: ${e.message}` }));
  }
}

/** One hop event (the JSON of `hopdns trace --json`) as a list item. */
function renderHop(ev) {
  const li = el("li", { class: `hop hop-${ev.event}` });
  li.style.marginLeft = `${(ev.depth || 0) * 1.5}rem`;
  const head = (text) => el("span", { class: "what", text });
  const line = (text) => el("div", { class: "detail", text });
  const records = (rs) => (rs && rs.length ? el("pre", { text: rs.join("\n") }) : null);
  switch (ev.event) {
    case "start":
      li.append(head("start"), ` ${ev.question}`);
      break;
    case "cut":
      li.append(head("zone cut"), ` ${ev.zone} from ${ev.source}`);
      break;
    case "cache":
      li.append(head("cache"), ` ${ev.question} ${ev.rcode}`, records(ev.records));
      break;
    case "reply": {
      const server = ev.server_name ? `${ev.server_name} (${ev.server})` : ev.server;
      li.append(
        head(ev.kind),
        ` ${ev.question} at ${server} for ${ev.zone}: ${ev.rcode} ${(ev.flags || "").trim()}`,
        el("span", { class: "ms", text: ` ${fmtMs(ev.ms)} ${ev.transport}` }),
      );
      const d = ev.detail || {};
      if (d.records) li.append(records(d.records));
      if (d.target) li.append(line(`→ ${d.target}`));
      if (d.ns) li.append(line(`NS ${d.ns.join(", ")}`));
      if (d.glue && d.glue.length) li.append(line(`glue ${d.glue.map((g) => `${g.name} ${g.addr}`).join(", ")}`));
      if (d.soa) li.append(line(`SOA ${d.soa}`));
      if (d.why) li.append(line(d.why));
      break;
    }
    case "noreply":
      li.append(head("no reply"), ` ${ev.question} at ${ev.server} for ${ev.zone}: ${ev.error}`,
        el("span", { class: "ms", text: ` after ${fmtMs(ev.ms)}` }));
      break;
    case "fallback":
      li.append(head("fallback"), ` ${ev.server} for ${ev.zone}`);
      break;
    case "local":
      li.append(head("local zone"), ` ${ev.question} in ${ev.zone}: ${ev.rcode}`, records(ev.records));
      break;
    case "forwarded":
    case "stub":
      li.append(head(ev.event), ` ${ev.zone} via ${ev.server} (${ev.via})`,
        el("span", { class: "ms", text: ` ${fmtMs(ev.rtt_ms)}` }));
      break;
    case "forward_failed":
      li.append(head("forward failed"), ` ${ev.zone}: ${ev.failure}`);
      break;
    case "lookup_ns":
      li.append(head("look up NS"), ` ${ev.ns}`);
      break;
    case "redirect":
      li.append(head("rule"), ` ${ev.question}: ${ev.rule} (${ev.action}, ${ev.origin})`);
      for (const m of ev.members || []) {
        li.append(line(`${m.chosen ? "→ " : ""}${m.address} ${m.up ? "up" : "down"} weight ${m.weight}` +
          (m.check_ms != null ? ` check ${fmtMs(m.check_ms)}` : "")));
      }
      break;
    case "dnssec":
      li.append(head("dnssec"), ` ${ev.zone}: ${ev.step}`);
      break;
    case "validated":
      li.append(head("validated"), ` ${ev.state}${ev.ede != null ? ` EDE ${ev.ede}` : ""}${ev.reason ? `: ${ev.reason}` : ""}`);
      break;
    case "done":
      li.append(head("done"), ` ${ev.rcode}${ev.failure ? ` (${ev.failure})` : ""}${ev.dropped ? " (dropped)" : ""}`,
        records(ev.answers));
      if (ev.soa) li.append(line(`SOA ${ev.soa}`));
      break;
    default:
      li.append(head(ev.event), ` ${JSON.stringify(ev)}`);
  }
  return li;
}

// ---- rules and pools -------------------------------------------------------------------

let lastRules = null;

async function loadRules() {
  lastRules = await api("/api/rules");
  renderRules();
}

function renderRules() {
  const r = lastRules;
  if (!r) return;
  const files = r.files.map((f) =>
    el(
      "tr",
      {},
      el("td", { text: f.path }),
      el("td", { class: "num", text: fmtInt(f.entries) }),
      el("td", {
        text: Object.entries(f.by_action)
          .map(([a, n]) => `${a} ${fmtInt(n)}`)
          .join(", "),
      }),
      el("td", { text: fmtAgo(f.loaded_at), title: new Date(f.loaded_at * 1000).toLocaleString() }),
    ),
  );
  $("rule-files").tBodies[0].replaceChildren(...files);
  $("rules-none").hidden = files.length > 0;

  const pools = r.pools.map((p) => {
    const up = p.members.filter((m) => m.up).length;
    const table = el(
      "table",
      {},
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          el("th", { scope: "col", text: "Member", title: "The member's address" }),
          el("th", { scope: "col", text: "Health", title: "up: its last checks passed; down: they failed" }),
          el("th", { scope: "col", text: "Last check", title: "When the health check last ran" }),
          el("th", { scope: "col", text: "Latency", title: "How long the last health check took" }),
        ),
      ),
      el(
        "tbody",
        {},
        ...p.members.map((m) =>
          el(
            "tr",
            {},
            el("td", { text: m.addr }),
            el("td", {}, el("span", { class: `tag ${m.up ? "good" : "bad"}`, text: m.up ? "up" : "down" })),
            el("td", { text: fmtAgo(m.last_check) }),
            el("td", { class: "num", text: fmtMs(m.latency_ms) }),
          ),
        ),
      ),
    );
    return el(
      "div",
      { class: "pool" },
      el("h4", { text: `${p.name}: ${up} of ${p.members.length} up` }),
      el("div", { class: "scroll" }, table),
    );
  });
  $("pools").replaceChildren(...pools);
  $("pools-none").hidden = pools.length > 0;

  const needle = $("rules-filter").value.trim().toLowerCase();
  const rules = r.rules
    .filter(
      (x) =>
        !needle ||
        x.rule.toLowerCase().includes(needle) ||
        (x.name || "").toLowerCase().includes(needle) ||
        x.action.includes(needle),
    )
    .sort((a, b) => b.hits - a.hits || a.rule.localeCompare(b.rule))
    .slice(0, 500)
    .map((x) =>
      el(
        "tr",
        {},
        // `rule` is where the rule is written (file:line); `name` what it matches (an
        // imported list's first entry, with `names` entries in all).
        el("td", {
          text: x.name ? `${x.name}${x.names > 1 ? ` and ${fmtInt(x.names - 1)} more` : ""}` : x.rule,
          title: x.name ? x.rule : null,
        }),
        el("td", { text: x.action }),
        el("td", { class: "num", text: fmtInt(x.hits) }),
      ),
    );
  $("rule-hits").tBodies[0].replaceChildren(...rules);
}

// ---- session and actions ---------------------------------------------------------------

async function loadSession() {
  state.session = await api("/api/session");
  showSession();
}

function showSession() {
  const s = state.session;
  $("session-badge").textContent = s.logged_in ? "logged in" : "read-only";
  $("auth-missing").hidden = s.auth_configured;
  $("login-form").hidden = !s.auth_configured || s.logged_in;
  $("actions").hidden = !s.logged_in;
}

async function loadActions() {
  await loadSession();
  showBlocking();
}

function showBlocking() {
  const until = state.pausedUntil;
  const left = until ? until - serverNow() : 0;
  const badge = $("blocking-badge");
  if (left > 0) {
    const text = `Blocking paused: ${fmtDuration(left)} left (until ${fmtClock(until, false)})`;
    $("pause-state").textContent = text;
    badge.textContent = `blocking paused, ${fmtDuration(left)} left`;
    badge.hidden = false;
  } else {
    $("pause-state").textContent = "Blocking is on.";
    badge.hidden = true;
  }
}

/** Runs an action; a lost session sends the user back to the login form. */
async function act(path, body, out) {
  try {
    const res = await api(path, body);
    showError("");
    return res;
  } catch (e) {
    if (e.status === 401) {
      state.session.logged_in = false;
      state.session.csrf = null;
      showSession();
    }
    if (out) {
      out.textContent = e.message;
      out.className = "bad";
    } else {
      showError(e.message);
    }
    return null;
  }
}

function wireActions() {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const err = $("login-error");
    err.hidden = true;
    try {
      const res = await api("/api/login", { password: $("login-password").value });
      $("login-password").value = "";
      state.session = { ...state.session, logged_in: true, csrf: res.csrf };
      showSession();
      $("pause-minutes").focus();
    } catch (e) {
      err.textContent =
        e.status === 401 ? "Wrong password." : e.status === 429 ? `Too many attempts: ${e.message}` : e.message;
      err.hidden = false;
    }
  });
  $("logout-submit").addEventListener("click", async () => {
    await act("/api/logout", {});
    state.session = { ...state.session, logged_in: false, csrf: null };
    showSession();
  });
  const pause = async (minutes) => {
    const res = await act("/api/pause", { minutes });
    if (res) {
      state.pausedUntil = res.paused_until;
      showBlocking();
    }
  };
  $("pause-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    pause(Number($("pause-minutes").value));
  });
  $("resume-submit").addEventListener("click", () => pause(0));
  $("reload-submit").addEventListener("click", async () => {
    const out = $("reload-result");
    out.textContent = "Reloading…";
    out.className = "";
    const res = await act("/api/reload", {}, out);
    if (res) out.textContent = res.message;
  });
  $("flush-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("flush-result");
    out.className = "";
    const name = $("flush-name").value.trim() || null;
    const res = await act("/api/flush", { name }, out);
    if (res) out.textContent = `${name ? name : "Whole cache"}: ${fmtInt(res.removed)} entries removed.`;
  });
  $("lookup-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("lookup-result");
    out.className = "";
    out.textContent = "Looking up…";
    const name = $("lookup-name").value.trim();
    const type = $("lookup-type").value;
    const res = await act("/api/lookup", { name, type }, out);
    if (!res) return;
    out.replaceChildren(
      el("p", {
        text: `${name} ${type}: ${res.rcode}${res.ad ? ", validated (AD)" : ""}, ${res.answers.length} answer${res.answers.length === 1 ? "" : "s"}`,
      }),
      res.answers.length ? el("pre", { text: res.answers.join("\n") }) : null,
    );
  });
}

// ---- start -----------------------------------------------------------------------------

function wire() {
  $("overview-window").addEventListener("change", (ev) => {
    state.window = ev.target.value;
    refreshView();
  });
  $("top-window").addEventListener("change", () => refreshView());
  $("top-n").addEventListener("change", () => refreshView());
  $("log-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    refreshView();
  });
  for (const id of ["log-outcome", "log-rcode", "log-limit"]) {
    $(id).addEventListener("change", () => refreshView());
  }
  $("trace-close").addEventListener("click", closeTrace);
  $("trace-fresh").addEventListener("change", () => {
    if (traceQuestion) openTrace(traceQuestion.name, traceQuestion.qtype, traceOpener);
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !$("trace").hidden) closeTrace();
  });
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => state.view === "overview" && drawChart(), 150);
  });
  $("rules-filter").addEventListener("input", renderRules);
  wireActions();
  window.addEventListener("hashchange", () => showView(location.hash.slice(1)));
  // The countdown of a pause, once a second.
  setInterval(showBlocking, 1000);
}

async function main() {
  wire();
  try {
    await loadSession();
  } catch (e) {
    showError(e.message);
  }
  showView(location.hash.slice(1) || "overview");
  // The overview's numbers feed the header (pause state) on every view.
  if (state.view !== "overview") loadOverview().catch((e) => showError(e.message));
  startEvents();
}

main();
