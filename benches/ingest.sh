#!/usr/bin/env bash
# Ingest benchmark (`make bench-ingest`, after `cargo build --release`).
#
# On a fresh database of its own it starts the release server and measures
#   (a) points/s through POST /api/sessions/ with small sessions (10 points, concurrency 32),
#   (b) points/s through POST /api/sessions/ with large sessions (5,000 points, concurrency 4),
#   (c) points/s of a raw `\copy` of the rows (b) stored, under other user ids, into the
#       same `points` table in one transaction: the physical limit,
# plus the server's peak RSS and the CPU each process used, then rewrites the `## Ingest`
# section of BENCHMARKS.md. The server is stopped and the database dropped on exit,
# whatever happens.
#
# Sizes can be changed from the environment (BENCH_A_USERS, BENCH_A_SESSIONS, ...; see
# below); the defaults are the ones BENCHMARKS.md reports.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=$ROOT/target/release/seriesd
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
DB=${BENCH_DB:-seriesd_bench_ingest}
OUT_MD=${BENCH_OUT:-$ROOT/BENCHMARKS.md}

WARMUP_SESSIONS=${BENCH_WARMUP_SESSIONS:-1000}
A_USERS=${BENCH_A_USERS:-200}
A_SESSIONS=${BENCH_A_SESSIONS:-100} # per user: 20,000 sessions
A_POINTS=${BENCH_A_POINTS:-10}
A_CONC=${BENCH_A_CONCURRENCY:-32}
B_USERS=${BENCH_B_USERS:-20}
B_SESSIONS=${BENCH_B_SESSIONS:-5} # per user: 100 sessions
B_POINTS=${BENCH_B_POINTS:-5000}
B_CONC=${BENCH_B_CONCURRENCY:-4}
SPAN_DAYS=${BENCH_SPAN_DAYS:-730}

# User ids are Uuid::from_u128(base + i), so each phase's rows can be found again.
W_BASE=10000000-0000-4000-8000-000000000000
A_BASE=a0000000-0000-4000-8000-000000000000
B_BASE=b0000000-0000-4000-8000-000000000000
B_END=b0000000-0000-4000-8000-0000ffffffff

BENCH_NAME=bench-ingest
# shellcheck source=benches/server.sh
source "$ROOT/benches/server.sh"

[[ -x $BIN ]] || die "$BIN is missing: run 'cargo build --release' (make bench-ingest does)"
command -v psql >/dev/null || die "psql is not installed"
command -v curl >/dev/null || die "curl is not installed"
command -v python3 >/dev/null || die "python3 is not installed"

WORK=$(mktemp -d -t bench-ingest.XXXXXX)
SERVER_PID=

clean_up_on_exit

# Loopback connections without TLS (BENCH_SSLMODE), for the service and the raw `\copy`
# alike: libpq's default (`prefer`) encrypts even on one machine, ~4% of the CPU here.
export DATABASE_URL="$PG_URL/$DB?sslmode=${BENCH_SSLMODE:-disable}"
export REDIS_PREFIX=seriesd_bench_ingest
export RUST_LOG=${BENCH_RUST_LOG:-warn}
# One token drives the whole load: the per-token rate limit would measure itself, not
# the service, so it is off for the benchmark server.
export RATE_LIMIT_PER_SEC=0

fresh_database

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
log "starting the server on $URL"
LISTEN_ADDR=127.0.0.1:$PORT "$BIN" serve --no-migrate >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
wait_for_health "$URL" "$WORK/health.json"
cat "$WORK/health.json" >&2
echo >&2

snapshot() { python3 "$ROOT/benches/cpu_snapshot.py" "$SERVER_PID" "$DB" >"$WORK/cpu_$1.json"; }

# stress NAME [seriesd stress options...]: its JSON summary goes to $WORK/NAME.json.
stress() {
    local name=$1
    shift
    "$BIN" stress --url "$URL" --span-days "$SPAN_DAYS" "$@" >"$WORK/$name.out" ||
        die "seriesd stress ($name) failed: $(tail -n 2 "$WORK/$name.out")"
    head -n 1 "$WORK/$name.out" >&2
    tail -n 1 "$WORK/$name.out" >"$WORK/$name.json"
}

log "warm-up: $WARMUP_SESSIONS sessions of 10 points (creates the weekly partitions; not counted)"
stress warmup --users 10 --sessions $((WARMUP_SESSIONS / 10)) --points 10 --concurrency 32 \
    --seed 1 --user-ids-from "$W_BASE"

log "(a) $((A_USERS * A_SESSIONS)) sessions of $A_POINTS points, concurrency $A_CONC"
bench_psql -c CHECKPOINT
snapshot a0
stress a --users "$A_USERS" --sessions "$A_SESSIONS" --points "$A_POINTS" \
    --concurrency "$A_CONC" --seed 2 --user-ids-from "$A_BASE"
snapshot a1

log "(b) $((B_USERS * B_SESSIONS)) sessions of $B_POINTS points, concurrency $B_CONC"
bench_psql -c CHECKPOINT
snapshot b0
stress b --users "$B_USERS" --sessions "$B_SESSIONS" --points "$B_POINTS" \
    --concurrency "$B_CONC" --seed 3 --user-ids-from "$B_BASE"
snapshot b1

log "checking that every posted point was stored"
A_STORED=$(bench_psql -c "SELECT count(*) FROM points WHERE user_id >= '$A_BASE' AND user_id < 'a0000000-0000-4000-8000-0000ffffffff'")
B_STORED=$(bench_psql -c "SELECT count(*) FROM points WHERE user_id >= '$B_BASE' AND user_id < '$B_END'")
[[ $A_STORED -eq $((A_USERS * A_SESSIONS * A_POINTS)) ]] || die "(a) stored $A_STORED points, expected $((A_USERS * A_SESSIONS * A_POINTS))"
[[ $B_STORED -eq $((B_USERS * B_SESSIONS * B_POINTS)) ]] || die "(b) stored $B_STORED points, expected $((B_USERS * B_SESSIONS * B_POINTS))"
echo "(a) $A_STORED points, (b) $B_STORED points in the table" >&2

log "(c) raw \\copy of (b)'s rows under other user ids"
COLUMNS_LIST="user_id, series_id, time, session_id, num, fields, field_values, value"
# The same rows (b) stored, so the same weeks (their partitions exist) and the same values;
# user ids replaced so that nothing conflicts. In key order, the best case for the index.
bench_psql -c "\\copy (SELECT md5(user_id::text || ':copy')::uuid, series_id, time, session_id, num, fields, field_values, value FROM points WHERE user_id >= '$B_BASE' AND user_id < '$B_END' ORDER BY 1, 2, 3, 4) TO '$WORK/points.copy'"
C_ROWS=$(wc -l <"$WORK/points.copy")
ls -l "$WORK/points.copy" >&2
bench_psql -c CHECKPOINT
snapshot c0
C_START=$(date +%s.%N)
bench_psql -c "\\copy points ($COLUMNS_LIST) FROM '$WORK/points.copy'"
C_END=$(date +%s.%N)
snapshot c1
C_STORED=$(bench_psql -c "SELECT count(*) FROM points WHERE user_id IN (SELECT DISTINCT md5(user_id::text || ':copy')::uuid FROM sessions WHERE user_id >= '$B_BASE' AND user_id < '$B_END')")
[[ $C_STORED -eq $C_ROWS ]] || die "(c) stored $C_STORED rows of $C_ROWS"
python3 -c "import sys; r, s, e = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]); print(f'(c) {r} rows in {e - s:.2f} s: {r / (e - s):.0f} rows/s')" \
    "$C_ROWS" "$C_START" "$C_END" >&2

PEAK_RSS_KB=$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status")
[[ -n $PEAK_RSS_KB ]] || die "could not read VmHWM of the server"

# Machine and setting facts, while the server and database are still there.
PG_VERSION=$(bench_psql -c "SHOW server_version")
PG_SHARED_BUFFERS=$(bench_psql -c "SHOW shared_buffers")
PG_SYNC_COMMIT=$(bench_psql -c "SHOW synchronous_commit")
PG_FSYNC=$(bench_psql -c "SHOW fsync")

log "stopping the server"
stop_server

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=false
if [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then DIRTY=true; fi

export WORK PEAK_RSS_KB PG_VERSION PG_SHARED_BUFFERS PG_SYNC_COMMIT PG_FSYNC COMMIT DIRTY \
    C_ROWS C_START C_END WARMUP_SESSIONS A_USERS A_SESSIONS A_POINTS A_CONC \
    B_USERS B_SESSIONS B_POINTS B_CONC
python3 - <<'PY'
import datetime, json, os, platform

env = os.environ
work = env["WORK"]


def load(name):
    with open(os.path.join(work, name)) as f:
        return json.load(f)


def cpu(phase):
    before, after = load(f"cpu_{phase}0.json"), load(f"cpu_{phase}1.json")
    out = {}
    for k in ("seriesd", "pg_bench", "pg_all", "busy", "total"):
        out[k] = None if before.get(k) is None or after.get(k) is None else after[k] - before[k]
    return out


def phase(name, users, sessions, points, conc):
    r = load(f"{name}.json")
    r.update(users=int(env[users]), sessions_per_user=int(env[sessions]),
             points_per_session=int(env[points]), concurrency=int(env[conc]))
    c = cpu(name)
    c["seconds"] = r["seconds"]
    r["cpu"] = c
    return r


c_seconds = float(env["C_END"]) - float(env["C_START"])
c_cpu = cpu("c")
c_cpu["seconds"] = c_seconds
with open("/proc/meminfo") as f:
    mem_kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
results = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
    "commit": env["COMMIT"],
    "dirty": env["DIRTY"] == "true",
    "storage": load("health.json").get("storage", "unknown"),
    "machine": {
        "nproc": os.cpu_count(),
        "mem_mib": mem_kb // 1024,
        "kernel": platform.release(),
        "pg_version": env["PG_VERSION"],
        "shared_buffers": env["PG_SHARED_BUFFERS"],
        "synchronous_commit": env["PG_SYNC_COMMIT"],
        "fsync": env["PG_FSYNC"],
    },
    "config": {k: env.get(k, "") for k in ("WORKERS", "INGEST_WRITERS", "INGEST_BATCH_POINTS", "DB_POOL_SIZE")},
    "warmup_sessions": int(env["WARMUP_SESSIONS"]),
    "a": phase("a", "A_USERS", "A_SESSIONS", "A_POINTS", "A_CONC"),
    "b": phase("b", "B_USERS", "B_SESSIONS", "B_POINTS", "B_CONC"),
    "c": {"points": int(env["C_ROWS"]), "seconds": c_seconds,
          "points_per_sec": int(env["C_ROWS"]) / c_seconds, "cpu": c_cpu},
    "server_peak_rss_kb": int(env["PEAK_RSS_KB"]),
}
with open(os.path.join(work, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
print(json.dumps(results, indent=2))
PY

python3 "$ROOT/benches/write_ingest_section.py" "$WORK/results.json" "$OUT_MD"
log "wrote the Ingest section of $OUT_MD"
sed -n '/^## Ingest/,/^## [^I]/p' "$OUT_MD" >&2
