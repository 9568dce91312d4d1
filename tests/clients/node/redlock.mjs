// ioredis and node-redlock (npm, versions in package-lock.json) driving a server
// binary: basics, Redlock's multi-key acquire / extend / release scripts, mutual
// exclusion across processes, and latchkey's native lock through ioredis.
//
// Usage: node tests/clients/node/redlock.mjs PATH_TO_SERVER_BINARY
// (with redis-server it checks that every expectation is Redis's behaviour; the
// native-lock check is then skipped)
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import Redis from "ioredis";
import Redlock, { ExecutionError } from "redlock";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

async function startServer(binary) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "lk-node-"));
  const sock = join(dir, "server.sock");
  const child = spawn(binary, ["--port", String(port), "--bind", "127.0.0.1", "--unixsocket", sock,
    "--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning"], { stdio: "ignore" });
  for (let i = 0; i < 250; i++) {
    const probe = new Redis({ port, lazyConnect: true, retryStrategy: null, maxRetriesPerRequest: 0 });
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      return { port, sock, child };
    } catch {
      probe.disconnect();
      await sleep(20);
    }
  }
  child.kill();
  throw new Error(`${binary} did not start`);
}

async function checkBasics(r) {
  assert.equal(await r.set("k", "v", "EX", 100), "OK");
  assert.equal(await r.get("k"), "v");
  const ttl = await r.ttl("k");
  assert.ok(ttl > 98 && ttl <= 100, `ttl ${ttl}`);
  const piped = await r.pipeline().set("n", 1).incr("n").get("n").exec();
  assert.deepEqual(piped, [[null, "OK"], [null, 2], [null, "2"]]);
  const tx = await r.multi().incr("n").incr("n").exec();
  assert.deepEqual(tx, [[null, 3], [null, 4]]);
  await assert.rejects(r.incr("k"), { message: "ERR value is not an integer or out of range" });
}

async function checkUnixSocket(r, port, sock) {
  const u = new Redis({ path: sock });
  try {
    assert.equal(await u.set("via-socket", "1"), "OK");
    assert.equal(await r.get("via-socket"), "1");
  } finally {
    u.disconnect();
  }
}

async function checkRedlock(r) {
  const redlock = new Redlock([r], { retryCount: 0 });
  let lock = await redlock.acquire(["a", "b"], 2000);
  assert.equal(await r.get("a"), lock.value);
  assert.equal(await r.get("b"), lock.value);
  // An overlapping resource is refused while the lock holds.
  await assert.rejects(redlock.acquire(["b", "c"], 2000), ExecutionError);
  assert.equal(await r.exists("c"), 0, "the failed attempt left nothing behind");
  lock = await lock.extend(10000);
  const pttl = await r.pttl("a");
  assert.ok(pttl > 9000 && pttl <= 10000, `pttl ${pttl}`);
  await lock.release();
  assert.equal(await r.exists("a", "b"), 0);
  // Releasing again: the release script finds a different (no) value.
  await assert.rejects(lock.release(), ExecutionError);
}

// One process of the contention check: 25 increments of a shared counter under
// the lock, each a non-atomic read-modify-write; fails if it ever sees another
// holder inside.
async function worker(port) {
  const r = new Redis({ port });
  const redlock = new Redlock([r], { retryCount: 500, retryDelay: 10, retryJitter: 10 });
  for (let i = 0; i < 25; i++) {
    await redlock.using(["counter-lock"], 2000, async () => {
      const inside = await r.incr("inside");
      if (inside !== 1) throw new Error(`${inside} holders at once`);
      const v = Number((await r.get("counter")) ?? 0);
      await sleep(1);
      await r.set("counter", v + 1);
      await r.decr("inside");
    });
  }
  r.disconnect();
}

async function checkContention(r, port) {
  const self = fileURLToPath(import.meta.url);
  const runs = [1, 2, 3, 4].map(
    () => new Promise((resolve) => {
      const p = spawn(process.execPath, [self, "--worker", String(port)], { stdio: "inherit" });
      const timer = setTimeout(() => p.kill(), 60000);
      p.on("exit", (code) => { clearTimeout(timer); resolve(code); });
    }),
  );
  assert.deepEqual(await Promise.all(runs), [0, 0, 0, 0]);
  assert.equal(await r.get("counter"), "100");
}

// The native lock from Node: LOCK.ACQUIRE waits in the server's queue (no polling)
// and returns a fencing token; a newer holder always has a larger token.
async function acquire(client, key, owner, ttlMs, waitMs) {
  const args = ["LOCK.ACQUIRE", key, owner, ttlMs];
  if (waitMs !== undefined) args.push("WAIT", waitMs);
  return client.call(...args); // token (number) or null
}

async function checkNativeLock(r, port) {
  const t1 = await acquire(r, "job", "worker-1", 10000);
  assert.ok(Number.isInteger(t1) && t1 > 0);
  const other = new Redis({ port });
  const waiting = acquire(other, "job", "worker-2", 10000, 2000); // blocks on the server
  await sleep(200);
  assert.equal(await r.call("LOCK.RELEASE", "job", "worker-1"), 1);
  const t2 = await waiting;
  assert.ok(t2 > t1, `${t2} > ${t1}`);
  assert.equal(await r.call("LOCK.VALIDATE", "job", t1), 0);
  assert.equal(await r.call("LOCK.VALIDATE", "job", t2), 1);
  assert.equal(await acquire(r, "job", "worker-3", 10000, 100), null); // WAIT runs out
  other.disconnect();
}

async function main() {
  if (process.argv[2] === "--worker") {
    await worker(Number(process.argv[3]));
    return 0;
  }
  const binary = process.argv[2];
  if (!binary) throw new Error("usage: node redlock.mjs PATH_TO_SERVER_BINARY");
  const latchkey = !basename(binary).includes("redis-server");
  const { port, sock, child } = await startServer(binary);
  const r = new Redis({ port });
  const checks = [checkBasics, checkUnixSocket, checkRedlock, checkContention];
  if (latchkey) checks.push(checkNativeLock);
  let passed = 0, failed = 0;
  try {
    for (const check of checks) {
      await r.flushall();
      try {
        await check(r, port, sock);
        passed++;
      } catch (e) {
        failed++;
        console.log(`FAILED ${check.name}:`, e);
      }
    }
  } finally {
    r.disconnect();
    child.kill();
  }
  console.log(`ioredis + redlock: ${passed} passed, ${failed} failed${latchkey ? "" : " (native lock skipped)"}`);
  return failed ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => { console.error(e); process.exit(1); });
