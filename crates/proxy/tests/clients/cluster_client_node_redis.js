// node-redis' createCluster through the redkeep proxy (run by crates/proxy/tests/cluster_clients.rs).
//
// Usage: node cluster_client_node_redis.js HOST PORT
// Exits 0 after printing "ok: ..." when every check passed; any failure exits 1.

const { createCluster } = require("redis");
const assert = require("node:assert/strict");

async function main() {
  const [host, portText] = process.argv.slice(2);
  const url = `redis://${host}:${portText}`;
  // No redirects allowed: one would mean the proxy let it through.
  const cluster = createCluster({ rootNodes: [{ url }], maxCommandRedirections: 0 });
  cluster.on("error", (error) => {
    console.error(error);
    process.exit(1);
  });
  await cluster.connect();
  const masters = cluster.masters.map((m) => `${m.host}:${m.port}`);
  assert.deepEqual(masters, [`${host}:${portText}`], "one master: the proxy");

  const keys = Array.from({ length: 300 }, (_, i) => `nr:${i}`);
  for (const [i, key] of keys.entries()) {
    assert.equal(await cluster.set(key, `v${i}`), "OK", `SET ${key}`);
  }
  for (const [i, key] of keys.entries()) {
    assert.equal(await cluster.get(key), `v${i}`, `GET ${key}`);
  }
  // The client allows multi-key commands within one slot only: a hash tag keeps them there.
  const tagged = keys.map((k) => `{tag}${k}`);
  await cluster.mSet(tagged.map((k, i) => [k, `m${i}`]));
  assert.deepEqual(await cluster.mGet(tagged), tagged.map((_, i) => `m${i}`), "MGET");

  // Many commands at once (node-redis pipelines what is sent together), replies in order.
  const replies = await Promise.all(
    keys.flatMap((key, i) => [cluster.set(key, `p${i}`), cluster.incr(`${key}:n`), cluster.get(key)]),
  );
  for (const [i, key] of keys.entries()) {
    assert.deepEqual(replies.slice(3 * i, 3 * i + 3), ["OK", 1, `p${i}`], `pipelined ${key}`);
  }

  // Pub/Sub through the proxy.
  let got = null;
  await cluster.subscribe("nr-news", (message, channel) => (got = [channel, message]));
  for (let i = 0; i < 100 && got === null; i++) {
    await cluster.publish("nr-news", "hello");
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(got, ["nr-news", "hello"], "a message through the proxy");
  await cluster.unsubscribe("nr-news");
  await cluster.close();
  const version = require("redis/package.json").version;
  console.log(`ok: node-redis ${version}, ${keys.length} keys`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
