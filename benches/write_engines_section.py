#!/usr/bin/env python3
"""Renders the `## Engines` section of BENCHMARKS.md from the results of benches/engines.sh
and puts it in place of the old one, or after the other sections when there is none yet
(other sections are kept as they are).

Usage: write_engines_section.py RESULTS_DIR BENCHMARKS.md < META.json

RESULTS_DIR holds a folder per engine (native first), each with `facts` (KEY=value lines),
the `seriesd stress` summaries `a.json` and `b.json` (and their stderr `a.err`, `b.err`),
and the query answers `queries.jsonl` (rollups on) and `queries_raw.jsonl` (ROLLUPS=false)
of benches/engine_queries.py.
"""

import json
import os
import re
import sys
from collections import Counter

from benchmarks_md import replace_section
NAMES = {"native": "native", "timescaledb": "TimescaleDB", "citus": "Citus"}
STORAGE = {"native": "native-partitions", "timescaledb": "timescaledb", "citus": "citus"}
# The behavioural target for Citus ingest, as a share of native's rate.
CITUS_INGEST_FLOOR = 0.5
# `seriesd stress` prints the first failed posts as `stress: session K: MESSAGE`.
STRESS_ERROR = re.compile(r"^stress: session \d+: (HTTP \d{3}[^:]*|request failed)(?::\s*(.*))?$")


def load_engine(folder):
    def path(name):
        return os.path.join(folder, name)

    facts = {}
    with open(path("facts")) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                facts[k] = v

    def jsonl(name):
        if not os.path.exists(path(name)):
            return []
        with open(path(name)) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stress(name):
        with open(path(f"{name}.json")) as f:
            summary = json.load(f)
        kinds, examples = Counter(), {}
        if os.path.exists(path(f"{name}.err")):
            with open(path(f"{name}.err")) as f:
                for line in f:
                    m = STRESS_ERROR.match(line.strip())
                    if m:
                        kinds[m.group(1)] += 1
                        examples.setdefault(m.group(1), (m.group(2) or "")[:300])
        summary["shown_errors"] = [(k, c, examples[k]) for k, c in kinds.items()]
        return summary

    node_errors = []
    if os.path.exists(path("node_errors")):
        with open(path("node_errors")) as f:
            for line in f:
                count, _, message = line.strip().partition(" ")
                if count.isdigit():
                    node_errors.append((int(count), message))
    return {
        "facts": facts,
        "node_errors": node_errors,
        "a": stress("a"),
        "b": stress("b"),
        "queries": jsonl("queries.jsonl"),
        "queries_raw": jsonl("queries_raw.jsonl"),
    }


def fmt_int(x):
    return f"{x:,.0f}"


def ms(x):
    return "n/a" if x is None else (f"{x:.1f}" if x >= 10 else f"{x:.2f}")


def rate_ratio(x, base):
    return f"{x / base:.2f}x" if base else "n/a"


def met(good):
    return "met" if good else "**not met**"


def query_rows(engines, key):
    """One table row per query shape: each engine's p50 / p95 and its p50 over native's."""
    order = [q["name"] for q in engines[0][1][key]]
    lines = []
    for name in order:
        by = {e: next((q for q in r[key] if q["name"] == name), None) for e, r in engines}
        base = by[engines[0][0]]
        cells = []
        for e, _ in engines:
            q = by[e]
            if q is None:
                cells.append("not run")
                continue
            cell = f"{ms(q['p50_ms'])} / {ms(q['p95_ms'])}"
            if e != "native":
                ratio = q["p50_ms"] / base["p50_ms"] if base and base["p50_ms"] else None
                cell += f" ({ratio:.2f}x)" if ratio is not None else ""
            if q["errors"]:
                cell += f", **{q['errors']} errors**"
            cells.append(cell)
        rows = [by[e]["rows"] if by[e] else None for e, _ in engines]
        sources = [by[e]["source"] if by[e] else None for e, _ in engines]
        answer = " / ".join(str(r) for r in rows) if len(set(rows)) > 1 else str(rows[0])
        if any(sources):
            answer += "; " + (" / ".join(str(s) for s in sources) if len(set(sources)) > 1 else str(sources[0]))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {answer} |")
    return lines


def render(engines, meta):
    a_m, b_m = meta["a"], meta["b"]
    names = [NAMES[e] for e, _ in engines]
    native = engines[0][1]
    f0 = native["facts"]
    a_total = a_m["users"] * a_m["sessions"] * a_m["points"]
    b_total = b_m["users"] * b_m["sessions"] * b_m["points"]
    lines = [
        "## Engines",
        "",
        "Written by `benches/engines.sh`; do not edit by hand (the next run replaces this section).",
        "",
        f"- Date (UTC): {meta['date']}",
        f"- Commit: `{meta['commit']}`" + (" (working tree had uncommitted changes)" if meta["dirty"] else "")
        + f", release build (the service's code as of `{meta['service_commit']}`); the figures are that build's: "
        "Citus support is being worked on, so a later commit may differ",
        f"- Machine: {meta['nproc']} CPUs, {meta['mem_mib']:,} MiB RAM, Linux {meta['kernel']}; "
        f"PostgreSQL {f0.get('pg_version', '?')} for every engine, all on this machine: native is the system server; "
        + ", ".join(
            f"{NAMES[e]} ({r['facts'].get('extension', '?')})" for e, r in engines if e != "native"
        )
        + " are throwaway clusters made from private copies of the same binaries "
        "(initdb defaults plus the system server's `autovacuum off` and `max_connections`; Citus workers 300). "
        "Citus runs a coordinator and two workers, so three servers share the CPUs with the service and the client. "
        "The machine's 1-minute load average just before each engine's load (other work on it makes the figures noisier): "
        + ", ".join(f"{NAMES[e]} {r['facts'].get('loadavg', '?')}" for e, r in engines) + ".",
        "- Settings: " + "; ".join(f"{NAMES[e]}: {r['facts'].get('settings', '?')}" for e, r in engines)
        + (f"; Citus `node_conninfo` `{engines[-1][1]['facts'].get('citus_conninfo', '')}`, "
           f"{engines[-1][1]['facts'].get('citus_shards', '?')} shards per distributed table"
           if engines[-1][0] == "citus" else ""),
        "- Command: `make bench-engines`; the service connects over loopback without TLS "
        "(`sslmode=disable`); with Citus it connects to the coordinator only.",
        f"- Data, the same on every engine (`seriesd stress`, same seeds and user ids; times relative "
        f"to each load's start, over {730} days): a warm-up of {meta['warmup_sessions']:,} 10-point "
        "sessions (makes the partitions or chunks; not counted), then (a) and (b) below. "
        f"The queried user holds {b_m['sessions']} of (b)'s sessions ({b_m['sessions'] * b_m['points']:,} points); "
        "the query ranges are anchored on its first session and last point, so every engine is asked about the same points.",
        "- Servers: ingest with the defaults but `RATE_LIMIT_PER_SEC=0`; queries with no cache "
        "(`REDIS_URL` empty, `CACHE_TTL_SECS=0`, `CACHE_TTL_RECENT_SECS=0`: every answer computed) and the rollup "
        f"job unbudgeted, measured once it caught up (waiting {meta['catchup_secs']} s at most) and after `VACUUM ANALYZE`, "
        "then again with `ROLLUPS=false`.",
        "",
        "### Ingest",
        "",
        "Points/s through `POST /api/sessions/` (p50 / p99 latency of a post); `x` is the rate over native's (below 1: slower).",
        "",
        "| measure | workload | " + " | ".join(names) + " |",
        "|---|---|" + "---:|" * len(names),
    ]
    for key, label, m, total in (
        ("a", "(a) small sessions", a_m, a_total),
        ("b", "(b) large sessions", b_m, b_total),
    ):
        base = native[key]["points_per_sec"]
        cells = []
        for e, r in engines:
            s = r[key]
            cell = f"**{fmt_int(s['points_per_sec'])}** ({ms(s['p50_ms'])} / {ms(s['p99_ms'])} ms)"
            if e != "native":
                cell += f", {rate_ratio(s['points_per_sec'], base)}"
            if s["errors"]:
                cell += f", **{s['errors']} failed posts**"
            cells.append(cell)
        lines.append(
            f"| {label} | {m['users'] * m['sessions']:,} sessions x {m['points']:,} points "
            f"({m['users']} users), concurrency {m['concurrency']}, {total:,} points | " + " | ".join(cells) + " |"
        )

    n = meta["n"]
    lines += [
        "",
        "### Queries",
        "",
        f"Latency in ms, p50 / p95 of {n} requests one at a time (after {meta['query_warmup']} not timed), "
        "with the p50 over native's in brackets (above 1: slower); the last column is the answer's rows "
        "(buckets, points or NDJSON lines) and `metadata.source`, once when every engine agrees, else per engine.",
    ]
    behind = [(e, r["facts"]) for e, r in engines if r["facts"].get("rollup_caught_up") != "1"]
    for e, f in behind:
        lines += ["", f"{NAMES[e]}'s rollup job had not caught up after {meta['catchup_secs']} s "
                  f"({int(f.get('rollup_left', 0)):,} (user, series, hour) keys left; see Errors and checks): its queries "
                  "read those hours from raw points and shared the CPU with the job, which went on refreshing "
                  "during the measurements."]
    lines += ["", "| query, rollups on (the default) | " + " | ".join(names) + " | rows; source |",
              "|---|" + "---:|" * len(names) + "---|"]
    lines += query_rows(engines, "queries")
    if any(r["queries_raw"] for _, r in engines):
        lines += [
            "",
            "| query, `ROLLUPS=false` (raw points) | " + " | ".join(names) + " | rows; source |",
            "|---|" + "---:|" * len(names) + "---|",
        ]
        lines += query_rows(engines, "queries_raw")

    lines += [
        "",
        "### Errors and checks",
        "",
        "| engine | `/health/` storage | failed posts (a) / (b) | points stored (a) / (b) | query errors (non-200) "
        "| rollup hours set aside | server log WARN/ERROR lines | node log ERROR lines | rollup catch-up before the queries |",
        "|---|---|---:|---|---:|---:|---:|---:|---|",
    ]
    all_ok = True
    problems, node_problems = [], []
    for e, r in engines:
        f = r["facts"]
        stored_a, stored_b = int(f.get("stored_a", -1)), int(f.get("stored_b", -1))
        q_errors = sum(q["errors"] for q in r["queries"] + r["queries_raw"])
        hits = sum(q["hits"] for q in r["queries"] + r["queries_raw"])
        stored_ok = stored_a == a_total and stored_b == b_total
        pending, seconds = int(f.get("rollup_pending", 0)), float(f.get("rollup_seconds", 0))
        if f.get("rollup_caught_up") == "1":
            catchup = f"{pending:,} keys in {seconds:.1f} s"
            if seconds >= 5:
                catchup += f" ({pending / seconds:,.0f} keys/s)"
        else:
            catchup = (f"**not caught up** in {seconds:.0f} s: {int(f.get('rollup_left', 0)):,} of {pending:,} keys "
                       "still awaiting refresh when the queries began")
        if f.get("rollup_lag_gauge") == "absent":
            catchup += "; `/metrics` left out `seriesd_rollup_lag_seconds` (see below)"
            problems.append(f"- {NAMES[e]}: `/metrics` has no `seriesd_rollup_lag_seconds` (the service could not read "
                            "its backlog; the node log says why); the catch-up was followed on `rollup_invalidations` instead.")
        failed = f.get("rollup_failed_hours", "?")
        ok = (r["a"]["errors"] == 0 and r["b"]["errors"] == 0 and stored_ok and q_errors == 0
              and f.get("storage") == STORAGE[e] and failed == "0")
        all_ok = all_ok and ok
        lines.append(
            f"| {NAMES[e]} | {f.get('storage')} | {r['a']['errors']} / {r['b']['errors']} "
            f"| {stored_a:,} / {stored_b:,}" + ("" if stored_ok else f" of {a_total:,} / {b_total:,} **missing**")
            + f" | {q_errors} | {failed} | {f.get('log_problems', '?')} | {f.get('node_errors', 'n/a')} | {catchup} |"
        )
        for count, message in r["node_errors"][:3]:
            node_problems.append(f"- {NAMES[e]}: {count:,} x `{message[:200]}`")
        if hits:
            problems.append(f"- {NAMES[e]}: {hits} query answers were cache hits (the figures are not all computed).")
        for key in ("a", "b"):
            for kind, count, example in r[key]["shown_errors"]:
                problems.append(f"- {NAMES[e]}, ({key}) `POST /api/sessions/`: {kind} ({count} of the first 5 failures, "
                                    f"which `seriesd stress` prints): `{example}`")
        for q in r["queries"] + r["queries_raw"]:
            if q["errors"]:
                first = q["first_errors"][0] if q["first_errors"] else {"status": "?", "body": ""}
                statuses = ", ".join(f"{c} x {s}" for s, c in sorted(q["statuses"].items()) if s != "200")
                body = first["body"].replace("\n", " ")[:300]
                problems.append(f"- {NAMES[e]}, {q['name']}: {statuses}; first: `{body}`")

    lines += [
        "",
        f"Server logs, node logs and the stress output of the run are in `{meta['log_dir']}/` (not committed).",
    ]
    if problems:
        lines += ["", "Problems seen:", ""] + problems
    if node_problems:
        lines += ["", "Statements the throwaway nodes refused (their logs' `ERROR:` lines, the most frequent first; "
                  "not all reach a client):", ""] + node_problems

    citus = next((r for e, r in engines if e == "citus"), None)
    lines += ["", "### Targets (the issue's, behavioural: on 2 cores three Citus nodes share the CPU)", "",
              "| target | measured | |", "|---|---|---|"]
    lines.append(f"| zero errors on every engine (failed posts, points missing, non-200 answers, rollup hours set aside after a failure) "
                 f"| {'none' if all_ok else 'see the table above'} | {met(all_ok)} |")
    if citus:
        for key, label in (("a", "(a) small sessions"), ("b", "(b) large sessions")):
            ratio = citus[key]["points_per_sec"] / native[key]["points_per_sec"]
            lines.append(f"| Citus ingest {label} >= {CITUS_INGEST_FLOOR}x native | {ratio:.2f}x | {met(ratio >= CITUS_INGEST_FLOOR)} |")
    lines.append("")
    return "\n".join(lines)


def main():
    results_dir, md_path = sys.argv[1], sys.argv[2]
    meta = json.load(sys.stdin)
    engines = [(e, load_engine(os.path.join(results_dir, e))) for e in meta["engines"].split()]
    section = render(engines, meta)
    replace_section(md_path, "Engines", section)


if __name__ == "__main__":
    main()
