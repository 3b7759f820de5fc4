#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL cluster of another engine, with
# TEST_DATABASE_URL pointing at it:
#
#   scripts/on-engine.sh timescaledb cargo nextest run ...
#   scripts/on-engine.sh citus cargo nextest run ...
#
# For Citus it starts a coordinator and two workers and also sets TEST_CITUS_WORKERS (the
# workers' ports): each test database is then made on every node and its tables
# distributed, as an operator would set a Citus database up.
#
# The cluster comes from a private copy of the machine's PostgreSQL 15 with the extension
# added by ../shared/pg-extensions/install (never the system server). Where that is
# absent (a machine without ../shared), it says so in one line and does nothing.
set -euo pipefail
engine=${1:?usage: on-engine.sh timescaledb|citus COMMAND...}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
install="$root/../shared/pg-extensions/install"
if [ ! -x "$install" ]; then
  echo "skipped: the $engine tests ($install is absent)"
  exit 0
fi
case "$engine" in
  timescaledb) preload=timescaledb; nodes=1 ;;
  citus) preload=citus; nodes=3 ;;
  *) echo "unknown engine: $engine" >&2; exit 2 ;;
esac
copy="${TMPDIR:-/tmp}/seriesd-pg-$engine"
bin=$(flock "$copy.lock" "$install" "$copy" "$engine")
dir=$(mktemp -d "${TMPDIR:-/tmp}/seriesd-$engine-XXXXXX")
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$dir"
stop() {
  for data in "$dir"/node*/data; do
    [ -d "$data" ] && as_postgres "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1
  done
  rm -rf "$dir"
}
trap stop EXIT
ports=()
for n in $(seq 1 "$nodes"); do
  node="$dir/node$n"
  as_postgres mkdir -p "$node"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_postgres "$bin/initdb" -D "$node/data" -A trust -U postgres --no-sync >/dev/null
  # The system server's limits, so that the suite meets the same bounds on each engine;
  # a Citus worker takes several connections from the coordinator per client (one per
  # shard a statement reaches at once), so workers get more.
  connections=100
  [ "$engine" = citus ] && [ "$n" -gt 1 ] && connections=300
  # Citus's default of 32 shards a distributed table suits many cores; these nodes share
  # two, and every new week of points makes one shard table (with its indexes) per shard,
  # so the tests use 8, the "two to four per core" Citus advises for a cluster this size.
  extra=""
  [ "$engine" = citus ] && extra="-c citus.shard_count=8"
  as_postgres "$bin/pg_ctl" -D "$node/data" -l "$node/log" -w -o \
    "-p $port -c listen_addresses=127.0.0.1 -k $node -c shared_preload_libraries=$preload \
     -c max_connections=$connections $extra" start >/dev/null
  ports+=("$port")
done
echo "== $engine cluster on port(s) ${ports[*]}"
workers=$(IFS=,; echo "${ports[*]:1}")
TEST_CITUS_WORKERS="$workers" \
TEST_DATABASE_URL="postgres://postgres@127.0.0.1:${ports[0]}/postgres?gssencmode=disable" "$@"
