#!/usr/bin/env bash
# Throughput of strata, in suites. Every run is redis-benchmark on 127.0.0.1;
# where strata is compared with redis-server both run in the same script, with
# the same settings, taking turns per test so that machine noise hits both
# alike. Prints one markdown table per suite on stdout (progress on stderr).
#
#   tools/bench.sh
#   BENCH_SUITES=memory BENCH_REQUESTS=20000 BENCH_TESTS=get,set BENCH_PIPELINES="1 64" tools/bench.sh
#   BENCH_SUITES=cold BENCH_COLD_KEYS=500000 STRATA_BIN=target/release/strata tools/bench.sh
#   tools/bench.sh types
#   BENCH_TYPES_REQUESTS=2000 tools/bench.sh types
#
# Suite names given as arguments replace BENCH_SUITES.
#
# Suites (BENCH_SUITES, comma- or space-separated, run in this order):
#   memory   strata --warm-tier no vs redis-server --save '' --appendonly no:
#            BENCH_TESTS at each of BENCH_PIPELINES.
#   durable  strata --appendfsync everysec vs redis-server --appendonly yes
#            --appendfsync everysec (both on a fresh dir): SET and GET -r
#            BENCH_KEYSPACE at each of BENCH_DURABLE_PIPELINES; then both
#            with appendfsync always: SET. redis-server runs with --save '' so
#            the AOF is its only persistence, as the warm tier is strata's.
#            Then sled's raw insert rate (examples/sled_ceiling.rs) for as
#            many requests as the deepest SET run, and that run's strata rate
#            as a fraction of it.
#   cold     strata alone, --maxmemory BENCH_COLD_MAXMEMORY on a fresh dir,
#            filled with BENCH_COLD_KEYS keys (key:%012d, every one, through
#            redis-cli --pipe) of BENCH_COLD_VALUE bytes, so most keys live
#            only in the warm tier. GET -r BENCH_HOT_KEYS after a warm-up
#            pass (hot: memory hits) vs GET -r BENCH_COLD_KEYS (cold: mostly
#            sled reads and promotions), then the cold GET again after a
#            SHUTDOWN and restart (empty hot tier, empty sled cache). The
#            warm_hits / hot_hits columns are INFO tiers deltas across a run.
#   types    redis-benchmark's whole default test set (PING_INLINE ... MSET,
#            every data type) at each of BENCH_TYPES_PIPELINES, -r
#            BENCH_KEYSPACE: strata with its warm tier (--appendfsync
#            everysec) vs redis-server --appendonly yes --appendfsync everysec
#            --save ''. One server runs at a time, each on a fresh dir, taking
#            turns per depth. Any error reply, failed run or missing test
#            against strata fails the script (after the table). A last
#            column gives strata --warm-tier no on the same tests: the
#            warm tier's cost per line.
#   footprint memory per key: strata with its warm tier (defaults, no
#            maxmemory) vs redis-server --save '' --appendonly no, one at a
#            time, each filled with BENCH_FOOTPRINT_MILLIONS million keys
#            (key:%012d, BENCH_FOOTPRINT_VALUE-byte values) a million at a
#            time through redis-cli --pipe. After each million, once the
#            server is idle: its RSS (VmRSS) and used_memory. The last lines
#            give each figure's growth per million from the first million to
#            the last, so fixed costs (sled's page cache, thread stacks, the
#            binary) drop out, and strata's RSS growth over Redis's
#            used_memory growth.
#   source   (not in the default list: needs PostgreSQL) strata with
#            --write-mode through on a fresh dir and schema: redis-benchmark
#            SET -P 1 -r BENCH_KEYSPACE, every reply after PostgreSQL's commit,
#            vs pgbench -c BENCH_CLIENTS -j 2 -T BENCH_SOURCE_SECS with one
#            INSERT ... ON CONFLICT DO UPDATE per transaction into a table of
#            the same shape as strata's keys table (same columns, key and
#            notify trigger): one commit per write, the baseline strata's
#            shared commits are measured against. Then the ceiling:
#            PostgreSQL alone (pgbench, 1 to 8 connections, -T
#            BENCH_SOURCE_CEILING_SECS) committing BENCH_CLIENTS-row upserts
#            of strata's shape, the largest batch BENCH_CLIENTS clients at -P 1
#            can queue, and strata's rate as a fraction of the best. Then read-through of cold
#            keys: BENCH_SOURCE_COLD_KEYS rows put in the source first,
#            strata started empty, GET -r over them (most GETs load a row);
#            source_loads and coalesced_loads are INFO source deltas. Uses
#            STRATA_TEST_PG_URL, or starts a cluster with tools/pg.sh (and
#            stops it at the end); psql and pgbench must be installed.
#
# Environment:
#   BENCH_SUITES      suites to run                     (default memory,durable,cold,types,footprint)
#   BENCH_REQUESTS    requests per run, x depth up to x10 when pipelined (default 100000)
#   BENCH_TESTS       memory: redis-benchmark -t list  (default ping,set,get,incr,mset)
#   BENCH_PIPELINES   memory: pipeline depths           (default "1 16")
#   BENCH_CLIENTS     parallel connections              (default 50)
#   BENCH_TIMEOUT     seconds allowed per benchmark run (default 300)
#   BENCH_KEYSPACE    durable: -r of SET and GET        (default 1000000)
#   BENCH_DURABLE_PIPELINES  durable: depths            (default "1 16")
#   BENCH_ALWAYS_REQUESTS    durable, appendfsync always: requests at -P 1,
#                     x depth up to x10 when pipelined  (default BENCH_REQUESTS / 2)
#   BENCH_COLD_KEYS   cold: keys filled                 (default 200000)
#   BENCH_COLD_VALUE  cold: value bytes                 (default 100)
#   BENCH_COLD_MAXMEMORY  cold: strata --maxmemory      (default 8mb)
#   BENCH_HOT_KEYS    cold: keys of the hot runs        (default 1000)
#   BENCH_COLD_PIPELINES  cold: depths                  (default "1 16")
#   BENCH_TYPES_REQUESTS  types: -n of every test, at every depth (default 100000,
#                     redis-benchmark's own)
#   BENCH_TYPES_PIPELINES types: depths                 (default "1 16")
#   BENCH_FOOTPRINT_MILLIONS footprint: millions of keys (default 4, at least 2)
#   BENCH_FOOTPRINT_VALUE footprint: value bytes        (default 100)
#   BENCH_SOURCE_REQUESTS source: -n of the SET and GET runs (default 100000)
#   BENCH_SOURCE_SECS     source: pgbench -T            (default 20)
#   BENCH_SOURCE_CEILING_SECS source: pgbench -T of each ceiling run (default 5)
#   BENCH_SOURCE_COLD_KEYS source: rows put in the source for the cold GET
#                     run, and its -r                   (default 100000)
#   STRATA_TEST_PG_URL source: the PostgreSQL to use; unset = tools/pg.sh start
#   STRATA_BIN        strata binary; unset = cargo build --release (and the
#                     sled_ceiling example)
#   SLED_CEILING_BIN  sled_ceiling binary; unset = target/release/examples/sled_ceiling
#                     (next to STRATA_BIN when that is set); missing = no ceiling line
#   STRATA_ARGS       extra flags for every strata started; a flag given here
#                     replaces the suite's own (--port, --bind and --dir are the
#                     script's), e.g. BENCH_SUITES=memory STRATA_ARGS="--warm-tier yes"
#                     for the memory suite against strata with its warm tier.
set -euo pipefail

SUITES="${BENCH_SUITES:-memory,durable,cold,types,footprint}"
if [ $# -gt 0 ]; then
    SUITES="$*"
fi
REQUESTS="${BENCH_REQUESTS:-100000}"
TESTS="${BENCH_TESTS:-ping,set,get,incr,mset}"
PIPELINES="${BENCH_PIPELINES:-1 16}"
CLIENTS="${BENCH_CLIENTS:-50}"
RUN_TIMEOUT="${BENCH_TIMEOUT:-300}"
KEYSPACE="${BENCH_KEYSPACE:-1000000}"
DURABLE_PIPELINES="${BENCH_DURABLE_PIPELINES:-1 16}"
ALWAYS_REQUESTS="${BENCH_ALWAYS_REQUESTS:-}"
COLD_KEYS="${BENCH_COLD_KEYS:-200000}"
COLD_VALUE="${BENCH_COLD_VALUE:-100}"
COLD_MAXMEMORY="${BENCH_COLD_MAXMEMORY:-8mb}"
HOT_KEYS="${BENCH_HOT_KEYS:-1000}"
COLD_PIPELINES="${BENCH_COLD_PIPELINES:-1 16}"
TYPES_REQUESTS="${BENCH_TYPES_REQUESTS:-100000}"
TYPES_PIPELINES="${BENCH_TYPES_PIPELINES:-1 16}"
FOOTPRINT_MILLIONS="${BENCH_FOOTPRINT_MILLIONS:-4}"
FOOTPRINT_VALUE="${BENCH_FOOTPRINT_VALUE:-100}"
SOURCE_REQUESTS="${BENCH_SOURCE_REQUESTS:-100000}"
SOURCE_SECS="${BENCH_SOURCE_SECS:-20}"
SOURCE_CEILING_SECS="${BENCH_SOURCE_CEILING_SECS:-5}"
SOURCE_COLD_KEYS="${BENCH_SOURCE_COLD_KEYS:-100000}"
STRATA_BIN="${STRATA_BIN:-}"
SLED_CEILING_BIN="${SLED_CEILING_BIN:-}"
read -r -a STRATA_EXTRA <<<"${STRATA_ARGS:-}"

die() {
    echo "bench.sh: $*" >&2
    exit 1
}

# Relative paths mean relative to where the script was called from.
if [[ "$STRATA_BIN" == */* && "$STRATA_BIN" != /* ]]; then
    STRATA_BIN="$PWD/$STRATA_BIN"
fi
if [[ "$SLED_CEILING_BIN" == */* && "$SLED_CEILING_BIN" != /* ]]; then
    SLED_CEILING_BIN="$PWD/$SLED_CEILING_BIN"
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[[ "$REQUESTS" =~ ^[1-9][0-9]*$ ]] || die "expected a positive number, got '$REQUESTS'"
ALWAYS_REQUESTS="${ALWAYS_REQUESTS:-$((REQUESTS / 2 > 0 ? REQUESTS / 2 : 1))}"
# shellcheck disable=SC2086 # the depth lists are meant to split
for n in "$REQUESTS" "$CLIENTS" "$RUN_TIMEOUT" "$KEYSPACE" "$ALWAYS_REQUESTS" "$COLD_KEYS" \
    "$COLD_VALUE" "$HOT_KEYS" "$TYPES_REQUESTS" "$SOURCE_REQUESTS" "$SOURCE_SECS" \
    "$SOURCE_COLD_KEYS" "$FOOTPRINT_MILLIONS" "$FOOTPRINT_VALUE" $PIPELINES $DURABLE_PIPELINES $COLD_PIPELINES \
    $TYPES_PIPELINES; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "expected a positive number, got '$n'"
done
[ "$COLD_KEYS" -lt 1000000000000 ] || die "BENCH_COLD_KEYS must fit key:%012d"
[ "$HOT_KEYS" -le "$COLD_KEYS" ] || die "BENCH_HOT_KEYS must not exceed BENCH_COLD_KEYS"
[ "$FOOTPRINT_MILLIONS" -ge 2 ] || die "BENCH_FOOTPRINT_MILLIONS must be at least 2 (growth is measured from the first million)"
IFS=, read -r -a TEST_LIST <<<"$TESTS"
[ "${#TEST_LIST[@]}" -gt 0 ] || die "BENCH_TESTS is empty"
IFS=', ' read -r -a SUITE_LIST <<<"$SUITES"
[ "${#SUITE_LIST[@]}" -gt 0 ] || die "BENCH_SUITES is empty"
declare -A WANT=()
for suite in "${SUITE_LIST[@]}"; do
    case "$suite" in
    memory | durable | cold | types | footprint | source) WANT[$suite]=1 ;;
    *) die "unknown suite '$suite' (memory, durable, cold, types, footprint, source)" ;;
    esac
done
for arg in "${STRATA_EXTRA[@]}"; do
    case "$arg" in
    --port | --port=* | --bind | --bind=* | --dir | --dir=*)
        die "STRATA_ARGS may not set $arg: the script chooses ports and directories"
        ;;
    esac
done
for tool in redis-server redis-cli redis-benchmark timeout awk; do
    command -v "$tool" >/dev/null || die "$tool not found (tools/test.sh installs redis-tools)"
done
if [ -n "${WANT[source]:-}" ]; then
    for tool in psql pgbench; do
        command -v "$tool" >/dev/null || die "$tool not found (the source suite needs PostgreSQL's client tools)"
    done
fi

if [ -z "$STRATA_BIN" ]; then
    echo "building strata (release)..." >&2
    cargo build --release >&2
    STRATA_BIN="$PWD/target/release/strata"
    if [ -n "${WANT[durable]:-}" ] && [ -z "$SLED_CEILING_BIN" ]; then
        cargo build --release --example sled_ceiling >&2
    fi
fi
if [ -z "$SLED_CEILING_BIN" ]; then
    SLED_CEILING_BIN="$(dirname "$STRATA_BIN")/examples/sled_ceiling"
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/strata-bench.XXXXXX")"
declare -A SERVER_PID=()  # [name] = pid, while it runs
declare -A SERVER_PORT=() # [name] = port

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

# Waits up to $2 seconds for pid $1 to exit, then kills it; reaps it.
reap() { # pid seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        running "$1" || break
        sleep 0.1
    done
    if running "$1"; then
        echo "pid $1 still running after $2 s, killing it" >&2
        kill -9 "$1" 2>/dev/null || true
    fi
    wait "$1" 2>/dev/null || true
}

# The PostgreSQL cluster the source suite started (stopped on exit), and the
# schemas it created (dropped on exit).
PG_STARTED_DIR=
PG_URL=
PG_SCHEMAS=()

cleanup() {
    local name schema
    for name in "${!SERVER_PID[@]}"; do
        kill "${SERVER_PID[$name]}" 2>/dev/null || true
    done
    for name in "${!SERVER_PID[@]}"; do
        reap "${SERVER_PID[$name]}" 10
    done
    if [ -n "$PG_URL" ] && [ -z "$PG_STARTED_DIR" ]; then
        for schema in "${PG_SCHEMAS[@]}"; do
            timeout --foreground 30 psql "$PG_URL" -q -c "DROP SCHEMA IF EXISTS $schema CASCADE" \
                >/dev/null 2>&1 || true
        done
    fi
    if [ -n "$PG_STARTED_DIR" ]; then
        tools/pg.sh stop "$PG_STARTED_DIR" >&2 || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port.
free_port() {
    if command -v python3 >/dev/null; then
        python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
'
        return
    fi
    # No python: probe upwards from a random port for one nobody listens on.
    local port=$((20000 + RANDOM % 20000)) i
    for ((i = 0; i < 500; i++, port++)); do
        if ! (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port found"
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

# Starts a server on a free loopback port and waits until it answers PING.
start_server() { # name program args...
    local name=$1 port shown
    shift
    port="$(free_port)"
    printf -v shown ' %q' "${@:2}"
    echo "starting $name on port $port:$shown" >&2
    "$@" --port "$port" --bind 127.0.0.1 >>"$TMP/$name.log" 2>&1 &
    SERVER_PID[$name]=$!
    SERVER_PORT[$name]=$port
    wait_ready "$name" "$port" "$!"
}

stop_server() { # name
    local pid=${SERVER_PID[$1]}
    unset "SERVER_PID[$1]"
    kill "$pid" 2>/dev/null || true
    reap "$pid" 30
}

# SHUTDOWN through the protocol (strata closes its warm tier cleanly), and
# SIGTERM if that does not end the process.
shutdown_server() { # name
    local pid=${SERVER_PID[$1]}
    timeout --foreground 30 redis-cli -h 127.0.0.1 -p "${SERVER_PORT[$1]}" shutdown \
        >/dev/null 2>&1 || true
    reap_or_stop "$1" "$pid"
}

reap_or_stop() { # name pid
    local i
    for ((i = 0; i < 300; i++)); do
        running "$2" || break
        sleep 0.1
    done
    stop_server "$1"
}

# A server that died would only make every later run fail (or hang).
check_servers() {
    local name
    for name in "${!SERVER_PID[@]}"; do
        if ! running "${SERVER_PID[$name]}"; then
            tail -n 20 "$TMP/$name.log" >&2 || true
            die "$name exited during the run"
        fi
    done
}

# The strata command line: the suite's flags (pairs), except those
# STRATA_ARGS sets, then STRATA_ARGS.
STRATA_CMD=()
strata_cmd() { # dir [flag value]...
    local dir=$1 flag value arg given
    shift
    STRATA_CMD=("$STRATA_BIN" --dir "$dir" --loglevel warning)
    while [ $# -gt 0 ]; do
        flag=$1 value=$2
        shift 2
        given=
        for arg in "${STRATA_EXTRA[@]}"; do
            [[ "$arg" == "$flag" || "$arg" == "$flag="* ]] && given=1
        done
        [ -n "$given" ] || STRATA_CMD+=("$flag" "$value")
    done
    STRATA_CMD+=("${STRATA_EXTRA[@]}")
}

# A pipelined run of REQUESTS finishes in a few tens of milliseconds, too
# short to measure on a shared machine: scale it with the depth, up to x10.
scaled() { # requests depth
    echo $(($1 * ($2 > 1 ? ($2 < 10 ? $2 : 10) : 1)))
}

# One table at a time: rows in the order first seen, cells by row and column.
declare -A CELL=() # [label|depth#column] = value
ROWS=()            # "label|depth"
new_table() {
    CELL=()
    ROWS=()
}
record() { # row column value
    if [ -z "${CELL["$1#"]:-}" ]; then
        CELL["$1#"]=1
        ROWS+=("$1")
    fi
    CELL["$1#$2"]=$3
}

# Runs one redis-benchmark test against one server: RESULTS gets one
# "name|ops/s" line per line of its CSV, LAST_RPS the last ops/s (empty when
# the run failed).
RESULTS=()
LAST_RPS=
run_bench() { # label port test depth requests [redis-benchmark args...]
    local label=$1 port=$2 test=$3 depth=$4 requests=$5 csv name rps started=$SECONDS
    shift 5
    echo -n "  $label: -t $test -P $depth -n $requests $*" >&2
    RESULTS=()
    LAST_RPS=
    # --foreground keeps redis-benchmark in our process group, so Ctrl-C
    # reaches it and stops the whole script.
    if ! csv="$(timeout --foreground "$RUN_TIMEOUT" redis-benchmark -h 127.0.0.1 -p "$port" \
        -c "$CLIENTS" -n "$requests" -q -t "$test" -P "$depth" --csv "$@" 2>"$TMP/bench.err")"; then
        echo >&2
        echo "  $label: redis-benchmark failed or timed out on '$test':" >&2
        tail -n 5 "$TMP/bench.err" >&2 || true
    fi
    echo " ($((SECONDS - started)) s)" >&2
    check_servers
    # CSV: a header line, then "NAME","rps","avg_latency_ms",...
    while IFS=, read -r name rps _; do
        name="${name//\"/}"
        rps="${rps//\"/}"
        [[ "$rps" =~ ^[0-9.]+$ ]] || continue # header or garbage
        RESULTS+=("$name|$rps")
        LAST_RPS=$rps
    done <<<"$csv"
}

# run_bench, each result recorded under row "<name><suffix>|<depth>",
# column `column`.
bench_one() { # column port suffix test depth requests [redis-benchmark args...]
    local column=$1 port=$2 suffix=$3 test=$4 depth=$5 line
    shift 3
    run_bench "$column" "$port" "$@"
    for line in "${RESULTS[@]}"; do
        record "${line%|*}$suffix|$depth" "$column" "${line##*|}"
    done
}

# strata and redis take turns going first, so neither always gets the
# warmer machine.
turn=0
both() { # suffix test depth requests [redis-benchmark args...]
    if ((turn % 2 == 0)); then
        bench_one strata "${SERVER_PORT[strata]}" "$@"
        bench_one redis "${SERVER_PORT[redis]}" "$@"
    else
        bench_one redis "${SERVER_PORT[redis]}" "$@"
        bench_one strata "${SERVER_PORT[strata]}" "$@"
    fi
    turn=$((turn + 1))
}

number() { # value → rounded, or n/a
    awk -v v="$1" 'BEGIN { if (v == "") print "n/a"; else printf "%.0f\n", v }'
}

ratio() { # a b → a/b with two decimals, or n/a
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f\n", a / b
    }'
}

# The current table: columns "key:title"...; ratio = first column / second.
print_table() {
    local keys=() titles=() spec row line key i
    for spec in "$@"; do
        keys+=("${spec%%:*}")
        titles+=("${spec#*:}")
    done
    line="| test | pipeline | ${titles[0]} | ${titles[1]} | ratio |"
    for ((i = 2; i < ${#titles[@]}; i++)); do
        line+=" ${titles[i]} |"
    done
    echo "$line"
    line="|---|---:|---:|---:|---:|"
    for ((i = 2; i < ${#titles[@]}; i++)); do
        line+="---:|"
    done
    echo "$line"
    for row in "${ROWS[@]}"; do
        line="| ${row%|*} | ${row##*|} |"
        for key in "${keys[@]:0:2}"; do
            line+=" $(number "${CELL["$row#$key"]:-}") |"
        done
        line+=" $(ratio "${CELL["$row#${keys[0]}"]:-}" "${CELL["$row#${keys[1]}"]:-}") |"
        for key in "${keys[@]:2}"; do
            line+=" $(number "${CELL["$row#$key"]:-}") |"
        done
        echo "$line"
    done
    echo
}

REDIS_VERSION="$(redis-server --version | awk '{print $1, $2, $3}')"
# Said under every table when STRATA_ARGS changed strata's flags.
EXTRA_NOTE="${STRATA_ARGS:+; strata also ran with STRATA_ARGS=\"$STRATA_ARGS\"}"
CORES="$(nproc 2>/dev/null || echo '?')"

suite_memory() {
    echo "== memory: strata --warm-tier no vs redis-server without persistence" >&2
    new_table
    mkdir -p "$TMP/memory-strata" "$TMP/memory-redis"
    strata_cmd "$TMP/memory-strata" --warm-tier no --maxmemory 0
    start_server strata "${STRATA_CMD[@]}"
    start_server redis redis-server --save '' --appendonly no --daemonize no \
        --dir "$TMP/memory-redis" --loglevel warning
    local depth test
    for depth in $PIPELINES; do
        for test in "${TEST_LIST[@]}"; do
            both "" "$test" "$depth" "$(scaled "$REQUESTS" "$depth")"
        done
    done
    stop_server strata
    stop_server redis
    rm -rf "$TMP/memory-strata" "$TMP/memory-redis"

    echo "### memory: strata --warm-tier no vs $REDIS_VERSION --save '' --appendonly no"
    echo
    echo "redis-benchmark -c $CLIENTS -n $REQUESTS (x10 when pipelined), 127.0.0.1," \
        "$CORES cores$EXTRA_NOTE"
    echo
    print_table strata:"strata ops/s" redis:"redis ops/s"
}

suite_durable() {
    echo "== durable: strata's warm tier vs redis-server's AOF" >&2
    new_table
    local policy depth test deepest=0 set_requests=0 strata_set=""
    for depth in $DURABLE_PIPELINES; do
        [ "$depth" -gt "$deepest" ] && deepest=$depth
    done
    for policy in everysec always; do
        mkdir -p "$TMP/durable-strata-$policy" "$TMP/durable-redis-$policy"
        strata_cmd "$TMP/durable-strata-$policy" --warm-tier yes --appendfsync "$policy" \
            --maxmemory 0
        start_server strata "${STRATA_CMD[@]}"
        start_server redis redis-server --save '' --appendonly yes --appendfsync "$policy" \
            --daemonize no --dir "$TMP/durable-redis-$policy" --loglevel warning
        for depth in $DURABLE_PIPELINES; do
            if [ "$policy" = everysec ]; then
                for test in set get; do
                    both " ($policy)" "$test" "$depth" "$(scaled "$REQUESTS" "$depth")" \
                        -r "$KEYSPACE"
                done
                if [ "$depth" = "$deepest" ]; then
                    set_requests=$(scaled "$REQUESTS" "$depth")
                    strata_set=${CELL["SET ($policy)|$depth#strata"]:-}
                fi
            else
                both " ($policy)" set "$depth" "$(scaled "$ALWAYS_REQUESTS" "$depth")" \
                    -r "$KEYSPACE"
            fi
        done
        stop_server strata
        stop_server redis
        rm -rf "$TMP/durable-strata-$policy" "$TMP/durable-redis-$policy"
    done

    echo "### durable: strata (warm tier) vs $REDIS_VERSION --appendonly yes --save ''"
    echo
    echo "redis-benchmark -c $CLIENTS -r $KEYSPACE -n $REQUESTS (always: $ALWAYS_REQUESTS)" \
        "(x10 when pipelined), 127.0.0.1, $CORES cores$EXTRA_NOTE"
    echo
    print_table strata:"strata ops/s" redis:"redis ops/s"

    if [ ! -x "$SLED_CEILING_BIN" ]; then
        echo "no sled ceiling: $SLED_CEILING_BIN not found" \
            "(cargo build --release --example sled_ceiling, or set SLED_CEILING_BIN)"
        echo
        return
    fi
    echo "  sled_ceiling $set_requests $KEYSPACE 3 1" >&2
    local out rate started=$SECONDS
    # Its temporary database goes under $TMP, removed on exit.
    if ! out="$(TMPDIR="$TMP" timeout --foreground "$RUN_TIMEOUT" \
        "$SLED_CEILING_BIN" "$set_requests" "$KEYSPACE" 3 1)"; then
        echo "sled ceiling: sled_ceiling failed or timed out"
        echo
        return
    fi
    echo "  sled_ceiling took $((SECONDS - started)) s" >&2
    rate="$(awk '/sled raw inserts:/ { print $4 }' <<<"$out")"
    echo "Ceiling: $out"
    echo "strata SET -P $deepest (everysec): $(number "$strata_set") ops/s =" \
        "$(ratio "$strata_set" "$rate") of sled's raw insert rate"
    echo
}

# INFO tiers of server $1 into TIERS[name].
declare -A TIERS=()
read_tiers() { # name
    local line
    TIERS=()
    while IFS= read -r line; do
        line="${line%$'\r'}"
        [[ "$line" == *:* ]] || continue
        TIERS["${line%%:*}"]="${line#*:}"
    done < <(timeout --foreground 10 redis-cli -h 127.0.0.1 -p "${SERVER_PORT[$1]}" info tiers)
}

# Streams SET (or GET) commands for keys key:%012d from $2 to $3 - 1 in RESP.
resp_commands() { # set|get from to [value bytes]
    awk -v cmd="$1" -v from="$2" -v to="$3" -v size="${4:-0}" 'BEGIN {
        value = ""
        for (i = 0; i < size; i++) value = value "x"
        for (i = from; i < to; i++) {
            if (cmd == "set")
                printf "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$%d\r\n%s\r\n", i, size, value
            else
                printf "*2\r\n$3\r\nGET\r\n$16\r\nkey:%012d\r\n", i
        }
    }'
}

pipe_into() { # name: redis-cli --pipe of stdin, which must see no error
    local out
    out="$(timeout --foreground "$RUN_TIMEOUT" redis-cli -h 127.0.0.1 -p "${SERVER_PORT[$1]}" \
        --pipe 2>&1)" || die "redis-cli --pipe failed: $out"
    [[ "$out" == *"errors: 0,"* ]] || die "redis-cli --pipe reported errors: $out"
}

# One GET run on the cold-suite strata, recorded with its INFO tiers deltas;
# LAST_WARM = its warm hits.
LAST_WARM=0
cold_get() { # label depth range
    local label=$1 depth=$2 range=$3 warm hot
    read_tiers strata
    warm=${TIERS[warm_hits]:-0} hot=${TIERS[hot_hits]:-0}
    run_bench strata "${SERVER_PORT[strata]}" get "$depth" \
        "$(scaled "$REQUESTS" "$depth")" -r "$range"
    read_tiers strata
    if [ -n "$LAST_RPS" ]; then
        record "$label|$depth" strata "$LAST_RPS"
    fi
    LAST_WARM=$((${TIERS[warm_hits]:-0} - warm))
    record "$label|$depth" warm "$LAST_WARM"
    record "$label|$depth" hot "$((${TIERS[hot_hits]:-0} - hot))"
}

suite_cold() {
    echo "== cold: GET from the warm tier vs GET from memory (strata only)" >&2
    new_table
    local dir="$TMP/cold-strata" depth hot_label cold_label restart_label note notes=()
    mkdir -p "$dir"
    strata_cmd "$dir" --warm-tier yes --maxmemory "$COLD_MAXMEMORY"
    local cmd=("${STRATA_CMD[@]}")
    start_server strata "${cmd[@]}"

    echo "  filling key:000000000000..key:$(printf %012d $((COLD_KEYS - 1)))" \
        "with $COLD_VALUE-byte values" >&2
    resp_commands set 0 "$COLD_KEYS" "$COLD_VALUE" | pipe_into strata
    read_tiers strata
    echo "  after the fill: hot_keys ${TIERS[hot_keys]:-?}, warm_keys ${TIERS[warm_keys]:-?}," \
        "hot_evictions ${TIERS[hot_evictions]:-?}" >&2
    [ "${TIERS[warm_keys]:-0}" -eq "$COLD_KEYS" ] ||
        die "the warm tier holds ${TIERS[warm_keys]:-0} keys, expected $COLD_KEYS"
    [ "${TIERS[hot_evictions]:-0}" -gt 0 ] ||
        die "nothing was evicted from memory: raise BENCH_COLD_KEYS or lower BENCH_COLD_MAXMEMORY"
    if [ "${TIERS[hot_keys]:-0}" -gt $((COLD_KEYS / 2)) ]; then
        echo "  warning: ${TIERS[hot_keys]} of $COLD_KEYS keys are in memory" >&2
    fi
    local in_memory=${TIERS[hot_keys]:-0}

    hot_label="GET hot (-r $HOT_KEYS)"
    cold_label="GET cold (-r $COLD_KEYS)"
    restart_label="GET cold after restart (-r $COLD_KEYS)"
    for depth in $COLD_PIPELINES; do
        # Promote the hot keys, so the hot run only meets memory.
        resp_commands get 0 "$HOT_KEYS" | pipe_into strata
        cold_get "$hot_label" "$depth" "$HOT_KEYS"
        if [ "$LAST_WARM" -gt $((HOT_KEYS + $(scaled "$REQUESTS" "$depth") / 100)) ]; then
            notes+=("Note: the hot run at -P $depth read $LAST_WARM keys from disk: the $HOT_KEYS hot keys did not stay in memory, so its figure is not memory alone.")
        fi
        cold_get "$cold_label" "$depth" "$COLD_KEYS"
    done
    for depth in $COLD_PIPELINES; do
        # Each depth starts from an empty hot tier and an empty sled cache.
        echo "  restarting strata (SHUTDOWN) on the same directory" >&2
        shutdown_server strata
        start_server strata "${cmd[@]}"
        read_tiers strata
        [ "${TIERS[hot_keys]:-x}" = 0 ] ||
            die "strata restarted with ${TIERS[hot_keys]:-?} keys in memory, expected 0"
        [ "${TIERS[warm_keys]:-0}" -eq "$COLD_KEYS" ] ||
            die "strata restarted with ${TIERS[warm_keys]:-0} keys on disk, expected $COLD_KEYS"
        cold_get "$restart_label" "$depth" "$COLD_KEYS"
    done
    stop_server strata
    rm -rf "$dir"

    # Every row's ratio is against the hot run at the same depth.
    local row
    for row in "${ROWS[@]}"; do
        record "$row" hotrate "${CELL["$hot_label|${row##*|}#strata"]:-}"
    done
    echo "### cold: strata GET of keys on disk vs keys in memory"
    echo
    echo "strata --maxmemory $COLD_MAXMEMORY, $COLD_KEYS keys of $COLD_VALUE bytes ($in_memory in" \
        "memory after the fill); redis-benchmark -c $CLIENTS -n $REQUESTS (x10 when pipelined);" \
        "warm_hits and hot_hits are INFO tiers deltas across each run$EXTRA_NOTE"
    echo
    print_table strata:"strata ops/s" hotrate:"hot ops/s" warm:"warm_hits" hot:"hot_hits"
    for note in "${notes[@]}"; do
        echo "$note" >&2
        printf '%s\n\n' "$note"
    done
}

# redis-benchmark's default tests, by the names its CSV gives them (up to
# the first space), in its order.
DEFAULT_TESTS=(PING_INLINE PING_MBULK SET GET INCR LPUSH RPUSH LPOP RPOP SADD HSET SPOP ZADD
    ZPOPMIN LRANGE_100 LRANGE_300 LRANGE_500 LRANGE_600 MSET)
TYPES_FAILURES=()

# The whole default test set (no -t) against one server, each test recorded
# under row "<name>|<depth>". Against strata, a failed run, an error reply
# or a test missing from the CSV is noted in TYPES_FAILURES.
bench_default_set() { # column port depth
    local column=$1 port=$2 depth=$3 csv name rps status=0 started=$SECONDS test
    local -A seen=()
    echo -n "  $column: default tests -P $depth -n $TYPES_REQUESTS -r $KEYSPACE" >&2
    csv="$(timeout --foreground "$RUN_TIMEOUT" redis-benchmark -h 127.0.0.1 -p "$port" \
        -c "$CLIENTS" -n "$TYPES_REQUESTS" -r "$KEYSPACE" -P "$depth" -q --csv \
        2>"$TMP/bench.err")" || status=$?
    echo " ($((SECONDS - started)) s)" >&2
    check_servers
    while IFS=, read -r name rps _; do
        name="${name//\"/}"
        rps="${rps//\"/}"
        [[ "$rps" =~ ^[0-9.]+$ ]] || continue
        # LRANGE's fill is not one of the tests.
        [[ "$name" == *"needed to benchmark"* ]] && continue
        name="${name%% *}"
        seen[$name]=1
        record "$name|$depth" "$column" "$rps"
    done <<<"$csv"
    # redis-benchmark prints an error reply ("Error from server: ...") on
    # stderr and stops; any output there but its CONFIG warning is suspect.
    local errors
    errors="$(grep -v -e '^WARNING: Could not fetch server CONFIG' -e '^$' "$TMP/bench.err" \
        || true)"
    errors+="$(grep -i 'error' <<<"$csv" || true)"
    if [ "$status" -ne 0 ] || [ -n "$errors" ]; then
        echo "  $column: redis-benchmark -P $depth exited with $status:" >&2
        head -n 5 <<<"$errors" >&2
        [ "$column" != redis ] &&
            TYPES_FAILURES+=("$column -P $depth: exit status $status: $(head -n 1 <<<"$errors")")
    fi
    for test in "${DEFAULT_TESTS[@]}"; do
        if [ -z "${seen[$test]:-}" ] && [ "$column" != redis ]; then
            TYPES_FAILURES+=("$column -P $depth: no result for $test")
        fi
    done
}

suite_types() {
    echo "== types: redis-benchmark's default tests, strata vs redis-server, both durable" >&2
    new_table
    local depth order name dir
    for depth in $TYPES_PIPELINES; do
        order="strata redis nowarm"
        ((turn % 2 == 0)) || order="redis strata nowarm"
        turn=$((turn + 1))
        for name in $order; do
            dir="$TMP/types-$name-$depth"
            mkdir -p "$dir"
            if [ "$name" = strata ]; then
                strata_cmd "$dir" --warm-tier yes --appendfsync everysec --maxmemory 0
                start_server strata "${STRATA_CMD[@]}"
            elif [ "$name" = nowarm ]; then
                strata_cmd "$dir" --warm-tier no --maxmemory 0
                start_server nowarm "${STRATA_CMD[@]}"
            else
                start_server redis redis-server --save '' --appendonly yes \
                    --appendfsync everysec --daemonize no --dir "$dir" --loglevel warning
            fi
            bench_default_set "$name" "${SERVER_PORT[$name]}" "$depth"
            stop_server "$name"
            rm -rf "$dir"
        done
    done

    echo "### types: redis-benchmark default tests, strata (warm tier, everysec) vs" \
        "$REDIS_VERSION --appendonly yes --appendfsync everysec --save ''"
    echo
    echo "redis-benchmark -c $CLIENTS -n $TYPES_REQUESTS -r $KEYSPACE, one server at a time," \
        "127.0.0.1, $CORES cores$EXTRA_NOTE"
    echo
    print_table strata:"strata req/s" redis:"redis req/s" \
        nowarm:"strata --warm-tier no req/s"
    echo "The last column is strata without its warm tier (memory only, no journal, no" \
        "sled), run after the other two: what the warm tier costs on each line."
    echo
    if [ "${#TYPES_FAILURES[@]}" -gt 0 ]; then
        printf 'strata failed: %s\n' "${TYPES_FAILURES[@]}" >&2
        printf 'strata failed: %s\n\n' "${TYPES_FAILURES[@]}"
        return 1
    fi
}

# Resident set of server $1 in bytes, once it has been steady for a
# second (strata's appliers and checkpoint finish after the replies; the
# checkpoint hands freed memory back once they are idle), at most 20 s.
settled_rss() { # name
    local pid=${SERVER_PID[$1]} last=-1 now i
    for ((i = 0; i < 20; i++)); do
        now=$(awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$pid/status")
        [ -n "$now" ] || die "$1 has no VmRSS"
        if [ "$last" -ge 0 ] && [ $(((now > last ? now - last : last - now) * 200)) -le "$now" ]; then
            break
        fi
        last=$now
        sleep 1
    done
    echo "$now"
}

used_memory() { # name
    timeout --foreground 10 redis-cli -h 127.0.0.1 -p "${SERVER_PORT[$1]}" info memory |
        awk -F: '/^used_memory:/ { print $2 + 0 }'
}

# Fills server $1 a million keys at a time, keeping its RSS and
# used_memory after each in FOOTPRINT[<name>_<rss|used>_<million>].
footprint_fill() { # name
    local million
    for ((million = 0; million < FOOTPRINT_MILLIONS; million++)); do
        echo "  $1: keys $((million * 1000000))..$(((million + 1) * 1000000 - 1))" >&2
        resp_commands set $((million * 1000000)) $(((million + 1) * 1000000)) "$FOOTPRINT_VALUE" |
            pipe_into "$1"
        FOOTPRINT["$1_rss_$million"]=$(settled_rss "$1")
        FOOTPRINT["$1_used_$million"]=$(used_memory "$1")
    done
}

mib() { # bytes
    awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'
}

declare -A FOOTPRINT=()
suite_footprint() {
    echo "== footprint: RSS and used_memory per million $FOOTPRINT_VALUE-byte keys" >&2
    FOOTPRINT=()
    local dir="$TMP/footprint-strata" last=$((FOOTPRINT_MILLIONS - 1)) name figure million
    mkdir -p "$dir"
    strata_cmd "$dir" --warm-tier yes --maxmemory 0
    start_server strata "${STRATA_CMD[@]}"
    footprint_fill strata
    stop_server strata
    rm -rf "$dir"
    dir="$TMP/footprint-redis"
    mkdir -p "$dir"
    start_server redis redis-server --dir "$dir" --save '' --appendonly no
    footprint_fill redis
    stop_server redis
    rm -rf "$dir"

    local -A growth=()
    for name in strata redis; do
        for figure in rss used; do
            growth["${name}_$figure"]=$(((FOOTPRINT["${name}_${figure}_$last"] - \
                FOOTPRINT["${name}_${figure}_0"]) / last))
        done
    done
    echo "### footprint: memory per million keys of $FOOTPRINT_VALUE bytes"
    echo
    echo "strata --warm-tier yes --maxmemory 0 (sled's page cache at its default) vs redis-server" \
        "$(redis-server --version | awk '{ print $3 }') --save '' --appendonly no; keys key:%012d" \
        "set a million at a time with redis-cli --pipe; MiB, once the server is idle$EXTRA_NOTE"
    echo
    echo "| keys | strata RSS | strata used_memory | redis used_memory | redis RSS |"
    echo "|---|---:|---:|---:|---:|"
    for ((million = 0; million <= last; million++)); do
        echo "| $((million + 1))M | $(mib "${FOOTPRINT[strata_rss_$million]}") |" \
            "$(mib "${FOOTPRINT[strata_used_$million]}") | $(mib "${FOOTPRINT[redis_used_$million]}") |" \
            "$(mib "${FOOTPRINT[redis_rss_$million]}") |"
    done
    echo "| per million, 1M to $((last + 1))M | $(mib "${growth[strata_rss]}") |" \
        "$(mib "${growth[strata_used]}") | $(mib "${growth[redis_used]}") | $(mib "${growth[redis_rss]}") |"
    echo
    echo "strata's RSS per million keys = $(ratio "${growth[strata_rss]}" "${growth[redis_used]}")" \
        "of Redis's used_memory per million."
    echo
}

# INFO source of server $1 into SOURCE_INFO[name].
declare -A SOURCE_INFO=()
read_source_info() { # name
    local line
    SOURCE_INFO=()
    while IFS= read -r line; do
        line="${line%$'\r'}"
        [[ "$line" == *:* ]] || continue
        SOURCE_INFO["${line%%:*}"]="${line#*:}"
    done < <(timeout --foreground 10 redis-cli -h 127.0.0.1 -p "${SERVER_PORT[$1]}" info source)
}

copy_keys_table() { # schema name: a table shaped as <schema>.keys, with its notify triggers
    pg_sql "CREATE TABLE $1.$2 (LIKE $1.keys INCLUDING ALL);
        CREATE TRIGGER $2_notify_insert AFTER INSERT ON $1.$2
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION $1.notify_changed();
        CREATE TRIGGER $2_notify_update AFTER UPDATE ON $1.$2
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION $1.notify_changed();" >/dev/null
}

pg_sql() { # sql: runs on the source, stops the script on an error
    timeout --foreground "$RUN_TIMEOUT" psql "$PG_URL" -v ON_ERROR_STOP=1 -qAt -c "$1" ||
        die "psql failed: $1"
}

# Waits until strata created its tables in schema $1.
wait_schema() { # schema
    local deadline=$((SECONDS + 30))
    while [ "$SECONDS" -lt "$deadline" ]; do
        [ "$(pg_sql "SELECT to_regclass('$1.keys') IS NOT NULL")" = t ] && return 0
        sleep 0.2
    done
    die "strata did not create $1.keys within 30 s"
}

# Any error reply redis-benchmark printed in the last run_bench.
bench_errors() {
    grep -v -e '^WARNING: Could not fetch server CONFIG' -e '^$' "$TMP/bench.err" || true
}

suite_source() {
    echo "== source: strata --write-mode through vs one upsert per commit (pgbench)" >&2
    if [ -z "${STRATA_TEST_PG_URL:-}" ]; then
        local exports
        echo "  STRATA_TEST_PG_URL is unset: starting a cluster with tools/pg.sh" >&2
        exports="$(tools/pg.sh start)" || die "tools/pg.sh start failed"
        PG_STARTED_DIR="$(sed -n "s/^export STRATA_PG_DIR='\(.*\)'$/\1/p" <<<"$exports")"
        PG_URL="$(sed -n "s/^export STRATA_TEST_PG_URL='\(.*\)'$/\1/p" <<<"$exports")"
        [ -n "$PG_STARTED_DIR" ] && [ -n "$PG_URL" ] || die "tools/pg.sh start printed no cluster"
    else
        PG_URL=$STRATA_TEST_PG_URL
    fi
    local stamp schema cold_schema dir errors
    stamp="$(date +%s)_$$"
    schema="bench_through_$stamp"
    cold_schema="bench_cold_$stamp"
    PG_SCHEMAS=("$schema" "$cold_schema")
    new_table

    # strata: every SET's reply comes after the source's commit.
    dir="$TMP/source-through"
    mkdir -p "$dir"
    strata_cmd "$dir" --warm-tier yes --appendfsync everysec --maxmemory 0 \
        --source-url "$PG_URL" --source-schema "$schema" --write-mode through
    start_server strata "${STRATA_CMD[@]}"
    wait_schema "$schema"
    run_bench strata "${SERVER_PORT[strata]}" set 1 "$SOURCE_REQUESTS" -r "$KEYSPACE"
    errors="$(bench_errors)"
    [ -z "$errors" ] || die "redis-benchmark SET against strata: $(head -n 3 <<<"$errors")"
    local strata_set=$LAST_RPS rows
    read_source_info strata
    local shipped=${SOURCE_INFO[shipped_records]:-} batches=${SOURCE_INFO[shipped_batches]:-}
    local p50=${SOURCE_INFO[write_through_latency_p50_us]:-?}
    local p99=${SOURCE_INFO[write_through_latency_p99_us]:-?}
    rows="$(pg_sql "SELECT count(*) FROM $schema.keys")"
    stop_server strata
    rm -rf "$dir"

    # The baseline: the upsert strata's rows get, one per commit, into a
    # table with the keys table's columns, key and notify trigger.
    copy_keys_table "$schema" pgbench_keys
    {
        echo "\\set k random(0, $((KEYSPACE - 1)))"
        echo "INSERT INTO $schema.pgbench_keys (db, key, kind, value, expire_at, version, writer)" \
            "VALUES (0, convert_to('key:' || lpad(:k::text, 12, '0'), 'UTF8'), 'string'," \
            "'\\x787878', NULL, (extract(epoch from clock_timestamp()) * 1000000)::bigint," \
            "'pgbench') ON CONFLICT (db, key) DO UPDATE SET kind = EXCLUDED.kind," \
            "value = EXCLUDED.value, expire_at = EXCLUDED.expire_at," \
            "version = EXCLUDED.version, writer = EXCLUDED.writer, updated_at = now();"
    } >"$TMP/upsert.sql"
    echo -n "  pgbench: -c $CLIENTS -j 2 -T $SOURCE_SECS, one upsert per transaction" >&2
    local out tps started=$SECONDS
    out="$(timeout --foreground "$RUN_TIMEOUT" pgbench -n -c "$CLIENTS" -j 2 -T "$SOURCE_SECS" \
        -f "$TMP/upsert.sql" "$PG_URL" 2>"$TMP/pgbench.err")" || {
        echo >&2
        tail -n 5 "$TMP/pgbench.err" >&2
        die "pgbench failed"
    }
    echo " ($((SECONDS - started)) s)" >&2
    tps="$(awk '/^tps = / { print $3; exit }' <<<"$out")"
    record "SET, --write-mode through|1" strata "$strata_set"
    record "SET, --write-mode through|1" pgbench "$tps"

    # The ceiling: PostgreSQL alone committing the batches strata ships,
    # with the machine to itself. With CLIENTS clients at -P 1 at most
    # CLIENTS writes wait at once, so no batch holds more: each transaction
    # here upserts CLIENTS rows with one INSERT ... ON CONFLICT DO UPDATE
    # guarded by version (strata's upsert, into a copy of the keys table
    # with its triggers), from 1 to 8 connections at once.
    copy_keys_table "$schema" ceiling_keys
    {
        echo "INSERT INTO $schema.ceiling_keys AS t (db, key, kind, value, expire_at, version, writer)" \
            "SELECT 0, convert_to('key:' || lpad(r.k::text, 12, '0'), 'UTF8'), 'string'," \
            "'\\x787878', NULL, (extract(epoch from clock_timestamp()) * 1000000)::bigint, 'ceiling'" \
            "FROM (SELECT DISTINCT (random() * $((KEYSPACE - 1)))::int AS k" \
            "FROM generate_series(1, $CLIENTS)) AS r" \
            "ON CONFLICT (db, key) DO UPDATE SET kind = excluded.kind, value = excluded.value," \
            "expire_at = excluded.expire_at, version = excluded.version, writer = excluded.writer," \
            "updated_at = now() WHERE t.version < excluded.version;"
    } >"$TMP/ceiling.sql"
    local connections ceiling=0 ceiling_line=""
    for connections in 1 2 4 8; do
        echo -n "  PostgreSQL alone: $CLIENTS-row upserts, pgbench -c $connections -T $SOURCE_CEILING_SECS" >&2
        out="$(timeout --foreground "$RUN_TIMEOUT" pgbench -n -c "$connections" -j "$connections" \
            -T "$SOURCE_CEILING_SECS" -f "$TMP/ceiling.sql" "$PG_URL" 2>"$TMP/pgbench.err")" || {
            echo >&2
            tail -n 5 "$TMP/pgbench.err" >&2
            die "pgbench (ceiling) failed"
        }
        echo >&2
        local rows_per_sec
        rows_per_sec="$(awk -v n="$CLIENTS" '/^tps = / { printf "%d", $3 * n; exit }' <<<"$out")"
        ceiling_line+="${ceiling_line:+, }$connections: $(number "$rows_per_sec")"
        if [ "$rows_per_sec" -gt "$ceiling" ]; then
            ceiling=$rows_per_sec
        fi
    done

    # Read-through: rows only the source has, strata empty. A first strata
    # creates the tables, the rows go in with it stopped (no notifications
    # to hear), then an empty strata reads them.
    dir="$TMP/source-cold"
    mkdir -p "$dir"
    strata_cmd "$dir" --warm-tier yes --appendfsync everysec --maxmemory 0 \
        --source-url "$PG_URL" --source-schema "$cold_schema" --write-mode through
    start_server strata "${STRATA_CMD[@]}"
    wait_schema "$cold_schema"
    stop_server strata
    rm -rf "$dir"
    echo "  inserting $SOURCE_COLD_KEYS rows into $cold_schema.keys" >&2
    pg_sql "INSERT INTO $cold_schema.keys (db, key, kind, value, version, writer)
        SELECT 0, convert_to('key:' || lpad(i::text, 12, '0'), 'UTF8'), 'string', '\\x787878', 1, 'bench'
        FROM generate_series(0, $((SOURCE_COLD_KEYS - 1))) AS i;
        ANALYZE $cold_schema.keys;" >/dev/null
    mkdir -p "$dir"
    start_server strata "${STRATA_CMD[@]}"
    read_source_info strata
    local loads0=${SOURCE_INFO[source_loads]:-0} coalesced0=${SOURCE_INFO[coalesced_loads]:-0}
    run_bench strata "${SERVER_PORT[strata]}" get 1 "$SOURCE_REQUESTS" -r "$SOURCE_COLD_KEYS"
    errors="$(bench_errors)"
    [ -z "$errors" ] || die "redis-benchmark GET against strata: $(head -n 3 <<<"$errors")"
    local cold_get=$LAST_RPS
    read_source_info strata
    local loads=$((${SOURCE_INFO[source_loads]:-0} - loads0))
    local coalesced=$((${SOURCE_INFO[coalesced_loads]:-0} - coalesced0))
    local load_errors=${SOURCE_INFO[source_load_errors]:-?}
    stop_server strata
    rm -rf "$dir"

    echo "### source: strata --write-mode through vs pgbench, one upsert per commit"
    echo
    echo "PostgreSQL $(pg_sql 'SHOW server_version'), 127.0.0.1, $CORES cores. strata:" \
        "redis-benchmark -c $CLIENTS -P 1 -n $SOURCE_REQUESTS -r $KEYSPACE, --appendfsync" \
        "everysec; pgbench -n -c $CLIENTS -j 2 -T $SOURCE_SECS, one INSERT ... ON CONFLICT DO" \
        "UPDATE per transaction$EXTRA_NOTE"
    echo
    print_table strata:"strata SET/s" pgbench:"pgbench upserts/s"
    echo "strata's run: shipped_records $shipped in $batches transactions" \
        "($(ratio "$shipped" "$batches") rows per commit), $rows rows in the source;" \
        "write_through_latency p50 $p50 us, p99 $p99 us"
    echo
    echo "Ceiling: PostgreSQL alone, $CLIENTS-row upsert transactions (the largest batch" \
        "$CLIENTS clients at -P 1 can queue), rows/s by connections at once: $ceiling_line." \
        "strata's through SET = $(ratio "$strata_set" "$ceiling") of the best."
    echo
    echo "### source: read-through of cold keys"
    echo
    echo "$SOURCE_COLD_KEYS rows in the source, strata started empty; redis-benchmark" \
        "-c $CLIENTS -P 1 -n $SOURCE_REQUESTS -r $SOURCE_COLD_KEYS -t get$EXTRA_NOTE"
    echo
    echo "| test | requests/s | source_loads | coalesced_loads | source_load_errors |"
    echo "|---|---:|---:|---:|---:|"
    echo "| GET cold (-r $SOURCE_COLD_KEYS) | $(number "$cold_get") | $loads | $coalesced |" \
        "$load_errors |"
    echo
}

for suite in memory durable cold types footprint source; do
    if [ -n "${WANT[$suite]:-}" ]; then
        "suite_$suite"
    fi
done
