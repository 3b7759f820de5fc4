#!/usr/bin/env python3
"""Renders the `## Ingest` section of BENCHMARKS.md from the results of benches/ingest.sh
and puts it in place of the old one (other sections are kept as they are).

Usage: write_ingest_section.py RESULTS.json BENCHMARKS.md
"""

import json
import sys

from benchmarks_md import replace_section


def plural(n, word):
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def fmt_int(x):
    return f"{x:,.0f}"


def cpu_row(label, cpu, client_cpu):
    seconds = cpu["seconds"]

    def share(v):
        if v is None:
            return "n/a"
        return f"{v:.1f} s ({v / seconds:.2f} cores)"

    return (
        f"| {label} | {seconds:.1f} s | {share(cpu.get('seriesd'))} | {share(cpu.get('pg_bench'))} "
        f"| {share(cpu.get('pg_all'))} | {share(client_cpu)} | {share(cpu.get('busy'))} |"
    )


def render(r):
    a, b, c = r["a"], r["b"], r["c"]
    ratio = b["points_per_sec"] / c["points_per_sec"] if c["points_per_sec"] else 0.0
    rss_mb = r["server_peak_rss_kb"] / 1024
    ok = lambda good: "met" if good else "**not met**"  # noqa: E731
    m = r["machine"]
    cfg = r["config"]
    lines = [
        "## Ingest",
        "",
        "Written by `benches/ingest.sh`; do not edit by hand (the next run replaces this section).",
        "",
        f"- Date (UTC): {r['date']}",
        f"- Commit: `{r['commit']}`" + (" (working tree had uncommitted changes)" if r["dirty"] else ""),
        f"- Machine: {m['nproc']} CPUs, {m['mem_mib']:,} MiB RAM, Linux {m['kernel']}, "
        f"PostgreSQL {m['pg_version']} (shared_buffers {m['shared_buffers']}, "
        f"synchronous_commit {m['synchronous_commit']}, fsync {m['fsync']}); storage mode {r['storage']}",
        "- Command: `make bench-ingest`; connections over loopback without TLS (`sslmode=disable`), for the service and the raw copy alike",
        f"- Service settings: WORKERS={cfg['WORKERS']}, INGEST_WRITERS={cfg['INGEST_WRITERS']}, "
        f"INGEST_BATCH_POINTS={cfg['INGEST_BATCH_POINTS']}, DB_POOL_SIZE={cfg['DB_POOL_SIZE']} "
        "(empty = the service's default)",
        "- Client: `seriesd stress` on the same machine (it competes for the same 2 cores); "
        f"a warm-up of {r['warmup_sessions']:,} 10-point sessions first creates the weekly partitions "
        "of the two-year span and is not counted; `CHECKPOINT` before each measurement.",
        "",
        "| measurement | workload | points | seconds | points/s | p50 | p99 |",
        "|---|---|---:|---:|---:|---:|---:|",
        f"| (a) `POST /api/sessions/`, small sessions | {a['sessions']:,} sessions x {a['points_per_session']} points "
        f"({plural(a['users'], 'user')}), concurrency {a['concurrency']} | {fmt_int(a['points'])} | {a['seconds']:.2f} "
        f"| **{fmt_int(a['points_per_sec'])}** | {a['p50_ms']:.1f} ms | {a['p99_ms']:.1f} ms |",
        f"| (b) `POST /api/sessions/`, large sessions | {b['sessions']:,} sessions x {b['points_per_session']:,} points "
        f"({plural(b['users'], 'user')}), concurrency {b['concurrency']} | {fmt_int(b['points'])} | {b['seconds']:.2f} "
        f"| **{fmt_int(b['points_per_sec'])}** | {b['p50_ms']:.0f} ms | {b['p99_ms']:.0f} ms |",
        f"| (c) raw `\\copy points FROM file` (one transaction) | the rows (b) stored, other user ids "
        f"| {fmt_int(c['points'])} | {c['seconds']:.2f} | **{fmt_int(c['points_per_sec'])}** | | |",
        "",
        f"- Ratio (b)/(c): **{ratio:.1%}**",
        f"- Server peak RSS (VmHWM): **{rss_mb:.1f} MB**",
        "",
        "Targets (from the issue):",
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| (b) >= 60% of (c) | {ratio:.1%} | {ok(ratio >= 0.60)} |",
        f"| (a) >= 30,000 points/s | {fmt_int(a['points_per_sec'])} points/s | {ok(a['points_per_sec'] >= 30000)} |",
        f"| server peak RSS < 200 MB | {rss_mb:.1f} MB | {ok(rss_mb < 200)} |",
        "",
        "Where the CPU went (seconds of CPU over the wall-clock time of each measurement; "
        "`pg (this db)` counts the backends connected to the benchmark database, `pg (all)` every "
        "PostgreSQL process including the WAL writer, checkpointer and other databases' backends):",
        "",
        "| measurement | wall | seriesd | pg (this db) | pg (all) | client | whole machine |",
        "|---|---:|---:|---:|---:|---:|---:|",
        cpu_row("(a)", a["cpu"], a.get("client_cpu_seconds")),
        cpu_row("(b)", b["cpu"], b.get("client_cpu_seconds")),
        cpu_row("(c)", c["cpu"], None),
        "",
    ]
    return "\n".join(lines)


def main():
    results_path, md_path = sys.argv[1], sys.argv[2]
    with open(results_path) as f:
        results = json.load(f)
    section = render(results)
    replace_section(md_path, "Ingest", section)


if __name__ == "__main__":
    main()
