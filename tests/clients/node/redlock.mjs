// ioredis and node-redlock (npm, exact versions in package.json / package-lock.json)
// driving a real server binary: ioredis basics, Redlock's multi-key acquire /
// extend / release scripts, mutual exclusion across 4 processes, and latchkey's
// native lock through ioredis's generic `call`.
//
// Usage: node tests/clients/node/redlock.mjs PATH_TO_SERVER_BINARY
//   (npm ci --prefix tests/clients/node first)
// Run it with redis-server as well: every expectation here is Redis's behaviour.
// The native-lock check is then skipped, because redis-server answers LOCK.ACQUIRE
// with an unknown-command error.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import Redis from "ioredis";
import Redlock, { ExecutionError, ResourceLockedError } from "redlock";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const RUN_TIMEOUT_MS = 50_000; // the whole run, server start to exit
const WORKER_TIMEOUT_MS = 30_000; // one contention worker process

class Skip extends Error {}

// Rejects if `promise` has not settled within `ms`.
function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function connect(port, extra = {}) {
  // No reconnect loop: if the server dies, commands fail instead of hanging.
  return new Redis({ host: "127.0.0.1", port, retryStrategy: null, maxRetriesPerRequest: 1, ...extra });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------- server process

let server = null; // { child, dir }

function stopServer() {
  if (!server) return;
  const { child, dir } = server;
  server = null;
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
}

async function startServer(binary) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "lk-node-"));
  const sock = join(dir, "server.sock");
  const child = spawn(binary, ["--port", String(port), "--bind", "127.0.0.1", "--unixsocket", sock,
    "--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning"],
  { stdio: ["ignore", "ignore", "inherit"] });
  server = { child, dir };
  let spawnError = null;
  child.on("error", (e) => { spawnError = e; });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (spawnError) throw new Error(`cannot start ${binary}: ${spawnError.message}`);
    if (child.exitCode !== null) throw new Error(`${binary} exited with ${child.exitCode}`);
    const probe = connect(port, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 500 });
    probe.on("error", () => {});
    try {
      await probe.connect();
      if ((await within(1000, probe.ping(), "PING")) === "PONG") return { port, sock };
    } catch {
      // not listening yet
    } finally {
      probe.disconnect();
    }
    await sleep(25);
  }
  throw new Error(`${binary} did not answer PING within 10 s`);
}

// ---------------------------------------------------------------- a. ioredis basics

async function checkBasics(r) {
  assert.equal(await r.set("k", "v"), "OK");
  assert.equal(await r.get("k"), "v");
  assert.equal(await r.get("missing"), null);
  assert.equal(await r.set("k", "other", "NX"), null);

  assert.equal(await r.set("ex", "v", "EX", 100), "OK");
  const ttl = await r.ttl("ex");
  assert.ok(ttl >= 99 && ttl <= 100, `TTL ${ttl}`);
  const pttl = await r.pttl("ex");
  assert.ok(pttl > 98_000 && pttl <= 100_000, `PTTL ${pttl}`);
  assert.equal(await r.ttl("k"), -1);
  assert.equal(await r.ttl("missing"), -2);

  const piped = await r.pipeline().set("n", 1).incr("n").incrby("n", 10).get("n").exec();
  assert.deepEqual(piped, [[null, "OK"], [null, 2], [null, 12], [null, "12"]]);

  const tx = await r.multi().incr("n").lpush("list", "a", "b").lrange("list", 0, -1).exec();
  assert.deepEqual(tx, [[null, 13], [null, 2], [null, ["b", "a"]]]);

  // A command failing inside EXEC: the others still run, its slot holds the error.
  const partial = await r.multi().set("s", "x").incr("s").get("s").exec();
  assert.equal(partial.length, 3);
  assert.deepEqual(partial[0], [null, "OK"]);
  assert.equal(partial[1][0].message, "ERR value is not an integer or out of range");
  assert.deepEqual(partial[2], [null, "x"]);

  // Error replies reach the caller as ReplyError with Redis's exact text.
  await assert.rejects(r.incr("k"), { name: "ReplyError", message: "ERR value is not an integer or out of range" });
  await assert.rejects(r.get("list"),
    { name: "ReplyError", message: "WRONGTYPE Operation against a key holding the wrong kind of value" });
  await assert.rejects(r.call("SET", "k"), { message: "ERR wrong number of arguments for 'set' command" });
}

async function checkUnixSocket(r, { sock }) {
  const u = new Redis({ path: sock, retryStrategy: null, maxRetriesPerRequest: 1 });
  try {
    assert.equal(await u.set("via-socket", "1"), "OK");
    assert.equal(await r.get("via-socket"), "1");
  } finally {
    u.disconnect();
  }
}

// An ACL user logging in with ioredis's username/password options and by URL;
// NOPERM and WRONGPASS reach the caller with Redis's texts.
async function checkAclUser(r, { port }) {
  await r.call("ACL", "SETUSER", "app", "on", ">app-pw", "~app:*", "+@all", "-@dangerous");
  // INFO, ioredis's ready check, is in @dangerous: no ready check.
  const u = connect(port, { username: "app", password: "app-pw", enableReadyCheck: false });
  const byUrl = new Redis(`redis://app:app-pw@127.0.0.1:${port}`,
    { retryStrategy: null, maxRetriesPerRequest: 1, enableReadyCheck: false });
  try {
    assert.equal(await u.call("ACL", "WHOAMI"), "app");
    assert.equal(await byUrl.call("ACL", "WHOAMI"), "app");
    assert.equal(await u.set("app:k", "v"), "OK");
    assert.equal(await u.get("app:k"), "v");
    await assert.rejects(u.set("other", "v"), {
      name: "ReplyError",
      message: "NOPERM this user has no permissions to access one of the keys used as arguments",
    });
    await assert.rejects(u.flushall(), {
      message: "NOPERM this user has no permissions to run the 'flushall' command",
    });
    const wrong = new Redis({ host: "127.0.0.1", port, username: "app", password: "nope",
      retryStrategy: null, maxRetriesPerRequest: 0, lazyConnect: true });
    // ioredis reports a refused login as the connection's error event.
    const refused = new Promise((resolve) => wrong.on("error", (e) => resolve(e.message)));
    wrong.connect().catch(() => {});
    assert.match(await within(5_000, refused, "the login refusal"),
      /WRONGPASS invalid username-password pair or user is disabled\./);
    wrong.disconnect();
  } finally {
    u.disconnect();
    byUrl.disconnect();
    await r.call("ACL", "DELUSER", "app");
  }
}

// ---------------------------------------------------------------- b. Redlock

// The ResourceLockedError that made a single-server Redlock attempt fail.
async function refusal(executionError) {
  assert.ok(executionError instanceof ExecutionError, `${executionError}`);
  assert.equal(executionError.attempts.length, 1);
  const stats = await executionError.attempts[0];
  assert.equal(stats.votesFor.size, 0);
  const [err] = stats.votesAgainst.values();
  assert.ok(err instanceof ResourceLockedError, `${err}`);
  return err.message;
}

async function checkRedlock(r) {
  const redlock = new Redlock([r], { retryCount: 0 });

  let lock = await redlock.acquire(["a", "b"], 2000);
  assert.equal(typeof lock.value, "string");
  assert.equal(await r.get("a"), lock.value);
  assert.equal(await r.get("b"), lock.value);
  const before = await r.pttl("a");
  assert.ok(before > 1000 && before <= 2000, `PTTL before extend ${before}`);

  // An overlapping resource is refused while the lock holds, and leaves nothing behind.
  const overlap = await redlock.acquire(["b", "c"], 2000).then(() => null, (e) => e);
  assert.ok(overlap, "second acquire of an overlapping resource succeeded");
  assert.equal(overlap.message, "The operation was unable to achieve a quorum during its retry window.");
  assert.equal(await refusal(overlap), "The operation was applied to: 0 of the 2 requested resources.");
  assert.equal(await r.exists("c"), 0);
  assert.equal(await r.get("b"), lock.value);

  // extend: same value, lease pushed up on every key.
  const extended = await lock.extend(10_000);
  assert.equal(extended.value, lock.value);
  for (const key of ["a", "b"]) {
    const after = await r.pttl(key);
    assert.ok(after > before && after > 9000 && after <= 10_000, `PTTL of ${key} after extend ${after}`);
  }
  assert.ok(extended.expiration > Date.now() + 9000);
  lock = extended;

  // release deletes every key of the resource.
  await lock.release();
  assert.equal(await r.exists("a", "b"), 0);
  // A second release finds no key with its value: ExecutionError, keys untouched.
  assert.equal(await refusal(await lock.release().then(() => null, (e) => e)),
    "The operation was applied to: 0 of the 2 requested resources.");

  // A lock whose lease ran out: the keys expire by PX; release reports 0 of 2 and
  // deletes nothing (here: not another holder's key); extend refuses up front.
  const short = await redlock.acquire(["e1", "e2"], 150);
  assert.equal(await r.exists("e1", "e2"), 2);
  await sleep(400);
  assert.equal(await r.exists("e1", "e2"), 0);
  await assert.rejects(short.extend(1000), { name: "ExecutionError", message: "Cannot extend an already-expired lock." });
  const other = await redlock.acquire(["e2"], 5000);
  assert.equal(await refusal(await short.release().then(() => null, (e) => e)),
    "The operation was applied to: 0 of the 2 requested resources.");
  assert.equal(await r.get("e2"), other.value, "releasing an expired lock deleted another holder's key");
  await other.release();
  assert.equal(await r.exists("e2"), 0);

  // using: the routine runs under the lock, which is released afterwards.
  const seen = await redlock.using(["u"], 1000, async (signal) => {
    assert.equal(signal.aborted, false);
    return r.get("u");
  });
  assert.equal(typeof seen, "string");
  assert.equal(await r.exists("u"), 0);
}

// ---------------------------------------------------------------- c. contention

// One worker process: 25 non-atomic read-modify-writes of `counter` under
// redlock.using. `inside` counts holders in the critical section; any value but 1
// is recorded in `overlaps`.
async function worker(port, id) {
  setTimeout(() => { console.error(`worker ${id}: timed out`); process.exit(2); }, WORKER_TIMEOUT_MS);
  const r = connect(port);
  const redlock = new Redlock([r], { retryCount: 1000, retryDelay: 10, retryJitter: 8 });
  try {
    for (let i = 0; i < 25; i++) {
      await redlock.using(["counter-lock"], 1000, async () => {
        const inside = await r.incr("inside");
        if (inside !== 1) await r.rpush("overlaps", `worker ${id} saw ${inside} holders`);
        const v = Number((await r.get("counter")) ?? 0);
        await sleep(1 + (i % 3));
        await r.set("counter", v + 1);
        await r.decr("inside");
      });
    }
  } finally {
    r.disconnect();
  }
}

async function checkContention(r, { port }) {
  const self = fileURLToPath(import.meta.url);
  const runs = [1, 2, 3, 4].map((id) => new Promise((resolve) => {
    const p = spawn(process.execPath, [self, "--worker", String(port), String(id)], { stdio: "inherit" });
    const timer = setTimeout(() => p.kill("SIGKILL"), WORKER_TIMEOUT_MS + 2000);
    p.on("error", (e) => { clearTimeout(timer); resolve(String(e)); });
    p.on("exit", (code, signal) => { clearTimeout(timer); resolve(code ?? signal); });
  }));
  assert.deepEqual(await Promise.all(runs), [0, 0, 0, 0]);
  assert.deepEqual(await r.lrange("overlaps", 0, -1), []);
  assert.equal(await r.get("counter"), "100");
  assert.equal(await r.get("inside"), "0");
  assert.equal(await r.exists("counter-lock"), 0);
}

// ---------------------------------------------------------------- d. native lock

// latchkey's native lock from Node, through ioredis's generic `call`:
//   LOCK.ACQUIRE key owner ttl-ms [WAIT timeout-ms] -> fencing token, or null
//   LOCK.RELEASE key owner                          -> 1 if owner held it, else 0
// With WAIT the server queues this connection (FIFO, no polling) and answers as
// soon as the lock is handed over. `owner` must be unique per holder (a UUID).
//
// Runs `work(token)` while holding `key`; null if not granted within waitMs.
// Pass the token to whatever you protect so it can refuse an older holder.
async function withNativeLock(redis, key, owner, { ttlMs, waitMs }, work) {
  const token = await redis.call("LOCK.ACQUIRE", key, owner, ttlMs, "WAIT", waitMs);
  if (token === null) return null; // busy for the whole waitMs
  try {
    return await work(token);
  } finally {
    await redis.call("LOCK.RELEASE", key, owner);
  }
}

async function checkNativeLock(r, { port }) {
  let t1;
  try {
    t1 = await r.call("LOCK.ACQUIRE", "job", "worker-1", 10_000);
  } catch (e) {
    if (/^ERR unknown command/.test(e.message)) throw new Skip("server has no LOCK.* commands");
    throw e;
  }
  assert.ok(Number.isSafeInteger(t1) && t1 > 0, `token ${t1}`);

  const r2 = connect(port);
  try {
    // Busy, no WAIT: null at once. Only the holder can release.
    assert.equal(await r2.call("LOCK.ACQUIRE", "job", "worker-2", 5000), null);
    assert.equal(await r2.call("LOCK.RELEASE", "job", "worker-2"), 0);

    // worker-2 waits on the server until worker-1 releases, then gets a larger token.
    const started = Date.now();
    let settled = false;
    const waiting = r2.call("LOCK.ACQUIRE", "job", "worker-2", 5000, "WAIT", 2000)
      .finally(() => { settled = true; });
    await sleep(300);
    assert.equal(settled, false, "LOCK.ACQUIRE ... WAIT answered while the lock was held");
    assert.equal(await r.call("LOCK.RELEASE", "job", "worker-1"), 1);
    const t2 = await within(3000, waiting, "LOCK.ACQUIRE WAIT");
    const waited = Date.now() - started;
    assert.ok(Number.isSafeInteger(t2) && t2 > t1, `token ${t2} after ${t1}`);
    assert.ok(waited >= 280 && waited < 1500, `waited ${waited} ms`);
    assert.equal(await r.call("LOCK.RELEASE", "job", "worker-1"), 0);
    assert.equal(await r.call("LOCK.VALIDATE", "job", t1), 0);
    assert.equal(await r.call("LOCK.VALIDATE", "job", t2), 1);

    // WAIT runs out: null after about the timeout.
    const t0 = Date.now();
    assert.equal(await r.call("LOCK.ACQUIRE", "job", "worker-3", 5000, "WAIT", 150), null);
    assert.ok(Date.now() - t0 >= 140, `WAIT 150 answered after ${Date.now() - t0} ms`);
    assert.equal(await r2.call("LOCK.RELEASE", "job", "worker-2"), 1);

    // The helper from two connections: read-modify-writes never interleave, and each
    // holder's fencing token is larger than the one before.
    const tokens = [];
    const loop = (client, owner) => (async () => {
      for (let i = 0; i < 10; i++) {
        const done = await withNativeLock(client, "report", owner, { ttlMs: 5000, waitMs: 3000 }, async (token) => {
          tokens.push(token);
          const v = Number((await client.get("report-count")) ?? 0);
          await sleep(1);
          await client.set("report-count", v + 1);
          return true;
        });
        assert.equal(done, true, `${owner} not granted`);
      }
    })();
    await within(10_000, Promise.all([loop(r, "node-a"), loop(r2, "node-b")]), "withNativeLock loops");
    assert.equal(await r.get("report-count"), "20");
    assert.equal(tokens.length, 20);
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], `tokens ${tokens}`);
    assert.equal(await r.exists("report"), 0);
  } finally {
    r2.disconnect();
  }
}

// ---------------------------------------------------------------- main

async function main() {
  if (process.argv[2] === "--worker") {
    await worker(Number(process.argv[3]), process.argv[4]);
    return 0;
  }
  const binary = process.argv[2];
  if (!binary) {
    console.error("usage: node redlock.mjs PATH_TO_SERVER_BINARY");
    return 2;
  }
  setTimeout(() => {
    console.log(`node: timed out after ${RUN_TIMEOUT_MS} ms`);
    process.exit(1); // the exit handler kills the server
  }, RUN_TIMEOUT_MS);

  const started = Date.now();
  const addr = await startServer(binary);
  const r = connect(addr.port, { commandTimeout: 10_000 });
  const checks = [checkBasics, checkUnixSocket, checkAclUser, checkRedlock, checkContention, checkNativeLock];
  let passed = 0;
  let failed = 0;
  const skipped = [];
  try {
    for (const check of checks) {
      const t0 = Date.now();
      try {
        await r.flushall();
        await check(r, addr);
        passed++;
        console.log(`ok ${check.name} (${Date.now() - t0} ms)`);
      } catch (e) {
        if (e instanceof Skip) {
          skipped.push(check.name);
          console.log(`skip ${check.name}: ${e.message}`);
        } else {
          failed++;
          console.log(`FAILED ${check.name}:`, e);
        }
      }
    }
  } finally {
    r.disconnect();
    stopServer();
  }
  const skip = skipped.length ? ` (${skipped.length} skipped: ${skipped.join(", ")})` : "";
  console.log(`node: ${passed} passed, ${failed} failed${skip} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return failed ? 1 : 0;
}

process.on("exit", stopServer);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    console.log("node: 0 passed, 1 failed");
    process.exit(1);
  },
);
