// One uPlot chart per series: numbers as one line per numeric field (`{r, g, b}` draws
// three), anything else (strings, objects without numbers) as markers on a row per
// distinct value, the value shown in the legend on hover. Dragging across a chart
// selects a range to zoom to; a double click resets. uPlot itself is the global that
// `/ui/uPlot.iife.min.js` defines (it ships no minified ES module).

const uPlot = window.uPlot;

/** Colours of fields named like colour channels, then a palette for the rest. */
const CHANNEL_COLOURS = { r: "#d62728", g: "#2ca02c", b: "#1f77b4" };
const PALETTE = ["#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"];

/** How a stored or aggregated value is drawn: its numeric fields, or a text label. */
export function classify(value) {
  if (typeof value === "number") return { numbers: { value } };
  if (value === null || value === undefined) return { numbers: {} };
  if (typeof value === "object" && !Array.isArray(value)) {
    const numbers = {};
    for (const [k, v] of Object.entries(value)) if (typeof v === "number") numbers[k] = v;
    // An aggregated multi-field bucket without an answer has every field null: a gap.
    const allNull = Object.values(value).length > 0 && Object.values(value).every((v) => v === null);
    if (Object.keys(numbers).length > 0 || allNull) return { numbers };
    return { label: typeof value.value === "string" ? value.value : JSON.stringify(value) };
  }
  return { label: typeof value === "string" ? value : JSON.stringify(value) };
}

/** Field names with colour channels first, as `r, g, b`, then the others as found. */
export function orderFields(names) {
  const channels = ["r", "g", "b"].filter((c) => names.includes(c));
  return [...channels, ...names.filter((n) => !channels.includes(n))];
}

/**
 * The columns one series draws from its rows (`{t, value}`, `t` in seconds, in time
 * order): `xs`, one array of `ys` per field, and for text series the distinct labels
 * (each row's y is its label's index).
 */
export function shape(rows) {
  const classes = rows.map((r) => classify(r.value));
  const found = [];
  for (const c of classes) {
    for (const k of Object.keys(c.numbers || {})) if (!found.includes(k)) found.push(k);
  }
  const fields = orderFields(found);
  const xs = rows.map((r) => r.t);
  if (fields.length > 0) {
    const ys = fields.map((f) => classes.map((c) => (c.numbers && f in c.numbers ? c.numbers[f] : null)));
    return { kind: "numbers", fields, xs, ys, labels: null };
  }
  const labels = [];
  const ys = classes.map((c) => {
    if (c.label === undefined) return null;
    let i = labels.indexOf(c.label);
    if (i < 0) i = labels.push(c.label) - 1;
    return i;
  });
  return { kind: "labels", fields: ["value"], xs, ys: [ys], labels };
}

/** Text cut to `n` characters for an axis. */
function cut(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

/**
 * Draws `shaped` into `container` and returns the chart. `view.range` is the x range
 * shown (`[lo, hi]` in seconds, or null for the data's own); `view.tz` the zone its
 * times are written in; `view.onSelect(lo, hi)` is called when a range is dragged
 * across, `view.onReset()` on a double click.
 */
export function drawChart(container, shaped, view) {
  const height = window.matchMedia("(max-width: 600px)").matches ? 200 : 260;
  const labels = shaped.labels;
  const series = [{ label: "time", value: "{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}" }];
  shaped.fields.forEach((field, i) => {
    const colour = CHANNEL_COLOURS[field] || PALETTE[i % PALETTE.length];
    if (labels) {
      series.push({
        label: field,
        stroke: colour,
        paths: () => null,
        points: { show: true, size: 8, fill: colour },
        value: (u, v) => (v == null ? "–" : labels[v]),
      });
    } else {
      series.push({ label: field, stroke: colour, width: 1.5 });
    }
  });
  const yAxis = labels
    ? {
        size: 90,
        splits: () => labels.map((_, i) => i),
        values: (u, splits) => splits.map((v) => cut(labels[v] ?? "", 12)),
      }
    : { size: 60 };
  const options = {
    width: Math.max(container.clientWidth, 200),
    height,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), view.tz),
    scales: {
      x: {
        time: true,
        range: (u, min, max) => view.range || (min === max ? [min - 3600, max + 3600] : [min, max]),
      },
      y: labels ? { range: [-0.5, Math.max(labels.length - 0.5, 0.5)] } : {},
    },
    series,
    axes: [{}, yAxis],
    cursor: {
      drag: { x: true, y: false, setScale: false },
      // A double click resets the zoom of every chart, not only this one.
      bind: { dblclick: (u, target, handler) => (e) => e.button === 0 && view.onReset() },
    },
    hooks: {
      setSelect: [
        (u) => {
          const { left, width } = u.select;
          if (width < 3) return;
          const lo = u.posToVal(left, "x");
          const hi = u.posToVal(left + width, "x");
          u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
          view.onSelect(lo, hi);
        },
      ],
    },
  };
  const chart = new uPlot(options, [shaped.xs, ...shaped.ys], container);
  // What the tests (and a curious reader of the DOM) check: points drawn, lines, range.
  container.dataset.points = String(shaped.xs.length);
  container.dataset.lines = String(shaped.fields.length);
  container.uplot = chart;
  return chart;
}
