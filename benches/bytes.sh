#!/usr/bin/env bash
# Bytes per point on disk (`make bench-bytes`): table, index and rollup bytes for the
# seed's data shape (one user, 25,000 sessions of 10 points spread over two years: a
# session every 42 minutes on average; loaded through HTTP by `seriesd stress` into a
# database of its own, dropped afterwards) and for the dense shape of the Query section
# (40 users x 250,000 points, its database `seriesd_bench_query` where `make bench-query`
# left it; skipped without it). Measured after the rollup job caught up and a VACUUM.
# Rewrites the `## Bytes per point` section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BENCH_NAME=bench-bytes
source benches/server.sh
BIN=$ROOT/target/release/seriesd
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
DB=seriesd_bench_bytes
DENSE_DB=${BENCH_QUERY_DB:-seriesd_bench_query}
WORK=$(mktemp -d -t bench-bytes.XXXXXX)
SERVER_PID=
clean_up_on_exit
[[ -x $BIN ]] || die "missing $BIN: run cargo build --release"
export DATABASE_URL="$PG_URL/$DB?sslmode=${BENCH_SSLMODE:-disable}" RUST_LOG=warn RATE_LIMIT_PER_SEC=0 ROLLUP_BUDGET_MS=3600000
fresh_database
PORT=$(free_port)
LISTEN_ADDR="127.0.0.1:$PORT" REDIS_PREFIX="seriesd-bench-bytes-$$" "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
wait_for_health "http://127.0.0.1:$PORT" "$WORK/health.json"
log "the seed's shape: 1 user x 25,000 sessions x 10 points over 730 days"
"$BIN" stress --url "http://127.0.0.1:$PORT" --users 1 --sessions 25000 --points 10 --span-days 730 --seed 7 >&2
for _ in $(seq 1 600); do
    [[ $(bench_psql -c "SELECT count(*) FROM rollup_invalidations") == 0 ]] && break
    sleep 1
done
stop_server

# sizes DATABASE_URL: one JSON object of bytes by part, and the number of points.
sizes() {
    psql "$1" -X -v ON_ERROR_STOP=1 -qAt <<'SQL'
VACUUM ANALYZE;
WITH parts AS (
    SELECT 'points' AS part, relid FROM pg_partition_tree('points') WHERE isleaf
    UNION ALL
    SELECT 'points', c.oid FROM pg_class c
    WHERE c.relname = 'points' AND c.relkind = 'r'
    UNION ALL
    SELECT c.relname, c.oid FROM pg_class c
    WHERE c.relkind = 'r' AND c.relname LIKE 'rollup\_%' AND c.relname <> 'rollup_failures'
), sized AS (
    SELECT part, sum(pg_table_size(relid)) AS table_bytes, sum(pg_indexes_size(relid)) AS index_bytes
    FROM parts GROUP BY part
)
SELECT json_build_object(
    'points', (SELECT count(*) FROM points),
    'parts', (SELECT json_object_agg(part, json_build_array(table_bytes, index_bytes)) FROM sized)
);
SQL
}
SEED=$(sizes "$DATABASE_URL" | tail -n 1)
DENSE=null
if [[ $(admin_psql -c "SELECT count(*) FROM pg_database WHERE datname = '$DENSE_DB'") == 1 ]]; then
    log "the dense shape: $DENSE_DB"
    DENSE=$(sizes "$PG_URL/$DENSE_DB?sslmode=disable" | tail -n 1)
fi

PYTHONPATH="$ROOT/benches" python3 - "$ROOT/BENCHMARKS.md" "$SEED" "$DENSE" <<'PY'
import json, os, subprocess, sys, datetime
from benchmarks_md import replace_section
path, seed, dense = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
sh = lambda c: subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
commit = sh("git rev-parse --short HEAD")
shapes = [("seed's shape (1 user, a session every 42 min, 250,000 points)", seed)]
if dense:
    shapes.append((f"dense shape (40 users, {dense['points']:,} points)", dense))
def row(name, s):
    n = s["points"]
    parts = s["parts"]
    pt = parts.get("points", [0, 0])
    log = sum(parts.get("rollup_invalidations", [0, 0]))
    roll = sum(t + i for k, (t, i) in parts.items() if k not in ("points", "rollup_invalidations"))
    total = pt[0] + pt[1] + roll
    return f"| {name} | {n:,} | {pt[0] / n:.0f} | {pt[1] / n:.0f} | {roll / n:.0f} | **{total / n:.0f}** | {log / n:.0f} |"
out = [
    "## Bytes per point", "",
    "Written by `benches/bytes.sh`; do not edit by hand (the next run replaces this section).", "",
    f"- Date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit `{commit}`; native weekly partitions, after the rollup job caught up and `VACUUM ANALYZE`",
    "- Command: `make bench-bytes`; table bytes are `pg_table_size` (heap, TOAST, free-space and visibility maps), index bytes `pg_indexes_size`, summed over the weekly partitions of `points` and over the rollup tables (`rollup_*`, hourly, daily and monthly, numbers and values, and the invalidation log)",
    "",
    "| data | points | `points` table B/point | `points` indexes B/point | rollups B/point | all B/point | invalidation log B/point |",
    "|---|---:|---:|---:|---:|---:|---:|",
]
out += [row(n, s) for n, s in shapes]
detail = ", ".join(f"{k} {(t + i) / seed['points']:.0f}" for k, (t, i) in sorted(seed["parts"].items()) if k not in ("points", "rollup_invalidations"))
out += [
    "",
    f"Rollup tables on the seed's shape, B/point: {detail}.",
    "",
    "The invalidation log is empty once the job caught up, but its indexes keep the size of the load's backlog until `REINDEX TABLE CONCURRENTLY rollup_invalidations` (see docs/operations.md); it is not counted in the total.",
    "",
    "Target of issue 7/7: at most 200 B/point in all on the seed's shape.",
    "",
]
replace_section(path, "Bytes per point", "\n".join(out))
print("\n".join(out), file=sys.stderr)
PY
