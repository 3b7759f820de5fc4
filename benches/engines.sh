#!/usr/bin/env bash
# Engines benchmark (`make bench-engines`, after `cargo build --release`).
#
# The same load and the same queries, in one run, on each storage engine seriesd supports:
#   native       the system PostgreSQL on 127.0.0.1:5432 (weekly native partitions),
#   timescaledb  a throwaway TimescaleDB node (a hypertable),
#   citus        a throwaway Citus coordinator and two workers (tables distributed by
#                user_id), the service connected to the coordinator only.
# The throwaway clusters come from private copies of the machine's PostgreSQL 15 with the
# extension added by ../shared/pg-extensions/install, as scripts/on-engine.sh makes them
# (never the system server); without that installer the section is skipped.
#
# On each engine, on a fresh database: migrate, seed, an admin token, then
#   (a) points/s through POST /api/sessions/ with small sessions (10 points each),
#   (b) points/s through POST /api/sessions/ with large sessions (5,000 points each),
# with `seriesd stress` on the same seeds and user ids everywhere, so the data is the same;
# every posted point is checked to be stored. Then, once the rollup job has caught up, the
# query shapes of BENCHMARKS.md's Query and Rollups sections (and latest, raw windows)
# uncached, BENCH_ENGINES_N times each, with rollups and again without (the raw path).
# Every non-200 counts as an error. Rewrites the `## Engines` section of BENCHMARKS.md,
# with each figure's ratio to native and the issue's behavioural targets.
#
# Servers, clusters and the native database are stopped and removed on exit, whatever
# happens. The servers' and nodes' logs, and each engine's raw results (stress output,
# query answers), are kept in target/bench-engines/ for reading.
#
# Sizes can be changed from the environment (BENCH_ENGINES_A_USERS, ...; see below); the
# defaults keep the whole run within about ten minutes on 2 cores.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/seriesd
INSTALL=$ROOT/../shared/pg-extensions/install
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
DB=${BENCH_ENGINES_DB:-seriesd_bench_engines}
OUT_MD=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
LOG_DIR=${BENCH_ENGINES_LOG_DIR:-$ROOT/target/bench-engines}
ENGINES=${BENCH_ENGINES:-native timescaledb citus}

WARMUP_SESSIONS=${BENCH_ENGINES_WARMUP_SESSIONS:-1000}
A_USERS=${BENCH_ENGINES_A_USERS:-150}
A_SESSIONS=${BENCH_ENGINES_A_SESSIONS:-50} # per user: 7,500 sessions, 75,000 points
A_POINTS=10
A_CONC=${BENCH_ENGINES_A_CONCURRENCY:-32}
B_USERS=${BENCH_ENGINES_B_USERS:-4}
B_SESSIONS=${BENCH_ENGINES_B_SESSIONS:-15} # per user: 60 sessions, 300,000 points
B_POINTS=5000
B_CONC=${BENCH_ENGINES_B_CONCURRENCY:-4}
SPAN_DAYS=730
N=${BENCH_ENGINES_N:-100}            # timed requests per query shape
QUERY_WARMUP=${BENCH_ENGINES_QUERY_WARMUP:-5}
# The longest wait for the rollup job to catch up before the queries; they are measured
# anyway after it (answers stay exact: hours awaiting refresh are read raw), and the
# section says how many keys were left.
CATCHUP_SECS=${BENCH_ENGINES_CATCHUP_SECS:-120}

# User ids are Uuid::from_u128(base + i), the same on every engine.
W_BASE=10000000-0000-4000-8000-000000000000
A_BASE=a0000000-0000-4000-8000-000000000000
A_END=a0000000-0000-4000-8000-0000ffffffff
B_BASE=b0000000-0000-4000-8000-000000000000
B_END=b0000000-0000-4000-8000-0000ffffffff
# The queried user: one of (b)'s, with B_SESSIONS sessions of 5,000 points.
Q_USER=b0000000-0000-4000-8000-000000000001

BENCH_NAME=bench-engines
# shellcheck source=benches/server.sh
source "$ROOT/benches/server.sh"

if [[ ! -x $INSTALL ]]; then
    echo "bench-engines: skipped: the engines section needs $INSTALL, which is absent"
    exit 0
fi
[[ -x $BIN ]] || die "$BIN is missing: run 'cargo build --release' (make bench-engines does)"
for tool in psql curl python3 flock; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
[[ $ENGINES == native* ]] || die "BENCH_ENGINES must start with native (the ratios are to it)"

WORK=$(mktemp -d -t bench-engines.XXXXXX)
# The clusters' folders: outside $WORK, which only root may enter, since the nodes run as
# the postgres user.
CLUSTERS=$(mktemp -d "${TMPDIR:-/tmp}/seriesd-bench-engines-XXXXXX")
as_postgres() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[[ $(id -u) == 0 ]] && chown postgres "$CLUSTERS"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"
SERVER_PID=
SERVER_NAME=
PG_BIN=           # the bin/ folder of the current throwaway cluster's copy
NODE_URLS=()      # the current engine's nodes (maintenance database); the first serves

# Stops every node of every throwaway cluster (their logs copied to $LOG_DIR first).
stop_clusters() {
    local data
    for data in "$CLUSTERS"/*/node*/data; do
        [[ -d $data ]] || continue
        cp "${data%/data}/log" "$LOG_DIR/$(basename "$(dirname "${data%/data}")")-$(basename "${data%/data}").log" 2>/dev/null || true
        as_postgres "$PG_BIN/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
    done
    rm -rf "${CLUSTERS:?}"/*
}

cleanup() {
    local status=$?
    set +e
    stop_server
    stop_clusters
    rm -rf "$CLUSTERS"
    psql "$PG_URL/postgres?sslmode=disable" -X -qAt -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 ||
        echo "bench-engines: could not drop database $DB on the system server" >&2
    if [[ $status -ne 0 ]]; then
        echo "bench-engines: failed (exit $status); logs in $LOG_DIR" >&2
        for f in "$LOG_DIR"/*server*.log; do
            [[ -f $f ]] || continue
            echo "--- last lines of $f" >&2
            tail -n 15 "$f" >&2
        done
    fi
    cp -r "$WORK/results" "$LOG_DIR/" 2>/dev/null
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_cluster ENGINE NODES: a throwaway cluster of NODES nodes from the engine's private
# copy of PostgreSQL, each node on a free port; sets PG_BIN and NODE_URLS. The nodes get
# the system server's non-default settings that matter to a benchmark (autovacuum off,
# max_connections 100), so that the engines differ by their engine alone; a Citus worker
# takes several connections from the coordinator per client statement, so workers get
# more, as in scripts/on-engine.sh.
start_cluster() {
    local engine=$1 nodes=$2 n node port connections extra copy
    copy="${TMPDIR:-/tmp}/seriesd-pg-$engine"
    PG_BIN=$(flock "$copy.lock" "$INSTALL" "$copy" "$engine")
    NODE_URLS=()
    for n in $(seq 1 "$nodes"); do
        node="$CLUSTERS/$engine/node$n"
        as_postgres mkdir -p "$node"
        port=$(free_port)
        as_postgres "$PG_BIN/initdb" -D "$node/data" -A trust -U postgres --no-sync >/dev/null
        connections=100
        [[ $engine == citus && $n -gt 1 ]] && connections=300
        extra=
        [[ $engine == timescaledb ]] && extra="-c timescaledb.telemetry_level=off"
        as_postgres "$PG_BIN/pg_ctl" -D "$node/data" -l "$node/log" -w -o \
            "-p $port -c listen_addresses=127.0.0.1 -k $node -c shared_preload_libraries=$engine \
             -c max_connections=$connections -c autovacuum=off $extra" \
            start >/dev/null
        NODE_URLS+=("postgres://postgres@127.0.0.1:$port")
    done
    echo "$engine cluster on ${NODE_URLS[*]}" >&2
}

# URL options of every connection: loopback without TLS or GSS negotiation, for the
# service and psql alike (libpq's default `prefer` encrypts even on one machine).
CONN_OPTS="sslmode=disable&gssencmode=disable"
node_psql() { # URL DATABASE psql-args...
    local url=$1 db=$2
    shift 2
    PGOPTIONS='-c client_min_messages=warning' psql "$url/$db?$CONN_OPTS" -X -v ON_ERROR_STOP=1 -qAt "$@"
}
bench_psql() { node_psql "${NODE_URLS[0]}" "$DB" "$@"; }

# make_database ENGINE: a fresh, empty benchmark database. For Citus, as an operator sets
# one up (and as tests/api/helpers/database.rs does): the database and the extension on
# every node, the coordinator's host set and the workers added on it; `seriesd migrate`
# then distributes the tables.
make_database() {
    local engine=$1 url port
    node_psql "${NODE_URLS[0]}" postgres -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)"
    [[ $engine == citus ]] || return 0
    for url in "${NODE_URLS[@]}"; do
        node_psql "$url" postgres -c "CREATE DATABASE \"$DB\""
        node_psql "$url" "$DB" -c "CREATE EXTENSION citus"
    done
    port=${NODE_URLS[0]##*:}
    bench_psql -c "SELECT citus_set_coordinator_host('127.0.0.1', $port)" >/dev/null
    for url in "${NODE_URLS[@]:1}"; do
        bench_psql -c "SELECT citus_add_node('127.0.0.1', ${url##*:})" >/dev/null
    done
}

# start_server NAME [VAR=value...]: `seriesd serve` on a free port with those settings
# added; sets URL and SERVER_PID, and waits for /health/ (its answer in $RES/NAME-health.json).
start_server() {
    local name=$1 port up=
    shift
    SERVER_NAME=$name
    port=$(free_port)
    URL=http://127.0.0.1:$port
    env "$@" LISTEN_ADDR="127.0.0.1:$port" "$BIN" serve --no-migrate >"$LOG_DIR/$ENGINE-$name-server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 300); do
        kill -0 "$SERVER_PID" 2>/dev/null || check_server
        if curl -fsS --max-time 2 "$URL/health/" >"$RES/$name-health.json" 2>/dev/null; then
            up=1
            break
        fi
        sleep 0.2
    done
    [[ -n $up ]] || die "the $ENGINE $name server did not answer $URL/health/ within 60 s"
}

# check_server: stops the run if the current server is gone, with how it ended (a
# signal from outside this script, a crash) and where its log is, or if it no longer
# answers /health/ (shutting down after a signal from outside: it lingers while its
# background jobs finish).
check_server() {
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        curl -fsS --max-time 10 -o /dev/null "$URL/health/" 2>/dev/null && return 0
        die "the $ENGINE $SERVER_NAME server no longer answers $URL/health/ (was it sent a signal from outside this run?); log: $LOG_DIR/$ENGINE-$SERVER_NAME-server.log"
    fi
    local status=0
    wait "$SERVER_PID" 2>/dev/null || status=$?
    SERVER_PID=
    if ((status > 128)); then
        die "the $ENGINE $SERVER_NAME server was ended by signal $((status - 128)) ($(kill -l $((status - 128)) 2>/dev/null)), not by this script; log: $LOG_DIR/$ENGINE-$SERVER_NAME-server.log"
    fi
    die "the $ENGINE $SERVER_NAME server exited with status $status; log: $LOG_DIR/$ENGINE-$SERVER_NAME-server.log"
}

# fact KEY VALUE: one figure of the current engine, for the section's writer.
fact() { printf '%s=%s\n' "$1" "$2" >>"$RES/facts"; }

# stress NAME [seriesd stress options...]: its JSON summary goes to $RES/NAME.json, its
# error lines to $RES/NAME.err. Failed posts are counted and reported, not fatal: they
# are what this benchmark is about.
stress() {
    local name=$1 status=0
    shift
    "$BIN" stress --url "$URL" --span-days "$SPAN_DAYS" "$@" >"$RES/$name.out" 2>"$RES/$name.err" || status=$?
    tail -n 1 "$RES/$name.out" >"$RES/$name.json"
    python3 -c 'import json, sys; json.load(open(sys.argv[1]))["points"]' "$RES/$name.json" 2>/dev/null ||
        die "seriesd stress ($name) on $ENGINE gave no summary (exit $status): $(tail -n 3 "$RES/$name.err")"
    head -n 1 "$RES/$name.out" >&2
    # Failed posts count against the engine only if the server lived through them.
    check_server
}

# queries CASES OUT: benches/engine_queries.py on the current server. A server that stops
# listening part-way (a signal from outside this run: it then shuts down gracefully, so it
# is still there) stops the run instead of counting as the engine's errors.
queries() {
    local status=0
    python3 "$ROOT/benches/engine_queries.py" 127.0.0.1 "${URL##*:}" "$RES/$1" "$N" "$QUERY_WARMUP" >"$RES/$2" || status=$?
    check_server
    ((status == 0)) || die "the $ENGINE $SERVER_NAME server stopped accepting connections during the queries (engine_queries.py exit $status); was it sent a signal from outside this run? log: $LOG_DIR/$ENGINE-$SERVER_NAME-server.log"
}

# Runs CHECKPOINT on every node of the current engine, so that no checkpoint of the
# previous phase's writes lands in the next measurement.
checkpoint() {
    local url
    for url in "${NODE_URLS[@]}"; do node_psql "$url" "$DB" -c CHECKPOINT; done
}

# metric NAME: a value of the server's /metrics (empty when absent or unanswered).
metric() { { curl -fsS --max-time 5 "$URL/metrics" 2>/dev/null || true; } | awk -v m="$1" '$1 == m {print $2}'; }
is_zero() { awk -v x="$1" 'BEGIN {exit !(x != "" && x + 0 == 0)}'; }

# The query shapes, anchored on the queried user's data (its first session and last
# point) so that each engine is asked about the same points although each load ran at a
# different moment. name|path
write_cases() {
    local first last
    first=$(bench_psql -c "SELECT to_char(min(start_ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM sessions WHERE user_id = '$Q_USER'")
    last=$(bench_psql -c "SELECT to_char(max(time) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM points WHERE user_id = '$Q_USER'")
    [[ -n $first && -n $last ]] || die "no data for the queried user $Q_USER on $ENGINE"
    local d365 d730 d90 m30 w7 ts="/api/timeseries/?user_id=$Q_USER"
    d730=$(date -u -d "$last - 730 days" +%Y-%m-%dT%H:%M:%SZ)
    d365=$(date -u -d "$last - 365 days" +%Y-%m-%dT%H:%M:%SZ)
    d90=$(date -u -d "$last - 90 days" +%Y-%m-%dT%H:%M:%SZ)
    m30=$(date -u -d "$first + 30 days" +%Y-%m-%dT%H:%M:%SZ)
    w7=$(date -u -d "$first + 7 days" +%Y-%m-%dT%H:%M:%SZ)
    cat >"$RES/cases" <<CASES
year by month, one series|$ts&series=session.gut_health_score&interval=month&start_time=$d365&end_time=$last
two years by month, series=session.*|$ts&series=session.*&interval=month&start_time=$d730&end_time=$last
month by day, one series|$ts&series=session.gut_health_score&interval=day&start_time=$first&end_time=$m30
90 days by day, one series|$ts&series=session.gut_health_score&interval=day&start_time=$d90&end_time=$last
two years by week, median|$ts&series=session.gut_health_score&interval=week&agg_func=median&start_time=$d730&end_time=$last
latest, series=session.*|/api/timeseries/latest/?user_id=$Q_USER&series=session.*
raw window of 7 days, JSON page|/api/timeseries/points/?user_id=$Q_USER&start_time=$first&end_time=$w7&limit=1000
raw window of 7 days, NDJSON export|/api/timeseries/points/?user_id=$Q_USER&start_time=$first&end_time=$w7&format=ndjson
CASES
    # Without rollups only the aggregates change path.
    grep '^[^|]*|/api/timeseries/?' "$RES/cases" >"$RES/cases_raw"
}

# run_engine ENGINE EXPECTED_STORAGE: the whole measurement on the engine whose nodes are
# NODE_URLS; results in $WORK/results/ENGINE/.
run_engine() {
    ENGINE=$1
    local expected=$2 storage stored_a stored_b pending started deadline lag failed caught='' gauge=present
    RES=$WORK/results/$ENGINE
    mkdir -p "$RES"
    : >"$RES/facts"

    log "$ENGINE: fresh database $DB, migrate, seed, token"
    make_database "$ENGINE"
    export DATABASE_URL="${NODE_URLS[0]}/$DB?$CONN_OPTS"
    "$BIN" migrate >"$LOG_DIR/$ENGINE-migrate.log" 2>&1 || die "migrate failed on $ENGINE: $(tail -n 5 "$LOG_DIR/$ENGINE-migrate.log")"
    "$BIN" seed >>"$LOG_DIR/$ENGINE-migrate.log" 2>&1 || die "seed failed on $ENGINE: $(tail -n 5 "$LOG_DIR/$ENGINE-migrate.log")"
    SERIESD_TOKEN=$("$BIN" token create --admin --name bench-engines)
    export SERIESD_TOKEN
    fact pg_version "$(bench_psql -c 'SHOW server_version')"
    fact extension "$(bench_psql -c "SELECT coalesce(string_agg(extname || ' ' || extversion, ', '), '') FROM pg_extension WHERE extname IN ('timescaledb', 'citus')")"
    fact settings "$(bench_psql -c "SELECT string_agg(name || ' ' || current_setting(name), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('shared_buffers', 'autovacuum', 'fsync', 'synchronous_commit', 'max_connections', 'work_mem')")"
    if [[ $ENGINE == citus ]]; then
        fact citus_conninfo "$(bench_psql -c 'SHOW citus.node_conninfo')"
        fact citus_shards "$(bench_psql -c "SELECT count(*) FROM citus_shards WHERE table_name = 'sessions'::regclass")"
    fi

    # The ingest server: the defaults (Redis on loopback as the query cache) but the rate
    # limit, which would measure itself with one token driving the whole load, and the
    # future write window: a generated 5,000-point session lasts up to 17 days, so one
    # that starts in the span's last days runs past the default 7 days after now and
    # would be refused (a 400 on every engine alike).
    start_server ingest RATE_LIMIT_PER_SEC=0 REDIS_PREFIX="seriesd-bench-engines-$ENGINE-$$" \
        WRITE_WINDOW_FUTURE_DAYS=30
    storage=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("storage"))' "$RES/ingest-health.json")
    fact storage "$storage"
    [[ $storage == "$expected" ]] || die "/health/ on $ENGINE reports storage $storage, expected $expected"
    echo "/health/: $(cat "$RES/ingest-health.json")" >&2

    # How busy the machine already was (other work on it makes every figure noisier).
    fact loadavg "$(cut -d' ' -f1 /proc/loadavg)"
    log "$ENGINE: warm-up, $WARMUP_SESSIONS sessions of 10 points (makes the weeks' partitions or chunks; not counted)"
    stress warmup --users 10 --sessions $((WARMUP_SESSIONS / 10)) --points 10 --concurrency 32 \
        --seed 1 --user-ids-from "$W_BASE"
    log "$ENGINE: (a) $((A_USERS * A_SESSIONS)) sessions of $A_POINTS points, concurrency $A_CONC"
    checkpoint
    stress a --users "$A_USERS" --sessions "$A_SESSIONS" --points "$A_POINTS" \
        --concurrency "$A_CONC" --seed 2 --user-ids-from "$A_BASE"
    log "$ENGINE: (b) $((B_USERS * B_SESSIONS)) sessions of $B_POINTS points, concurrency $B_CONC"
    checkpoint
    stress b --users "$B_USERS" --sessions "$B_SESSIONS" --points "$B_POINTS" \
        --concurrency "$B_CONC" --seed 3 --user-ids-from "$B_BASE"
    stop_server

    stored_a=$(bench_psql -c "SELECT count(*) FROM points WHERE user_id >= '$A_BASE' AND user_id < '$A_END'")
    stored_b=$(bench_psql -c "SELECT count(*) FROM points WHERE user_id >= '$B_BASE' AND user_id < '$B_END'")
    fact stored_a "$stored_a"
    fact stored_b "$stored_b"
    echo "stored: (a) $stored_a of $((A_USERS * A_SESSIONS * A_POINTS)), (b) $stored_b of $((B_USERS * B_SESSIONS * B_POINTS))" >&2

    # The query server: no cache at all (no Redis, nothing kept in process), so every
    # answer is computed; the rollup job unbudgeted, as benches/query.sh runs it to catch
    # up, which it must before anything is measured.
    log "$ENGINE: waiting for the rollup job to catch up (at most $CATCHUP_SECS s)"
    pending=$(bench_psql -c "SELECT count(*) FROM rollup_invalidations")
    fact rollup_pending "$pending"
    started=$(date +%s.%N)
    start_server query RATE_LIMIT_PER_SEC=0 REDIS_URL= CACHE_TTL_SECS=0 CACHE_TTL_RECENT_SECS=0 \
        ROLLUP_BUDGET_MS=3600000
    deadline=$(($(date +%s) + CATCHUP_SECS))
    while (($(date +%s) < deadline)); do
        check_server
        lag=$(metric seriesd_rollup_lag_seconds)
        if [[ -n $lag ]]; then
            is_zero "$lag" && caught=1 && break
        else
            # The service left the gauge out: it could not read its backlog. Noted in the
            # section; the table itself says when the job is done, as in benches/query.sh.
            gauge=absent
            is_zero "$(bench_psql -c "SELECT count(*) FROM rollup_invalidations")" && caught=1 && break
        fi
        sleep 0.5
    done
    failed=$(metric seriesd_rollup_failed_hours)
    fact rollup_caught_up "${caught:-0}"
    fact rollup_seconds "$(python3 -c 'import sys, time; print(round(time.time() - float(sys.argv[1]), 1))' "$started")"
    fact rollup_lag "${lag:-absent}"
    fact rollup_lag_gauge "$gauge"
    fact rollup_failed_hours "${failed:-$(bench_psql -c "SELECT count(*) FROM rollup_failures")}"
    fact rollup_left "$(bench_psql -c "SELECT count(*) FROM rollup_invalidations")"
    echo "rollups: ${pending} keys pending at start; caught up: ${caught:-no} (lag gauge ${lag:-absent}, ${failed:-?} hours set aside)" >&2

    # Statistics for the planner on every engine (the system server runs without
    # autovacuum, and so do the throwaway nodes): on Citus, VACUUM and ANALYZE of a
    # distributed table run on its shards.
    bench_psql -c "SELECT string_agg(format('%I', c.relname), ', ') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition" >"$RES/tables"
    bench_psql -c "VACUUM ANALYZE $(cat "$RES/tables")" >/dev/null

    log "$ENGINE: query shapes, $N requests each (after $QUERY_WARMUP not timed), rollups on"
    write_cases
    queries cases queries.jsonl
    stop_server
    log "$ENGINE: the aggregates again without rollups (ROLLUPS=false: raw points)"
    start_server query-raw RATE_LIMIT_PER_SEC=0 REDIS_URL= CACHE_TTL_SECS=0 CACHE_TTL_RECENT_SECS=0 \
        ROLLUPS=false
    queries cases_raw queries_raw.jsonl
    stop_server

    # What the servers logged at WARN or ERROR, and panics; and the statements the
    # throwaway nodes refused, by message (the system server's log is not ours to read).
    fact log_problems "$(cat "$LOG_DIR/$ENGINE"-*-server.log | grep -cwE 'WARN|ERROR|panicked' || true)"
    if [[ $ENGINE != native ]]; then
        cat "$CLUSTERS/$ENGINE"/node*/log | { grep -E '^[0-9-]+ [0-9:.]+ UTC \[[0-9]+\] ERROR: ' || true; } |
            sed -E 's/^.*\] ERROR: +//' | sort | uniq -c | sort -rn >"$RES/node_errors"
        fact node_errors "$(awk '{n += $1} END {print n + 0}' "$RES/node_errors")"
    fi
}

# Warnings and errors only (as benches/ingest.sh: a line per request would cost the
# measurement), without colours, so that the logs read as text.
export RUST_LOG=warn NO_COLOR=1
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# The last commit that changed what the binary is built from.
SERVICE_COMMIT=$(git log -1 --format=%h -- src migrations assets Cargo.toml Cargo.lock 2>/dev/null || echo unknown)
DIRTY=false
# (BENCHMARKS.md itself aside: the sections the benchmarks rewrite do not change the build.)
if [[ -n $(git status --porcelain --untracked-files=no -- . ':!BENCHMARKS.md' 2>/dev/null) ]]; then DIRTY=true; fi
RUN_START=$(date -u '+%Y-%m-%d %H:%M')

for engine in $ENGINES; do
    case "$engine" in
        native)
            NODE_URLS=("$PG_URL")
            run_engine native native-partitions
            psql "$PG_URL/postgres?$CONN_OPTS" -X -qAt -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null
            ;;
        timescaledb)
            log "starting a throwaway TimescaleDB node"
            start_cluster timescaledb 1
            run_engine timescaledb timescaledb
            stop_clusters
            ;;
        citus)
            log "starting a throwaway Citus cluster: a coordinator and two workers"
            start_cluster citus 3
            run_engine citus citus
            stop_clusters
            ;;
        *) die "unknown engine $engine (BENCH_ENGINES: native timescaledb citus)" ;;
    esac
done
RUN_END=$(date -u '+%H:%M')

python3 "$ROOT/benches/write_engines_section.py" "$WORK/results" "$OUT_MD" <<META
{"date": "$RUN_START-$RUN_END", "commit": "$COMMIT", "service_commit": "$SERVICE_COMMIT", "dirty": $DIRTY,
 "nproc": $(nproc), "mem_mib": $(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo), "kernel": "$(uname -r)",
 "engines": "$ENGINES", "warmup_sessions": $WARMUP_SESSIONS,
 "a": {"users": $A_USERS, "sessions": $A_SESSIONS, "points": $A_POINTS, "concurrency": $A_CONC},
 "b": {"users": $B_USERS, "sessions": $B_SESSIONS, "points": $B_POINTS, "concurrency": $B_CONC},
 "n": $N, "query_warmup": $QUERY_WARMUP, "catchup_secs": $CATCHUP_SECS, "q_user": "$Q_USER", "log_dir": "${LOG_DIR#"$ROOT"/}"}
META
log "wrote the Engines section of $OUT_MD"
sed -n '/^## Engines/,/^## [^E]/p' "$OUT_MD" >&2
