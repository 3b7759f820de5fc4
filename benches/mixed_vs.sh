#!/usr/bin/env bash
# The saturating mixed load of the Rollups section, on this commit's server and on an
# earlier commit's (`make bench-mixed-vs`; BENCH_BASE_COMMIT, default 3f11835), built and
# run in the same session on the same data: copies of the Query section's database
# (`make bench-query` loads it), so neither build writes to the kept data.
# The two servers take turns (BENCH_ROUNDS rounds, default 3), each run after a warm-up
# that is not measured, the mixed load's sessions deleted after each. Rewrites the
# `## Mixed load against an earlier commit` section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BENCH_NAME=bench-mixed-vs
source benches/server.sh
BIN=$ROOT/target/release/seriesd
MIXED_BIN=$ROOT/target/release/examples/mixed_load
BASE_COMMIT=${BENCH_BASE_COMMIT:-3f11835}
ROUNDS=${BENCH_ROUNDS:-3}
SECONDS_MEASURED=${BENCH_SECONDS:-30}
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
SOURCE_DB=${BENCH_QUERY_DB:-seriesd_bench_query}
DB=seriesd_bench_mixed_vs
BASE=c0000000-0000-4000-8000-000000000000
USERS=40
WORK=$(mktemp -d -t bench-mixed-vs.XXXXXX)
SERVER_PID=
clean_up_on_exit
[[ -x $BIN && -x $MIXED_BIN ]] || die "missing $BIN or $MIXED_BIN: run cargo build --release --bin seriesd --example mixed_load"
[[ $(admin_psql -c "SELECT count(*) FROM pg_database WHERE datname = '$SOURCE_DB'") == 1 ]] ||
    die "no database $SOURCE_DB: run make bench-query first (it loads the data)"

# BENCH_BASE_BIN: a release build of BENCH_BASE_COMMIT made already (else built here).
BASE_BIN=${BENCH_BASE_BIN:-}
if [[ -z $BASE_BIN ]]; then
    log "building $BASE_COMMIT (release) in target/bench-base"
    BASE_SRC=$ROOT/target/bench-base/src
    if [[ ! -d $BASE_SRC ]]; then
        git worktree add --force --detach "$BASE_SRC" "$BASE_COMMIT" >/dev/null
    else
        git -C "$BASE_SRC" checkout --quiet --detach "$BASE_COMMIT"
    fi
    (cd "$BASE_SRC" && CARGO_TARGET_DIR=$ROOT/target/bench-base/target cargo build --release --quiet --bin seriesd)
    BASE_BIN=$ROOT/target/bench-base/target/release/seriesd
fi

# Two copies: this commit's server on one, the earlier one's on the other, taken back to
# the earlier commit's schema (the down migrations of the migrations it does not have,
# newest first), so that each runs on the schema it was written for (the earlier
# ingest, say, looks sessions up by an index a later migration replaced).
BASE_DB=${DB}_base
url_of() { echo "$PG_URL/$1?sslmode=${BENCH_SSLMODE:-disable}"; }
for copy in "$DB" "$BASE_DB"; do
    log "copying $SOURCE_DB to $copy"
    admin_psql -c "DROP DATABASE IF EXISTS $copy WITH (FORCE)" >/dev/null
    admin_psql -c "CREATE DATABASE $copy TEMPLATE $SOURCE_DB" >/dev/null
done
trap 'status=$?; admin_psql -c "DROP DATABASE IF EXISTS $BASE_DB WITH (FORCE)" >/dev/null 2>&1; (exit $status); clean_up' EXIT
for migration in $(comm -13 <(git ls-tree --name-only "$BASE_COMMIT" migrations/ | sort) <(ls -d migrations/* | sort) | sort -r); do
    log "$BASE_DB: down $migration"
    psql "$(url_of "$BASE_DB")" -X -v ON_ERROR_STOP=1 -qAt -f "$migration/down.sql" >/dev/null
    version=$(basename "$migration" | cut -d_ -f1 | tr -d -)
    psql "$(url_of "$BASE_DB")" -X -v ON_ERROR_STOP=1 -qAt \
        -c "DELETE FROM __diesel_schema_migrations WHERE version = '$version'" >/dev/null
done
export RUST_LOG=warn RATE_LIMIT_PER_SEC=0
SERIESD_TOKEN=$(DATABASE_URL=$(url_of "$DB") "$BIN" token create --admin --name bench-mixed-vs)
# The same token in the other copy (tokens are stored hashed: copy the row).
psql "$(url_of "$DB")" -X -qAt -c "COPY (SELECT * FROM api_tokens WHERE name = 'bench-mixed-vs') TO STDOUT" |
    psql "$(url_of "$BASE_DB")" -X -qAt -c "COPY api_tokens FROM STDIN"
export SERIESD_TOKEN
PORT=$(free_port)
export LISTEN_ADDR="127.0.0.1:$PORT"

# run BIN LABEL: one warm-up and one measured saturating run; prints the client's JSON
# with the label added.
run() {
    local db=$DB
    [[ $2 == base ]] && db=$BASE_DB
    export DATABASE_URL
    DATABASE_URL=$(url_of "$db")
    REDIS_PREFIX="seriesd-bench-vs-$$-$2-$RANDOM" "$1" serve >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    wait_for_health "http://127.0.0.1:$PORT" "$WORK/health.json"
    "$MIXED_BIN" 127.0.0.1 "$PORT" 10 32 "$BASE" $USERS >/dev/null
    local out
    out=$("$MIXED_BIN" 127.0.0.1 "$PORT" "$SECONDS_MEASURED" 32 "$BASE" $USERS)
    stop_server
    bench_psql -f benches/delete_mixed_load_sessions.sql >/dev/null
    # The deleted rows' space back (the machine's server may run without autovacuum):
    # otherwise each run scans the dead rows of the runs before it.
    bench_psql -c "VACUUM ANALYZE" >/dev/null
    python3 -c 'import json,sys; m=json.loads(sys.argv[1]); m["label"]=sys.argv[2]; print(json.dumps(m))' "$out" "$2"
}

: >"$WORK/runs"
for round in $(seq 1 "$ROUNDS"); do
    for which in base this; do
        bin=$BIN
        [[ $which == base ]] && bin=$BASE_BIN
        log "round $round: $which"
        run "$bin" "$which" >>"$WORK/runs"
        tail -n 1 "$WORK/runs" >&2
    done
done

python3 - "$ROOT/BENCHMARKS.md" "$BASE_COMMIT" "$SECONDS_MEASURED" "$WORK/runs" <<'PY'
import json, os, re, statistics, subprocess, sys, datetime
path, base, secs, runs = sys.argv[1:]
runs = [json.loads(l) for l in open(runs) if l.strip()]
sh = lambda c: subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
commit = sh("git rev-parse --short HEAD")
qps = lambda m: m["queries"] / m["seconds"]
by = {w: [m for m in runs if m["label"] == w] for w in ("base", "this")}
med = {w: statistics.median(qps(m) for m in by[w]) for w in by}
out = [
    "## Mixed load against an earlier commit", "",
    "Written by `benches/mixed_vs.sh`; do not edit by hand (the next run replaces this section).", "",
    f"- Date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; this commit `{commit}` against `{base}` (release builds, the earlier one built by the script)",
    f"- Machine: {os.cpu_count()} cores, Linux {os.uname().release}; the data of the Query section (a copy of its database)",
    f"- Command: `make bench-mixed-vs`; the saturating mixed load of the Rollups section (32 clients, 80% uncached queries of its three shapes, 20% 10-point ingests), {secs} s measured after a 10 s warm-up, the two servers taking turns",
    "",
    "| run | server | queries/s | query p50 / p99 ms | ingest p50 / p99 ms | errors |",
    "|---|---|---:|---|---|---:|",
]
for i, m in enumerate(runs, 1):
    name = f"`{base}`" if m["label"] == "base" else f"`{commit}`"
    out.append(f"| {i} | {name} | {qps(m):.1f} | {m['query_p50_ms']:.2f} / {m['query_p99_ms']:.2f} | {m['ingest_p50_ms']:.2f} / {m['ingest_p99_ms']:.2f} | {m['errors']} |")
out += ["", f"Median queries/s: **{med['this']:.1f}** against {med['base']:.1f}, **{med['this'] / med['base']:.2f}x** (target of issue 7/7: >= 1.5x, query p99 <= 50 ms, zero errors).", ""]
text = open(path).read()
section = "\n".join(out) + "\n"
pat = re.compile(r"^## Mixed load against an earlier commit\n.*?(?=^## |\Z)", re.S | re.M)
if pat.search(text):
    text = pat.sub(lambda _: section, text)
else:
    text = text.replace("## Rollup catch-up", section + "\n## Rollup catch-up", 1)
open(path, "w").write(text)
print(f"this / base: {med['this'] / med['base']:.2f}x", file=sys.stderr)
PY
