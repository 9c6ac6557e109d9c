#!/usr/bin/env bash
# Throughput of strata against redis-server: same machine, same run, same
# redis-benchmark settings, servers taking turns per test so that machine noise
# hits both alike. Prints a markdown table on stdout (progress goes to stderr).
#
#   tools/bench.sh
#   BENCH_REQUESTS=20000 BENCH_TESTS=get,set BENCH_PIPELINES="1 64" tools/bench.sh
#
# Environment:
#   BENCH_REQUESTS   requests per test, x10 at -P 10+ (default 100000)
#   BENCH_TESTS      redis-benchmark -t list        (default ping,set,get,incr,mset)
#   BENCH_PIPELINES  pipeline depths, space-separated (default "1 16")
#   BENCH_CLIENTS    parallel connections           (default 50)
#   BENCH_TIMEOUT    seconds allowed per benchmark run (default 300)
#   STRATA_BIN       strata binary to run; unset = cargo build --release
#   STRATA_ARGS      extra flags for strata, e.g. "--warm-tier no"
set -euo pipefail

REQUESTS="${BENCH_REQUESTS:-100000}"
TESTS="${BENCH_TESTS:-ping,set,get,incr,mset}"
PIPELINES="${BENCH_PIPELINES:-1 16}"
CLIENTS="${BENCH_CLIENTS:-50}"
RUN_TIMEOUT="${BENCH_TIMEOUT:-300}"
STRATA_BIN="${STRATA_BIN:-}"
read -r -a STRATA_EXTRA <<<"${STRATA_ARGS:-}"

die() {
    echo "bench.sh: $*" >&2
    exit 1
}

# A relative STRATA_BIN means relative to where the script was called from.
if [[ "$STRATA_BIN" == */* && "$STRATA_BIN" != /* ]]; then
    STRATA_BIN="$PWD/$STRATA_BIN"
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."

for n in "$REQUESTS" "$CLIENTS" "$RUN_TIMEOUT" $PIPELINES; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "expected a positive number, got '$n'"
done
IFS=, read -r -a TEST_LIST <<<"$TESTS"
[ "${#TEST_LIST[@]}" -gt 0 ] || die "BENCH_TESTS is empty"
for tool in redis-server redis-cli redis-benchmark timeout; do
    command -v "$tool" >/dev/null || die "$tool not found (tools/test.sh installs redis-tools)"
done

if [ -z "$STRATA_BIN" ]; then
    echo "building strata (release)..." >&2
    cargo build --release >&2
    STRATA_BIN="$PWD/target/release/strata"
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/strata-bench.XXXXXX")"
PIDS=()

# True while the process exists and is not a zombie waiting to be reaped.
running() {
    local stat
    if [ -r "/proc/$1/stat" ]; then
        { stat="$(<"/proc/$1/stat")"; } 2>/dev/null || return 1
        stat="${stat##*) }"
        [ "${stat%% *}" != Z ]
    else
        kill -0 "$1" 2>/dev/null
    fi
}

cleanup() {
    local pid i
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 100; i++)); do
            running "$pid" || break
            sleep 0.1
        done
        if running "$pid"; then
            echo "pid $pid ignored SIGTERM for 10 s, killing it" >&2
            kill -9 "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Two distinct free loopback ports.
free_ports() {
    if command -v python3 >/dev/null; then
        python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
'
        return
    fi
    # No python: probe upwards from a random port for ones nobody listens on.
    local port=$((20000 + RANDOM % 20000)) found=() i
    for ((i = 0; i < 500 && ${#found[@]} < 2; i++, port++)); do
        if ! (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            found+=("$port")
        fi
    done
    [ "${#found[@]}" -eq 2 ] || die "no free ports found"
    echo "${found[*]}"
}

wait_ready() { # name port pid
    local deadline=$((SECONDS + 10))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if [ "$(timeout --foreground 1 redis-cli -h 127.0.0.1 -p "$2" ping 2>/dev/null)" = PONG ]; then
            return 0
        fi
        if ! running "$3"; then
            tail -n 20 "$TMP/$1.log" >&2 || true
            die "$1 exited before answering PING"
        fi
        sleep 0.1
    done
    tail -n 20 "$TMP/$1.log" >&2 || true
    die "$1 did not answer PING on port $2 within 10 s"
}

read -r STRATA_PORT REDIS_PORT <<<"$(free_ports)"
mkdir -p "$TMP/strata-data" "$TMP/redis-data"

"$STRATA_BIN" --port "$STRATA_PORT" --bind 127.0.0.1 --dir "$TMP/strata-data" \
    --loglevel warning --maxmemory 0 "${STRATA_EXTRA[@]}" >"$TMP/strata.log" 2>&1 &
PIDS+=("$!")
STRATA_PID=$!

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$TMP/redis-data" --loglevel warning >"$TMP/redis.log" 2>&1 &
PIDS+=("$!")
REDIS_PID=$!

wait_ready strata "$STRATA_PORT" "$STRATA_PID"
wait_ready redis "$REDIS_PORT" "$REDIS_PID"
echo "strata on port $STRATA_PORT, redis-server on port $REDIS_PORT" >&2

declare -A RPS=()  # [server|test|depth] = ops/s
declare -A SEEN=() # [test|depth] = 1
ROWS=()            # "test|depth" in the order first seen

# Runs one redis-benchmark test against one server and records its ops/s.

bench_one() { # server port test depth
    local server=$1 port=$2 test=$3 depth=$4 csv name rps
    # A pipelined run of REQUESTS finishes in a few tens of milliseconds,
    # too short to measure on a shared machine: scale it with the depth.
    local requests=$((REQUESTS * (depth > 1 ? (depth < 10 ? depth : 10) : 1)))
    echo "  $server: -t $test -P $depth -n $requests" >&2
    # --foreground keeps redis-benchmark in our process group, so Ctrl-C
    # reaches it and stops the whole script.
    if ! csv="$(timeout --foreground "$RUN_TIMEOUT" redis-benchmark -h 127.0.0.1 -p "$port" \
        -c "$CLIENTS" -n "$requests" -q -t "$test" -P "$depth" --csv 2>"$TMP/bench.err")"; then
        echo "  $server: redis-benchmark failed or timed out on '$test':" >&2
        tail -n 5 "$TMP/bench.err" >&2 || true
    fi
    # A server that died would only make every later run fail (or hang).
    if ! running "$STRATA_PID" || ! running "$REDIS_PID"; then
        tail -n 20 "$TMP/strata.log" "$TMP/redis.log" >&2 || true
        die "a server exited during the run"
    fi
    # CSV: a header line, then "NAME","rps","avg_latency_ms",...
    while IFS=, read -r name rps _; do
        name="${name//\"/}"
        rps="${rps//\"/}"
        [[ "$rps" =~ ^[0-9.]+$ ]] || continue # header or garbage
        RPS["$server|$name|$depth"]="$rps"
        if [ -z "${SEEN["$name|$depth"]:-}" ]; then
            SEEN["$name|$depth"]=1
            ROWS+=("$name|$depth")
        fi
    done <<<"$csv"
}

turn=0
for depth in $PIPELINES; do
    for test in "${TEST_LIST[@]}"; do
        # Alternate who goes first, so neither always gets the warmer machine.
        if ((turn % 2 == 0)); then
            bench_one strata "$STRATA_PORT" "$test" "$depth"
            bench_one redis "$REDIS_PORT" "$test" "$depth"
        else
            bench_one redis "$REDIS_PORT" "$test" "$depth"
            bench_one strata "$STRATA_PORT" "$test" "$depth"
        fi
        turn=$((turn + 1))
    done
done

echo
echo "strata vs $(redis-server --version | awk '{print $1, $2, $3}') on 127.0.0.1:" \
    "redis-benchmark -c $CLIENTS -n $REQUESTS (x10 when pipelined), $(nproc 2>/dev/null || echo '?') cores"
echo
echo "| test | pipeline | strata ops/s | redis ops/s | ratio |"
echo "|---|---:|---:|---:|---:|"
for row in "${ROWS[@]}"; do
    name="${row%|*}"
    depth="${row##*|}"
    s="${RPS["strata|$name|$depth"]:-}"
    r="${RPS["redis|$name|$depth"]:-}"
    awk -v name="$name" -v depth="$depth" -v s="$s" -v r="$r" 'BEGIN {
        fs = (s == "") ? "n/a" : sprintf("%.0f", s)
        fr = (r == "") ? "n/a" : sprintf("%.0f", r)
        ratio = (s == "" || r == "" || r + 0 == 0) ? "n/a" : sprintf("%.2f", s / r)
        printf "| %s | %s | %s | %s | %s |\n", name, depth, fs, fr, ratio
    }'
done
