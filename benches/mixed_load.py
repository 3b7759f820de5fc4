#!/usr/bin/env python3
"""Mixed load for `make bench-query`: CLIENTS threads for SECONDS, 80% uncached queries
and 20% 10-point ingests, while the rollup lag is sampled from /metrics.

usage: mixed_load.py HOST PORT SECONDS CLIENTS USER_BASE_HEX USERS [RATE]
Without RATE each client sends its next request as soon as the last one is answered (a
saturating closed loop: the figures are the machine's capacity and the queueing it
causes). With RATE (requests/s over all clients) each client follows a fixed schedule, and
latency is measured from the request's scheduled time, so a slow answer also counts
against the requests it delayed (no coordinated omission).
Prints one JSON object. The API token is taken from SERIESD_TOKEN and sent as
`Authorization: Bearer` (/metrics needs none).
"""
import datetime
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse
import uuid


def main():
    host, port, seconds, clients, base, users = sys.argv[1:7]
    port, seconds, clients, users = int(port), float(seconds), int(clients), int(users)
    rate = float(sys.argv[7]) if len(sys.argv) > 7 else None
    base = int(base.replace("-", ""), 16)
    now = datetime.datetime.now(datetime.timezone.utc)
    fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    shapes = [
        ("session.gut_health_score", "month", 730),
        ("session.*", "month", 730),
        ("session.gut_health_score", "day", 90),
    ]
    auth = {"Authorization": "Bearer " + os.environ["SERIESD_TOKEN"]} if os.environ.get("SERIESD_TOKEN") else {}
    lock = threading.Lock()
    q_lat, i_lat, errors, lags = [], [], [], []
    stop = time.monotonic() + seconds

    def worker(seed):
        rng = random.Random(seed)
        conn = http.client.HTTPConnection(host, port, timeout=60)
        n = 0
        # Paced: this client's k-th request is due at begin + k * gap (clients offset).
        gap = clients / rate if rate else 0.0
        begin = time.perf_counter() + (seed / clients) * gap
        while time.monotonic() < stop:
            due = begin + n * gap
            n += 1
            if rate:
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            user = str(uuid.UUID(int=base + rng.randrange(users)))
            if rng.random() < 0.8:
                series, interval, days = rng.choice(shapes)
                end = now + datetime.timedelta(microseconds=rng.randrange(10**12))
                params = {"user_id": user, "series": series, "interval": interval,
                          "start_time": fmt(now - datetime.timedelta(days=days)), "end_time": fmt(end)}
                request = ("GET", "/api/timeseries/?" + urllib.parse.urlencode(params), None, auth)
                kind, latencies, expect = "query", q_lat, 200
            else:
                t = datetime.datetime.now(datetime.timezone.utc)
                data = [{"series": "session.gut_health_score", "time": fmt(t - datetime.timedelta(seconds=10 - k)),
                         "value": {"value": rng.randrange(100) / 10}} for k in range(10)]
                body = json.dumps({"user_id": user, "session_id": str(uuid.uuid4()), "data": data})
                request = ("POST", "/api/sessions/", body, {"content-type": "application/json", **auth})
                kind, latencies, expect = "ingest", i_lat, 201
            t0 = due if rate else time.perf_counter()
            conn.request(*request)
            resp = conn.getresponse()
            resp.read()
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                if resp.status != expect:
                    errors.append((kind, resp.status))

    def sampler():
        conn = http.client.HTTPConnection(host, port, timeout=60)
        while time.monotonic() < stop + 3:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            for line in text.splitlines():
                if line.startswith("seriesd_rollup_lag_seconds "):
                    with lock:
                        lags.append(float(line.split()[1]))
            time.sleep(0.5)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    threads.append(threading.Thread(target=sampler))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    q_lat.sort()
    i_lat.sort()
    pct = lambda xs, q: round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 2) if xs else None
    print(json.dumps({
        "seconds": seconds, "clients": clients, "offered_per_s": rate, "queries": len(q_lat), "ingests": len(i_lat),
        "errors": len(errors), "query_p50_ms": pct(q_lat, 0.5), "query_p99_ms": pct(q_lat, 0.99),
        "ingest_p50_ms": pct(i_lat, 0.5), "ingest_p99_ms": pct(i_lat, 0.99),
        "max_rollup_lag_s": round(max(lags), 2) if lags else None, "lag_samples": len(lags),
        "queries_per_s": round(len(q_lat) / seconds, 1), "ingest_points_per_s": round(len(i_lat) * 10 / seconds, 1),
    }))


main()
