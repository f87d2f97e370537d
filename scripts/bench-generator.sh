#!/usr/bin/env bash
# Is `redkeep bench` fast enough never to be the bottleneck? Against one standalone
# redis-server (append-only file off), it and redis-benchmark run the same load: 50
# connections, the same pipeline and value size, SET then GET. Prints ops/s and the
# generator's CPU seconds per million requests for both.
#
# Usage: scripts/bench-generator.sh [-n REQUESTS] [-P PIPELINE] [-d SIZE_BYTES]
set -euo pipefail
cd "$(dirname "$0")/.."
N=500000; P=1; D=32
while [ $# -gt 0 ]; do
  case "$1" in
    -n) N="$2"; shift 2 ;; -P) P="$2"; shift 2 ;; -d) D="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
cargo build --release --locked -q -p redkeep
DIR=$(mktemp -d /tmp/redkeep-gen.XXXXXX)
PORT=27401
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$DIR" \
  --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
trap 'kill "$(cat "$DIR/redis.pid")" 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# Runs a command under GNU time; prints "CPU_SECONDS" on stderr's last line into $DIR/cpu.
timed() { /usr/bin/time -f "%U %S" -o "$DIR/cpu" "$@"; }
cpu_per_million() { awk -v n="$1" '{ printf "%.2f", ($1 + $2) / (n / 1e6) }' "$DIR/cpu"; }

echo "| generator | test | ops/s | generator CPU s per 1M req |"
echo "|---|---|---:|---:|"
for t in set get; do
  out=$(timed redis-benchmark -p "$PORT" -c 50 -P "$P" -d "$D" -n "$N" -r 100000 -t "$t" --csv 2>/dev/null | awk -F'","' '/^"[A-Z]+",/ { print $2 }')
  echo "| redis-benchmark | ${t^^} | ${out%.*} | $(cpu_per_million "$N") |"
done
redis-cli -p "$PORT" flushall >/dev/null
timed ./target/release/redkeep bench --target "127.0.0.1:$PORT" --sizes "${D}B" --requests "$N" --keyspace 100000 \
  --connections 50 --pipeline "$P" --quiet --out "$DIR/results" >/dev/null
# redkeep bench ran SET and GET (2 x N requests); share its CPU by their wall times.
awk -F, -v cpu="$(awk '{print $1 + $2}' "$DIR/cpu")" 'NR > 1 { ops[NR] = $8; secs[NR] = $7; total += $7; op[NR] = $1; n[NR] = $3 }
  END { for (i in ops) printf "| redkeep bench | %s | %.0f | %.2f |\n", op[i], ops[i], cpu * secs[i] / total / (n[i] / 1e6) }' \
  "$DIR/results/results-client1.csv" | sort -t'|' -k3
