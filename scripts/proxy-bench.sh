#!/usr/bin/env bash
# Measures redkeep's proxy against the direct cluster in one run, with redis-benchmark, SET
# and GET each on its own, rows of (-c clients, -P pipeline, -d value size):
#   -c 50:   -P 16 and -P 1, at -d 32 and -d 4096 (-r 100000)
#   -c 4:    -P 1 at -d 65536 and -d 524288 (-r 1000; MB/s is what these rows are for)
#   -c 1000: -P 1 at -d 32 (to set beside -c 50)
# Prints two Markdown tables: throughput (ops/s and MB/s) of both, the ratio, p50/p99 latency
# of both, the proxy's CPU seconds per million requests and per GB of values, and the six
# redis-servers' own CPU per million requests in the direct run (with the ratio proxy CPU /
# redis CPU, comparable across machines); then where the cores' time went on each path
# (client, redis-server, proxy, idle; from /proc), and the ratio a never-idle path would reach.
# Last, the proxy's memory per idle client: RSS before and after 10,000 connections that each
# sent one PING.
#
# With --baseline BIN (another build of redkeep, e.g. of main), a second proxy from BIN runs
# beside this one (port BASE+12) and every test runs on both, interleaved (the order alternates
# from test to test), --rounds times; only that before/after table is printed then.
#
# Usage: scripts/proxy-bench.sh [-n REQUESTS_AT_P1] [-m REQUESTS_AT_P16] [--threads N]
#                               [--large-n REQUESTS_AT_512K] [--no-idle]
#                               [--baseline BIN] [--rounds N] [--users | --node-tls]
# With --users: instead, the plain proxy (no users) against a second proxy whose clients AUTH
# as an ACL user with key patterns (the cost of the rights checks) and a third one serving TLS
# (a self-signed certificate made with openssl), same cluster, same run. REDKEEP_BENCH_BASE
# moves the ports (default 27301: nodes BASE..BASE+5, proxies BASE+9..BASE+11).
# With --node-tls: instead, the plain proxy in front of plain nodes against a proxy speaking
# TLS to a second cluster of `redkeep up --tls` (nodes BASE+20..BASE+25, TLS only, proxy
# BASE+12), same run, the order alternating from test to test; its clients speak plain RESP
# to both proxies, so what differs is TLS between the proxy and the nodes.
# Needs: redis-server, redis-benchmark (make deps), a release build (built here if missing).
# It runs its own cluster on ports BASE..BASE+5 (proxy BASE+9) in a temporary dir, with the
# append-only file and RDB snapshots off, and removes it at the end, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

N_P1=300000
N_P16=1000000
THREADS=""
BASELINE=""
ROUNDS=1
USERS_MODE=""
N_LARGE=3000
IDLE_TEST=1
NODE_TLS_MODE=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n) N_P1="$2"; shift 2 ;;
    -m) N_P16="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --baseline) BASELINE="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --users) USERS_MODE=1; shift ;;
    --large-n) N_LARGE="$2"; shift 2 ;;
    --no-idle) IDLE_TEST=""; shift ;;
    --node-tls) NODE_TLS_MODE=1; shift ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

command -v redis-benchmark >/dev/null || { echo "redis-benchmark not found: run make deps" >&2; exit 1; }
cargo build --release --locked -q -p redkeep
REDKEEP=./target/release/redkeep
DIR=$(mktemp -d /tmp/redkeep-bench.XXXXXX)
BASE=${REDKEEP_BENCH_BASE:-27301}
PROXY_PORT=$((BASE + 9))
PROXY_PID=""
BASELINE_PORT=$((BASE + 12))
BASELINE_PID=""
cleanup() {
  [ -n "$BASELINE_PID" ] && kill "$BASELINE_PID" 2>/dev/null && wait "$BASELINE_PID" 2>/dev/null
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
  [ -n "${USERS_PID:-}" ] && kill "$USERS_PID" 2>/dev/null && wait "$USERS_PID" 2>/dev/null
  [ -n "${TLS_PID:-}" ] && kill "$TLS_PID" 2>/dev/null && wait "$TLS_PID" 2>/dev/null
  [ -n "${NT_PID:-}" ] && kill "$NT_PID" 2>/dev/null && wait "$NT_PID" 2>/dev/null
  "$REDKEEP" down --dir "$DIR/tls-nodes" --purge >/dev/null 2>&1 || true
  "$REDKEEP" down --dir "$DIR" --purge >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

. scripts/lib/bench-cluster.sh
bench_cluster_up "$REDKEEP" "$DIR" "$BASE"
PROXY_ARGS=(proxy "${SEEDS[@]}" --listen "127.0.0.1:$PROXY_PORT" --stats off)
[ -n "$THREADS" ] && PROXY_ARGS+=(--threads "$THREADS")
"$REDKEEP" "${PROXY_ARGS[@]}" >"$DIR/proxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 100); do redis-cli -p "$PROXY_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$PROXY_PORT" ping >/dev/null || { cat "$DIR/proxy.log" >&2; exit 1; }
if [ -n "$BASELINE" ]; then
  BASELINE_ARGS=(proxy "${SEEDS[@]}" --listen "127.0.0.1:$BASELINE_PORT" --stats off)
  [ -n "$THREADS" ] && BASELINE_ARGS+=(--threads "$THREADS")
  "$BASELINE" "${BASELINE_ARGS[@]}" >"$DIR/baseline.log" 2>&1 &
  BASELINE_PID=$!
  for _ in $(seq 100); do redis-cli -p "$BASELINE_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$BASELINE_PORT" ping >/dev/null || { cat "$DIR/baseline.log" >&2; exit 1; }
fi

TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
redis_ticks() { pids_ticks $REDIS_PIDS; }
pids_ticks() { local sum=0 pid; for pid in "$@"; do sum=$((sum + $(cpu_ticks "$pid"))); done; echo "$sum"; }
idle_ticks() { awk '/^cpu / {print $5 + $6}' /proc/stat; }

# One redis-benchmark run; prints "rps p50 p99 client-ticks" (the client's CPU: what this
# subshell's waited-for children used).
bench() { # args: target-args... -- P d test n [clients [keyspace]]
  local args=() ; while [ "$1" != "--" ]; do args+=("$1"); shift; done; shift
  local p=$1 d=$2 t=$3 n=$4 c=${5:-50} r=${6:-100000}
  redis-benchmark "${args[@]}" -c "$c" -P "$p" -d "$d" -r "$r" -n "$n" -t "$t" --csv 2>/dev/null \
    | awk -F'","' '/^"[A-Z]+",/ { printf "%s %s %s ", $2, $5, $7 }'
  awk '{print $16 + $17}' "/proc/$BASHPID/stat"
}

# One measured run of one path; prints "rps p50 p99 client redis proxy idle", CPU in ticks
# (the proxy's is that of $MEASURED_PID).
MEASURED_PID=""
measure() { # args: target-args... -- P d test n [clients [keyspace]]
  local r0 i0 p0 rps p50 p99 client pid=${MEASURED_PID:-$PROXY_PID}
  r0=$(redis_ticks); i0=$(idle_ticks); p0=$(cpu_ticks "$pid")
  read -r rps p50 p99 client < <(bench "$@")
  echo "$rps $p50 $p99 $client $(($(redis_ticks) - r0)) $(($(cpu_ticks "$pid") - p0)) $(($(idle_ticks) - i0))"
}

# The rows: "clients pipeline size keyspace requests"; each runs SET, then GET.
ROWS=(
  "50 16 32 100000 $N_P16" "50 16 4096 100000 $N_P16"
  "50 1 32 100000 $N_P1" "50 1 4096 100000 $N_P1"
  "4 1 65536 1000 $((N_LARGE * 8))" "4 1 524288 1000 $N_LARGE"
  "1000 1 32 100000 $N_P1"
)
# 1,000 clients need as many descriptors in redis-benchmark (the proxy raises its own limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --baseline: each test on the baseline proxy and on this one, in alternating order, for
# each round; one table row per test and round.
if [ -n "$BASELINE" ]; then
  echo "Before (--baseline $BASELINE) and after (this build), interleaved, $ROUNDS round(s):"
  echo
  echo "| round | -c | -P | -d | test | before ops/s | after ops/s | after/before | before p50/p99 ms | after p50/p99 ms | before CPU s per 1M | after CPU s per 1M | after/before CPU |"
  echo "|---:|---:|---:|---:|---|---:|---:|---:|---|---|---:|---:|---:|"
  turn=0
  for round in $(seq "$ROUNDS"); do
    for row in "${ROWS[@]}"; do
      read -r c p d r n <<<"$row"
      for t in set get; do
        turn=$((turn + 1))
        for side in $(if [ $((turn % 2)) = 0 ]; then echo before after; else echo after before; fi); do
          if [ "$side" = before ]; then
            MEASURED_PID=$BASELINE_PID
            read -r b_rps b_p50 b_p99 _ _ b_proxy _ < <(measure -p "$BASELINE_PORT" -- "$p" "$d" "$t" "$n" "$c" "$r")
          else
            MEASURED_PID=$PROXY_PID
            read -r a_rps a_p50 a_p99 _ _ a_proxy _ < <(measure -p "$PROXY_PORT" -- "$p" "$d" "$t" "$n" "$c" "$r")
          fi
        done
        MEASURED_PID=""
        awk -v r="$round" -v c="$c" -v p="$p" -v d="$d" -v t="${t^^}" -v br="$b_rps" -v ar="$a_rps" \
            -v bp50="$b_p50" -v bp99="$b_p99" -v ap50="$a_p50" -v ap99="$a_p99" \
            -v bt="$b_proxy" -v at="$a_proxy" -v hz="$TICKS" -v n="$n" \
          'BEGIN { bc = (bt / hz) / (n / 1e6); ac = (at / hz) / (n / 1e6)
                   printf "| %s | %s | %s | %s | %s | %.0f | %.0f | %.0f%% | %s / %s | %s / %s | %.2f | %.2f | %.0f%% |\n",
                     r, c, p, d, t, br, ar, 100 * ar / br, bp50, bp99, ap50, ap99, bc, ac, (bc > 0 ? 100 * ac / bc : 0) }'
      done
    done
  done
  exit 0
fi

# ---- --users: the cost of AUTH rights checks ----
# One run of one proxy; prints "rps p50 p99 proxy-ticks".
proxy_run() { # args: proxy-pid target-args... -- P d test n
  local pid=$1 t0 rps p50 p99; shift
  t0=$(cpu_ticks "$pid")
  read -r rps p50 p99 _ < <(bench "$@")
  echo "$rps $p50 $p99 $(($(cpu_ticks "$pid") - t0))"
}
if [ -n "$USERS_MODE" ]; then
  USERS_PORT=$((PROXY_PORT + 1))
  # Every command allowed, but keys only under redis-benchmark's `key:` prefix, so each
  # request's key is matched against patterns (allkeys would skip the key check).
  printf 'user bench on >bench-pw +@all ~other:* ~key:*\n' > "$DIR/users.acl"
  USERS_ARGS=(proxy "${SEEDS[@]}" --listen "127.0.0.1:$USERS_PORT" --stats off --users "$DIR/users.acl")
  [ -n "$THREADS" ] && USERS_ARGS+=(--threads "$THREADS")
  "$REDKEEP" "${USERS_ARGS[@]}" >"$DIR/proxy-users.log" 2>&1 &
  USERS_PID=$!
  for _ in $(seq 100); do redis-cli -p "$USERS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli --user bench --pass bench-pw --no-auth-warning -p "$USERS_PORT" ping | grep -q PONG \
    || { cat "$DIR/proxy-users.log" >&2; exit 1; }
  TLS_PORT=$((PROXY_PORT + 2))
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$DIR/tls.key" -out "$DIR/tls.crt" 2>/dev/null
  TLS_ARGS=(proxy "${SEEDS[@]}" --listen "127.0.0.1:$TLS_PORT" --stats off --tls-cert "$DIR/tls.crt" --tls-key "$DIR/tls.key")
  [ -n "$THREADS" ] && TLS_ARGS+=(--threads "$THREADS")
  "$REDKEEP" "${TLS_ARGS[@]}" >"$DIR/proxy-tls.log" 2>&1 &
  TLS_PID=$!
  for _ in $(seq 100); do redis-cli --tls --cacert "$DIR/tls.crt" -p "$TLS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli --tls --cacert "$DIR/tls.crt" -p "$TLS_PORT" ping | grep -q PONG || { cat "$DIR/proxy-tls.log" >&2; exit 1; }
  echo "| -P | -d | test | plain ops/s | ACL user ops/s | TLS ops/s | user/plain | TLS/plain | p50/p99 ms plain / user / TLS | proxy CPU s per 1M req plain / user / TLS |"
  echo "|---:|---:|---|---:|---:|---:|---:|---:|---|---|"
  for p in 16 1; do
    n=$N_P1; [ "$p" = 16 ] && n=$N_P16
    for d in 32 4096; do
      for t in set get; do
        read -r a_rps a_p50 a_p99 a_ticks < <(proxy_run "$PROXY_PID" -p "$PROXY_PORT" -- "$p" "$d" "$t" "$n")
        read -r u_rps u_p50 u_p99 u_ticks < <(proxy_run "$USERS_PID" -p "$USERS_PORT" --user bench -a bench-pw -- "$p" "$d" "$t" "$n")
        read -r s_rps s_p50 s_p99 s_ticks < <(proxy_run "$TLS_PID" -p "$TLS_PORT" --tls --cacert "$DIR/tls.crt" -- "$p" "$d" "$t" "$n")
        awk -v p="$p" -v d="$d" -v t="${t^^}" -v ar="$a_rps" -v ur="$u_rps" -v sr="$s_rps" \
            -v lat="$a_p50/$a_p99 / $u_p50/$u_p99 / $s_p50/$s_p99" \
            -v at="$a_ticks" -v ut="$u_ticks" -v st="$s_ticks" -v hz="$TICKS" -v n="$n" \
          'BEGIN { m = n / 1e6
                   printf "| %s | %s | %s | %.0f | %.0f | %.0f | %.0f%% | %.0f%% | %s | %.2f / %.2f / %.2f |\n",
                   p, d, t, ar, ur, sr, 100 * ur / ar, 100 * sr / ar, lat, at / hz / m, ut / hz / m, st / hz / m }'
      done
    done
  done
  exit 0
fi

# ---- --node-tls: the cost of TLS between the proxy and the nodes ----
if [ -n "$NODE_TLS_MODE" ]; then
  TLS_BASE=$((BASE + 20))
  "$REDKEEP" up --tls --detach --no-proxy --no-monitor --dir "$DIR/tls-nodes" --base-port "$TLS_BASE" >/dev/null
  CERTS="$DIR/tls-nodes/tls"
  NODE_TLS=(--node-tls-ca "$CERTS/ca.crt" --node-tls-cert "$CERTS/client.crt" --node-tls-key "$CERTS/client.key")
  TLS_SEEDS=()
  for i in 0 1 2 3 4 5; do
    "$REDKEEP" "${NODE_TLS[@]}" call "127.0.0.1:$((TLS_BASE + i))" CONFIG SET appendonly no >/dev/null
    "$REDKEEP" "${NODE_TLS[@]}" call "127.0.0.1:$((TLS_BASE + i))" CONFIG SET save "" >/dev/null
    TLS_SEEDS+=(--seed "127.0.0.1:$((TLS_BASE + i))")
  done
  TLS_REDIS_PIDS=$(cat "$DIR"/tls-nodes/node-*/redis.pid)
  NT_PORT=$((BASE + 12))
  NT_ARGS=("${NODE_TLS[@]}" proxy "${TLS_SEEDS[@]}" --listen "127.0.0.1:$NT_PORT" --stats off)
  [ -n "$THREADS" ] && NT_ARGS+=(--threads "$THREADS")
  "$REDKEEP" "${NT_ARGS[@]}" >"$DIR/proxy-node-tls.log" 2>&1 &
  NT_PID=$!
  for _ in $(seq 100); do redis-cli -p "$NT_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$NT_PORT" ping | grep -q PONG || { cat "$DIR/proxy-node-tls.log" >&2; exit 1; }
  # One run through one proxy; prints "rps p50 p99 proxy-ticks redis-ticks" (its cluster's).
  node_tls_run() { # args: proxy-pid "redis pids" port P d test n
    local pid=$1 redis=$2 port=$3 t0 r0 rps p50 p99; shift 3
    # shellcheck disable=SC2086
    t0=$(cpu_ticks "$pid"); r0=$(pids_ticks $redis)
    read -r rps p50 p99 _ < <(bench -p "$port" -- "$@")
    # shellcheck disable=SC2086
    echo "$rps $p50 $p99 $(($(cpu_ticks "$pid") - t0)) $(($(pids_ticks $redis) - r0))"
  }
  echo "| -P | -d | test | plain ops/s | TLS to nodes ops/s | TLS/plain | p50/p99 ms plain / TLS | proxy CPU s per 1M plain / TLS | TLS/plain proxy CPU | redis CPU s per 1M plain / TLS |"
  echo "|---:|---:|---|---:|---:|---:|---|---|---:|---|"
  turn=0
  for p in 16 1; do
    n=$N_P1; [ "$p" = 16 ] && n=$N_P16
    for d in 32 4096; do
      for t in set get; do
        turn=$((turn + 1))
        for side in $(if [ $((turn % 2)) = 0 ]; then echo plain tls; else echo tls plain; fi); do
          if [ "$side" = plain ]; then
            read -r a_rps a_p50 a_p99 a_ticks a_redis < <(node_tls_run "$PROXY_PID" "$REDIS_PIDS" "$PROXY_PORT" "$p" "$d" "$t" "$n")
          else
            read -r s_rps s_p50 s_p99 s_ticks s_redis < <(node_tls_run "$NT_PID" "$TLS_REDIS_PIDS" "$NT_PORT" "$p" "$d" "$t" "$n")
          fi
        done
        awk -v p="$p" -v d="$d" -v t="${t^^}" -v ar="$a_rps" -v sr="$s_rps" \
            -v lat="$a_p50/$a_p99 / $s_p50/$s_p99" -v at="$a_ticks" -v st="$s_ticks" \
            -v ard="$a_redis" -v srd="$s_redis" -v hz="$TICKS" -v n="$n" \
          'BEGIN { m = n / 1e6; ac = at / hz / m; sc = st / hz / m
                   printf "| %s | %s | %s | %.0f | %.0f | %.0f%% | %s | %.2f / %.2f | %.0f%% | %.2f / %.2f |\n",
                   p, d, t, ar, sr, 100 * sr / ar, lat, ac, sc, (ac > 0 ? 100 * sc / ac : 0), ard / hz / m, srd / hz / m }'
      done
    done
  done
  exit 0
fi

RESULTS=()
echo "| -c | -P | -d | test | direct ops/s | proxy ops/s | proxy/direct | direct MB/s | proxy MB/s | direct p50/p99 ms | proxy p50/p99 ms | proxy CPU s per 1M req | redis CPU s per 1M req (direct) | proxy CPU / redis CPU | proxy CPU s per GB |"
echo "|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|"
for row in "${ROWS[@]}"; do
  read -r c p d r n <<<"$row"
  for t in set get; do
    read -r d_rps d_p50 d_p99 d_client d_redis _ d_idle < <(measure -p "$BASE" --cluster -- "$p" "$d" "$t" "$n" "$c" "$r")
    read -r p_rps p_p50 p_p99 p_client p_redis p_proxy p_idle < <(measure -p "$PROXY_PORT" -- "$p" "$d" "$t" "$n" "$c" "$r")
    awk -v c="$c" -v p="$p" -v d="$d" -v t="${t^^}" -v dr="$d_rps" -v pr="$p_rps" -v dp50="$d_p50" -v dp99="$d_p99" \
        -v pp50="$p_p50" -v pp99="$p_p99" -v ticks="$p_proxy" -v rticks="$d_redis" -v hz="$TICKS" -v n="$n" \
      'BEGIN { pc = (ticks / hz) / (n / 1e6); rc = (rticks / hz) / (n / 1e6)
               printf "| %s | %s | %s | %s | %.0f | %.0f | %.0f%% | %.1f | %.1f | %s / %s | %s / %s | %.2f | %.2f | %.2f | %.2f |\n",
                 c, p, d, t, dr, pr, 100 * pr / dr, dr * d / 1e6, pr * d / 1e6, dp50, dp99, pp50, pp99,
                 pc, rc, (rc > 0 ? pc / rc : 0), (ticks / hz) / (n * d / 1e9) }'
    RESULTS+=("$c $p $d ${t^^} $n $d_client $d_redis $d_idle $p_client $p_redis $p_proxy $p_idle")
  done
done

# Where the two cores' time went, per million requests: the client (redis-benchmark), the six
# redis-server processes, the proxy, and idle. "CPU-bound limit" is the proxy/direct ratio the
# proxy path would reach if its cores were never idle: direct busy CPU / proxy-path busy CPU.
echo
echo "CPU seconds per million requests (direct: client + redis, idle; through the proxy: client + redis + proxy, idle):"
echo
echo "| -c | -P | -d | test | direct client + redis | direct idle | proxy path client + redis + proxy | proxy path idle | CPU-bound limit |"
echo "|---:|---:|---:|---|---|---:|---|---:|---:|"
for row in "${RESULTS[@]}"; do
  awk -v hz="$TICKS" -v row="$row" 'BEGIN {
    split(row, f, " "); m = f[5] / 1e6
    dc = f[6] / hz / m; dr = f[7] / hz / m; di = f[8] / hz / m
    pc = f[9] / hz / m; pr = f[10] / hz / m; pp = f[11] / hz / m; pi = f[12] / hz / m
    printf "| %s | %s | %s | %s | %.2f + %.2f = %.2f | %.2f | %.2f + %.2f + %.2f = %.2f | %.2f | %.0f%% |\n",
      f[1], f[2], f[3], f[4], dc, dr, dc + dr, di, pc, pr, pp, pc + pr + pp, pi, 100 * (dc + dr) / (pc + pr + pp) }'
done

# Memory per idle client: the proxy's RSS before and after 10,000 clients connect and each
# sends one PING (so its session is set up and has read once), then waits.
if [ -n "$IDLE_TEST" ]; then
  rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$PROXY_PID/status"; }
  before=$(rss_kib)
  coproc IDLE { python3 - "$PROXY_PORT" 10000 <<'PY'
import resource, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))
conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
for c in conns:
    c.sendall(b"*1\r\n$4\r\nPING\r\n")
for c in conns:
    assert c.recv(16) == b"+PONG\r\n"
print("ready", flush=True)
sys.stdin.readline()
PY
  }
  read -r ready <&"${IDLE[0]}" || ready=""
  after=$(rss_kib)
  echo >&"${IDLE[1]}" || true
  wait "$IDLE_PID" 2>/dev/null || true
  echo
  if [ "$ready" = ready ]; then
    echo "Idle clients: proxy RSS $before KiB before, $after KiB with 10000 idle clients: $(( (after - before) * 1024 / 10000 )) bytes per client"
  else
    echo "Idle clients: could not open 10000 connections (open-file limit of this shell: $(ulimit -n))"
  fi
fi
