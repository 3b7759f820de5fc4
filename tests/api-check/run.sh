#!/usr/bin/env bash
# `make api-check`: schemathesis, an independent client, checks that the running service
# agrees with its own OpenAPI document. It starts `seriesd serve` on a free port against
# a fresh, migrated and seeded database, runs every operation of /api/schema/ with a
# bounded number of generated cases (with an admin token made for the run; the
# `ignored_auth` check also sends each operation without it and with a wrong one, and
# fails unless the server refuses), then stops the server and drops the database.
#
# Variables: SERIESD_BIN (default ./target/debug/seriesd, built first by the Makefile),
# API_CHECK_SERVER_URL (the PostgreSQL server, default postgres://postgres@127.0.0.1:5432),
# API_CHECK_EXAMPLES (cases per operation and phase, default 30), API_CHECK_SEED (default
# a fixed seed, so that CI is reproducible; `random` for a new one each run),
# API_CHECK_MAX_TIME (seconds after which the run is stopped and fails, default 900).
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=.venv-api-check
REQUIREMENTS=tests/api-check/requirements.txt
BIN=${SERIESD_BIN:-./target/debug/seriesd}
SERVER_URL=${API_CHECK_SERVER_URL:-postgres://postgres@127.0.0.1:5432}
EXAMPLES=${API_CHECK_EXAMPLES:-30}
SEED=${API_CHECK_SEED:-20261124}
MAX_TIME=${API_CHECK_MAX_TIME:-900}

log() { printf '== api-check: %s\n' "$*"; }

# The virtual environment, rebuilt when the pinned requirements change.
stamp="$VENV/.requirements"
if ! cmp -s "$REQUIREMENTS" "$stamp" 2>/dev/null; then
  log "installing schemathesis into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$stamp"
fi

db="seriesd_apicheck_$(date +%s)_$$"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
logfile=$(mktemp)
export DATABASE_URL="$SERVER_URL/$db"
export LISTEN_ADDR="127.0.0.1:$port"
export WORKERS=2 DB_POOL_SIZE=8 REDIS_PREFIX="seriesd-apicheck-$db" RUST_LOG=warn

server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  psql "$SERVER_URL/postgres" -qAt -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 \
    || echo "api-check: could not drop database $db" >&2
}
trap cleanup EXIT

log "database $db: migrate, seed, and an admin token for the run"
"$BIN" migrate >/dev/null
"$BIN" seed >/dev/null
TOKEN=$("$BIN" token create --admin --name api-check)

log "serving on $LISTEN_ADDR (log: $logfile)"
"$BIN" serve --no-migrate >"$logfile" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://$LISTEN_ADDR/health/" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$logfile" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "http://$LISTEN_ADDR/health/" >/dev/null

seed_args=(--seed "$SEED")
[ "$SEED" = random ] && seed_args=()

log "schemathesis: at most $EXAMPLES cases per operation and phase (stopped after ${MAX_TIME}s)"
status=0
# From inside the venv, so that the example database (.hypothesis/) and reports stay
# out of the work tree.
hooks_dir="$PWD/tests/api-check"
(cd "$VENV" && SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$hooks_dir" \
  timeout "$MAX_TIME" bin/schemathesis run "http://$LISTEN_ADDR/api/schema/" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance,response_headers_conformance,ignored_auth \
  --header "Authorization: Bearer $TOKEN" \
  --max-examples "$EXAMPLES" \
  --workers 1 \
  --request-timeout 30 \
  "${seed_args[@]}") || status=$?

if grep -q "panicked" "$logfile"; then
  echo "api-check: the server panicked; its log:" >&2
  grep -B2 -A6 "panicked" "$logfile" >&2
  status=1
fi
exit "$status"
