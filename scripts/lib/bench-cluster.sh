# Sourced by the benchmark scripts (scripts/*-bench.sh), from the repository's root.

# Starts a 3+3 cluster of `redkeep up` in DIR on ports BASE..BASE+5, detached, for measuring:
# no monitor (its polling of every node each second is not part of what is measured), and
# neither the append-only file nor RDB snapshots (the proxy's cost is what is measured, not
# the disk: with them, SET of 4 KiB values is bound by the file's writes on both paths alike,
# and every node forks for a snapshot each minute, about 550 MB each after the 4 KiB runs, at
# random points of the runs). Sets REDIS_PIDS (the nodes' pids) and SEEDS (a --seed option for
# each node, for `redkeep proxy`).
bench_cluster_up() { # REDKEEP DIR BASE
  local redkeep=$1 dir=$2 base=$3 i
  "$redkeep" up --detach --no-proxy --no-monitor --dir "$dir" --base-port "$base" >/dev/null
  SEEDS=()
  for i in 0 1 2 3 4 5; do
    "$redkeep" call "127.0.0.1:$((base + i))" CONFIG SET appendonly no >/dev/null
    "$redkeep" call "127.0.0.1:$((base + i))" CONFIG SET save "" >/dev/null
    SEEDS+=(--seed "127.0.0.1:$((base + i))")
  done
  REDIS_PIDS=$(cat "$dir"/node-*/redis.pid)
}
