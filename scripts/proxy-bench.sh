#!/usr/bin/env bash
# Measures redkeep's proxy against the direct cluster in one run, with redis-benchmark:
# -c 50, -P 1 and -P 16, -d 32 and -d 4096, -r 100000, SET and GET, each test on its own.
# Prints a Markdown table: throughput of both, the ratio, p50/p99 latency of both, and the
# proxy's CPU seconds per million requests (from /proc/<pid>/stat).
#
# Usage: scripts/proxy-bench.sh [-n REQUESTS_AT_P1] [-m REQUESTS_AT_P16] [--threads N]
# Needs: redis-server, redis-benchmark (make deps), a release build (built here if missing).
# It runs its own cluster on ports 27301-27306 (proxy 27310) in a temporary dir, with the
# append-only file off, and removes it at the end, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

N_P1=300000
N_P16=1000000
THREADS=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n) N_P1="$2"; shift 2 ;;
    -m) N_P16="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

command -v redis-benchmark >/dev/null || { echo "redis-benchmark not found: run make deps" >&2; exit 1; }
cargo build --release --locked -q -p redkeep
REDKEEP=./target/release/redkeep
DIR=$(mktemp -d /tmp/redkeep-bench.XXXXXX)
BASE=27301
PROXY_PORT=27310
PROXY_PID=""
cleanup() {
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
  "$REDKEEP" down --dir "$DIR" --purge >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

"$REDKEEP" up --detach --no-proxy --dir "$DIR" --base-port "$BASE" >/dev/null
# The proxy's cost is what is measured, not the disk: without this, SET of 4 KiB values is
# bound by the append-only file's writes on both paths alike.
"$REDKEEP" call "127.0.0.1:$BASE" CONFIG SET appendonly no >/dev/null
SEEDS=()
for i in 0 1 2 3 4 5; do SEEDS+=(--seed "127.0.0.1:$((BASE + i))"); done
PROXY_ARGS=(proxy "${SEEDS[@]}" --listen "127.0.0.1:$PROXY_PORT" --stats off)
[ -n "$THREADS" ] && PROXY_ARGS+=(--threads "$THREADS")
"$REDKEEP" "${PROXY_ARGS[@]}" >"$DIR/proxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 100); do redis-cli -p "$PROXY_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$PROXY_PORT" ping >/dev/null || { cat "$DIR/proxy.log" >&2; exit 1; }

TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# One redis-benchmark run; prints "rps p50 p99".
bench() { # args: target-args... -- P d test n
  local args=() ; while [ "$1" != "--" ]; do args+=("$1"); shift; done; shift
  local p=$1 d=$2 t=$3 n=$4
  redis-benchmark "${args[@]}" -c 50 -P "$p" -d "$d" -r 100000 -n "$n" -t "$t" --csv 2>/dev/null \
    | awk -F'","' '/^"[A-Z]+",/ { print $2, $5, $7 }'
}

echo "| -P | -d | test | direct ops/s | proxy ops/s | proxy/direct | direct p50/p99 ms | proxy p50/p99 ms | proxy CPU s per 1M req |"
echo "|---:|---:|---|---:|---:|---:|---|---|---:|"
for p in 16 1; do
  n=$N_P1; [ "$p" = 16 ] && n=$N_P16
  for d in 32 4096; do
    for t in set get; do
      read -r d_rps d_p50 d_p99 < <(bench -p "$BASE" --cluster -- "$p" "$d" "$t" "$n")
      before=$(cpu_ticks "$PROXY_PID")
      read -r p_rps p_p50 p_p99 < <(bench -p "$PROXY_PORT" -- "$p" "$d" "$t" "$n")
      after=$(cpu_ticks "$PROXY_PID")
      awk -v p="$p" -v d="$d" -v t="${t^^}" -v dr="$d_rps" -v pr="$p_rps" -v dp50="$d_p50" -v dp99="$d_p99" \
          -v pp50="$p_p50" -v pp99="$p_p99" -v ticks=$((after - before)) -v hz="$TICKS" -v n="$n" \
        'BEGIN { printf "| %s | %s | %s | %.0f | %.0f | %.0f%% | %s / %s | %s / %s | %.2f |\n",
                 p, d, t, dr, pr, 100 * pr / dr, dp50, dp99, pp50, pp99, (ticks / hz) / (n / 1e6) }'
    done
  done
done
