#!/usr/bin/env bash
# Bytes per point of compressed weeks on TimescaleDB (`make bench-bytes-timescaledb`):
# the seed's data shape (as in benches/bytes.sh) loaded through HTTP into a throwaway
# TimescaleDB cluster (scripts/on-engine.sh; skipped without ../shared/pg-extensions),
# served with COMPRESS_AFTER_WEEKS=1, measured once the compression job has compressed
# every week it covers: TimescaleDB's own before/after sizes of those chunks
# (`chunk_compression_stats`), per point they hold. Rewrites the `## Bytes per point on
# TimescaleDB, compressed` section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
if [[ -z ${TEST_DATABASE_URL:-} ]]; then
    exec scripts/on-engine.sh timescaledb bash "$0" "$@"
fi
BENCH_NAME=bench-bytes-timescaledb
source benches/server.sh
BIN=$ROOT/target/release/seriesd
# The cluster's maintenance URL, without the database and the query.
PG_URL=${TEST_DATABASE_URL%%\?*}
PG_URL=${PG_URL%/*}
DB=seriesd_bench_bytes_tsdb
WORK=$(mktemp -d -t bench-bytes-tsdb.XXXXXX)
SERVER_PID=
clean_up_on_exit
[[ -x $BIN ]] || die "missing $BIN: run cargo build --release"
export DATABASE_URL="$PG_URL/$DB?sslmode=disable" RUST_LOG=warn RATE_LIMIT_PER_SEC=0 ROLLUP_BUDGET_MS=3600000
admin_psql() { PGOPTIONS='-c client_min_messages=warning' psql "$PG_URL/postgres" -X -v ON_ERROR_STOP=1 -qAt "$@"; }
admin_psql -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
admin_psql -c "CREATE DATABASE $DB" >/dev/null
psql "$DATABASE_URL" -X -qAt -c "CREATE EXTENSION IF NOT EXISTS timescaledb" >/dev/null
"$BIN" migrate >/dev/null
"$BIN" seed >/dev/null
SERIESD_TOKEN=$("$BIN" token create --admin --name "$BENCH_NAME")
export SERIESD_TOKEN
[[ $(bench_psql -c "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = 'points'") == 1 ]] ||
    die "points is not a hypertable"
PORT=$(free_port)
LISTEN_ADDR="127.0.0.1:$PORT" REDIS_PREFIX="seriesd-bench-bytes-tsdb-$$" COMPRESS_AFTER_WEEKS=1 MAINTENANCE_PERIOD_SECS=1 \
    "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
wait_for_health "http://127.0.0.1:$PORT" "$WORK/health.json"
log "the seed's shape: 1 user x 25,000 sessions x 10 points over 730 days"
"$BIN" stress --url "http://127.0.0.1:$PORT" --users 1 --sessions 25000 --points 10 --span-days 730 --seed 7 >&2
pending="SELECT count(*) FROM timescaledb_information.chunks
         WHERE hypertable_name = 'points' AND range_end <= now() - interval '1 week' AND NOT is_compressed"
for _ in $(seq 1 600); do
    [[ $(bench_psql -c "$pending") == 0 && $(bench_psql -c "SELECT count(*) FROM rollup_invalidations") == 0 ]] && break
    sleep 1
done
[[ $(bench_psql -c "$pending") == 0 ]] || die "the compression job did not compress every old week within 600 s"
stop_server
STATS=$(bench_psql <<'SQL'
SELECT json_build_object(
    'chunks', count(*),
    'before', sum(s.before_compression_total_bytes),
    'after', sum(s.after_compression_total_bytes),
    'points', (SELECT count(*) FROM points p
               WHERE p.time < (SELECT max(range_end) FROM timescaledb_information.chunks
                               WHERE hypertable_name = 'points' AND is_compressed)
                 AND p.time >= (SELECT min(range_start) FROM timescaledb_information.chunks
                                WHERE hypertable_name = 'points' AND is_compressed)),
    'all_points', (SELECT count(*) FROM points))
FROM chunk_compression_stats('points') s WHERE s.compression_status = 'Compressed';
SQL
)
echo "$STATS" >&2
PYTHONPATH="$ROOT/benches" python3 - "$ROOT/BENCHMARKS.md" "$STATS" <<'PY'
import json, subprocess, sys, datetime
from benchmarks_md import replace_section
path, s = sys.argv[1], json.loads(sys.argv[2])
sh = lambda c: subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
commit = sh("git rev-parse --short HEAD")
n = s["points"]
out = [
    "## Bytes per point on TimescaleDB, compressed", "",
    "Written by `benches/bytes_timescaledb.sh`; do not edit by hand (the next run replaces this section).", "",
    f"- Date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit `{commit}`; a throwaway TimescaleDB 2.17 cluster on this machine",
    "- Command: `make bench-bytes-timescaledb`; the seed's shape (1 user, 25,000 sessions of 10 points over two years), served with `COMPRESS_AFTER_WEEKS=1`; sizes are TimescaleDB's `chunk_compression_stats` (table, indexes and TOAST of each chunk before and after compression)",
    "",
    "| chunks compressed | points in them | before compression B/point | compressed B/point |",
    "|---:|---:|---:|---:|",
    f"| {s['chunks']} | {n:,} | {s['before'] / n:.0f} | **{s['after'] / n:.0f}** |",
    "",
    "Target of issue 7/7: at most 40 B/point on compressed weeks. The rollup tables are not compressed (their bytes per point are those of the native section above).",
    "",
]
replace_section(path, "Bytes per point on TimescaleDB, compressed", "\n".join(out))
print("\n".join(out), file=sys.stderr)
PY
