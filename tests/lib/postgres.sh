# A throwaway PostgreSQL cluster for the tests, sourced by .ci/run and by hand:
#
#   . tests/lib/postgres.sh && postgres_start   # exports STUDIO_MCP_TEST_POSTGRES
#   ...                                          # tests create one database each on it
#   postgres_stop                                # (also on exit)
#
# Debian's PostgreSQL (installed if missing), run as the `postgres` user (it refuses root) on a
# temporary directory and a free loopback port; trust authentication on loopback only.

postgres_bin() {
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
    done
    return 1
}

postgres_install() {
    if ! postgres_bin >/dev/null; then
        echo "== installing PostgreSQL (Debian package)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq postgresql >/dev/null
    fi
}

postgres_start() {
    postgres_install
    PG_BIN=$(postgres_bin)
    PG_DIR=$(mktemp -d /tmp/studio-mcp-pg.XXXXXX)
    # From here on, whatever happens, the exit stops this cluster and deletes its directory.
    trap postgres_stop EXIT
    PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    local run_as=()
    if [ "$(id -u)" = 0 ]; then
        chown postgres:postgres "$PG_DIR"
        run_as=(runuser -u postgres --)
    fi
    "${run_as[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >"$PG_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DIR/initdb.log"; return 1; }
    # Enough connections for several replicas per test and tests in parallel.
    "${run_as[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=400" \
        start >/dev/null || { cat "$PG_DIR/log"; return 1; }
    export PG_BIN PG_DIR PG_PORT
    export STUDIO_MCP_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    echo "== PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT ($PG_DIR)"
}

postgres_stop() {
    [ -n "${PG_DIR:-}" ] || return 0
    local run_as=()
    [ "$(id -u)" = 0 ] && run_as=(runuser -u postgres --)
    # pg_ctl stops the postmaster whose pid this cluster's own postmaster.pid names; if it
    # cannot, that pid (and only it) is killed.
    if ! "${run_as[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -t 20 stop >/dev/null 2>&1 \
        && [ -f "$PG_DIR/data/postmaster.pid" ]; then
        kill -9 "$(head -n 1 "$PG_DIR/data/postmaster.pid")" 2>/dev/null || true
    fi
    rm -rf "$PG_DIR"
    PG_DIR=
}
