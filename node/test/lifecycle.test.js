// Start-up, reset between tests, stop, and the binary's search order.
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { resolveBinary, start } from "../index.js";

const here = dirname(fileURLToPath(import.meta.url));
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

describe("reset between tests", () => {
  let server;
  let redis;
  before(async () => {
    server = await start();
    redis = await server.client();
  });
  after(() => server.stop());
  beforeEach(() => server.reset());

  test("a test leaves keys, a lock, a script, a fault and a paused clock", async () => {
    assert.match(server.url, /^redis:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(server.host, "127.0.0.1");
    await redis.set("left", "over");
    await redis.call("LOCK.ACQUIRE", "job", "worker-a", 60_000);
    await redis.select(1);
    await redis.set("in-db-1", "x");
    await redis.select(0);
    await redis.script("LOAD", "return 1");
    await server.failNext("HSET", 5, "ERR never reached");
    await server.pauseTime();
  });

  test("the next test starts clean", async () => {
    assert.equal(await redis.dbsize(), 0);
    await redis.select(1);
    assert.equal(await redis.dbsize(), 0);
    await redis.select(0);
    assert.equal(await redis.call("LOCK.ACQUIRE", "job", "worker-b", 1_000) > 0, true);
    assert.deepEqual(await redis.script("EXISTS", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"), [0]);
    assert.deepEqual(await server.faults(), []);
    const [s0, u0] = await redis.time();
    await sleep(20);
    const [s1, u1] = await redis.time();
    assert.ok(Number(s1) * 1e6 + Number(u1) - (Number(s0) * 1e6 + Number(u0)) >= 15_000, "the clock runs");
  });
});

describe("stop", () => {
  test("is clean and idempotent", async () => {
    const server = await start();
    const redis = await server.client();
    assert.equal(await redis.ping(), "PONG");
    const { port, dir } = server;
    assert.ok(existsSync(dir));
    await server.stop();
    assert.equal(server.exitCode, 0, `a clean shutdown, not a kill:\n${server.output}`);
    assert.equal(redis.status, "end");
    assert.equal(existsSync(dir), false, "the temporary directory is removed");
    await server.stop();
    await assert.rejects(server.reset(), /stopped/);
    const refused = await new Promise((ok) => {
      const s = connect({ host: "127.0.0.1", port });
      s.on("connect", () => ok(false) || s.destroy());
      s.on("error", (e) => ok(e.code === "ECONNREFUSED"));
    });
    assert.ok(refused, "nothing listens on the port");
  });

  test("a server never stopped dies with the process", () => {
    const script = `
      import { start } from ${JSON.stringify(join(here, "..", "index.js"))};
      const server = await start();
      console.log(server.pid);
    `;
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
    assert.equal(run.status, 0, run.stderr);
    const pid = Number(run.stdout.trim());
    assert.ok(pid > 0, run.stdout);
    // A killed server is a zombie until whoever inherits it reaps it: dead.
    const running = () => {
      try {
        return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1][0] !== "Z";
      } catch (e) {
        if (e.code === "ENOENT" && existsSync("/proc/self")) return false;
      }
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    let alive = running();
    for (let i = 0; i < 100 && alive; i++) {
      spawnSync("sleep", ["0.02"]);
      alive = running();
    }
    assert.equal(alive, false, `server ${pid} still running`);
  });
});

describe("start-up failures", () => {
  test("a server that exits at start-up: its output in the error", async () => {
    await assert.rejects(start({ args: ["--maxmemory-policy", "no-such-policy"] }), (e) => {
      assert.match(e.message, /exited during start-up/);
      assert.match(e.message, /FATAL CONFIG FILE ERROR[^]*maxmemory-policy/);
      return true;
    });
  });

  test("a binary that is not there", async () => {
    await assert.rejects(start({ bin: "/nonexistent/latchkey" }), /options\.bin .* is not an executable file/);
  });

  test("LATCHKEY_BIN, then the checkout's build", () => {
    const saved = process.env.LATCHKEY_BIN;
    try {
      process.env.LATCHKEY_BIN = process.execPath;
      assert.equal(resolveBinary(), process.execPath);
      assert.equal(resolveBinary({ bin: "/bin/sh" }), "/bin/sh", "options.bin first");
      delete process.env.LATCHKEY_BIN;
      assert.match(resolveBinary(), /latchkey$/);
    } finally {
      if (saved === undefined) delete process.env.LATCHKEY_BIN;
      else process.env.LATCHKEY_BIN = saved;
    }
  });
});
