#!/usr/bin/env bash
# Erase benchmark (`make bench-erase`, after `cargo build --release`).
#
# On a fresh database of its own it starts the release server, loads one user of 1 M
# points (200 sessions of 5,000 points over a year, through POST /api/sessions/) and 200
# other users of 200 points each, waits for the rollup job to catch up, then
# (benches/erase_load.py) measures the other users' ingest latency under a paced load
# without an erase, and again while DELETE /api/users/{id}/ erases the big user, and
# rewrites the `## Erasing a user` section of BENCHMARKS.md. The server is stopped and
# the database dropped on exit, whatever happens.
#
# Sizes can be changed from the environment (BENCH_BIG_SESSIONS, ...; see below); the
# defaults are the ones BENCHMARKS.md reports.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/seriesd
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
DB=${BENCH_DB:-seriesd_bench_erase}
export OUT_MD=${BENCH_OUT:-$ROOT/BENCHMARKS.md}

BIG_SESSIONS=${BENCH_BIG_SESSIONS:-200}
BIG_POINTS=${BENCH_BIG_POINTS:-5000} # per session: 1 M points
OTHER_USERS=${BENCH_OTHER_USERS:-200}
OTHER_SESSIONS=${BENCH_OTHER_SESSIONS:-20}
SPAN_DAYS=${BENCH_SPAN_DAYS:-365}
# The big user is Uuid::from_u128(BIG_BASE + 0); the others from OTHER_BASE.
export BIG_USER=e0000000-0000-4000-8000-000000000000
OTHER_BASE=f0000000-0000-4000-8000-000000000000

BENCH_NAME=bench-erase
# shellcheck source=benches/server.sh
source "$ROOT/benches/server.sh"

[[ -x $BIN ]] || die "$BIN is missing: run 'cargo build --release' (make bench-erase does)"
command -v psql >/dev/null || die "psql is not installed"
command -v curl >/dev/null || die "curl is not installed"
command -v python3 >/dev/null || die "python3 is not installed"

export WORK
WORK=$(mktemp -d -t bench-erase.XXXXXX)
SERVER_PID=

clean_up_on_exit

export DATABASE_URL="$PG_URL/$DB?sslmode=${BENCH_SSLMODE:-disable}"
export REDIS_PREFIX=seriesd_bench_erase
export RUST_LOG=${BENCH_RUST_LOG:-warn}
# One token drives the whole load: the per-token rate limit would measure itself.
export RATE_LIMIT_PER_SEC=0

fresh_database

PORT=$(free_port)
export URL=http://127.0.0.1:$PORT
log "starting the server on $URL"
LISTEN_ADDR=127.0.0.1:$PORT "$BIN" serve --no-migrate >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
wait_for_health "$URL" "$WORK/health.json"

log "loading the big user: $BIG_SESSIONS sessions of $BIG_POINTS points over $SPAN_DAYS days"
"$BIN" stress --url "$URL" --users 1 --sessions "$BIG_SESSIONS" --points "$BIG_POINTS" \
    --concurrency 4 --span-days "$SPAN_DAYS" --seed 11 --user-ids-from "$BIG_USER" >"$WORK/big.out" ||
    die "seriesd stress (big user) failed: $(tail -n 2 "$WORK/big.out")"
head -n 1 "$WORK/big.out" >&2
log "loading $OTHER_USERS other users: $OTHER_SESSIONS sessions of 10 points each"
"$BIN" stress --url "$URL" --users "$OTHER_USERS" --sessions "$OTHER_SESSIONS" --points 10 \
    --concurrency 16 --span-days "$SPAN_DAYS" --seed 12 --user-ids-from "$OTHER_BASE" >"$WORK/others.out" ||
    die "seriesd stress (other users) failed: $(tail -n 2 "$WORK/others.out")"
head -n 1 "$WORK/others.out" >&2

export BIG_STORED
BIG_STORED=$(bench_psql -c "SELECT count(*) FROM points WHERE user_id = '$BIG_USER'")
[[ $BIG_STORED -eq $((BIG_SESSIONS * BIG_POINTS)) ]] ||
    die "the big user has $BIG_STORED points, expected $((BIG_SESSIONS * BIG_POINTS))"
log "waiting for the rollup job to catch up"
for _ in $(seq 1 600); do
    pending=$(bench_psql -c "SELECT count(*) FROM rollup_invalidations")
    [[ $pending -eq 0 ]] && break
    sleep 1
done
[[ $pending -eq 0 ]] || die "the rollup job did not catch up within 10 minutes ($pending pending)"
export BIG_ROLLUP_ROWS
BIG_ROLLUP_ROWS=$(bench_psql -c "SELECT (SELECT count(*) FROM rollup_hourly WHERE user_id = '$BIG_USER')
    + (SELECT count(*) FROM rollup_daily WHERE user_id = '$BIG_USER')
    + (SELECT count(*) FROM rollup_monthly WHERE user_id = '$BIG_USER')
    + (SELECT count(*) FROM rollup_values_hourly WHERE user_id = '$BIG_USER')
    + (SELECT count(*) FROM rollup_values_daily WHERE user_id = '$BIG_USER')
    + (SELECT count(*) FROM rollup_values_monthly WHERE user_id = '$BIG_USER')")
bench_psql -c "VACUUM ANALYZE" -c CHECKPOINT

# The other users the paced load writes for: those the load above made.
export OTHER_BASE OTHER_USERS
python3 "$ROOT/benches/erase_load.py" >"$WORK/results.json"

log "checking that nothing of the big user is left"
LEFT=$(bench_psql -c "SELECT (SELECT count(*) FROM points WHERE user_id = '$BIG_USER')
    + (SELECT count(*) FROM sessions WHERE user_id = '$BIG_USER')
    + (SELECT count(*) FROM rollup_hourly WHERE user_id = '$BIG_USER')
    + (SELECT count(*) FROM rollup_daily WHERE user_id = '$BIG_USER')
    + (SELECT count(*) FROM rollup_monthly WHERE user_id = '$BIG_USER')")
[[ $LEFT -eq 0 ]] || die "$LEFT rows of the big user are left after the erase"

export PG_VERSION PG_SHARED_BUFFERS COMMIT DIRTY
PG_VERSION=$(bench_psql -c "SHOW server_version")
PG_SHARED_BUFFERS=$(bench_psql -c "SHOW shared_buffers")
stop_server
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=false
if [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then DIRTY=true; fi
python3 "$ROOT/benches/erase_load.py" --write-section "$WORK/results.json"
log "BENCHMARKS.md: section 'Erasing a user' rewritten"
