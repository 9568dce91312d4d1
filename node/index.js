// latchkey for Node test suites: spawns the server binary on a free port and
// returns a handle that controls its clock, injects faults and resets it
// between tests (DEBUG ADVANCE-TIME, DEBUG FAULT, DEBUG RESET; README "In
// tests"). The control commands go over a small RESP connection of its own,
// so the package needs no client library; `client()` loads ioredis (a peer
// dependency) only when called.
import { spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const EXE = process.platform === "win32" ? "latchkey.exe" : "latchkey";
/** Output kept from the server, for the error when it dies at start-up. */
const OUTPUT_LIMIT = 64 * 1024;
/** The default bound on start-up (ms). */
const START_TIMEOUT_MS = 10_000;
/** The bound on one control command (ms). */
const COMMAND_TIMEOUT_MS = 10_000;
/** How long stop() waits for SIGTERM before SIGKILL (ms). */
const STOP_GRACE_MS = 5_000;

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The binary `start()` runs, in this order: `options.bin`; `LATCHKEY_BIN`;
 * `bin/latchkey` inside this package; the checkout's `target/release/latchkey`
 * then `target/debug/latchkey` (`CARGO_TARGET_DIR` first if set); `latchkey`
 * on PATH. An explicit `options.bin` or `LATCHKEY_BIN` that is not an
 * executable file is an error, not skipped.
 */
export function resolveBinary(options = {}) {
  for (const [given, from] of [
    [options.bin, "options.bin"],
    [process.env.LATCHKEY_BIN, "LATCHKEY_BIN"],
  ]) {
    if (given) {
      const path = resolve(given);
      if (!executable(path)) throw new Error(`latchkey: ${from} ${path} is not an executable file`);
      return path;
    }
  }
  const checkout = resolve(here, "..");
  const targets = [];
  if (process.env.CARGO_TARGET_DIR) targets.push(resolve(checkout, process.env.CARGO_TARGET_DIR));
  targets.push(join(checkout, "target"));
  const candidates = [join(here, "bin", EXE)];
  for (const t of targets) candidates.push(join(t, "release", EXE), join(t, "debug", EXE));
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir) candidates.push(join(dir, EXE));
  }
  const found = candidates.find(executable);
  if (!found) {
    throw new Error(
      "latchkey: no server binary found; set LATCHKEY_BIN or options.bin, or run `cargo build` in the checkout",
    );
  }
  return found;
}

/** An error reply from the server (`-ERR ...`): `message` is the line. */
export class ReplyError extends Error {
  constructor(line) {
    super(line);
    this.name = "ReplyError";
  }
}

function encode(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from("\r\n"));
  }
  return Buffer.concat(parts);
}

/**
 * One RESP2 reply from `buf` at `at`: `[value, next]`, or `undefined` while
 * it is incomplete. Error replies come back as ReplyError values.
 */
function decode(buf, at) {
  const eol = buf.indexOf("\r\n", at);
  if (eol < 0) return undefined;
  const line = buf.toString("utf8", at + 1, eol);
  const next = eol + 2;
  switch (buf[at]) {
    case 0x2b: // +
      return [line, next];
    case 0x2d: // -
      return [new ReplyError(line), next];
    case 0x3a: // :
      return [Number(line), next];
    case 0x24: {
      // $
      const len = Number(line);
      if (len < 0) return [null, next];
      if (buf.length < next + len + 2) return undefined;
      return [buf.toString("utf8", next, next + len), next + len + 2];
    }
    case 0x2a: {
      // *
      const n = Number(line);
      if (n < 0) return [null, next];
      const items = [];
      let pos = next;
      for (let i = 0; i < n; i++) {
        const item = decode(buf, pos);
        if (!item) return undefined;
        items.push(item[0]);
        pos = item[1];
      }
      return [items, pos];
    }
    default:
      throw new Error(`latchkey: unexpected reply type ${JSON.stringify(String.fromCharCode(buf[at]))}`);
  }
}

/** The control connection: one socket, replies in order, reconnected when lost. */
class Control {
  #host;
  #port;
  #socket = null;
  #buf = Buffer.alloc(0);
  #pending = [];
  #opening = null;
  closed = false;

  constructor(host, port) {
    this.#host = host;
    this.#port = port;
  }

  #open() {
    return new Promise((ok, fail) => {
      const socket = connect({ host: this.#host, port: this.#port });
      const timer = setTimeout(() => {
        socket.destroy();
        fail(new Error(`latchkey: no connection to ${this.#host}:${this.#port} within ${COMMAND_TIMEOUT_MS} ms`));
      }, COMMAND_TIMEOUT_MS);
      socket.once("error", (e) => {
        clearTimeout(timer);
        fail(e);
      });
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.removeAllListeners("error");
        socket.setNoDelay(true);
        socket.on("data", (d) => this.#data(d));
        socket.on("error", () => {}); // "close" follows
        socket.on("close", () => this.#lost(socket));
        socket.unref(); // idle, it does not hold the process open
        this.#buf = Buffer.alloc(0);
        this.#socket = socket;
        ok(socket);
      });
    });
  }

  #data(d) {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d;
    let at = 0;
    // Each turn takes one whole reply off the buffer, or stops.
    while (at < this.#buf.length && this.#pending.length) {
      let got;
      try {
        got = decode(this.#buf, at);
      } catch (e) {
        this.#socket?.destroy(e);
        return;
      }
      if (!got) break;
      at = got[1];
      const p = this.#pending.shift();
      clearTimeout(p.timer);
      if (got[0] instanceof ReplyError) p.fail(got[0]);
      else p.ok(got[0]);
    }
    this.#buf = this.#buf.subarray(at);
    if (!this.#pending.length) this.#socket?.unref();
  }

  #lost(socket) {
    if (this.#socket !== socket) return;
    this.#socket = null;
    const pending = this.#pending.splice(0);
    for (const p of pending) {
      clearTimeout(p.timer);
      p.fail(new Error("latchkey: the control connection closed"));
    }
  }

  async send(args) {
    if (this.closed) throw new Error("latchkey: the server is stopped");
    if (!this.#socket) {
      this.#opening ??= this.#open().finally(() => (this.#opening = null));
      await this.#opening;
    }
    const socket = this.#socket;
    if (!socket) throw new Error("latchkey: the control connection closed");
    return new Promise((ok, fail) => {
      const timer = setTimeout(() => {
        fail(new Error(`latchkey: no reply to ${args.join(" ")} within ${COMMAND_TIMEOUT_MS} ms`));
        socket.destroy();
      }, COMMAND_TIMEOUT_MS);
      this.#pending.push({ ok, fail, timer });
      socket.ref();
      socket.write(encode(args));
    });
  }

  close() {
    this.closed = true;
    this.#socket?.destroy();
  }
}

/** Servers still running, killed when the process exits. */
const live = new Set();
let exitHook = false;

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/**
 * A test sends one command at a time, with its own code in between: the
 * server may watch for the next one up to this long before it sleeps, which
 * halves a round trip on a virtual machine (`idle-spin-us`, whose default of
 * 100 µs suits a server, not a test's pace; a flag in `options.args`
 * overrides it).
 */
const IDLE_SPIN_US = "1000";

/**
 * Spawns latchkey on 127.0.0.1 and a free port (`--port auto --ready-file
 * <tmp> --enable-debug-command local --save '' --appendonly no
 * --idle-spin-us 1000`, then `options.args`) and resolves once it is ready. Rejects, with the server's
 * output, if it exits first or is not ready within `options.timeoutMs`.
 */
export async function start(options = {}) {
  const bin = resolveBinary(options);
  const dir = mkdtempSync(join(tmpdir(), "latchkey-"));
  const readyFile = join(dir, "ready");
  const args = [
    "--port", "auto", "--bind", "127.0.0.1", "--ready-file", readyFile,
    "--enable-debug-command", "local", "--save", "", "--appendonly", "no",
    "--dir", dir, "--idle-spin-us", IDLE_SPIN_US, ...(options.args ?? []).map(String),
  ];
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], env: options.env ?? process.env });
  let output = "";
  const keep = (d) => {
    output = (output + d.toString()).slice(-OUTPUT_LIMIT);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let spawnError = null;
  let ended = false;
  const closed = new Promise((ok) => {
    child.once("error", (e) => {
      spawnError = e;
      ended = true;
      ok();
    });
    child.once("close", () => {
      ended = true;
      ok();
    });
  });
  const fail = (why) => {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    const tail = output.trim() ? `\n--- server output ---\n${output.trim()}` : "";
    return new Error(`latchkey: ${bin} ${why}${tail}`, spawnError ? { cause: spawnError } : undefined);
  };
  const timeout = options.timeoutMs ?? START_TIMEOUT_MS;
  const deadline = Date.now() + timeout;
  let ready;
  for (;;) {
    if (ended) {
      throw fail(spawnError ? `could not start: ${spawnError.message}`
        : `exited during start-up (code ${child.exitCode}, signal ${child.signalCode})`);
    }
    try {
      ready = readFileSync(readyFile, "utf8");
      break;
    } catch (e) {
      if (e.code !== "ENOENT") throw fail(`ready file unreadable: ${e.message}`);
    }
    if (Date.now() >= deadline) throw fail(`was not ready within ${timeout} ms`);
    let timer;
    await Promise.race([closed, new Promise((ok) => (timer = setTimeout(ok, 10)))]);
    clearTimeout(timer);
  }
  const tcp = /^tcp (\S+):(\d+)$/m.exec(ready);
  if (!tcp) throw fail(`wrote no tcp listener to its ready file: ${JSON.stringify(ready)}`);
  // The server is not waited for: an unstopped one dies with the process.
  child.unref();
  child.stdout.unref?.();
  child.stderr.unref?.();
  const server = new LatchkeyServer({ child, closed, dir, bin, host: tcp[1], port: Number(tcp[2]), output: () => output });
  live.add(server);
  if (!exitHook) {
    exitHook = true;
    process.once("exit", () => {
      for (const s of live) s.kill();
    });
  }
  return server;
}

/** A running server (see `start`). */
export class LatchkeyServer {
  #child;
  #closed;
  #dir;
  #control;
  #clients = new Set();
  #stopping = null;
  #output;

  constructor({ child, closed, dir, bin, host, port, output }) {
    this.#child = child;
    this.#closed = closed;
    this.#dir = dir;
    /** The server's working directory (temporary; removed by stop()). */
    this.dir = dir;
    this.#output = output;
    this.bin = bin;
    this.host = host;
    this.port = port;
    this.url = `redis://${host}:${port}`;
    this.#control = new Control(host, port);
  }

  /** The server's process id. */
  get pid() {
    return this.#child.pid;
  }

  /** Its exit code once it has exited (null while it runs, or if a signal ended it). */
  get exitCode() {
    return this.#child.exitCode;
  }

  /** The signal that ended it, if one did. */
  get signalCode() {
    return this.#child.signalCode;
  }

  /** The server's last 64 KB of output (its log). */
  get output() {
    return this.#output();
  }

  /**
   * A connected ioredis client (`options` are ioredis's, over host and
   * port); closed by stop(). Needs the `ioredis` package.
   */
  async client(options = {}) {
    let Redis;
    try {
      Redis = (await import("ioredis")).default;
    } catch (e) {
      throw new Error("latchkey: client() needs ioredis (npm install --save-dev ioredis)", { cause: e });
    }
    if (this.#stopping) throw new Error("latchkey: the server is stopped");
    const client = new Redis({ host: this.host, port: this.port, lazyConnect: true, ...options });
    this.#clients.add(client);
    client.once("end", () => this.#clients.delete(client));
    try {
      await client.connect();
    } catch (e) {
      client.disconnect();
      throw e;
    }
    return client;
  }

  /** Sends one command on the control connection; an error reply rejects with ReplyError. */
  command(...args) {
    return this.#control.send(args);
  }

  /** Moves the server clock forward `ms` (TTLs, leases and lock-delays run out). */
  advanceTime(ms) {
    return this.command("DEBUG", "ADVANCE-TIME", Math.round(ms));
  }

  /** Stops the server clock: only advanceTime moves it. */
  pauseTime() {
    return this.command("DEBUG", "PAUSE-TIME");
  }

  /** Lets the clock run again from where it stands. */
  resumeTime() {
    return this.command("DEBUG", "RESUME-TIME");
  }

  /** The next `n` commands named `command` (`*`: any) answer `-<error>` instead of running. */
  failNext(command, n = 1, error = "ERR injected fault") {
    return this.command("DEBUG", "FAULT", "ERROR", command, n, error);
  }

  /** The next `n` such commands run, and their replies wait `ms`. */
  delayNext(command, n, ms) {
    return this.command("DEBUG", "FAULT", "DELAY", command, n, Math.round(ms));
  }

  /** The next `n` such commands close their connection unanswered. */
  closeNext(command, n = 1) {
    return this.command("DEBUG", "FAULT", "CLOSE", command, n);
  }

  /** Closes every client connection (the control connection stays). */
  dropClients() {
    return this.command("DEBUG", "FAULT", "DROP-CLIENTS");
  }

  /** New connections are closed at once for `ms` (real time). */
  refuseConnections(ms) {
    return this.command("DEBUG", "FAULT", "REFUSE", Math.round(ms));
  }

  /** Removes every fault rule and the refusal. */
  clearFaults() {
    return this.command("DEBUG", "FAULT", "CLEAR");
  }

  /** The fault rules set: `[command, remaining, kind, argument]` each. */
  faults() {
    return this.command("DEBUG", "FAULT", "LIST");
  }

  /**
   * Isolation between tests: every database (and lock) flushed, scripts,
   * faults and the slow log emptied, the clock running again.
   */
  reset() {
    return this.command("DEBUG", "RESET");
  }

  /**
   * Closes the clients it made, then ends the server (SIGTERM, SIGKILL after
   * 5 s) and removes its temporary directory. Safe to call again.
   */
  stop() {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop() {
    for (const c of this.#clients) c.disconnect();
    this.#clients.clear();
    this.#control.close();
    for (const signal of ["SIGTERM", "SIGKILL"]) {
      if (this.#child.exitCode !== null || this.#child.signalCode !== null) break;
      this.#child.kill(signal);
      let timer;
      await Promise.race([this.#closed, new Promise((ok) => (timer = setTimeout(ok, STOP_GRACE_MS)))]);
      clearTimeout(timer);
    }
    rmSync(this.#dir, { recursive: true, force: true });
    live.delete(this);
  }

  /** At process exit: SIGKILL and cleanup, synchronously. */
  kill() {
    this.#control.close();
    this.#child.kill("SIGKILL");
    rmSync(this.#dir, { recursive: true, force: true });
    live.delete(this);
  }

  async [Symbol.asyncDispose ?? Symbol.for("nodejs.asyncDispose")]() {
    await this.stop();
  }
}

/**
 * Registers one server for the tests of a file with the runner's hooks:
 * started (with an ioredis client) before them, reset before each, stopped
 * after them. `hooks` holds the runner's functions: node:test's `before`,
 * `after`, `beforeEach`, or Vitest's and Jest's `beforeAll`, `afterAll`,
 * `beforeEach`. Returns an object whose `server` and `redis` are set once the
 * server has started. `options` go to `start()`; `options.reset: false`
 * leaves the server as the last test left it.
 */
export function useLatchkey(hooks, options = {}) {
  const setup = hooks.before ?? hooks.beforeAll;
  const teardown = hooks.after ?? hooks.afterAll;
  if (typeof setup !== "function" || typeof teardown !== "function") {
    throw new TypeError("latchkey: useLatchkey needs the runner's before/after (or beforeAll/afterAll) hooks");
  }
  const { reset = true, ...startOptions } = options;
  const fixture = { server: undefined, redis: undefined };
  setup(async () => {
    fixture.server = await start(startOptions);
    fixture.redis = await fixture.server.client();
  });
  teardown(async () => {
    await fixture.server?.stop();
  });
  if (reset) {
    if (typeof hooks.beforeEach !== "function") {
      throw new TypeError("latchkey: useLatchkey resets before each test: pass beforeEach (or reset: false)");
    }
    hooks.beforeEach(() => fixture.server.reset());
  }
  return fixture;
}
