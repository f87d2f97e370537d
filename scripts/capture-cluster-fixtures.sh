#!/usr/bin/env bash
# Captures real Redis Cluster outputs for the parser tests in crates/cluster/tests/fixtures:
# CLUSTER NODES and CLUSTER SHARDS (raw RESP2 and RESP3 bytes) of a healthy 3+3 cluster, of one
# with a killed master (pfail/fail, then the promoted replica), and of one with an open slot,
# plus CLUSTER KEYSLOT answers. Uses ports 23001-23006 (and their bus ports) on 127.0.0.1.
set -euo pipefail
out=$(cd "$(dirname "$0")/../crates/cluster/tests/fixtures" && pwd)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

for port in 23001 23002 23003 23004 23005 23006; do
  mkdir -p "$work/$port"
  redis-server --port $port --bind 127.0.0.1 --cluster-enabled yes --cluster-node-timeout 2000 \
    --dir "$work/$port" --daemonize no --save "" --appendonly no --logfile "$work/$port/log" &
  pids+=($!)
done 2>/dev/null
for port in 23001 23002 23003 23004 23005 23006; do
  until redis-cli -p $port ping >/dev/null 2>&1; do sleep 0.1; done
done
redis-cli --cluster create 127.0.0.1:23001 127.0.0.1:23002 127.0.0.1:23003 \
  127.0.0.1:23004 127.0.0.1:23005 127.0.0.1:23006 --cluster-replicas 1 --cluster-yes >/dev/null
until redis-cli -p 23001 cluster info | grep -q cluster_state:ok; do sleep 0.2; done
sleep 3 # let the replicas finish syncing so the views settle

raw() { # raw RESP bytes of one command: raw PORT PROTO ARGS...
  python3 - "$@" <<'PY'
import socket, sys
port, proto, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
def cmd(*a):
    return b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in (s.encode() for s in a))
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(1)
if proto == "3":
    s.sendall(cmd("HELLO", "3"))
    import time; time.sleep(0.2); s.recv(65536)
s.sendall(cmd(*args)); data = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk: break
        data += chunk
except socket.timeout:
    pass
sys.stdout.buffer.write(data)
PY
}

redis-cli -p 23001 cluster nodes > "$out/nodes-healthy.txt"
raw 23001 2 CLUSTER SHARDS > "$out/shards-healthy.resp2"
raw 23001 3 CLUSTER SHARDS > "$out/shards-healthy.resp3"
for key in foo bar hello user:1000 '{user1000}.following' 'a{b}c' '{}x' 123456789 somekey key:42 \
    redkeep '{tag}1' '{tag}2' zzz 'mixed{a}{b}' ''; do
  printf '%s\t%s\n' "$key" "$(redis-cli -p 23001 cluster keyslot "$key")"
done > "$out/keyslots.tsv"

# An open slot: slot 0 migrating from its owner to another master.
owner=$(redis-cli -p 23001 cluster nodes | awk '$9 ~ /^0-/ {print $1}')
owner_port=$(redis-cli -p 23001 cluster nodes | awk '$9 ~ /^0-/ {split($2,a,"[:@]"); print a[2]}')
target=$(redis-cli -p 23001 cluster nodes | awk '$3 ~ /master/ && $9 !~ /^0-/ {print $1; exit}')
target_port=$(redis-cli -p 23001 cluster nodes | awk '$3 ~ /master/ && $9 !~ /^0-/ {split($2,a,"[:@]"); print a[2]; exit}')
redis-cli -p "$target_port" cluster setslot 0 importing "$owner" >/dev/null
redis-cli -p "$owner_port" cluster setslot 0 migrating "$target" >/dev/null
redis-cli -p "$owner_port" cluster nodes > "$out/nodes-migrating.txt"
redis-cli -p "$target_port" cluster nodes > "$out/nodes-importing.txt"
redis-cli -p "$target_port" cluster setslot 0 stable >/dev/null
redis-cli -p "$owner_port" cluster setslot 0 stable >/dev/null

# A killed master: first suspected (fail?), then failed with its replica promoted.
victim_pid=""
for i in "${!pids[@]}"; do [ "$((23001 + i))" = "$owner_port" ] && victim_pid=${pids[$i]}; done
kill -9 "$victim_pid"; wait "$victim_pid" 2>/dev/null || true
observer=$([ "$owner_port" = 23006 ] && echo 23005 || echo 23006)
until redis-cli -p $observer cluster nodes | grep -q 'fail?'; do sleep 0.05; done
redis-cli -p $observer cluster nodes > "$out/nodes-pfail.txt"
# Promoted: the failed master's slots belong to a node that is not failed.
until redis-cli -p $observer cluster nodes | grep -q 'master,fail ' && \
      redis-cli -p $observer cluster nodes | grep ' 0-5460' | grep -vq fail; do sleep 0.2; done
sleep 1
redis-cli -p $observer cluster nodes > "$out/nodes-failover.txt"
raw $observer 2 CLUSTER SHARDS > "$out/shards-failover.resp2"
echo "fixtures written to $out"
