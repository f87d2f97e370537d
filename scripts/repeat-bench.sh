#!/usr/bin/env bash
# Repeats, interleaved, the rows of scripts/proxy-bench.sh that one run cannot settle on a
# shared 2-core machine (single runs move by 10-20%), on a cluster of its own (ports
# BASE..BASE+5, proxies BASE+9..BASE+11; REDKEEP_BENCH_BASE, default 21101,
# whose cluster bus ports, BASE+10000.., stay below the ephemeral range of 32768 and up, where
# the ports of the 1,000-client runs wait in TIME_WAIT):
#
# 1. GET of 512 KiB values (-c 4 -P 1, 1000 keys, every one written on both paths first):
#    direct (--cluster) against the proxy with one worker thread and with the default
#    threads, in turn, --rounds times; the ratios to direct.
# 2. 32 B values at -P 1 through the proxy with the default threads: 50 clients against
#    1,000, SET and GET, --rounds times.
# 3. With --baseline BIN (another build of redkeep): 1,000 clients' 32 B GET through both
#    proxies in ABBA order (old new, new old, ...), --rounds pairs, with each proxy's CPU per
#    request: a test that always runs second is not mistaken for a slower build.
#
# Usage: scripts/repeat-bench.sh [--rounds N] [--baseline BIN]
# Needs: redis-server, redis-benchmark (make deps), a release build (built here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=3
BASELINE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --baseline) BASELINE="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
command -v redis-benchmark >/dev/null || { echo "redis-benchmark not found (make deps)" >&2; exit 1; }
[ -z "$BASELINE" ] || [ -x "$BASELINE" ] || { echo "--baseline $BASELINE is not a program" >&2; exit 2; }

cargo build --release --locked -q -p redkeep
REDKEEP=./target/release/redkeep
DIR=$(mktemp -d /tmp/redkeep-repeat.XXXXXX)
BASE=${REDKEEP_BENCH_BASE:-21101}
PIDS=()
# Every step runs whatever the one before did: a proxy already gone must not leave the
# cluster running.
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  "$REDKEEP" down --dir "$DIR" --purge >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

. scripts/lib/bench-cluster.sh
bench_cluster_up "$REDKEEP" "$DIR" "$BASE"
# Starts a proxy from BIN on PORT with extra ARGS, as a child of this shell (so that the
# cleanup can wait for it); its pid is the last of PIDS.
start_proxy() { # BIN PORT ARGS...
  local bin=$1 port=$2; shift 2
  "$bin" proxy "${SEEDS[@]}" --listen "127.0.0.1:$port" --stats off "$@" \
    >"$DIR/proxy-$port.log" 2>&1 &
  PIDS+=("$!")
}
start_proxy "$REDKEEP" $((BASE + 9)) --threads 1
start_proxy "$REDKEEP" $((BASE + 10)); DEFAULT=${PIDS[-1]}
if [ -n "$BASELINE" ]; then start_proxy "$BASELINE" $((BASE + 11)); OLD=${PIDS[-1]}; fi
for port in $((BASE + 9)) $((BASE + 10)) ${BASELINE:+$((BASE + 11))}; do
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$port" ping >/dev/null || { cat "$DIR"/proxy-*.log >&2; exit 1; }
done

# One redis-benchmark run; prints its requests per second (options before any command).
rps() { redis-benchmark --csv "$@" 2>/dev/null | tail -1 | cut -d'"' -f4 | cut -d. -f1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

LARGE=(-c 4 -P 1 -r 1000 -d 524288)
# --cluster names its keys with hash tags, the proxy's runs without: both sets written whole
# (8,000 SETs over 1,000 keys leave none out, as good as certainly).
redis-benchmark -p "$BASE" --cluster "${LARGE[@]}" -n 8000 -t set -q >/dev/null 2>&1
redis-benchmark -p $((BASE + 9)) "${LARGE[@]}" -n 8000 -t set -q >/dev/null 2>&1

echo "## 1. GET of 512 KiB values (${LARGE[*]} -n 20000)"
echo
echo "| round | direct ops/s | proxy, 1 thread | of direct | proxy, default threads | of direct |"
echo "|---:|---:|---:|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
  direct=$(rps -p "$BASE" --cluster "${LARGE[@]}" -n 20000 -t get)
  one=$(rps -p $((BASE + 9)) "${LARGE[@]}" -n 20000 -t get)
  default=$(rps -p $((BASE + 10)) "${LARGE[@]}" -n 20000 -t get)
  echo "| $round | $direct | $one | $(ratio "$one" "$direct") | $default | $(ratio "$default" "$direct") |"
done
echo

SMALL=(-P 1 -r 100000 -d 32 -n 300000)
echo "## 2. 32 B values at -P 1, default threads: 50 clients against 1,000 (${SMALL[*]})"
echo
echo "| round | test | 50 clients ops/s | 1,000 clients ops/s | 1,000 / 50 |"
echo "|---:|---|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
  for test in set get; do
    fifty=$(rps -p $((BASE + 10)) -c 50 "${SMALL[@]}" -t "$test")
    thousand=$(rps -p $((BASE + 10)) -c 1000 "${SMALL[@]}" -t "$test")
    echo "| $round | ${test^^} | $fifty | $thousand | $(ratio "$thousand" "$fifty") |"
  done
done

[ -n "$BASELINE" ] || exit 0
echo
echo "## 3. 1,000 clients' 32 B GET, default threads: $BASELINE (old) and this build (new), ABBA"
echo
echo "| pair | build | ops/s | proxy CPU µs per request |"
echo "|---:|---|---:|---:|"
for pair in $(seq "$ROUNDS"); do
  order="old new"
  [ $((pair % 2)) = 0 ] && order="new old"
  for build in $order; do
    if [ "$build" = old ]; then port=$((BASE + 11)); pid=$OLD; else port=$((BASE + 10)); pid=$DEFAULT; fi
    t0=$(ticks "$pid")
    ops=$(rps -p "$port" -c 1000 "${SMALL[@]}" -t get)
    cpu=$(awk -v t=$(($(ticks "$pid") - t0)) -v hz="$(getconf CLK_TCK)" -v n=300000 \
      'BEGIN { printf "%.2f", t / hz / n * 1e6 }')
    echo "| $pair | $build | $ops | $cpu |"
  done
done
