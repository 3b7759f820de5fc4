#!/usr/bin/env python3
"""Prints one JSON object of CPU seconds used so far, read from /proc:

- "seriesd": the server process (all its threads), user + system;
- "pg_bench": PostgreSQL backends connected to the benchmark database (by command line);
- "pg_all": every PostgreSQL process, plus what exited children of the postmaster used
  (other users of the same PostgreSQL server are included, so compare with pg_bench);
- "busy" / "total": the whole machine, from /proc/stat;
- with `NAME=DATADIR` arguments, "cluster:NAME": a PostgreSQL cluster of its own (the
  postmaster of DATADIR, its processes, and what its exited children used).

Usage: cpu_snapshot.py SERVER_PID DATABASE_NAME [NAME=DATADIR ...]
"""

import json
import os
import sys

HZ = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    # The command name is in parentheses and may hold spaces.
    return raw[raw.rindex(")") + 2 :].split()


def cluster_seconds(datadir):
    """CPU seconds of the cluster whose postmaster runs on DATADIR, 0 when it is down."""
    try:
        with open(f"{datadir}/postmaster.pid") as f:
            postmaster = int(f.readline())
        f = stat_fields(postmaster)
    except (OSError, ValueError, IndexError):
        return 0.0
    total = sum(int(x) for x in f[11:15]) / HZ
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            child = stat_fields(pid)
        except (OSError, ValueError):
            continue
        if int(child[1]) == postmaster:
            total += (int(child[11]) + int(child[12])) / HZ
    return total


def main():
    server_pid, dbname = sys.argv[1], sys.argv[2]
    out = {"seriesd": 0.0, "pg_bench": 0.0, "pg_all": 0.0}
    for arg in sys.argv[3:]:
        name, datadir = arg.split("=", 1)
        out[f"cluster:{name}"] = cluster_seconds(datadir)
    try:
        f = stat_fields(server_pid)
        out["seriesd"] = (int(f[11]) + int(f[12])) / HZ
    except (OSError, ValueError, IndexError):
        out["seriesd"] = None
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            if comm not in ("postgres", "postmaster"):
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            fields = stat_fields(pid)
        except (OSError, ValueError):
            continue
        own = (int(fields[11]) + int(fields[12])) / HZ
        out["pg_all"] += own
        ppid = int(fields[1])
        if ppid == 1 or not cmdline.startswith("postgres:"):
            # The postmaster: add its reaped children (backends that exited).
            out["pg_all"] += (int(fields[13]) + int(fields[14])) / HZ
        # Backend titles read "postgres: [CLUSTER:] USER DATABASE HOST(PORT) STATE".
        words = cmdline.split()
        if words[:1] == ["postgres:"]:
            words = words[1:]
            if words and words[0].endswith(":"):
                words = words[1:]
            if len(words) >= 2 and words[1] == dbname:
                out["pg_bench"] += own
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    idle = cpu[3] + cpu[4]  # idle + iowait
    out["total"] = sum(cpu[:8]) / HZ
    out["busy"] = (sum(cpu[:8]) - idle) / HZ
    print(json.dumps(out))


if __name__ == "__main__":
    main()
