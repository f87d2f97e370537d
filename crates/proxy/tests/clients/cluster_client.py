"""redis-py's RedisCluster through the redkeep proxy (run by crates/proxy/tests/cluster_clients.rs).

Usage: python3 cluster_client.py HOST PORT [PROTOCOL]
Exits 0 after printing "ok: ..." when every check passed; any failure raises (exit 1).
"""

import sys
import time

import redis
from redis.cluster import RedisCluster


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    protocol = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    rc = RedisCluster(host=host, port=port, decode_responses=True, protocol=protocol)

    # The client sees one node, the proxy, owning every slot.
    nodes = rc.get_nodes()
    check([(n.host, n.port) for n in nodes] == [(host, port)], f"nodes: {nodes}")
    check(rc.get_node_from_key("anything").port == port, "slot owner is the proxy")

    # SET/GET over many slots.
    keys = [f"py:{protocol}:{i}" for i in range(300)]
    slots = {rc.keyslot(k) for k in keys}
    check(len(slots) > 250, f"keys over {len(slots)} slots")
    for i, key in enumerate(keys):
        check(rc.set(key, f"v{i}") is True, f"SET {key}")
    for i, key in enumerate(keys):
        value = rc.get(key)
        check(value == f"v{i}", f"GET {key}: {value!r}")

    # MGET/MSET over many slots (split by slot by the client, then by the proxy).
    check(rc.mset_nonatomic({k: f"m{i}" for i, k in enumerate(keys)}) is not None, "MSET")
    values = rc.mget_nonatomic(keys)
    check(values == [f"m{i}" for i in range(len(keys))], f"MGET: {values[:5]}")
    check(rc.delete(*keys[:10]) == 10, "DEL over slots")
    check(rc.exists(*keys[:20]) == 10, "EXISTS over slots")

    # A pipeline over many slots, replies in order.
    pipe = rc.pipeline()
    for i, key in enumerate(keys):
        pipe.set(key, f"p{i}")
        pipe.incr(f"{key}:n")
        pipe.get(key)
    replies = pipe.execute()
    for i, key in enumerate(keys):
        check(replies[3 * i] is True, f"pipeline SET {key}: {replies[3 * i]!r}")
        check(replies[3 * i + 1] == 1, f"pipeline INCR {key}:n: {replies[3 * i + 1]!r}")
        check(replies[3 * i + 2] == f"p{i}", f"pipeline GET {key}: {replies[3 * i + 2]!r}")

    # Pub/Sub through the proxy: classic and sharded.
    pubsub = rc.pubsub()
    pubsub.subscribe("py-news")
    confirm = pubsub.get_message(timeout=10)
    check(confirm and confirm["type"] == "subscribe", f"subscribe: {confirm}")
    deadline = time.time() + 20
    received = None
    while received is None and time.time() < deadline:
        rc.publish("py-news", "hello")
        message = pubsub.get_message(timeout=0.5)
        if message and message["type"] == "message":
            received = message
    check(received and received["data"] == "hello", f"message: {received}")
    pubsub.unsubscribe("py-news")
    pubsub.close()

    # Sharded Pub/Sub: the channel's slot is the proxy's, like every slot.
    sharded = rc.pubsub()
    sharded.ssubscribe("py-shard")
    confirm = sharded.get_sharded_message(timeout=10)
    check(confirm and confirm["type"] == "ssubscribe", f"ssubscribe: {confirm}")
    deadline = time.time() + 20
    received = None
    while received is None and time.time() < deadline:
        rc.spublish("py-shard", "sharded hello")
        message = sharded.get_sharded_message(timeout=0.5)
        if message and message["type"] == "smessage":
            received = message
    check(received and received["data"] == "sharded hello", f"smessage: {received}")
    sharded.sunsubscribe("py-shard")
    sharded.close()

    # Cluster questions the client may ask, answered by the proxy.
    check(rc.cluster_keyslot("foo") == 12182, "CLUSTER KEYSLOT")
    info = rc.cluster_info()
    check(info.get("cluster_state") == "ok", f"CLUSTER INFO: {info}")
    check(rc.ping() is True, "PING")
    rc.close()
    print(f"ok: redis-py {redis.__version__} RESP{protocol}, {len(slots)} slots")


if __name__ == "__main__":
    main()
