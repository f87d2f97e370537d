#!/usr/bin/env bash
# Measures `redkeep rebalance` against `redis-cli --cluster rebalance --cluster-use-empty-masters`
# on the same data in one run: for each tool, a fresh 3-master cluster (no replicas, append-only
# file and RDB snapshots off) gets the same KEYS keys of 100 B through the proxy, a 4th empty
# master is added, and the tool rebalances 3 -> 4 masters while `redkeep bench` runs an
# open-loop load through the proxy (SET:GET 1:1 at RATE requests/s, every value checked).
# Prints a Markdown table: wall time of the rebalance, keys moved, and the load's requests,
# errors and p99 latency during it.
#
# Usage: scripts/rebalance-bench.sh [--keys N] [--rate R] [--only redkeep|redis-cli]
#        [--redkeep-args "ARGS"] [--keep DIR]
#   --redkeep-args: extra `redkeep rebalance` options (e.g. "--slots-at-once 8");
#   --keep: copy the load's result files (per-batch timeline, HTML report) to DIR.
# Needs: redis-server, redis-cli (make deps), a release build (built here if missing).
# Runs its own clusters on ports 17401-17404 (proxy 17410; bus ports below the ephemeral range)
# in a temporary dir, removed at the
# end, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=1000000
RATE=2000
ONLY=""
REDKEEP_ARGS=""
KEEP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --keys) KEYS="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --redkeep-args) REDKEEP_ARGS="$2"; shift 2 ;;
    --keep) KEEP="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

command -v redis-cli >/dev/null || { echo "redis-cli not found: run make deps" >&2; exit 1; }
cargo build --release --locked -q -p redkeep
REDKEEP=$PWD/target/release/redkeep
DIR=$(mktemp -d /tmp/redkeep-rebalance-bench.XXXXXX)
BASE=17401
NEW=$((BASE + 3))
PROXY_PORT=17410
PROXY_PID=""
LOAD_PID=""
NEW_PID=""
cleanup() {
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null && wait "$LOAD_PID" 2>/dev/null
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
  [ -n "$NEW_PID" ] && kill "$NEW_PID" 2>/dev/null
  "$REDKEEP" down --dir "$DIR/cluster" --purge >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

# A fresh cluster with KEYS keys, a proxy, and an empty 4th master added.
prepare() {
  cleanup_cluster
  "$REDKEEP" up --detach --no-proxy --no-monitor --dir "$DIR/cluster" --base-port "$BASE" --masters 3 \
    --replicas 0 >/dev/null
  for i in 0 1 2; do
    "$REDKEEP" call "127.0.0.1:$((BASE + i))" CONFIG SET appendonly no >/dev/null
    "$REDKEEP" call "127.0.0.1:$((BASE + i))" CONFIG SET save "" >/dev/null
  done
  "$REDKEEP" proxy --seed "127.0.0.1:$BASE" --listen "127.0.0.1:$PROXY_PORT" --stats off \
    >"$DIR/proxy.log" 2>&1 &
  PROXY_PID=$!
  for _ in $(seq 100); do redis-cli -p "$PROXY_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  # KEYS SETs of 100 B values, pipelined through the proxy.
  awk -v n="$KEYS" 'BEGIN {
    v = sprintf("%100s", ""); gsub(/ /, "v", v)
    for (i = 0; i < n; i++) { k = "key:" i; printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n", length(k), k, v }
  }' | redis-cli -p "$PROXY_PORT" --pipe >/dev/null
  mkdir -p "$DIR/new"
  redis-server --port "$NEW" --bind 127.0.0.1 --cluster-enabled yes --dir "$DIR/new" \
    --cluster-config-file nodes.conf --appendonly no --save "" --daemonize no --logfile "" \
    >/dev/null &
  NEW_PID=$!
  for _ in $(seq 100); do redis-cli -p "$NEW" ping >/dev/null 2>&1 && break; sleep 0.1; done
  "$REDKEEP" add-node "127.0.0.1:$NEW" "127.0.0.1:$BASE" >/dev/null
}

cleanup_cluster() {
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
  PROXY_PID=""
  [ -n "$NEW_PID" ] && kill "$NEW_PID" 2>/dev/null && wait "$NEW_PID" 2>/dev/null
  NEW_PID=""
  "$REDKEEP" down --dir "$DIR/cluster" --purge >/dev/null 2>&1 || true
  rm -rf "$DIR/new"
}

# Runs the rebalance command given with the load on; prints "seconds keys-on-new ops errors p99".
measure() { # args: name command...
  local name=$1; shift
  "$REDKEEP" bench --target "127.0.0.1:$PROXY_PORT" --seed "127.0.0.1:$BASE" --sizes 100B \
    --ratio 1:1 --keyspace 100000 --rate "$RATE" --connections 32 --duration 1h --quiet \
    --out "$DIR/load-$name" >"$DIR/load-$name.log" 2>&1 &
  LOAD_PID=$!
  sleep 2 # the load runs steadily before the rebalance starts
  local start end
  start=$(date +%s.%N)
  "$@" >"$DIR/$name.log" 2>&1 || { cat "$DIR/$name.log" >&2; exit 1; }
  end=$(date +%s.%N)
  kill -INT "$LOAD_PID"; wait "$LOAD_PID" || true
  LOAD_PID=""
  local moved
  moved=$(redis-cli -p "$NEW" dbsize)
  if [ -n "$KEEP" ]; then mkdir -p "$KEEP"; cp -r "$DIR/load-$name" "$DIR/$name.log" "$KEEP/"; fi
  python3 - "$DIR/load-$name/results-client1.json" "$start" "$end" "$moved" <<'EOF'
import json, sys
results = json.load(open(sys.argv[1]))
ops = sum(p["requests"] for p in results["phases"])
errors = sum(p["errors"] for p in results["phases"])
p99 = max(p["latency"]["p99"] for p in results["phases"])
print(f"{float(sys.argv[3]) - float(sys.argv[2]):.1f} {sys.argv[4]} {ops} {errors} {p99}")
EOF
}

rk_s=-; rk_keys=-; rk_ops=-; rk_err=-; rk_p99=-; rc_s=-; rc_keys=-; rc_ops=-; rc_err=-; rc_p99=-
if [ "$ONLY" != "redis-cli" ]; then
  prepare
  # shellcheck disable=SC2086 # the extra options are words
  read -r rk_s rk_keys rk_ops rk_err rk_p99 < <(measure redkeep \
    "$REDKEEP" rebalance "127.0.0.1:$BASE" --use-empty-masters --yes --plan-file "$DIR/plan.json" \
    $REDKEEP_ARGS)
fi
if [ "$ONLY" != "redkeep" ]; then
  prepare
  read -r rc_s rc_keys rc_ops rc_err rc_p99 < <(measure redis-cli \
    redis-cli --cluster rebalance "127.0.0.1:$BASE" --cluster-use-empty-masters --cluster-yes)
fi

echo "| tool | rebalance wall time | keys moved | load requests | load errors | load p99 |"
echo "|---|---:|---:|---:|---:|---:|"
echo "| redkeep rebalance $REDKEEP_ARGS | ${rk_s} s | $rk_keys | $rk_ops | $rk_err | ${rk_p99} µs |"
echo "| redis-cli --cluster rebalance | ${rc_s} s | $rc_keys | $rc_ops | $rc_err | ${rc_p99} µs |"
if [ -z "$ONLY" ]; then
  python3 -c "print(f'redkeep / redis-cli wall time: {$rk_s / $rc_s:.2f}')"
fi
