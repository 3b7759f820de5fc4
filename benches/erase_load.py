#!/usr/bin/env python3
"""The measuring part of benches/erase.sh.

Without arguments: against the server at $URL (admin token $SERIESD_TOKEN), a paced load
of 10-point sessions for the other users ($OTHER_USERS users from $OTHER_BASE), first
for BASELINE_SECS without an erase, then again while DELETE /api/users/$BIG_USER/ runs;
prints the results as JSON. Each request's latency counts from its scheduled time, so
waiting behind a slow answer counts too.

With `--write-section RESULTS.json`: renders the `## Erasing a user` section of
BENCHMARKS.md ($OUT_MD) from those results and the machine facts in the environment.
"""

import datetime
import http.client
import json
import os
import platform
import random
import sys
import threading
import time
import urllib.parse
import uuid

from benchmarks_md import replace_section

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "4"))
RATE = float(os.environ.get("BENCH_RATE_PER_CLIENT", "50"))  # sessions/s per client
BASELINE_SECS = float(os.environ.get("BENCH_BASELINE_SECS", "20"))
LEAD_SECS = 3.0  # load before the erase starts
TAIL_SECS = 2.0  # load after it ends
POINTS = 10
SERIES = "session.gut_health_score"


def connection(url):
    u = urllib.parse.urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=600)


def request(conn, method, path, body=None):
    headers = {"Authorization": "Bearer " + os.environ["SERIESD_TOKEN"]}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read()


def session_body(rng, users):
    user = users[rng.randrange(len(users))]
    now = datetime.datetime.now(datetime.timezone.utc)
    data = [
        {
            "series": SERIES,
            "time": (now - datetime.timedelta(seconds=POINTS - i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "value": {"value": rng.random() * 10},
        }
        for i in range(POINTS)
    ]
    return json.dumps({"user_id": str(user), "session_id": str(uuid.uuid4()), "data": data})


class Load:
    """CLIENTS threads, each posting RATE sessions a second on its own connection."""

    def __init__(self, url, users):
        self.url, self.users = url, users
        self.stop = threading.Event()
        self.samples = []  # (scheduled, latency seconds, status)
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.client, args=(i,)) for i in range(CLIENTS)]

    def client(self, i):
        rng = random.Random(i)
        conn = connection(self.url)
        start = time.monotonic() + i / (RATE * CLIENTS)
        k = 0
        mine = []
        while not self.stop.is_set():
            scheduled = start + k / RATE
            k += 1
            wait = scheduled - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                status, _ = request(conn, "POST", "/api/sessions/", session_body(rng, self.users))
            except (OSError, http.client.HTTPException):
                status = 0
                conn = connection(self.url)
            mine.append((scheduled, time.monotonic() - scheduled, status))
        with self.lock:
            self.samples.extend(mine)

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()


def stats(samples):
    lat = sorted(s[1] * 1000 for s in samples)
    if not lat:
        return {"requests": 0}

    def pct(p):
        return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]

    span = max(s[0] for s in samples) - min(s[0] for s in samples)
    return {
        "requests": len(lat),
        "errors": sum(1 for s in samples if s[2] != 201),
        "per_sec": len(lat) / span if span > 0 else 0.0,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": lat[-1],
    }


def measure():
    env = os.environ
    url = env["URL"]
    base = uuid.UUID(env["OTHER_BASE"]).int
    users = [uuid.UUID(int=base + i) for i in range(int(env["OTHER_USERS"]))]

    load_average = os.getloadavg()[0]
    print(f"baseline: {CLIENTS} clients x {RATE:g} sessions/s for {BASELINE_SECS:g} s", file=sys.stderr)
    load = Load(url, users)
    load.start()
    time.sleep(BASELINE_SECS)
    load.finish()
    baseline = stats(load.samples)
    print(f"  {baseline}", file=sys.stderr)

    print("the same load while the big user is erased", file=sys.stderr)
    load = Load(url, users)
    load.start()
    time.sleep(LEAD_SECS)
    conn = connection(url)
    started = time.monotonic()
    status, body = request(conn, "DELETE", f"/api/users/{env['BIG_USER']}/")
    ended = time.monotonic()
    time.sleep(TAIL_SECS)
    load.finish()
    if status != 200:
        sys.exit(f"erase answered {status}: {body[:500]!r}")
    erased = json.loads(body)
    during = stats([s for s in load.samples if started <= s[0] <= ended])
    print(f"  erase {ended - started:.2f} s: {erased}; {during}", file=sys.stderr)
    _, again = request(conn, "DELETE", f"/api/users/{env['BIG_USER']}/")
    return {
        "erase_seconds": ended - started,
        "erased": erased,
        "erased_again": json.loads(again),
        "baseline": baseline,
        "during": during,
        "clients": CLIENTS,
        "rate_per_client": RATE,
        "baseline_seconds": BASELINE_SECS,
        "load_average": load_average,
    }


def row(label, s):
    return (
        f"| {label} | {s['requests']:,} | {s['per_sec']:.0f} | {s['p50_ms']:.1f} ms "
        f"| {s['p99_ms']:.1f} ms | {s['max_ms']:.1f} ms | {s['errors']} |"
    )


def render(r):
    env = os.environ
    with open("/proc/meminfo") as f:
        mem_kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    e = r["erased"]
    points_per_sec = e["points"] / r["erase_seconds"]
    commit = env.get("COMMIT", "unknown")
    dirty = " (working tree had uncommitted changes)" if env.get("DIRTY") == "true" else ""
    return "\n".join(
        [
            "## Erasing a user",
            "",
            "Written by `benches/erase.sh`; do not edit by hand (the next run replaces this section).",
            "",
            f"- Date (UTC): {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M')}",
            f"- Commit: `{commit}`{dirty}",
            f"- Machine: {os.cpu_count()} CPUs, {mem_kb // 1024:,} MiB RAM, Linux {platform.release()}, "
            f"PostgreSQL {env.get('PG_VERSION', '?')} (shared_buffers {env.get('PG_SHARED_BUFFERS', '?')}); "
            "native weekly partitions; release build; default settings "
            "(`DELETE_BATCH_POINTS` 10,000, `ERASE_BATCH_SESSIONS` 500) but `RATE_LIMIT_PER_SEC=0`",
            "- Command: `make bench-erase`",
            f"- Data: the erased user holds {int(env.get('BIG_STORED', e['points'])):,} points in "
            f"{e['sessions']:,} sessions over a year (`seriesd stress`, 5,000-point sessions) and "
            f"{int(env.get('BIG_ROLLUP_ROWS', '0')):,} rollup rows (the rollup job caught up first); "
            f"{int(env.get('OTHER_USERS', '0')):,} other users hold 200 points each",
            f"- Load: {r['clients']} clients each posting {r['rate_per_client']:g} new 10-point sessions a "
            "second for random other users (paced; a latency counts from the request's scheduled "
            f"time), first {r['baseline_seconds']:g} s without an erase, then again from "
            f"{LEAD_SECS:g} s before `DELETE /api/users/{{id}}/` to {TAIL_SECS:g} s after it answered; "
            "the second row counts the requests scheduled while the erase ran. Client, server, "
            "PostgreSQL and Redis share the machine (1-minute load average before the "
            f"measurements: {r['load_average']:.1f}, other work on the machine included).",
            "",
            f"**Erase: {e['points']:,} points and {e['sessions']:,} sessions in {r['erase_seconds']:.1f} s** "
            f"({points_per_sec:,.0f} points/s); a second call answered `{json.dumps(r['erased_again'])}`.",
            "",
            "| other users' ingest | requests | per s | p50 | p99 | max | errors |",
            "|---|---:|---:|---:|---:|---:|---:|",
            row("without an erase", r["baseline"]),
            row("while the erase runs", r["during"]),
            "",
        ]
    )


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--write-section":
        with open(sys.argv[2]) as f:
            results = json.load(f)
        replace_section(os.environ["OUT_MD"], "Erasing a user", render(results))
    else:
        json.dump(measure(), sys.stdout, indent=2)


if __name__ == "__main__":
    main()
