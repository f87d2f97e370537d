// ioredis' Cluster through the redkeep proxy (run by crates/proxy/tests/cluster_clients.rs).
//
// Usage: node cluster_client.js HOST PORT
// Exits 0 after printing "ok: ..." when every check passed; any failure exits 1.

const Redis = require("ioredis");
const assert = require("node:assert/strict");

async function main() {
  const [host, portText] = process.argv.slice(2);
  const port = Number(portText);
  const cluster = new Redis.Cluster([{ host, port }], {
    // Redirects would mean the proxy let one through: fail instead of following it.
    maxRedirections: 0,
    clusterRetryStrategy: () => null,
  });
  await new Promise((resolve, reject) => {
    cluster.once("ready", resolve);
    cluster.once("error", reject);
  });
  const nodes = cluster.nodes("all").map((n) => `${n.options.host}:${n.options.port}`);
  assert.deepEqual(nodes, [`${host}:${port}`], "one node: the proxy");

  // SET/GET over many slots.
  const keys = Array.from({ length: 300 }, (_, i) => `js:${i}`);
  for (const [i, key] of keys.entries()) {
    assert.equal(await cluster.set(key, `v${i}`), "OK", `SET ${key}`);
  }
  for (const [i, key] of keys.entries()) {
    assert.equal(await cluster.get(key), `v${i}`, `GET ${key}`);
  }

  // MGET over many slots: one node has them all, so ioredis sends one MGET (the proxy splits
  // it per slot).
  await cluster.mset(Object.fromEntries(keys.map((k, i) => [k, `m${i}`])));
  assert.deepEqual(await cluster.mget(keys), keys.map((_, i) => `m${i}`), "MGET");
  assert.equal(await cluster.del(...keys.slice(0, 10)), 10, "DEL over slots");

  // A pipeline over many slots, replies in order.
  const pipeline = cluster.pipeline();
  for (const [i, key] of keys.entries()) {
    pipeline.set(key, `p${i}`);
    pipeline.incr(`${key}:n`);
    pipeline.get(key);
  }
  const replies = await pipeline.exec();
  for (const [i, key] of keys.entries()) {
    assert.deepEqual(replies[3 * i], [null, "OK"], `pipeline SET ${key}`);
    assert.deepEqual(replies[3 * i + 1], [null, 1], `pipeline INCR ${key}:n`);
    assert.deepEqual(replies[3 * i + 2], [null, `p${i}`], `pipeline GET ${key}`);
  }

  // Pub/Sub through the proxy.
  const subscriber = new Redis.Cluster([{ host, port }], { clusterRetryStrategy: () => null });
  const message = new Promise((resolve) =>
    subscriber.on("message", (channel, text) => resolve([channel, text])),
  );
  await subscriber.subscribe("js-news");
  let got = null;
  message.then((m) => (got = m));
  for (let i = 0; i < 100 && got === null; i++) {
    await cluster.publish("js-news", "hello");
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(got, ["js-news", "hello"], "a message through the proxy");

  const info = await cluster.cluster("INFO");
  assert.match(info, /cluster_state:ok/, "CLUSTER INFO");
  subscriber.disconnect();
  cluster.disconnect();
  const version = require("ioredis/package.json").version;
  console.log(`ok: ioredis ${version}, ${keys.length} keys`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
