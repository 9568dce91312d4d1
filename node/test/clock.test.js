// The server clock from a test: TTLs and lock leases run out on advanceTime,
// and a queued LOCK.ACQUIRE is granted when the holder's lease is advanced past.
import { after, before, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { start } from "../index.js";

let server;
let redis;
before(async () => {
  server = await start();
  redis = await server.client();
});
after(() => server.stop());
beforeEach(async () => {
  await server.reset();
  await server.pauseTime(); // only advanceTime moves it
});

const settled = (p) => Promise.race([p.then(() => true, () => true), new Promise((ok) => setTimeout(ok, 50, false))]);

test("a TTL runs out after advanceTime, not before", async () => {
  await redis.set("session", "abc", "PX", 60_000);
  await server.advanceTime(59_999);
  assert.equal(await redis.get("session"), "abc");
  assert.equal(await redis.pttl("session"), 1);
  await server.advanceTime(1);
  assert.equal(await redis.get("session"), null);
  assert.equal(await redis.exists("session"), 0);
});

test("a lock lease ends after advanceTime", async () => {
  const token = await redis.call("LOCK.ACQUIRE", "job", "worker-a", 30_000);
  assert.equal(typeof token, "number");
  assert.equal(await redis.call("LOCK.ACQUIRE", "job", "worker-b", 30_000), null, "held by worker-a");
  await server.advanceTime(30_000);
  assert.equal(await redis.call("LOCK.VALIDATE", "job", token), 0, "worker-a's lease ran out");
  assert.equal(await redis.call("LOCK.EXTEND", "job", "worker-a", 30_000), 0);
  const next = await redis.call("LOCK.ACQUIRE", "job", "worker-b", 30_000);
  assert.ok(next > token, "fencing tokens increase");
});

test("a waiter is granted when the holder's lease is advanced past", async () => {
  const holder = await redis.call("LOCK.ACQUIRE", "job", "worker-a", 10_000);
  const waiting = await server.client();
  const granted = waiting.call("LOCK.ACQUIRE", "job", "worker-b", 10_000, "WAIT", 0);
  // Bounded: until LOCK.INFO shows the waiter queued.
  for (let i = 0; ; i++) {
    const info = await redis.call("LOCK.INFO", "job");
    if (info[info.indexOf("waiters") + 1] === 1) break;
    assert.ok(i < 200, `the waiter never queued: ${JSON.stringify(info)}`);
    await new Promise((ok) => setTimeout(ok, 10));
  }
  await server.advanceTime(9_999);
  assert.equal(await settled(granted), false, "still waiting 1 ms before the lease ends");
  assert.equal(await redis.call("LOCK.VALIDATE", "job", holder), 1);
  await server.advanceTime(1);
  const token = await granted;
  assert.ok(token > holder);
  assert.equal(await redis.call("LOCK.VALIDATE", "job", token), 1);
  assert.equal(await redis.call("LOCK.VALIDATE", "job", holder), 0);
  assert.equal(await redis.call("LOCK.RELEASE", "job", "worker-b"), 1);
  waiting.disconnect();
});
