// Faults as ioredis sees them: an injected error reply, a delayed reply, a
// connection closed under a command, every client dropped, connections refused.
import { after, before, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { ReplyError } from "ioredis";
import { start } from "../index.js";

let server;
let redis;
before(async () => {
  server = await start();
  redis = await server.client();
});
after(() => server.stop());
beforeEach(() => server.reset());

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
// One `name` event (events.once would also reject on an "error" event: a reset
// connection is what these tests cause).
const next = (emitter, name) => new Promise((ok) => emitter.once(name, ok));

test("an injected error reaches ioredis as a ReplyError with its message", async () => {
  await redis.set("k", "v");
  await server.failNext("GET", 2, "ERR boom from the test");
  assert.deepEqual(await server.faults(), [["get", 2, "error", "ERR boom from the test"]]);
  for (let i = 0; i < 2; i++) {
    await assert.rejects(redis.get("k"), (e) => {
      assert.ok(e instanceof ReplyError, `${e?.constructor?.name}: ${e}`);
      assert.equal(e.message, "ERR boom from the test");
      return true;
    });
  }
  assert.equal(await redis.get("k"), "v", "two failures, then it runs");
  assert.deepEqual(await server.faults(), []);
  await server.failNext("SET", 1, "READONLY You can't write against a read only replica.");
  await assert.rejects(redis.set("k", "w"), { name: "ReplyError", message: /^READONLY / });
  assert.equal(await redis.get("k"), "v", "the failed SET did not run");
});

test("a rule for any command: the handle's own DEBUG calls spend none of it", async () => {
  await server.failNext("*", 1, "ERR any command");
  await server.advanceTime(0);
  assert.deepEqual(await server.faults(), [["*", 1, "error", "ERR any command"]]);
  await assert.rejects(redis.ping(), { name: "ReplyError", message: "ERR any command" });
  assert.equal(await redis.ping(), "PONG");
});

test("a delayed reply", async () => {
  await server.delayNext("PING", 1, 300);
  const t0 = performance.now();
  assert.equal(await redis.ping(), "PONG");
  const took = performance.now() - t0;
  assert.ok(took >= 280, `took ${took} ms`);
});

test("a connection closed under a command: ioredis reconnects and resends it", async () => {
  await redis.set("k", "v");
  const reconnecting = next(redis, "reconnecting");
  await server.closeNext("GET", 1);
  assert.equal(await redis.get("k"), "v");
  await reconnecting;
});

test("dropped clients: ioredis reconnects", async () => {
  await redis.set("k", "v");
  const before = await redis.client("ID");
  const ready = next(redis, "ready");
  await server.dropClients();
  await ready;
  assert.equal(await redis.get("k"), "v");
  assert.notEqual(await redis.client("ID"), before, "a new connection");
});

test("refused connections for a while", async () => {
  await server.refuseConnections(300);
  const socket = connect({ host: server.host, port: server.port });
  socket.on("error", () => {});
  let data = "";
  socket.on("data", (d) => (data += d));
  socket.write("PING\r\n");
  await new Promise((ok) => socket.once("close", ok)); // a reset or an end: either way, closed
  assert.equal(data, "", "closed unanswered");
  assert.equal(await redis.ping(), "PONG", "connections already open are served");
  await sleep(350);
  const late = await server.client();
  assert.equal(await late.ping(), "PONG");
  late.disconnect();
});
