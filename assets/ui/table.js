// The numbers under each chart, and the CSV of a bucketed answer. Times are written
// exactly as the API answered them, so the table can be checked against the API.

import { classify } from "./charts.js";

/** A cell's text for a value: numbers as JSON writes them, text as it is. */
function cellText(value) {
  return value === null || value === undefined ? "" : String(value);
}

/**
 * A table of one series' rows (`{time, value, session_id?}`): the time, one column per
 * field of `shaped`, and the session of each raw point (a link narrowing the view to it).
 */
export function renderTable(rows, shaped, sessionLink) {
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  const withSessions = rows.some((r) => r.session_id);
  for (const name of ["time", ...shaped.fields, ...(withSessions ? ["session"] : [])]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name;
    head.appendChild(th);
  }
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    tr.dataset.time = row.time;
    tr.insertCell().textContent = row.time;
    const c = classify(row.value);
    for (const field of shaped.fields) {
      const cell = tr.insertCell();
      cell.textContent = c.numbers ? cellText(c.numbers[field]) : cellText(c.label);
      if (c.numbers) cell.className = "num";
    }
    if (withSessions) {
      const a = document.createElement("a");
      a.href = sessionLink(row.session_id);
      a.textContent = row.session_id.slice(0, 8);
      a.title = `Show session ${row.session_id} only`;
      tr.insertCell().appendChild(a);
    }
  }
  return table;
}

/** One CSV field, quoted when it needs to be (RFC 4180). */
function csvField(text) {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * The CSV of bucketed rows (`{time, series, value}`), shaped like the points export:
 * `bucket,series,value` with the value as JSON (numbers as they are).
 */
export function bucketsCsv(rows) {
  const lines = ["bucket,series,value"];
  for (const r of rows) {
    const value = r.value === null ? "" : typeof r.value === "number" ? String(r.value) : JSON.stringify(r.value);
    lines.push([r.time, r.series, value].map(csvField).join(","));
  }
  return lines.join("\n") + "\n";
}
