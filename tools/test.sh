#!/usr/bin/env bash
# The project's single test command, used by CI and by developers:
#
#   tools/test.sh                          # format, lint, build, all tests
#   STRATA_FUZZ_SECONDS=60 tools/test.sh   # ... then fuzz the codec for 60 s
#
# Installs redis-server / redis-tools with apt when missing: integration tests
# start their own redis-server on free ports, and tools/bench.sh needs
# redis-benchmark. Installs postgresql and pgbouncer the same way and starts a
# throwaway cluster (tools/pg.sh) whose URL the source tests read from
# STRATA_TEST_PG_URL; it is stopped on exit, passed or failed. Without
# PostgreSQL those tests fail, unless STRATA_SKIP_PG=1 says to skip them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

FUZZ_SECONDS="${STRATA_FUZZ_SECONDS:-0}"
if ! [[ "$FUZZ_SECONDS" =~ ^[0-9]+$ ]]; then
    echo "STRATA_FUZZ_SECONDS must be a whole number of seconds, got '$FUZZ_SECONDS'" >&2
    exit 2
fi
CURRENT_STEP="setup"

step() {
    CURRENT_STEP="$1"
    printf '\n==> %s\n' "$1"
}

PG_STARTED=""

report_failure() {
    local status=$?
    if [ -n "$PG_STARTED" ]; then
        tools/pg.sh stop "$STRATA_PG_DIR" || true
    fi
    if [ "$status" -ne 0 ]; then
        printf '\ntools/test.sh: FAILED at step: %s (exit %s)\n' "$CURRENT_STEP" "$status" >&2
    fi
}
trap report_failure EXIT
trap 'exit 130' INT TERM

# Run as root directly, otherwise through sudo when there is one.
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

# Installing redis-server on Debian starts its service on port 6379. Tests use
# their own ports, but a stray server on the default port only gets in the way.
stop_system_redis() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        as_root systemctl disable --now redis-server >/dev/null 2>&1 || true
    elif command -v service >/dev/null 2>&1 && [ -x /etc/init.d/redis-server ]; then
        as_root service redis-server stop >/dev/null 2>&1 || true
    fi
    # Still answering (no init system)? Ask it for its pid and stop exactly
    # that process, after checking it really is a redis-server.
    local pid
    pid="$(redis-cli -p 6379 info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')" || true
    if [[ "$pid" =~ ^[0-9]+$ ]] && grep -q '^redis-server' "/proc/$pid/comm" 2>/dev/null; then
        echo "stopping the redis-server (pid $pid) that the package started on port 6379"
        as_root kill "$pid" || true
    fi
}

have_redis() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null &&
        command -v redis-benchmark >/dev/null
}

step "tools: redis-server, redis-cli, redis-benchmark"
if ! have_redis && command -v apt-get >/dev/null; then
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends redis-server redis-tools
    stop_system_redis
fi
if ! have_redis; then
    echo "please install redis-server and redis-tools (redis-cli, redis-benchmark)" >&2
    exit 1
fi
redis-server --version

if [ "${STRATA_SKIP_PG:-0}" = "1" ]; then
    step "PostgreSQL: skipped (STRATA_SKIP_PG=1)"
else
    step "PostgreSQL: a throwaway cluster and PgBouncer (tools/pg.sh)"
    pg_exports="$(tools/pg.sh start)"
    eval "$pg_exports"
    PG_STARTED=1
    echo "STRATA_TEST_PG_URL=$STRATA_TEST_PG_URL"
    echo "STRATA_TEST_PGBOUNCER_URL=${STRATA_TEST_PGBOUNCER_URL:-}"
fi

# rustup toolchains may lack the lint components; add them if so.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    step "tools: rustfmt, clippy"
    rustup component add rustfmt clippy
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets -- -D warnings

# Benches are criterion with harness = false, so they are built (by clippy
# above) but not run: --lib --bins --tests.
if cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run"
    cargo nextest run --workspace --lib --bins --tests --no-fail-fast
else
    step "cargo test (cargo-nextest not found)"
    cargo test --workspace --lib --bins --tests --no-fail-fast
fi

step "cargo test --doc"
cargo test --workspace --doc

if [ "$FUZZ_SECONDS" -gt 0 ]; then
    step "cargo fuzz run codec (${FUZZ_SECONDS} s)"
    if [ -f fuzz/Cargo.toml ] && cargo fuzz --version >/dev/null 2>&1 &&
        cargo +nightly --version >/dev/null 2>&1; then
        cargo +nightly fuzz run codec -- -max_total_time="$FUZZ_SECONDS"
    else
        echo "skipped: needs fuzz/Cargo.toml, cargo-fuzz and a nightly toolchain"
    fi
fi

CURRENT_STEP="done"
printf '\ntools/test.sh: all checks passed\n'
