#!/usr/bin/env bash
# Measures the floors under two of issue 17's targets, on a cluster of its own (ports
# BASE..BASE+5, redkeep's proxy BASE+9, HAProxy BASE+19; REDKEEP_BENCH_BASE, default 21401,
# whose cluster bus ports, BASE+10000.., stay below the ephemeral range of 32768 and up, where
# the ports of the 1,000-client runs wait in TIME_WAIT):
#
# 1. One request at a time: what the proxy's CPU per request is when it does no node work at
#    all (PING, which it answers itself), beside a redis-server's CPU per request for PING and
#    for GET (32 B) in the direct run, and the proxy's for GET. `-c 50 -P 1`. If the proxy's
#    client-facing half alone costs more than 0.8x a redis-server's GET, no node side can
#    bring the whole under 0.8x.
# 2. Large values: GET of one 512 KiB value (on one node, -c 4 -P 1) straight from the node,
#    through HAProxy in TCP mode (a relay that only moves bytes: the old deployment's), through
#    HAProxy splicing (`option splice-request/response`: the kernel moves the bytes, no copy
#    in user space) and through redkeep's proxy: throughput, the relay's CPU per request and
#    the node's own CPU per request.
#
# 3. Redis alone: four GETs of one 512 KiB value at a time, on four connections (-c 4 -P 1) and
#    pipelined on one (-c 1 -P 4), straight to the node: Redis 7 writes at most 64 KiB to a
#    connection per turn of its event loop, so one connection shared by clients of large
#    values (the proxy's one connection per node, before bulk lanes) caps what they get.
#
# Each measurement runs --rounds times (default 2), the paths alternating within a round.
# Usage: scripts/floor-bench.sh [--rounds N] [--threads N] [-n REQUESTS_AT_P1] [--large-n N]
# Needs: redis-server, redis-benchmark (make deps), haproxy (apt-get install haproxy), a
# release build (built here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=2
THREADS=1
N_P1=300000
N_LARGE=6000
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    -n) N_P1="$2"; shift 2 ;;
    --large-n) N_LARGE="$2"; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in redis-benchmark haproxy; do
  command -v "$tool" >/dev/null || { echo "$tool not found (make deps; apt-get install haproxy)" >&2; exit 1; }
done

cargo build --release --locked -q -p redkeep
REDKEEP=./target/release/redkeep
DIR=$(mktemp -d /tmp/redkeep-floor.XXXXXX)
BASE=${REDKEEP_BENCH_BASE:-21401}
PROXY_PORT=$((BASE + 9))
HAPROXY_PORT=$((BASE + 19))
PROXY_PID=""
HAPROXY_PID=""
stop_haproxy() {
  [ -n "$HAPROXY_PID" ] && kill "$HAPROXY_PID" 2>/dev/null
  HAPROXY_PID=""
}
cleanup() {
  stop_haproxy
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
  "$REDKEEP" down --dir "$DIR" --purge >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

. scripts/lib/bench-cluster.sh
bench_cluster_up "$REDKEEP" "$DIR" "$BASE"
"$REDKEEP" proxy "${SEEDS[@]}" --listen "127.0.0.1:$PROXY_PORT" --stats off --threads "$THREADS" \
  >"$DIR/proxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 100); do redis-cli -p "$PROXY_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$PROXY_PORT" ping >/dev/null || { cat "$DIR/proxy.log" >&2; exit 1; }

TICKS=$(getconf CLK_TCK)
ticks() { local sum=0 pid; for pid in "$@"; do sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$sum"; }
# Microseconds of CPU per request: ticks over requests.
us_per() { awk -v t="$1" -v n="$2" -v hz="$TICKS" 'BEGIN { printf "%.2f", t / hz / n * 1e6 }'; }
# One redis-benchmark run; prints its requests per second. Options go before a command given
# on the line (redis-benchmark takes whatever follows the command as its arguments).
rps() { redis-benchmark --csv "$@" 2>/dev/null | tail -1 | cut -d'"' -f4; }

echo "## 1. One request at a time (-c 50 -P 1, 32 B values, --threads $THREADS)"
echo
redis-benchmark -p "$BASE" --cluster -c 50 -n 200000 -r 100000 -d 32 -t set -q >/dev/null 2>&1
redis-benchmark -p "$PROXY_PORT" -c 50 -n 200000 -r 100000 -d 32 -t set -q >/dev/null 2>&1
echo "| round | run | ops/s | redis-servers' CPU µs per request | proxy CPU µs per request |"
echo "|---:|---|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
  r0=$(ticks $REDIS_PIDS)
  ops=$(rps -p "$BASE" --cluster -c 50 -P 1 -n "$N_P1" -r 100000 -d 32 -t get)
  echo "| $round | GET, direct (cluster) | $ops | $(us_per $(($(ticks $REDIS_PIDS) - r0)) "$N_P1") | |"
  r0=$(ticks $REDIS_PIDS)
  ops=$(rps -p "$BASE" -c 50 -P 1 -n "$N_P1" -t ping_mbulk)
  echo "| $round | PING, direct (one node) | $ops | $(us_per $(($(ticks $REDIS_PIDS) - r0)) "$N_P1") | |"
  r0=$(ticks $REDIS_PIDS); p0=$(ticks "$PROXY_PID")
  ops=$(rps -p "$PROXY_PORT" -c 50 -P 1 -n "$N_P1" -r 100000 -d 32 -t get)
  echo "| $round | GET, proxy | $ops | $(us_per $(($(ticks $REDIS_PIDS) - r0)) "$N_P1") | $(us_per $(($(ticks "$PROXY_PID") - p0)) "$N_P1") |"
  r0=$(ticks $REDIS_PIDS); p0=$(ticks "$PROXY_PID")
  ops=$(rps -p "$PROXY_PORT" -c 50 -P 1 -n "$N_P1" -t ping_mbulk)
  echo "| $round | PING, proxy (answered by the proxy) | $ops | $(us_per $(($(ticks $REDIS_PIDS) - r0)) "$N_P1") | $(us_per $(($(ticks "$PROXY_PID") - p0)) "$N_P1") |"
done
echo

# A key on the first node (the one HAProxy relays to).
KEY=""
for i in $(seq 0 100); do
  case "$(redis-cli -p "$BASE" GET "big:$i" 2>&1)" in MOVED*) ;; *) KEY="big:$i"; break ;; esac
done
[ -n "$KEY" ] || { echo "no key of the first node found" >&2; exit 1; }
head -c 393216 /dev/urandom | base64 -w0 >"$DIR/value"
[ "$(stat -c %s "$DIR/value")" = 524288 ] || { echo "the value is not 512 KiB" >&2; exit 1; }
redis-cli -p "$BASE" -x SET "$KEY" <"$DIR/value" >/dev/null
NODE_PID=$(cat "$DIR/node-$BASE/redis.pid" 2>/dev/null || redis-cli -p "$BASE" INFO server | awk -F: '/^process_id/ {print $2+0}')

start_haproxy() { # args: extra option lines
  { printf 'global\n    maxconn 1000\n    nbthread %s\ndefaults\n    mode tcp\n' "$THREADS"
    printf '    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n'
    for option in "$@"; do printf '    %s\n' "$option"; done
    printf 'listen relay\n    bind 127.0.0.1:%s\n    server node 127.0.0.1:%s\n' "$HAPROXY_PORT" "$BASE"
  } >"$DIR/haproxy.cfg"
  haproxy -f "$DIR/haproxy.cfg" -db >"$DIR/haproxy.log" 2>&1 &
  HAPROXY_PID=$!
  for _ in $(seq 100); do redis-cli -p "$HAPROXY_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$HAPROXY_PORT" ping >/dev/null || { cat "$DIR/haproxy.log" >&2; exit 1; }
}
large() { # args: name port relay-pid
  local n0 r0=0 ops
  n0=$(ticks "$NODE_PID"); [ -n "$3" ] && r0=$(ticks "$3")
  ops=$(rps -p "$2" -c 4 -P 1 -n "$N_LARGE" GET "$KEY")
  [ -z "$3" ] && DIRECT_OPS=$ops
  local node relay=""
  node=$(us_per $(($(ticks "$NODE_PID") - n0)) "$N_LARGE")
  [ -n "$3" ] && relay=$(us_per $(($(ticks "$3") - r0)) "$N_LARGE")
  awk -v round="$round" -v name="$1" -v ops="$ops" -v direct="${DIRECT_OPS:-$ops}" -v node="$node" -v relay="$relay" \
    'BEGIN { printf "| %s | %s | %.0f | %.0f | %.2f | %s | %s |\n", round, name, ops, ops / 2, ops / direct, node, relay }'
}

echo "## 2. GET of one 512 KiB value (-c 4 -P 1, $THREADS thread(s) in each relay)"
echo
echo "| round | path | ops/s | MiB/s | of direct | node's CPU µs per request | relay's CPU µs per request |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
  DIRECT_OPS=""
  large "direct" "$BASE" ""
  start_haproxy
  large "HAProxy, TCP mode" "$HAPROXY_PORT" "$HAPROXY_PID"
  stop_haproxy
  start_haproxy "option splice-request" "option splice-response"
  large "HAProxy, TCP mode, splice" "$HAPROXY_PORT" "$HAPROXY_PID"
  stop_haproxy
  large "redkeep proxy" "$PROXY_PORT" "$PROXY_PID"
done
echo

echo "## 3. Redis alone: four GETs of one 512 KiB value at a time, four connections or one"
echo
echo "| round | redis-benchmark | ops/s | node's CPU µs per request |"
echo "|---:|---|---:|---:|"
for round in $(seq "$ROUNDS"); do
  for shape in "-c 4 -P 1" "-c 1 -P 4"; do
    n0=$(ticks "$NODE_PID")
    # shellcheck disable=SC2086 # the shape is several options
    ops=$(rps -p "$BASE" $shape -n "$N_LARGE" GET "$KEY")
    node=$(us_per $(($(ticks "$NODE_PID") - n0)) "$N_LARGE")
    echo "| $round | $shape | $ops | $node |"
  done
done
