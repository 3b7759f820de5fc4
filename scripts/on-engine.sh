#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL cluster of another engine, with
# TEST_DATABASE_URL pointing at it:
#
#   scripts/on-engine.sh timescaledb cargo nextest run ...
#
# The cluster comes from a private copy of the machine's PostgreSQL 15 with the extension
# added by ../shared/pg-extensions/install (never the system server). Where that is
# absent (a machine without ../shared), it says so in one line and does nothing.
set -euo pipefail
engine=${1:?usage: on-engine.sh timescaledb COMMAND...}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
install="$root/../shared/pg-extensions/install"
if [ ! -x "$install" ]; then
  echo "skipped: the $engine tests ($install is absent)"
  exit 0
fi
case "$engine" in
  timescaledb) preload=timescaledb ;;
  *) echo "unknown engine: $engine" >&2; exit 2 ;;
esac
copy="${TMPDIR:-/tmp}/seriesd-pg-$engine"
bin=$(flock "$copy.lock" "$install" "$copy" "$engine")
dir=$(mktemp -d "${TMPDIR:-/tmp}/seriesd-$engine-XXXXXX")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$dir"
stop() {
  as_postgres "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT
as_postgres "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
# The system server's limits, so that the suite meets the same bounds on both.
as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o \
  "-p $port -c listen_addresses=127.0.0.1 -k $dir -c shared_preload_libraries=$preload \
   -c max_connections=100 -c timescaledb.telemetry_level=off" \
  start >/dev/null
echo "== $engine cluster on port $port"
TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?gssencmode=disable" "$@"
