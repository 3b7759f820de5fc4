# Helpers the benchmark scripts share: messages, a free port, and starting and stopping
# the server under test. Source it after setting BENCH_NAME (the name the messages start
# with, e.g. bench-ingest); stop_server and wait_for_health use SERVER_PID.

log() { printf '\n== %s\n' "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$BENCH_NAME" "$*" >&2
    exit 1
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Stops the server (SIGTERM, then SIGKILL after 40 s) and forgets its pid.
stop_server() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 400); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "$BENCH_NAME: server did not stop within 40 s; killing it" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}

# wait_for_health URL OUT: waits at most 60 s for URL/health/ to answer (its answer in
# OUT); stops the run if the server exits first or never answers.
wait_for_health() {
    local url=$1 out=$2
    for _ in $(seq 1 300); do
        kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited during start-up (its log follows)"
        curl -fsS --max-time 2 "$url/health/" >"$out" 2>/dev/null && return 0
        sleep 0.2
    done
    die "the server did not answer $url/health/ within 60 s"
}

admin_psql() { PGOPTIONS='-c client_min_messages=warning' psql "$PG_URL/postgres" -X -v ON_ERROR_STOP=1 -qAt "$@"; }
bench_psql() { psql "$DATABASE_URL" -X -v ON_ERROR_STOP=1 -qAt "$@"; }

# On exit, whatever happens: stops the server, drops the database $DB and removes $WORK;
# after a failure, shows the end of $WORK/server.log first.
clean_up_on_exit() {
    trap clean_up EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

clean_up() {
    local status=$?
    set +e
    stop_server
    admin_psql -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 ||
        echo "$BENCH_NAME: could not drop database $DB" >&2
    if [[ $status -ne 0 && -f $WORK/server.log ]]; then
        echo "$BENCH_NAME: failed (exit $status); last lines of the server log:" >&2
        tail -n 30 "$WORK/server.log" >&2
    fi
    rm -rf "$WORK"
    exit "$status"
}

# Makes the database $DB afresh (dropped if it is there), migrated and seeded, and exports
# SERIESD_TOKEN, an admin token for the run (`seriesd stress` reads it from there).
fresh_database() {
    log "fresh database $DB"
    admin_psql -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null
    "$BIN" migrate
    "$BIN" seed
    SERIESD_TOKEN=$("$BIN" token create --admin --name "$BENCH_NAME")
    export SERIESD_TOKEN
}
