#!/usr/bin/env bash
# Flat as data grows (`make bench-growth`): one user's two years at three sizes, 250,000,
# 2.5 M and 25 M points (sessions of 5,000 points, so denser over the same 730 days),
# loaded one after the other through HTTP by `seriesd stress` into one database of its own
# (each size a user of its own; dropped afterwards unless BENCH_KEEP=1). For each size:
# the ingest rate of its load, and once the rollup job caught up, the month-level `avg`
# over two years and the day-level `avg` over 90 days through HTTP uncached (p50 over
# BENCH_N requests) next to the same aggregate in plain SQL over raw points (pgbench).
# Plots latency against data size (docs/growth.png, with matplotlib from a venv it makes,
# .venv-bench/) and rewrites the `## Flat as data grows` section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BENCH_NAME=bench-growth
source benches/server.sh
BIN=$ROOT/target/release/seriesd
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
DB=seriesd_bench_growth
N=${BENCH_N:-200}
# sessions of 5,000 points per size: 250 k, 2.5 M, 25 M points
SIZES=${BENCH_GROWTH_SESSIONS:-"50 500 5000"}
WORK=$(mktemp -d -t bench-growth.XXXXXX)
SERVER_PID=
if [[ ${BENCH_KEEP:-0} == 1 ]]; then
    trap 'stop_server; rm -rf "$WORK"' EXIT
else
    clean_up_on_exit
fi
[[ -x $BIN ]] || die "missing $BIN: run cargo build --release"
VENV=$ROOT/.venv-bench
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    log "matplotlib into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet 'matplotlib>=3.8,<4'
fi
export DATABASE_URL="$PG_URL/$DB?sslmode=${BENCH_SSLMODE:-disable}" RUST_LOG=warn RATE_LIMIT_PER_SEC=0 ROLLUP_BUDGET_MS=3600000
fresh_database
PORT=$(free_port)
LISTEN_ADDR="127.0.0.1:$PORT" REDIS_PREFIX="seriesd-bench-growth-$$" "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
wait_for_health "http://127.0.0.1:$PORT" "$WORK/health.json"

catch_up() {
    for _ in $(seq 1 3600); do
        [[ $(bench_psql -c "SELECT count(*) FROM rollup_invalidations") == 0 ]] && return 0
        sleep 1
    done
    die "the rollup job did not catch up within an hour"
}

sql_p50() { # plain SQL over raw points, one client, $2 runs: p50 in ms
    printf '%s\n' "$1" >"$WORK/q.sql"
    (cd "$WORK" && rm -f pgbench_log.* && PGOPTIONS='-c jit=off' pgbench -n -c 1 -t "$2" -f q.sql -l "$DATABASE_URL" >/dev/null)
    awk '{print $3/1000}' "$WORK"/pgbench_log.* | sort -n | awk '{a[NR]=$1} END {printf "%.2f\n", a[int(NR*0.5)+1]}'
}

GUT=$(bench_psql -c "SELECT id FROM metric_types WHERE series = 'session.gut_health_score'")
rows=()
k=0
for sessions in $SIZES; do
    k=$((k + 1))
    user=$(printf 'd0000000-0000-4000-8000-%012d' "$k")
    log "size $k: 1 user x $sessions sessions x 5,000 points over 730 days"
    "$BIN" stress --url "http://127.0.0.1:$PORT" --users 1 --sessions "$sessions" --points 5000 \
        --concurrency 4 --span-days 730 --user-ids-from "$user" --seed "$k" | tail -n 1 >"$WORK/load.json"
    cat "$WORK/load.json" >&2
    started=$(date +%s.%N)
    catch_up
    caught=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
    bench_psql -c "VACUUM ANALYZE" >/dev/null
    points=$(bench_psql -c "SELECT count(*) FROM points WHERE user_id = '$user'")
    total=$(bench_psql -c "SELECT count(*) FROM points")
    end=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    from2y=$(date -u -d '730 days ago' +%Y-%m-%dT%H:%M:%SZ)
    from90=$(date -u -d '90 days ago' +%Y-%m-%dT%H:%M:%SZ)
    month="series=session.gut_health_score&interval=month&start_time=$from2y&end_time=$end"
    day="series=session.gut_health_score&interval=day&start_time=$from90&end_time=$end"
    month_sql="SELECT date_trunc('month', time, 'UTC') b, avg(num) FROM points WHERE user_id = '$user' AND series_id = $GUT AND time BETWEEN '$from2y' AND '$end' GROUP BY 1 ORDER BY 1;"
    day_sql="SELECT date_trunc('day', time, 'UTC') b, avg(num) FROM points WHERE user_id = '$user' AND series_id = $GUT AND time BETWEEN '$from90' AND '$end' GROUP BY 1 ORDER BY 1;"
    month_http=$(python3 benches/query_load.py 127.0.0.1 "$PORT" "/api/timeseries/?user_id=$user&$month" "$N" 1 uncached)
    day_http=$(python3 benches/query_load.py 127.0.0.1 "$PORT" "/api/timeseries/?user_id=$user&$day" "$N" 1 uncached)
    # Plain SQL reads every raw point, seconds each at the largest size: fewer runs there
    # (N at 250,000 points, N / 10 at 2.5 M, at least 5).
    runs=$(( N * 250000 / points ))
    (( runs < 5 )) && runs=5
    (( runs > N )) && runs=$N
    month_sql_ms=$(sql_p50 "$month_sql" "$runs")
    day_sql_ms=$(sql_p50 "$day_sql" "$runs")
    row=$(python3 -c 'import json, sys; print(json.dumps(dict(zip(
        ["points", "total", "load", "catch_up_s", "month_http", "day_http", "month_sql_ms", "day_sql_ms", "sql_runs"],
        [int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]), float(sys.argv[4]),
         json.loads(sys.argv[5]), json.loads(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8]), int(sys.argv[9])]))))' \
        "$points" "$total" "$(cat "$WORK/load.json")" "$caught" "$month_http" "$day_http" "$month_sql_ms" "$day_sql_ms" "$runs")
    echo "$row" >&2
    rows+=("$row")
done
stop_server

"$VENV/bin/python" - "$ROOT" "${rows[@]}" <<'PY'
import datetime, json, os, subprocess, sys
root, rows = sys.argv[1], [json.loads(r) for r in sys.argv[2:]]
sys.path.insert(0, os.path.join(root, "benches"))
from benchmarks_md import replace_section
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

sh = lambda c: subprocess.run(c, shell=True, capture_output=True, text=True, cwd=root).stdout.strip()
commit = sh("git rev-parse --short HEAD")
pg = sh("psql -qAtc 'SHOW server_version' postgres://postgres@127.0.0.1:5432/postgres")
mem = sh("free -g | awk '/Mem:/ {print $2}'")
date = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"

x = [r["points"] for r in rows]
fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
for key, label, style in [
    ("month_http", "month avg over 2 years, HTTP uncached (rollups)", "o-"),
    ("month_sql_ms", "month avg over 2 years, plain SQL over raw points", "o--"),
    ("day_http", "day avg over 90 days, HTTP uncached (rollups)", "s-"),
    ("day_sql_ms", "day avg over 90 days, plain SQL over raw points", "s--"),
]:
    y = [r[key]["p50_ms"] if isinstance(r[key], dict) else r[key] for r in rows]
    ax.plot(x, y, style, label=label)
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("the user's points (two years)")
ax.set_ylabel("p50 latency, ms")
ax.set_title(f"One user's two years as its data grows (seriesd {commit})", fontsize=10)
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(root, "docs", "growth.png"))

first, last = rows[0], rows[-1]
growth = lambda k: last[k]["p50_ms"] / first[k]["p50_ms"]
ingest = last["load"]["points_per_sec"] / first["load"]["points_per_sec"]
out = [
    "## Flat as data grows", "",
    "Written by `benches/growth.sh`; do not edit by hand (the next run replaces this section).", "",
    f"- Date: {date}, commit `{commit}`; {os.cpu_count()} cores, {mem} GiB, PostgreSQL {pg}, native weekly partitions, server and PostgreSQL local",
    "- Command: `make bench-growth`; each size is one user's two years (sessions of 5,000 points, loaded through HTTP by `seriesd stress` at concurrency 4), loaded after the smaller ones into the same database; queries once the rollup job caught up and after `VACUUM ANALYZE`",
    f"- p50 over {first['month_http']['requests']} requests at concurrency 1; HTTP requests each with a new cache key (all MISS); plain SQL is the same aggregate over raw points (pgbench, `jit = off`; " + ", ".join(f"{r['sql_runs']} runs at {r['points']:,}" for r in rows) + ")",
    "",
    "| the user's points | all points | ingest points/s | rollup catch-up s | month avg, 2 years: HTTP / SQL p50 ms | day avg, 90 days: HTTP / SQL p50 ms |",
    "|---:|---:|---:|---:|---|---|",
]
for r in rows:
    out.append(
        f"| {r['points']:,} | {r['total']:,} | {r['load']['points_per_sec']:,.0f} | {r['catch_up_s']} "
        f"| {r['month_http']['p50_ms']} / {r['month_sql_ms']} | {r['day_http']['p50_ms']} / {r['day_sql_ms']} |"
    )
out += [
    "",
    f"Across {last['points'] / first['points']:.0f}x the data: month-level p50 x{growth('month_http'):.2f}, "
    f"day-level p50 x{growth('day_http'):.2f} (target of issue 7/7: at most x2 each); "
    f"ingest of the largest at {ingest:.2f} of the smallest's rate (target: at least 0.80).",
    "",
    "![p50 latency against data size](docs/growth.png)",
    "",
]
replace_section(os.path.join(root, "BENCHMARKS.md"), "Flat as data grows", "\n".join(out))
print("\n".join(out), file=sys.stderr)
PY
