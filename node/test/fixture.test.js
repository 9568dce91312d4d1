// useLatchkey: one server for the file through node:test's hooks, reset before
// each test, stopped after them; and its refusals of hooks it cannot use.
import { after, before, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { useLatchkey } from "../index.js";

const lk = useLatchkey({ before, after, beforeEach });
let firstPort;

test("the server and its client are ready in the first test", async () => {
  firstPort = lk.server.port;
  assert.equal(await lk.redis.ping(), "PONG");
  await lk.redis.set("left", "behind");
  await lk.server.pauseTime();
});

test("each test starts from a reset, on the same server", async () => {
  assert.equal(lk.server.port, firstPort);
  assert.equal(await lk.redis.exists("left"), 0, "flushed by the reset");
  // The clock runs again: a TTL counts down on its own.
  await lk.redis.set("k", "v", "PX", 30);
  await new Promise((ok) => setTimeout(ok, 80));
  assert.equal(await lk.redis.exists("k"), 0);
});

test("hooks it cannot use are refused", () => {
  assert.throws(() => useLatchkey({}), /before\/after/);
  assert.throws(() => useLatchkey({ beforeAll() {}, afterAll() {} }), /beforeEach/);
  // With reset: false, beforeEach is not needed (nothing registered here runs:
  // the hooks are stand-ins that only record).
  const registered = [];
  const record = (name) => (fn) => registered.push([name, typeof fn]);
  const f = useLatchkey({ beforeAll: record("beforeAll"), afterAll: record("afterAll") }, { reset: false });
  assert.deepEqual(registered, [["beforeAll", "function"], ["afterAll", "function"]]);
  assert.equal(f.server, undefined);
});
