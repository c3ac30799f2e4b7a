# Sourced by scripts/test: make sure PostgreSQL and Redis are reachable for the test suite.
# Uses the servers named by IMAGEGATE_TEST_PG_URL / IMAGEGATE_TEST_REDIS_URL, else the usual
# local ones on 5432 / 6379, else installs (apt-get) and starts private ones on free ports,
# stopped again when the script exits.
set -euo pipefail

SERVICES_DIR=""

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

port_open() {
    python3 -c "import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(('127.0.0.1', $1)))"
}

services_dir() {
    if [ -z "$SERVICES_DIR" ]; then
        SERVICES_DIR=$(mktemp -d /tmp/imagegate-services.XXXXXX)
        chmod 755 "$SERVICES_DIR"
    fi
}

stop_services() {
    if [ -n "$SERVICES_DIR" ]; then
        if [ -f "$SERVICES_DIR/pg/data/postmaster.pid" ]; then
            runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$SERVICES_DIR/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
        fi
        if [ -f "$SERVICES_DIR/redis.pid" ]; then
            kill "$(cat "$SERVICES_DIR/redis.pid")" 2>/dev/null || true
        fi
        rm -rf "$SERVICES_DIR"
    fi
}

apt_install() {
    if [ -z "${APT_UPDATED:-}" ]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
    if [ -n "${IMAGEGATE_TEST_PG_URL:-}" ]; then
        return
    fi
    if port_open 5432 && .venv/bin/python -c 'import psycopg; psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3").close()' >/dev/null 2>&1; then
        export IMAGEGATE_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        return
    fi
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
    if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
        echo "installing PostgreSQL" >&2
        apt_install postgresql
        PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
    fi
    services_dir
    local port
    port=$(free_port)
    mkdir -p "$SERVICES_DIR/pg"
    chown postgres:postgres "$SERVICES_DIR/pg"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$SERVICES_DIR/pg/data" -A trust -U postgres >/dev/null
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$SERVICES_DIR/pg/data" -l "$SERVICES_DIR/pg/log" -w \
        -o "-p $port -k $SERVICES_DIR/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null
    echo "started PostgreSQL on 127.0.0.1:$port" >&2
    export IMAGEGATE_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
}

ensure_openssl() {
    # The outbound-guard tests make a throw-away CA and certificate with the openssl command.
    if ! command -v openssl >/dev/null; then
        echo "installing openssl" >&2
        apt_install openssl
    fi
}

ensure_chromium() {
    # The console tests drive Debian's Chromium through Playwright (no browser download).
    if [ ! -x /usr/bin/chromium ]; then
        echo "installing chromium" >&2
        apt_install chromium chromium-driver
    fi
}

ensure_redis() {
    if [ -n "${IMAGEGATE_TEST_REDIS_URL:-}" ]; then
        return
    fi
    if port_open 6379 && .venv/bin/python -c 'import redis; redis.Redis(host="127.0.0.1", port=6379, socket_timeout=3).ping()' >/dev/null 2>&1; then
        export IMAGEGATE_TEST_REDIS_URL="redis://127.0.0.1:6379/0"
        return
    fi
    if ! command -v redis-server >/dev/null; then
        echo "installing Redis" >&2
        apt_install redis-server
    fi
    services_dir
    local port
    port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
        --pidfile "$SERVICES_DIR/redis.pid" --logfile "$SERVICES_DIR/redis.log" --dir "$SERVICES_DIR"
    for _ in $(seq 50); do
        port_open "$port" && break
        sleep 0.1
    done
    echo "started Redis on 127.0.0.1:$port" >&2
    export IMAGEGATE_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
}
