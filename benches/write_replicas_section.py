#!/usr/bin/env python3
"""Renders the `## Read replicas` section of BENCHMARKS.md from the two runs of
benches/replicas.sh (the primary alone, then with one standby) and puts it in place of
the old one.

Usage: write_replicas_section.py PRIMARY.json STANDBY.json BENCHMARKS.md TOTAL_POINTS
       USERS SESSIONS SECONDS BACKUP_SECONDS CORES
"""

import datetime
import json
import os
import subprocess
import sys

from benchmarks_md import replace_section


def sh(command):
    return subprocess.run(command, shell=True, capture_output=True, text=True).stdout.strip()


def cores(cpu, key):
    wall = cpu["total"] / CORES
    value = cpu.get(key)
    return "n/a" if value is None or wall <= 0 else f"{value / wall:.2f}"


def row(setup, run, load, offered, reads=None):
    lag = load.get("max_replica_lag_s")
    return (
        f"| {setup} | {run} | {offered} | {load['queries_per_s']} | {load['query_p50_ms']} / {load['query_p99_ms']} "
        f"| {load['ingest_points_per_s']} | {load['ingest_p50_ms']} / {load['ingest_p99_ms']} | {load['errors']} "
        f"| {'n/a' if lag is None else f'{lag} s'} |"
    )


def main():
    global CORES
    primary_path, standby_path, md, total, users, sessions, seconds, backup, cores_n = sys.argv[1:]
    CORES = int(cores_n)
    a, b = json.load(open(primary_path)), json.load(open(standby_path))
    commit = sh("git rev-parse --short HEAD")
    pg = sh(f"psql -qAtc 'SHOW server_version' '{os.environ['DATABASE_URL']}'")
    mem = sh("free -g | awk '/Mem:/ {print $2}'")
    reads = b["reads"]
    standby_reads = sum(v for k, v in reads.items() if k != "primary")
    all_reads = standby_reads + reads.get("primary", 0.0)
    share = standby_reads / all_reads if all_reads else 0.0
    sat_a, sat_b = a["saturating"], b["saturating"]
    ratio = sat_b["queries_per_s"] / sat_a["queries_per_s"] if sat_a["queries_per_s"] else 0.0
    errors = sum(r[k]["errors"] for r in (a, b) for k in ("saturating", "paced"))
    lines = [
        "## Read replicas",
        "",
        f"- Date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit `{commit}`",
        f"- Machine: {CORES} cores, {mem} GiB, Linux {os.uname().release}, PostgreSQL {pg}; the primary, "
        "the standby, the service and the load's client all on these cores: **the two PostgreSQL servers "
        "share the CPU**, so a standby here moves work rather than adding capacity",
        "- Command: `make bench-replicas` (benches/replicas.sh): a throwaway primary cluster of the system's "
        f"PostgreSQL; {int(total):,} points ({users} users x {sessions} sessions x 10 points over two years, "
        "a tenth of the Query section's) loaded through HTTP by `seriesd stress` and rolled up; run A on "
        "the primary alone (no standby exists yet); then a streaming hot standby made with "
        f"`pg_basebackup -R -X stream` ({backup} s; `hot_standby_feedback=on`) and run B with it in "
        "`DATABASE_REPLICA_URLS`; the mixed loads' sessions deleted after each run",
        f"- Load: `examples/mixed_load.rs`, 32 clients, 80% uncached queries of the Rollups section's three "
        "shapes for random users, 20% 10-point ingests of new sessions for random users (so a read often "
        "follows a write of its user by milliseconds); a 10 s warm-up that is not measured, then "
        f"{seconds} s saturating and {seconds} s paced at {a['rate']} requests/s (half of A's saturating "
        "throughput, the same for B); other settings at their defaults (`REPLICA_MAX_LAG_MS` 1000)",
        "",
        "| setup | run | offered | queries/s | query p50 / p99 ms | ingested points/s | ingest p50 / p99 ms | errors | largest replica lag |",
        "|---|---|---|---:|---|---:|---|---:|---:|",
        row("A: primary alone", "saturating", sat_a, "as fast as answered"),
        row("B: primary + 1 standby", "saturating", sat_b, "as fast as answered"),
        row("A: primary alone", "paced", a["paced"], f"{a['rate']} req/s"),
        row("B: primary + 1 standby", "paced", b["paced"], f"{b['rate']} req/s"),
        "",
        f"Saturating query throughput with the standby: {ratio:.2f} x the primary alone. "
        f"Reads in run B (both measured loads): {standby_reads:,.0f} answered by the standby "
        f"({share:.0%}), {reads.get('primary', 0.0):,.0f} by the primary; {b['behind']:,.0f} of those "
        "tried the standby first and were passed on because it had not replayed the user's latest write "
        "yet (one more round trip each).",
        "",
        "Where the CPU went during the saturating runs (cores, over the run):",
        "",
        "| setup | seriesd | primary cluster | standby cluster | whole machine busy | of which anything else (the client, other work on the machine) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for setup, run in (("A: primary alone", a), ("B: primary + 1 standby", b)):
        cpu = dict(run["cpu"])
        ours = ("seriesd", "cluster:primary", "cluster:standby")
        cpu["other"] = cpu["busy"] - sum(cpu.get(k) or 0.0 for k in ours)
        lines.append(
            f"| {setup} | {cores(cpu, 'seriesd')} | {cores(cpu, 'cluster:primary')} "
            f"| {cores(cpu, 'cluster:standby')} | {cores(cpu, 'busy')} | {cores(cpu, 'other')} |"
        )
    lines += [
        "",
        "The last column is what other processes used meanwhile (the load's client takes ~0.03 cores); "
        "where it is large, the machine was shared with other work and the runs' differences say more "
        "about that than about the setups. A stall that shows in the ingests' p99 as much as in the "
        "queries' is not the standby's: ingests never touch it.",
        "",
        f"Target (issue 24): correctness with zero errors (here {errors} over the four loads); the "
        "figures are reported, with no speed target on a machine where both servers share the CPU. "
        "Read-your-writes under these loads and under a standby's failure is checked by "
        "`tests/api/replicas.rs`, not here.",
        "",
    ]
    replace_section(md, "Read replicas", "\n".join(lines))


if __name__ == "__main__":
    main()
