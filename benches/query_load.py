#!/usr/bin/env python3
"""Query load for `make bench-query`: latency percentiles and throughput over HTTP.

usage: query_load.py HOST PORT PATH N CONCURRENCY MODE
  MODE uncached: each request shifts end_time by a microsecond, so no two share a cache
                 key (every answer must be X-Cache: MISS); cached: the same URL, warmed
                 first (every answer must be a HIT).
Prints one JSON object: p50_ms, p99_ms, mean_ms, rps, errors, requests.
The API token is taken from SERIESD_TOKEN and sent as `Authorization: Bearer`.
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


def main():
    host, port, path, n, conc, mode = sys.argv[1:7]
    port, n, conc = int(port), int(n), int(conc)
    base, _, query = path.partition("?")
    params = urllib.parse.parse_qsl(query)
    end = next(v for k, v in params if k == "end_time")

    end_dt = datetime.datetime.fromisoformat(end.replace("Z", "+00:00"))
    offset = random.randrange(10**9)

    def url(i):
        if mode == "cached":
            return path
        # end_time + (offset + i) microseconds: a cache key no other request used.
        shifted = end_dt + datetime.timedelta(microseconds=offset + i)
        q = [(k, shifted.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if k == "end_time" else v) for k, v in params]
        return base + "?" + urllib.parse.urlencode(q)

    headers = {"Authorization": "Bearer " + os.environ["SERIESD_TOKEN"]} if os.environ.get("SERIESD_TOKEN") else {}
    expect = "HIT" if mode == "cached" else "MISS"
    if mode == "cached":
        c = http.client.HTTPConnection(host, port)
        c.request("GET", path, headers=headers)
        c.getresponse().read()
    latencies, errors, lock = [], [], threading.Lock()
    counter = iter(range(n))

    def worker():
        conn = http.client.HTTPConnection(host, port, timeout=60)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t0 = time.perf_counter()
            conn.request("GET", url(i), headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                if resp.status != 200 or resp.getheader("X-Cache") != expect:
                    errors.append((resp.status, resp.getheader("X-Cache"), body[:200]))

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    if errors:
        print("errors:", errors[:3], file=sys.stderr)
    print(json.dumps({
        "requests": len(latencies), "errors": len(errors),
        "p50_ms": round(pct(0.50), 2), "p99_ms": round(pct(0.99), 2),
        "mean_ms": round(sum(latencies) / len(latencies) * 1000, 2),
        "rps": round(len(latencies) / elapsed, 1),
    }))


main()
