#!/usr/bin/env python3
"""Memory and time of `seriesd serve` under hostile ingest input (`make bench-hostile`).

Each case runs on a fresh server process (so that its peak RSS, VmHWM from
/proc/PID/status, is the case's own) against a database of its own, with one ordinary
user token, and prints one Markdown table row:

  case | requests | answers | seconds | peak RSS | ratio to the idle RSS | worst /health/

The idle RSS is the server's VmHWM after start-up and one small session post. While
each case runs, /health/ is asked every 100 ms; the slowest answer is reported.

Usage: benches/hostile_memory.py BIN [case ...]   (BIN: a `seriesd` binary; cases: all)
Environment: BENCH_PG_URL (postgres://postgres@127.0.0.1:5432), extra `serve` variables
as SERVE_<NAME>=value (e.g. SERVE_INGEST_MEMORY_MIB=512).
"""

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
MIB = 1024 * 1024
SCORE = "session.gut_health_score"


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`seriesd serve` on a database of its own, with a user token."""

    def __init__(self, binary):
        self.db = f"seriesd_hostile_{uuid.uuid4().hex[:12]}"
        self.url = f"{PG_URL}/{self.db}"
        self.port = free_port()
        env = dict(os.environ, DATABASE_URL=self.url, REDIS_URL="", RUST_LOG="warn")
        env["LISTEN_ADDR"] = f"127.0.0.1:{self.port}"
        for k, v in os.environ.items():
            if k.startswith("SERVE_"):
                env[k[len("SERVE_"):]] = v
        subprocess.run([binary, "migrate"], env=env, check=True, capture_output=True)
        subprocess.run([binary, "seed"], env=env, check=True, capture_output=True)
        self.user = str(uuid.uuid4())
        self.token = subprocess.run(
            [binary, "token", "create", "--user", self.user],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.strip()
        self.admin = subprocess.run(
            [binary, "token", "create", "--admin"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.strip()
        self.proc = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            try:
                if self.request("GET", "/health/")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)

    def request(self, method, path, body=None, token=None, timeout=600):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        if isinstance(body, (bytes, bytearray)):
            headers["content-length"] = str(len(body))
        elif body is not None:
            headers["transfer-encoding"] = "chunked"
        conn.putrequest(method, path)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        try:
            if isinstance(body, (bytes, bytearray)):
                view = memoryview(body)
                for i in range(0, len(view), 256 * 1024):
                    conn.send(view[i:i + 256 * 1024])
            elif body is not None:
                for chunk in body:
                    conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # The server answered early (413) and closed.
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, data

    def peak_kb(self):
        return status_kb(self.proc.pid, "VmHWM")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        subprocess.run(
            ["psql", f"{PG_URL}/postgres", "-qAtc", f"DROP DATABASE IF EXISTS {self.db}"],
            check=False, capture_output=True,
        )


def session(user, points):
    return {
        "user_id": user,
        "session_id": str(uuid.uuid4()),
        "start_ts": "2025-01-01T00:00:00Z",
        "data": points,
    }


def good_points(n):
    return [
        {"series": SCORE, "time": f"2025-01-{1 + i // 86400:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
         "value": {"value": i % 10}}
        for i in range(n)
    ]


def bad_points(n):
    return [{"series": SCORE, "time": "2025-01-01T00:00:00Z", "value": {"value": "bad"}}] * n


def encode(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


CASES = [
    "bulk-x-lines-8MiB", "bulk-x-lines-8MiB-x3", "session-1M-invalid", "session-1M-invalid-x3",
    "session-1M-valid", "session-1M-valid-x3", "session-1M-rgb", "bulk-1M-valid-line", "bulk-127MiB-line",
    "backtracking-pattern",
]


def case(name, user):
    """The method, path and bodies (sent at once) of a case."""
    if name.startswith("bulk-x-lines-8MiB"):
        return "POST", "/api/sessions/bulk/", [b"x\n" * (4 * MIB)] * (3 if name.endswith("x3") else 1)
    if name.startswith("session-1M-invalid"):
        return "POST", "/api/sessions/", [encode(session(user, bad_points(1_000_000)))] * (3 if name.endswith("x3") else 1)
    if name.startswith("session-1M-valid"):
        points = good_points(1_000_000)
        n = 3 if name.endswith("x3") else 1
        return "POST", "/api/sessions/", [encode(session(user, points)) for _ in range(n)]
    if name == "session-1M-rgb":
        points = [dict(p, series="session.urine.color", value={"r": 1, "g": 2, "b": 3}) for p in good_points(1_000_000)]
        return "POST", "/api/sessions/", [encode(session(user, points))]
    if name == "bulk-1M-valid-line":
        return "POST", "/api/sessions/bulk/", [encode(session(user, good_points(1_000_000))) + b"\n"]
    if name == "bulk-127MiB-line":
        return "POST", "/api/sessions/bulk/", [b'{"pad":"' + b"a" * (127 * MIB - 11) + b'"}\n']
    raise KeyError(name)


def run_case(binary, name):
    server = Server(binary)
    try:
        status, _ = server.request("POST", "/api/sessions/", encode(session(server.user, good_points(10))), server.token)
        assert status == 201, status
        idle = server.peak_kb()
        if name == "backtracking-pattern":
            return run_pattern(server, idle)
        method, path, bodies = case(name, server.user)
        worst = [0.0]
        done = threading.Event()

        def watch():
            while not done.is_set():
                t = time.time()
                try:
                    server.request("GET", "/health/", timeout=60)
                except OSError:
                    pass
                worst[0] = max(worst[0], time.time() - t)
                done.wait(0.1)

        watcher = threading.Thread(target=watch)
        watcher.start()
        answers = [None] * len(bodies)

        def send(i, body):
            status, data = server.request(method, path, body, server.token)
            answers[i] = (status, len(data))

        start = time.time()
        threads = [threading.Thread(target=send, args=(i, b)) for i, b in enumerate(bodies)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.time() - start
        done.set()
        watcher.join()
        peak = server.peak_kb()
        sizes = sum(len(b) for b in bodies) / MIB
        return (f"| {name} | {len(bodies)} x {sizes / len(bodies):.0f} MiB | "
                f"{', '.join(f'{s} ({n:,} B)' for s, n in answers)} | {seconds:.1f} | "
                f"{peak / 1024:,.0f} MiB | {peak / idle:.1f} | {worst[0]:.2f} s |")
    finally:
        server.stop()


def run_pattern(server, idle):
    """A type whose pattern backtracks, then two posts of values that trigger it at once."""
    # Each distinct string costs a backtracking engine its whole backtrack limit (1,000,000
    # steps), and a string that exceeds it does not fail validation, so every item is
    # tried; 200 of them make a body of 9 KiB, validated on the HTTP workers.
    schema = {"type": "array", "items": {"type": "string", "pattern": "^(a|aa)+(?=c)$"}}
    status, data = server.request(
        "POST", "/api/metrictypes/", encode({"series": "lab.code", "schema": schema}), server.admin)
    if status != 201:
        return f"| backtracking-pattern | type refused | {status} {data.decode()[:160]} | | | | |"
    value = ["a" * 40 + "c%d" % i for i in range(200)]
    body = encode(session(server.user, [{"series": "lab.code", "time": "2025-01-01T00:00:00Z", "value": value}]))
    answers = []
    start = time.time()
    threads = [threading.Thread(target=lambda: answers.append(server.request("POST", "/api/sessions/", body, server.token)[0]))
               for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    t = time.time()
    server.request("GET", "/health/", timeout=600)
    health = time.time() - t
    for t in threads:
        t.join()
    peak = server.peak_kb()
    return (f"| backtracking-pattern | 2 x 1 point ({len(body):,} B) | {answers} | {time.time() - start:.1f} | "
            f"{peak / 1024:,.0f} MiB | {peak / idle:.1f} | {health:.2f} s |")


def main():
    binary = sys.argv[1]
    names = sys.argv[2:] or CASES
    print("| case | requests | answers (status, body size) | seconds | peak RSS | ratio to idle | worst /health/ |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name in names:
        print(run_case(binary, name), flush=True)


if __name__ == "__main__":
    main()
