// The query form: its values as API parameters, the same parameters kept in the URL
// fragment (so a view can be bookmarked or linked; fragments never reach the server),
// the range presets, and error messages shown next to the field they name.

/** The form's fields, named as the API's parameters. */
export const FIELDS = [
  "user_id", "series", "interval", "agg_func", "tz", "fill", "smooth",
  "start_time", "end_time", "session_id",
];

/** The interval value that asks for raw points instead of buckets. */
export const RAW = "raw";

/** The form's values; empty fields are left out. */
export function readForm(form) {
  const params = {};
  for (const name of FIELDS) {
    const value = form.elements[name].value.trim();
    if (value !== "") params[name] = value;
  }
  return params;
}

/** Sets every field from `params` (absent ones emptied, selects to their default). */
export function writeForm(form, params) {
  for (const name of FIELDS) {
    const el = form.elements[name];
    el.value = params[name] ?? (el.tagName === "SELECT" ? el.options[0].value : "");
  }
  showMode(form);
}

/** Greys out what only applies to buckets while raw points are asked for. */
export function showMode(form) {
  const raw = form.elements.interval.value === RAW;
  for (const name of ["agg_func", "fill", "smooth"]) form.elements[name].disabled = raw;
  const session = form.elements.session_id.value;
  const chip = form.querySelector("#session-chip");
  chip.hidden = session === "";
  chip.querySelector("span").textContent = session ? `Session ${session.slice(0, 8)}…` : "";
  chip.title = session;
}

/** The URL fragment holding `params` (and never the token). */
export function toHash(params) {
  const query = new URLSearchParams();
  for (const name of FIELDS) if (params[name]) query.set(name, params[name]);
  return "#" + query.toString();
}

/** The token and the parameters a fragment holds (`#token=…&user_id=…`). */
export function fromHash(hash) {
  const query = new URLSearchParams(hash.replace(/^#/, ""));
  const params = {};
  for (const name of FIELDS) if (query.get(name)) params[name] = query.get(name);
  return { token: query.get("token"), params };
}

/** RFC 3339 in UTC to the minute, as the range fields and the API take it. */
export function isoMinute(date) {
  return date.toISOString().slice(0, 16) + ":00Z";
}

const PRESET_DAYS = { day: 1, week: 7, month: 30, year: 365 };

/** Fills start and end for a preset: the last day, week, month or year, or everything. */
export function applyPreset(form, preset, now = new Date()) {
  if (preset === "all") {
    form.elements.start_time.value = "";
    form.elements.end_time.value = "";
    return;
  }
  const start = new Date(now.getTime() - PRESET_DAYS[preset] * 86400e3);
  form.elements.start_time.value = isoMinute(start);
  form.elements.end_time.value = isoMinute(now);
}

/** Empties every error message and unmarks every field. */
export function clearErrors(root) {
  for (const el of root.querySelectorAll(".error")) el.textContent = "";
  for (const el of root.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

/** Shows `{field: [messages]}` next to each field (`form` and unknown ones by the button). */
export function showErrors(root, fields) {
  for (const [field, messages] of Object.entries(fields)) {
    const box = root.querySelector(`#err-${field}`) || root.querySelector("#err-form");
    box.textContent = [box.textContent, ...messages].filter(Boolean).join(" ");
    const input = root.querySelector(`[name="${field}"]`);
    if (input) input.setAttribute("aria-invalid", "true");
  }
}
