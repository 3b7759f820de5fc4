#!/usr/bin/env bash
# Read-replica benchmark (`make bench-replicas`, after `cargo build --release` and
# `cargo build --release --example mixed_load`).
#
# The mixed load of BENCHMARKS.md's Rollups section (examples/mixed_load.rs: 80% uncached
# queries of three shapes, 20% 10-point ingests) twice in one run, on the same data:
#   A  the service on a primary alone (no standby exists yet),
#   B  the same service with one streaming hot standby of that primary in
#      DATABASE_REPLICA_URLS (made after A with `pg_basebackup -R`).
# Each run: a 10 s warm-up (not measured), BENCH_REPLICAS_SECONDS saturating (each client
# sends as soon as it is answered), then as long paced at half of A's saturating
# throughput (the same offered load for both). Where the reads went comes from /metrics,
# the CPU of the server and of each cluster from /proc.
#
# Data: BENCH_REPLICAS_USERS users x BENCH_REPLICAS_SESSIONS sessions x 10 points over
# two years (default 40 x 2,500: 1 M points, a tenth of the Query section's), loaded
# through HTTP by `seriesd stress` into a throwaway primary cluster of the system's
# PostgreSQL 15 (run as the postgres system user when run as root), rolled up before
# anything is measured. Everything is removed on exit; the logs are kept in
# target/bench-replicas/. Rewrites the `## Read replicas` section of BENCHMARKS.md.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/seriesd
MIXED_BIN=$TARGET/release/examples/mixed_load
PG_BIN=${BENCH_PG_BIN:-/usr/lib/postgresql/15/bin}
OUT_MD=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
LOG_DIR=${BENCH_REPLICAS_LOG_DIR:-$ROOT/target/bench-replicas}
SECONDS_EACH=${BENCH_REPLICAS_SECONDS:-60}
USERS=${BENCH_REPLICAS_USERS:-40}
SESSIONS=${BENCH_REPLICAS_SESSIONS:-2500}
CLIENTS=32
DB=seriesd_bench_replicas
BASE=c0000000-0000-4000-8000-000000000000
[[ -x $BIN ]] || { echo "missing $BIN: run cargo build --release" >&2; exit 1; }
[[ -x $MIXED_BIN ]] || { echo "missing $MIXED_BIN: run cargo build --release --example mixed_load" >&2; exit 1; }

as_postgres() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# The clusters' folders: readable by the postgres user the nodes run as.
CLUSTERS=$(mktemp -d "${TMPDIR:-/tmp}/seriesd-bench-replicas-XXXXXX")
[[ $(id -u) == 0 ]] && chown postgres "$CLUSTERS"
WORK=$(mktemp -d -t bench-replicas.XXXXXX)
mkdir -p "$LOG_DIR"
SERVER_PID=

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}
stop_node() { # $1: primary|standby
    [[ -d $CLUSTERS/$1/data ]] || return 0
    cp "$CLUSTERS/$1/log" "$LOG_DIR/$1.log" 2>/dev/null || true
    as_postgres "$PG_BIN/pg_ctl" -D "$CLUSTERS/$1/data" -m immediate stop >/dev/null 2>&1 || true
}
cleanup() {
    set +e
    stop_server
    stop_node standby
    stop_node primary
    rm -rf "$CLUSTERS" "$WORK"
}
trap cleanup EXIT

start_node() { # $1: primary|standby, $2: port, $3...: -c settings
    local name=$1 port=$2
    shift 2
    as_postgres "$PG_BIN/pg_ctl" -D "$CLUSTERS/$name/data" -l "$CLUSTERS/$name/log" -w -o \
        "-p $port -c listen_addresses=127.0.0.1 -k $CLUSTERS/$name -c max_connections=100 $*" start >/dev/null
}

# The primary: a cluster of its own, with the system server's defaults.
P_PORT=$(free_port)
as_postgres mkdir -p "$CLUSTERS/primary"
as_postgres "$PG_BIN/initdb" -D "$CLUSTERS/primary/data" -A trust -U postgres --no-sync >/dev/null
start_node primary "$P_PORT"
PRIMARY="postgres://postgres@127.0.0.1:$P_PORT"
export DATABASE_URL="$PRIMARY/$DB?sslmode=disable&gssencmode=disable" RUST_LOG=warn RATE_LIMIT_PER_SEC=0 \
    REDIS_PREFIX="seriesd-bench-replicas-$$" LISTEN_ADDR="127.0.0.1:$(free_port)"
PORT=${LISTEN_ADDR##*:}
"$BIN" migrate >/dev/null
"$BIN" seed >/dev/null
SERIESD_TOKEN=$("$BIN" token create --admin --name bench-replicas)
export SERIESD_TOKEN

start_server() { # extra variables as NAME=VALUE
    env "$@" "$BIN" serve >>"$LOG_DIR/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/health/" >/dev/null && return; sleep 0.2; done
    tail -20 "$LOG_DIR/server.log" >&2
    exit 1
}
wait_rolled_up() {
    for _ in $(seq 1 1800); do
        (( $(psql "$DATABASE_URL" -qAtc "SELECT count(*) FROM rollup_invalidations") == 0 )) && return
        sleep 1
    done
    echo "rollups did not catch up" >&2
    exit 1
}
metric() { # the value of one /metrics series, 0 when absent
    curl -fs "http://127.0.0.1:$PORT/metrics" | awk -v s="$1" '$1 == s {print $2; found = 1} END {if (!found) print 0}'
}

echo "loading $((USERS * SESSIONS * 10)) points through the HTTP API (seriesd stress) ..." >&2
start_server ROLLUP_BUDGET_MS=3600000
"$BIN" stress --url "http://127.0.0.1:$PORT" --users "$USERS" --sessions "$SESSIONS" --points 10 \
    --concurrency 32 --user-ids-from $BASE --seed 7 >"$WORK/load.json"
wait_rolled_up
stop_server
psql "$DATABASE_URL" -qAt -c "VACUUM ANALYZE" >/dev/null
TOTAL=$(psql "$DATABASE_URL" -qAtc "SELECT count(*) FROM points")

# One run: warm-up, saturating, paced at $1 requests/s (empty: half this run's
# throughput). Writes $WORK/$2.json.
run() {
    local rate=$1 label=$2 cpu_args=("primary=$CLUSTERS/primary/data" "standby=$CLUSTERS/standby/data")
    local reads_before behind_before
    echo "run $label: 10 s warm-up ..." >&2
    "$MIXED_BIN" 127.0.0.1 "$PORT" 10 $CLIENTS "$BASE" "$USERS" >/dev/null
    reads_before=$(curl -fs "http://127.0.0.1:$PORT/metrics" | grep '^seriesd_reads_total' || true)
    behind_before=$(metric "seriesd_replica_behind_total{replica=\"127.0.0.1:${S_PORT:-0}/$DB\"}")
    echo "run $label: $CLIENTS clients, $SECONDS_EACH s, saturating ..." >&2
    python3 benches/cpu_snapshot.py "$SERVER_PID" "$DB" "${cpu_args[@]}" >"$WORK/cpu_a.json"
    "$MIXED_BIN" 127.0.0.1 "$PORT" "$SECONDS_EACH" $CLIENTS "$BASE" "$USERS" >"$WORK/sat.json"
    python3 benches/cpu_snapshot.py "$SERVER_PID" "$DB" "${cpu_args[@]}" >"$WORK/cpu_b.json"
    cat "$WORK/sat.json" >&2
    [[ -n $rate ]] || rate=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(round((m["queries"] + m["ingests"]) / m["seconds"] / 2))' "$WORK/sat.json")
    echo "run $label: $CLIENTS clients, $SECONDS_EACH s, paced at $rate requests/s ..." >&2
    "$MIXED_BIN" 127.0.0.1 "$PORT" "$SECONDS_EACH" $CLIENTS "$BASE" "$USERS" "$rate" >"$WORK/paced.json"
    cat "$WORK/paced.json" >&2
    curl -fs "http://127.0.0.1:$PORT/metrics" | grep '^seriesd_reads_total' >"$WORK/reads_after" || true
    python3 - "$WORK" "$label" "$rate" "$behind_before" "$(metric "seriesd_replica_behind_total{replica=\"127.0.0.1:${S_PORT:-0}/$DB\"}")" "$reads_before" <<'PY'
import json, sys
work, label, rate, behind_a, behind_b, reads_before = sys.argv[1:]
def reads(text):
    out = {}
    for line in text.splitlines():
        series, value = line.rsplit(" ", 1)
        out[series.split('server="', 1)[1].rstrip('"}')] = float(value)
    return out
before, after = reads(reads_before), reads(open(f"{work}/reads_after").read())
a, b = (json.load(open(f"{work}/cpu_{x}.json")) for x in "ab")
json.dump({
    "saturating": json.load(open(f"{work}/sat.json")),
    "paced": json.load(open(f"{work}/paced.json")),
    "rate": int(rate),
    "reads": {k: after[k] - before.get(k, 0.0) for k in after},
    "behind": float(behind_b) - float(behind_a),
    "cpu": {k: b[k] - a[k] for k in b if isinstance(b[k], (int, float)) and isinstance(a.get(k), (int, float))},
}, open(f"{work}/{label}.json", "w"))
PY
}

# A: the primary alone.
start_server
run "" primary
RATE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rate"])' "$WORK/primary.json")
stop_server
psql "$DATABASE_URL" -qAt -f benches/delete_mixed_load_sessions.sql >/dev/null

# B: a hot standby made from the primary as it is now, then the same loads.
S_PORT=$(free_port)
as_postgres mkdir -p "$CLUSTERS/standby"
backup_start=$(date +%s.%N)
as_postgres "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$P_PORT" -U postgres -D "$CLUSTERS/standby/data" \
    -R -X stream -c fast --no-sync
BACKUP_SECS=$(awk -v a="$backup_start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
start_node standby "$S_PORT" -c hot_standby_feedback=on
start_server DATABASE_REPLICA_URLS="postgres://postgres@127.0.0.1:$S_PORT/$DB?sslmode=disable&gssencmode=disable"
wait_rolled_up
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$PORT/health/" | grep -q '"state":"ok"' && break
    sleep 0.2
done
curl -fs "http://127.0.0.1:$PORT/health/" | grep -q '"state":"ok"' || { echo "the standby never served" >&2; exit 1; }
run "$RATE" standby
stop_server
psql "$DATABASE_URL" -qAt -f benches/delete_mixed_load_sessions.sql >/dev/null

python3 benches/write_replicas_section.py "$WORK/primary.json" "$WORK/standby.json" "$OUT_MD" \
    "$TOTAL" "$USERS" "$SESSIONS" "$SECONDS_EACH" "$BACKUP_SECS" "$(nproc)"
echo "BENCHMARKS.md: Read replicas section rewritten" >&2
