// The side panels: the user's latest value of each matched series
// (`GET /api/timeseries/latest/`) and their sessions, newest first (`GET /api/sessions/`),
// each session a link that narrows the view to it.

import { orderFields } from "./charts.js";

/** A value in a few words: a number, `r 45 · g 0 · b 5`, or its text. */
export function describe(value) {
  if (typeof value === "number") return String(value);
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const keys = orderFields(Object.keys(value));
    if (keys.length === 1 && keys[0] === "value") return describe(value.value);
    return keys.map((k) => [k, value[k]]).map(([k, v]) => `${k} ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
  }
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Fills `list` with the answer of `/latest/`. */
export function renderLatest(list, answer, sessionLink) {
  list.replaceChildren();
  if (answer.results.length === 0) {
    list.appendChild(Object.assign(document.createElement("li"), { textContent: "No points." }));
  }
  for (const r of answer.results) {
    const li = document.createElement("li");
    li.dataset.series = r.series;
    const name = Object.assign(document.createElement("span"), { className: "name", textContent: r.series });
    const value = Object.assign(document.createElement("span"), { className: "value", textContent: describe(r.value) });
    const when = Object.assign(document.createElement("a"), {
      className: "when",
      href: sessionLink(r.session_id),
      textContent: r.time,
      title: `Show session ${r.session_id} only`,
    });
    li.append(name, value, when);
    list.appendChild(li);
  }
}

/** Appends a page of `/api/sessions/` to `list`. */
export function appendSessions(list, page, sessionLink) {
  if (page.count === 0) {
    list.appendChild(Object.assign(document.createElement("li"), { textContent: "No sessions." }));
  }
  for (const s of page.results) {
    const li = document.createElement("li");
    li.dataset.session = s.session_id;
    const a = Object.assign(document.createElement("a"), {
      href: sessionLink(s.session_id),
      textContent: s.session_id.slice(0, 8),
      title: `Show session ${s.session_id} only`,
    });
    const when = Object.assign(document.createElement("span"), {
      className: "when",
      textContent: s.start_ts ?? `created ${s.created_at}`,
    });
    li.append(a, when);
    list.appendChild(li);
  }
}
