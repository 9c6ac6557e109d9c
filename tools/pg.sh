#!/usr/bin/env bash
# A throwaway PostgreSQL cluster (and a PgBouncer in transaction mode in front
# of it) for strata's tests, in a temporary directory on 127.0.0.1.
#
#   eval "$(tools/pg.sh start)"   # prints export lines: STRATA_PG_DIR,
#                                 # STRATA_TEST_PG_URL, STRATA_TEST_PGBOUNCER_URL,
#                                 # STRATA_TEST_PG_CA (the CA of the server's TLS certificate)
#   tools/pg.sh url               # the database URL of the running cluster
#   tools/pg.sh stop              # stops PgBouncer and the cluster, removes the directory
#
# `url` and `stop` find the cluster through STRATA_PG_DIR (or a directory given
# as the second argument). Installs postgresql and pgbouncer with apt when
# initdb is missing. initdb and pgbouncer refuse to run as root, so as root
# both run as the `postgres` user that the Debian package creates.
#
# The database `strata_test` belongs to the role `strata` (password `strata`,
# not a superuser, as on a hosted database), and has pg_stat_statements.
set -euo pipefail

PG_USER="strata"
PG_PASSWORD="strata"
PG_DB="strata_test"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "need root to run: $*  (install sudo or run as root)" >&2
        return 1
    fi
}

# The newest server version installed under /usr/lib/postgresql.
pg_bindir() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
        echo "$dir"
    elif command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
    fi
}

have_pgbouncer() {
    command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]
}

pgbouncer_bin() {
    command -v pgbouncer 2>/dev/null || echo /usr/sbin/pgbouncer
}

# The Debian packages start their own services (PostgreSQL on 5432, PgBouncer
# on 6432); the tests use their own cluster, so those only take memory.
stop_system_services() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        as_root systemctl disable --now postgresql pgbouncer >/dev/null 2>&1 || true
    elif command -v service >/dev/null 2>&1; then
        as_root service postgresql stop >/dev/null 2>&1 || true
        as_root service pgbouncer stop >/dev/null 2>&1 || true
    fi
}

install_if_missing() {
    local bindir
    bindir="$(pg_bindir)"
    if [ -n "$bindir" ] && command -v psql >/dev/null 2>&1 && have_pgbouncer &&
        command -v openssl >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "please install PostgreSQL (initdb, pg_ctl, psql, pg_stat_statements), pgbouncer and openssl" >&2
        return 1
    fi
    echo "installing postgresql, pgbouncer and openssl with apt" >&2
    as_root apt-get update >&2
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends postgresql postgresql-contrib pgbouncer openssl >&2
    stop_system_services
}

# A TCP port on 127.0.0.1 that nothing answers on now. Another process may
# take it before we bind, so callers retry on failure.
free_port() {
    local port tries
    for tries in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

# Runs a command as the cluster's owner: `postgres` when we are root.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

state_dir() {
    local dir="${1:-${STRATA_PG_DIR:-}}"
    if [ -z "$dir" ] || [ ! -f "$dir/url" ]; then
        echo "no cluster: set STRATA_PG_DIR (printed by 'tools/pg.sh start') or pass the directory" >&2
        return 1
    fi
    echo "$dir"
}

start() {
    install_if_missing
    local bindir dir
    bindir="$(pg_bindir)"
    if [ -z "$bindir" ]; then
        echo "initdb not found after installing PostgreSQL" >&2
        return 1
    fi
    # As root the cluster runs as `postgres`, which must reach the
    # directory: /tmp, not a TMPDIR under /root.
    local base="${TMPDIR:-/tmp}"
    if [ "$(id -u)" -eq 0 ]; then
        base=/tmp
    fi
    dir="$(mktemp -d "$base/strata-pg.XXXXXX")"
    # Half-started: stop what did start and remove the directory.
    if ! start_in "$dir" "$bindir"; then
        stop "$dir" || rm -rf "$dir"
        return 1
    fi
}

# A CA and a server certificate for localhost and 127.0.0.1, valid two days.
make_certificates() {
    local tls="$1"
    mkdir -p "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=strata test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$tls/ca.key" -out "$tls/ca.crt" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$tls/server.key" -out "$tls/server.csr" >/dev/null 2>&1
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
        "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$tls/server.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
        -CAcreateserial -days 2 -extfile "$tls/server.ext" -out "$tls/server.crt" >/dev/null 2>&1
    chmod 0600 "$tls/server.key" "$tls/ca.key"
    chmod 0644 "$tls/ca.crt" "$tls/server.crt"
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres:postgres "$tls"
    fi
}

start_in() {
    local dir="$1" bindir="$2" port bouncer_port started=0
    chmod 0755 "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres:postgres "$dir"
    fi
    printf '%s\n' "$PG_PASSWORD" >"$dir/pwfile"
    chmod 0644 "$dir/pwfile"
    echo "$bindir" >"$dir/bindir"
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 --pwfile="$dir/pwfile" -E UTF8 --locale=C.UTF-8 \
        >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        return 1
    }
    as_owner sh -c "cat >>'$dir/data/postgresql.conf'" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
max_connections = 200
EOF
    # TLS with a throwaway CA, so the tests can check sslmode=require and
    # verify-full (the CA is exported as STRATA_TEST_PG_CA).
    if command -v openssl >/dev/null 2>&1; then
        make_certificates "$dir/tls"
        as_owner sh -c "cat >>'$dir/data/postgresql.conf'" <<EOF
ssl = on
ssl_cert_file = '$dir/tls/server.crt'
ssl_key_file = '$dir/tls/server.key'
EOF
    fi
    # The port goes on the command line, so a port taken meanwhile only
    # costs another try.
    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -o "-p $port" \
            -w -t 60 start >/dev/null 2>&1; then
            started=1
            break
        fi
    done
    if [ "$started" -ne 1 ]; then
        tail -20 "$dir/postgres.log" >&2 || true
        echo "PostgreSQL did not start" >&2
        return 1
    fi
    as_owner "$bindir/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q >/dev/null <<EOF
CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD';
GRANT pg_read_all_stats TO $PG_USER;
CREATE DATABASE $PG_DB OWNER $PG_USER;
\\c $PG_DB
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
GRANT EXECUTE ON FUNCTION pg_stat_statements_reset TO $PG_USER;
EOF
    local url="postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$port/$PG_DB"
    echo "$url" >"$dir/url"

    # PgBouncer in transaction mode, as Supavisor on port 6543: no session
    # state survives a transaction, so named prepared statements break there.
    if have_pgbouncer; then
        printf '"%s" "%s"\n' "$PG_USER" "$PG_PASSWORD" >"$dir/userlist.txt"
        chmod 0644 "$dir/userlist.txt"
        for attempt in 1 2 3 4 5; do
            bouncer_port="$(free_port)"
            cat >"$dir/pgbouncer.ini" <<EOF
[databases]
$PG_DB = host=127.0.0.1 port=$port dbname=$PG_DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 8
ignore_startup_parameters = extra_float_digits,options
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
            chmod 0644 "$dir/pgbouncer.ini"
            if as_owner "$(pgbouncer_bin)" -d "$dir/pgbouncer.ini" >/dev/null 2>&1; then
                # -d returns once the pidfile is written; wait until it listens.
                for _ in $(seq 1 50); do
                    if (exec 3<>"/dev/tcp/127.0.0.1/$bouncer_port") 2>/dev/null; then
                        echo "postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$bouncer_port/$PG_DB" >"$dir/pgbouncer_url"
                        break 2
                    fi
                    sleep 0.1
                done
                stop_pgbouncer "$dir"
            fi
        done
        if [ ! -f "$dir/pgbouncer_url" ]; then
            tail -20 "$dir/pgbouncer.log" >&2 || true
            echo "PgBouncer did not start" >&2
            return 1
        fi
    fi

    echo "export STRATA_PG_DIR='$dir'"
    echo "export STRATA_TEST_PG_URL='$url'"
    if [ -f "$dir/tls/ca.crt" ]; then
        echo "export STRATA_TEST_PG_CA='$dir/tls/ca.crt'"
    fi
    if [ -f "$dir/pgbouncer_url" ]; then
        echo "export STRATA_TEST_PGBOUNCER_URL='$(cat "$dir/pgbouncer_url")'"
    fi
}

stop_pgbouncer() {
    local dir="$1" pid
    if [ -f "$dir/pgbouncer.pid" ]; then
        pid="$(cat "$dir/pgbouncer.pid")"
        if [[ "$pid" =~ ^[0-9]+$ ]] && grep -q pgbouncer "/proc/$pid/comm" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do
                [ -d "/proc/$pid" ] || break
                sleep 0.1
            done
        fi
        rm -f "$dir/pgbouncer.pid"
    fi
}

stop() {
    local dir
    dir="$(state_dir "${1:-}")"
    stop_pgbouncer "$dir"
    if [ -f "$dir/data/postmaster.pid" ] && [ -f "$dir/bindir" ]; then
        as_owner "$(cat "$dir/bindir")/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
start) start ;;
stop) stop "${2:-}" ;;
url) cat "$(state_dir "${2:-}")/url" ;;
*)
    echo "usage: tools/pg.sh start|stop [dir]|url [dir]" >&2
    exit 2
    ;;
esac
