#!/usr/bin/env python3
"""Query shapes against one engine's server, for `make bench-engines` (benches/engines.sh).

usage: engine_queries.py HOST PORT CASES N WARMUP

CASES is a file of `name|path` lines (path with its query string). Each case is asked
WARMUP times (not timed: the first requests on a connection plan its statements), then N
times, one request at a time on one keep-alive connection. The server is expected to run
without a cache (CACHE_TTL_SECS=0, CACHE_TTL_RECENT_SECS=0), so every answer is computed;
an `X-Cache: HIT` is counted and reported, since it would mean the figure is the cache's.

Every answer that is not a 200, or whose body is cut off (an export the database failed
part-way through), is an error; the first few are kept with their status and body. A
refused connection (no server listening) ends the run with exit status 3.
Prints one JSON object per case, one a line: name, path, requests, errors, statuses,
p50_ms, p95_ms, p99_ms, mean_ms, hits, bytes (of the last answer), rows and
source (of the last 200: see `describe`), first_errors.
The API token is taken from SERIESD_TOKEN and sent as `Authorization: Bearer`.
"""

import http.client
import json
import math
import os
import sys
import time

KEPT_ERRORS = 3


def percentile(sorted_ms, q):
    """The nearest-rank q quantile (0 < q <= 1) of a sorted list."""
    if not sorted_ms:
        return None
    rank = max(1, min(len(sorted_ms), math.ceil(q * len(sorted_ms))))
    return round(sorted_ms[rank - 1], 2)


def describe(path, body):
    """(rows, source) of an answer: the lines of an NDJSON export, or the length of
    `results` and `metadata.source` of a JSON answer."""
    if "format=ndjson" in path:
        return body.count(b"\n"), None
    try:
        doc = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    results = doc.get("results")
    source = (doc.get("metadata") or {}).get("source")
    return (len(results) if isinstance(results, list) else None), source


def main():
    host, port, cases_path, n, warmup = sys.argv[1:6]
    port, n, warmup = int(port), int(n), int(warmup)
    token = os.environ.get("SERIESD_TOKEN", "")
    headers = {"Authorization": "Bearer " + token} if token else {}
    with open(cases_path) as f:
        cases = [line.rstrip("\n").split("|", 1) for line in f if line.strip()]

    conn = http.client.HTTPConnection(host, port, timeout=120)

    def ask(path):
        """One request: (status, X-Cache, body, seconds, error text or None)."""
        nonlocal conn
        started = time.perf_counter()
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            elapsed = time.perf_counter() - started
            return resp.status, resp.getheader("X-Cache"), body, elapsed, None
        except ConnectionRefusedError:
            # Nothing listens any more: the server is gone or shutting down, which says
            # nothing about the query; the caller stops the run and says so.
            print(f"engine_queries: {host}:{port} refused the connection (the server stopped listening)",
                  file=sys.stderr)
            sys.exit(3)
        except (http.client.HTTPException, OSError) as e:
            # A cut-off body (IncompleteRead) or a dropped connection: a new connection
            # for the next request.
            elapsed = time.perf_counter() - started
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=120)
            return None, None, b"", elapsed, f"{type(e).__name__}: {e}"

    for name, path in cases:
        latencies, statuses, first_errors = [], {}, []
        errors = hits = 0
        size, last_ok = 0, None
        for i in range(warmup + n):
            status, cache, body, elapsed, failure = ask(path)
            key = str(status) if status is not None else "cut off"
            statuses[key] = statuses.get(key, 0) + 1
            if status != 200:
                errors += 1
                if len(first_errors) < KEPT_ERRORS:
                    text = failure or body[:400].decode("utf-8", "replace")
                    first_errors.append({"status": key, "body": text})
            else:
                last_ok = body
            if cache == "HIT":
                hits += 1
            size = len(body)
            if i >= warmup:
                latencies.append(elapsed * 1000)
        latencies.sort()
        rows, source = describe(path, last_ok) if last_ok is not None else (None, None)
        print(json.dumps({
            "name": name,
            "path": path,
            "requests": warmup + n,
            "timed": len(latencies),
            "errors": errors,
            "statuses": statuses,
            "p50_ms": percentile(latencies, 0.50),
            "p95_ms": percentile(latencies, 0.95),
            "p99_ms": percentile(latencies, 0.99),
            "mean_ms": round(sum(latencies) / len(latencies), 2) if latencies else None,
            "hits": hits,
            "bytes": size,
            "rows": rows,
            "source": source,
            "first_errors": first_errors,
        }), flush=True)
        print(f"  {name}: p50 {percentile(latencies, 0.5)} ms, p95 {percentile(latencies, 0.95)} ms, "
              f"{errors} errors, {size:,} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
