// The explorer page: a token kept in this tab's sessionStorage, a query form whose
// values live in the URL fragment, and per series a chart, its numbers and a CSV of what
// is shown. Raw points are asked for thinned to MAX_POINTS per series (`max_points`);
// bucketed views come from `GET /api/timeseries/`. Zooming into raw points asks for the
// narrower range (more detail); zooming into buckets keeps those in range.

import { Api, ApiError } from "./api.js";
import * as form from "./form.js";
import { drawChart, shape } from "./charts.js";
import { bucketsCsv, renderTable } from "./table.js";
import { appendSessions, renderLatest } from "./panels.js";

const TOKEN_KEY = "seriesd.token";
/** Points per series a raw view asks for: about two per pixel of a wide chart. */
const MAX_POINTS = 2000;
/** The largest JSON page of `/api/timeseries/points/`. */
const PAGE_LIMIT = 10000;
/** Paging stops here, so a huge range cannot fill the tab's memory. */
const MAX_ROWS = 200000;
const SESSIONS_PAGE = 20;
/** `as_of` that finds the last point of each series, however late. */
const END_OF_TIME = "2199-12-31T23:59:59Z";

const $ = (selector) => document.querySelector(selector);
const queryForm = $("#query");
const tokenForm = $("#token-form");

let api = null;
/** The query shown and its rows; `view` is the zoomed range, null when not zoomed. */
let state = null;
/** Charts on the page, to resize and destroy. */
let charts = [];
/** Each run's number: answers of an older run are dropped. */
let runs = 0;
/** Drawings so far, in `#results`' `data-renders`: a test waits for it to change. */
let renders = 0;

/** Seconds since the epoch of an API time (fractions beyond milliseconds dropped). */
function seconds(text) {
  return Date.parse(text.replace(/(\.\d{3})\d+/, "$1")) / 1e3;
}

/** RFC 3339 of seconds since the epoch, as the API takes it. */
function iso(secs) {
  return new Date(secs * 1e3).toISOString();
}

function status(text) {
  $("#status").textContent = text;
}

/** Shows an error where it belongs (a field, the token, or beside the Show button). */
function report(e) {
  status("");
  if (e instanceof ApiError) {
    form.showErrors(document, e.fields);
    if (e.status === 401) forgetToken(false);
  } else {
    form.showErrors(document, { form: [String(e.message || e)] });
    console.warn(e);
  }
}

// ---- the token --------------------------------------------------------------

function useToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  api = new Api(token);
  $("#query-fields").disabled = false;
  $("#token-state").textContent = "A token is set for this tab (kept in its sessionStorage only).";
}

function forgetToken(clearResults = true) {
  sessionStorage.removeItem(TOKEN_KEY);
  api = null;
  $("#query-fields").disabled = true;
  $("#token-state").textContent = "No token yet: paste one (seriesd token create).";
  if (clearResults) clearResultsView();
}

/** Offers the catalogue's series in the series field; a refused token is reported. */
async function loadCatalogue() {
  const page = await api.get("/api/metrictypes/", { limit: 1000 });
  $("#series-list").replaceChildren(
    ...page.results.map((t) => Object.assign(document.createElement("option"), { value: t.series, label: t.description })),
  );
}

// ---- running a query ----------------------------------------------------------

/** The link (a fragment) of the current query narrowed to one session. */
function sessionLink(sessionId) {
  const params = { ...(state ? state.params : form.readForm(queryForm)), session_id: sessionId };
  delete params.start_time;
  delete params.end_time;
  return form.toHash(params);
}

/** Goes to the view of `params` through the fragment, so Back returns to this one. */
function navigate(params) {
  const hash = form.toHash(params);
  if (location.hash === hash) run(params);
  else location.hash = hash;
}

/**
 * The points of `q`, every page, thinned by the server to MAX_POINTS per series. Stops
 * between pages once a newer view replaced this one (`ticket` behind `runs`): each page
 * holds one of the token's export slots on the server.
 */
async function fetchPoints(q, ticket) {
  const params = {
    user_id: q.user_id, series: q.series, session_id: q.session_id,
    start_time: q.start_time, end_time: q.end_time, max_points: MAX_POINTS,
  };
  const rows = [];
  let cursor = null;
  let cut = false;
  // Per series, how many points the range holds and how many the server kept.
  let totals = {};
  do {
    const page = await api.get("/api/timeseries/points/", { ...params, limit: PAGE_LIMIT, cursor });
    if (!cursor) totals = page.metadata?.series ?? {};
    for (const p of page.results) {
      rows.push({ time: p.time, t: seconds(p.time), series: p.series, session_id: p.session_id, value: p.value });
    }
    cursor = page.next_cursor;
    cut = Boolean(cursor) && rows.length >= MAX_ROWS;
  } while (cursor && !cut && ticket === runs);
  return { rows, cut, totals, csv: Api.url("/api/timeseries/points/", { ...params, format: "csv" }) };
}

/** The buckets of `q` from `GET /api/timeseries/`. */
async function fetchBuckets(q) {
  const answer = await api.get("/api/timeseries/", {
    user_id: q.user_id, series: q.series, session_id: q.session_id, interval: q.interval,
    agg_func: q.agg_func, tz: q.tz, fill: q.fill, smooth: q.smooth,
    start_time: q.start_time, end_time: q.end_time,
  });
  const rows = answer.results.map((r) => ({ time: r.bucket, t: seconds(r.bucket), series: r.series, value: r.value }));
  return { rows, cut: false, csv: null, metadata: answer.metadata };
}

/** Fills a missing start or end of `q` from the data: its first and its last point. */
async function completeRange(q) {
  const base = { user_id: q.user_id, series: q.series, session_id: q.session_id };
  if (q.session_id && !q.start_time && !q.end_time) {
    try {
      const s = await api.get(`/api/sessions/${encodeURIComponent(q.session_id)}/`);
      if (s.first_time) Object.assign(q, { start_time: s.first_time, end_time: s.last_time });
      return;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) throw new ApiError(404, { session_id: [e.message] });
      throw e;
    }
  }
  if (!q.start_time) {
    const first = await api.get("/api/timeseries/points/", { ...base, end_time: q.end_time, limit: 1 });
    if (first.results.length) q.start_time = first.results[0].time;
  }
  if (!q.end_time) {
    const latest = await api.get("/api/timeseries/latest/", { ...base, as_of: END_OF_TIME });
    const times = latest.results.map((r) => r.time).sort((a, b) => seconds(a) - seconds(b));
    if (times.length) q.end_time = times[times.length - 1];
  }
}

/** Whether `tz` is a zone this browser can write times in. */
function knownZone(tz) {
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

async function run(params) {
  const ticket = ++runs;
  form.clearErrors(document);
  if (!api) return;
  if (!params.user_id) {
    form.showErrors(document, { user_id: ["Enter the user's id."] });
    return;
  }
  const raw = (params.interval || form.RAW) === form.RAW;
  const tz = params.tz || "UTC";
  // Raw points never reach the server with a zone; the chart's axis is written in it.
  if (raw && !knownZone(tz)) {
    form.showErrors(document, { tz: [`Unknown time zone: ${tz}.`] });
    return;
  }
  status("Loading…");
  loadPanels(params);
  try {
    const q = { ...params };
    if (q.session_id || !raw) await completeRange(q);
    const answer = raw ? await fetchPoints(q, ticket) : await fetchBuckets(q);
    if (ticket !== runs) return;
    const range = q.start_time && q.end_time ? [seconds(q.start_time), seconds(q.end_time)] : null;
    state = { params, query: q, raw, tz, range, answer, view: null, shown: answer };
    render();
  } catch (e) {
    if (ticket === runs) report(e);
  }
}

/** Zooms every chart to `[lo, hi]` (seconds). */
async function zoom(lo, hi) {
  if (!state) return;
  const ticket = ++runs;
  state.view = [lo, hi];
  if (state.raw) {
    status("Loading…");
    try {
      const shown = await fetchPoints({ ...state.query, start_time: iso(lo), end_time: iso(hi) }, ticket);
      if (ticket !== runs) return;
      state.shown = shown;
    } catch (e) {
      if (ticket === runs) report(e);
      return;
    }
  } else {
    const rows = state.answer.rows.filter((r) => r.t >= lo && r.t <= hi);
    state.shown = { ...state.answer, rows };
  }
  render();
}

function resetZoom() {
  if (!state || !state.view) return;
  runs++;
  state.view = null;
  state.shown = state.answer;
  render();
}

// ---- drawing ------------------------------------------------------------------

function clearResultsView() {
  for (const c of charts) c.destroy();
  charts = [];
  state = null;
  $("#charts").replaceChildren();
  $("#summary").textContent = "";
  $("#reset").disabled = true;
  $("#csv").disabled = true;
  status("");
}

/** Draws `state.shown`: a card per series with its chart and its table. */
function render() {
  for (const c of charts) c.destroy();
  charts = [];
  const { rows, cut, totals = {} } = state.shown;
  const range = state.view || state.range;
  const bySeries = new Map();
  for (const r of rows) {
    if (!bySeries.has(r.series)) bySeries.set(r.series, []);
    bySeries.get(r.series).push(r);
  }
  // Raw points come in time order; the charts, like bucketed answers, go by name.
  const names = [...bySeries.keys()].sort();
  const box = $("#charts");
  box.replaceChildren();
  for (const series of names) {
    const list = bySeries.get(series);
    const card = document.createElement("article");
    card.className = "card";
    card.dataset.series = series;
    const title = document.createElement("h3");
    // Raw points the server thinned say so: "2,000 of 52,560 points".
    const total = state.raw ? totals[series]?.points : undefined;
    const of = total > list.length ? ` of ${total.toLocaleString("en")}` : "";
    const count = Object.assign(document.createElement("small"), {
      textContent: `${list.length.toLocaleString("en")}${of} ${state.raw ? "points" : "buckets"}`,
    });
    title.append(series, " ", count);
    const chartBox = Object.assign(document.createElement("div"), { className: "chart" });
    const tableBox = Object.assign(document.createElement("div"), { className: "table-box" });
    card.append(title, chartBox, tableBox);
    // In the page before drawing, so that the chart takes the card's width.
    box.appendChild(card);
    const shaped = shape(list);
    charts.push(drawChart(chartBox, shaped, { range, tz: state.tz, onSelect: zoom, onReset: resetZoom }));
    tableBox.appendChild(renderTable(list, shaped, sessionLink));
  }
  if (bySeries.size === 0) {
    box.appendChild(Object.assign(document.createElement("p"), { className: "empty", textContent: "No points in this range." }));
  }
  const results = $("#results");
  results.dataset.viewStart = range ? iso(range[0]) : "";
  results.dataset.viewEnd = range ? iso(range[1]) : "";
  results.dataset.zoomed = String(Boolean(state.view));
  results.dataset.renders = String(++renders);
  const what = state.raw ? `raw points (at most ${MAX_POINTS.toLocaleString("en")} a series)` : `${state.query.interval} buckets`;
  const span = range ? ` · ${iso(range[0]).slice(0, 16)} – ${iso(range[1]).slice(0, 16)} UTC` : "";
  $("#summary").textContent = `${bySeries.size} series · ${what}${span}`;
  $("#reset").disabled = !state.view;
  $("#csv").disabled = rows.length === 0;
  $("#csv").dataset.source = state.raw ? state.shown.csv : "answer";
  status(cut ? `Only the first ${MAX_ROWS.toLocaleString("en")} points are drawn: narrow the range.` : "");
}

/** Saves `blob` as a download named `name`. */
function save(blob, name) {
  const a = Object.assign(document.createElement("a"), { href: URL.createObjectURL(blob), download: name });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

/** The CSV of what is shown: the points export of the same query, or the buckets. */
async function downloadCsv() {
  if (!state) return;
  form.clearErrors(document);
  try {
    if (state.raw) {
      save(await (await api.fetch(state.shown.csv)).blob(), "points.csv");
    } else {
      save(new Blob([bucketsCsv(state.shown.rows)], { type: "text/csv" }), "timeseries.csv");
    }
  } catch (e) {
    // Its refusals (such as a 429 for too many exports at once) belong to the button.
    if (e instanceof ApiError && e.fields.form) {
      e.fields.csv = e.fields.form;
      delete e.fields.form;
    }
    report(e);
  }
}

// ---- side panels ---------------------------------------------------------------

let sessionsOffset = 0;

async function loadSessions(userId, append) {
  const list = $("#sessions-list");
  const more = $("#sessions-more");
  if (!append) {
    list.replaceChildren();
    sessionsOffset = 0;
  }
  const page = await api.get("/api/sessions/", { user_id: userId, limit: SESSIONS_PAGE, offset: sessionsOffset });
  appendSessions(list, page, sessionLink);
  sessionsOffset += page.results.length;
  more.hidden = !page.next;
  more.dataset.user = userId;
}

/** The latest values and sessions of the query's user; their errors stay in the panels. */
async function loadPanels(params) {
  const errors = { latest: $("#err-latest"), sessions: $("#err-sessions") };
  Object.values(errors).forEach((e) => (e.textContent = ""));
  const latest = api
    .get("/api/timeseries/latest/", { user_id: params.user_id, series: params.series })
    .then((answer) => renderLatest($("#latest-list"), answer, sessionLink));
  const sessions = loadSessions(params.user_id, false);
  for (const [name, p] of [["latest", latest], ["sessions", sessions]]) {
    p.catch((e) => (errors[name].textContent = e.message));
  }
}

// ---- wiring ----------------------------------------------------------------------

tokenForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  form.clearErrors(document);
  const input = tokenForm.elements.token;
  const token = input.value.trim();
  if (!token) {
    form.showErrors(document, { token: ["Paste an API token."] });
    return;
  }
  input.value = "";
  useToken(token);
  try {
    await loadCatalogue();
    const params = form.readForm(queryForm);
    if (params.user_id) navigate(params);
  } catch (err) {
    report(err);
  }
});

$("#forget").addEventListener("click", () => forgetToken());

queryForm.addEventListener("submit", (e) => {
  e.preventDefault();
  navigate(form.readForm(queryForm));
});

queryForm.elements.interval.addEventListener("change", () => form.showMode(queryForm));

for (const button of queryForm.querySelectorAll("[data-preset]")) {
  button.addEventListener("click", () => form.applyPreset(queryForm, button.dataset.preset));
}

$("#session-clear").addEventListener("click", () => {
  queryForm.elements.session_id.value = "";
  form.showMode(queryForm);
});

$("#reset").addEventListener("click", resetZoom);
$("#csv").addEventListener("click", downloadCsv);
$("#sessions-more").addEventListener("click", (e) => {
  loadSessions(e.target.dataset.user, true).catch((err) => ($("#err-sessions").textContent = err.message));
});

new ResizeObserver(() => {
  for (const c of charts) c.setSize({ width: Math.max(c.root.parentElement.clientWidth, 200), height: c.height });
}).observe($("#charts"));

/**
 * Fills the form from the fragment. At page load (`atLoad`) a `#token=` in it is kept for
 * the tab; later (a link followed while the page is open) it is dropped, so that no link
 * swaps the token of a page in use behind the user's back. Either way it leaves the
 * address at once.
 */
function fromLocation(atLoad) {
  const { token, params } = form.fromHash(location.hash);
  if (token) {
    if (atLoad) sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, "", location.pathname + location.search + form.toHash(params));
  }
  form.writeForm(queryForm, params);
  return params;
}

window.addEventListener("hashchange", () => {
  const params = fromLocation(false);
  if (api && params.user_id) run(params);
});

async function start() {
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  $("#zones").replaceChildren(...["UTC", ...zones].map((z) => Object.assign(document.createElement("option"), { value: z })));
  const params = fromLocation(true);
  if (!params.start_time && !params.end_time && !params.session_id) form.applyPreset(queryForm, "month");
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    forgetToken();
    return;
  }
  useToken(token);
  try {
    await loadCatalogue();
    if (params.user_id) run(form.readForm(queryForm));
  } catch (e) {
    report(e);
  }
}

start();
