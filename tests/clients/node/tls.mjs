// ioredis over TLS (the `tls` option) against a real server binary: commands
// with a client certificate, a client without one refused under
// tls-auth-clients yes (Redis's default) and served under optional.
//
// Usage: node tests/clients/node/tls.mjs PATH_TO_SERVER_BINARY
//   (npm ci --prefix tests/clients/node first; python3 and openssl make the
//   certificates, with tests/clients/tls_certs.py)
// Every expectation is Redis's behaviour: it passes against redis-server too.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import Redis from "ioredis";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const here = dirname(fileURLToPath(import.meta.url));

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

function certificates(dir) {
  const made = spawnSync("python3", [join(here, "..", "tls_certs.py"), dir], { stdio: "ignore" });
  if (made.status !== 0) throw new Error("tls_certs.py failed");
  const read = (name) => readFileSync(join(dir, name));
  return { ca: read("ca.crt"), cert: read("client.crt"), key: read("client.key"), dir };
}

function tlsClient(port, tls) {
  return new Redis({ host: "localhost", port, tls: { servername: "localhost", ...tls },
    retryStrategy: null, maxRetriesPerRequest: 0, lazyConnect: true });
}

async function startServer(binary, certs) {
  const [port, tlsPort] = [await freePort(), await freePort()];
  const child = spawn(binary, ["--port", String(port), "--bind", "127.0.0.1", "--save", "",
    "--appendonly", "no", "--dir", certs.dir, "--loglevel", "warning",
    "--tls-port", String(tlsPort), "--tls-cert-file", join(certs.dir, "server.crt"),
    "--tls-key-file", join(certs.dir, "server.key"), "--tls-ca-cert-file", join(certs.dir, "ca.crt")],
  { stdio: ["ignore", "ignore", "inherit"] });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${binary} exited with ${child.exitCode}`);
    const probe = new Redis({ port, lazyConnect: true, retryStrategy: null, maxRetriesPerRequest: 0 });
    probe.on("error", () => {});
    try {
      await probe.connect();
      if ((await probe.ping()) === "PONG") return { child, port, tlsPort };
    } catch {
      // not listening yet
    } finally {
      probe.disconnect();
    }
    await sleep(25);
  }
  child.kill("SIGKILL");
  throw new Error(`${binary} did not start`);
}

async function checkCommands({ tlsPort, port }, certs) {
  const r = tlsClient(tlsPort, { ca: certs.ca, cert: certs.cert, key: certs.key });
  try {
    await r.connect();
    assert.equal(await r.set("tls:k", "x".repeat(100_000)), "OK");
    assert.equal((await r.get("tls:k")).length, 100_000);
    const piped = await r.pipeline().set("tls:n", 1).incr("tls:n").get("tls:n").exec();
    assert.deepEqual(piped, [[null, "OK"], [null, 2], [null, "2"]]);
    const plain = new Redis({ port, retryStrategy: null });
    assert.equal(await plain.get("tls:n"), "2");
    plain.disconnect();
  } finally {
    r.disconnect();
  }
}

async function checkNoCertificate({ tlsPort, port }, certs) {
  const r = tlsClient(tlsPort, { ca: certs.ca });
  r.on("error", () => {});
  let served = false;
  try {
    await r.connect();
    served = (await r.ping()) === "PONG";
  } catch {
    // refused, as wanted
  } finally {
    r.disconnect();
  }
  assert.equal(served, false, "a client without a certificate was served");
  const admin = new Redis({ port, retryStrategy: null });
  assert.equal(await admin.config("SET", "tls-auth-clients", "optional"), "OK");
  const ok = tlsClient(tlsPort, { ca: certs.ca });
  try {
    await ok.connect();
    assert.equal(await ok.ping(), "PONG");
  } finally {
    ok.disconnect();
    await admin.config("SET", "tls-auth-clients", "yes");
    admin.disconnect();
  }
}

async function main() {
  const binary = process.argv[2];
  if (!binary) throw new Error("usage: node tls.mjs PATH_TO_SERVER_BINARY");
  const certs = certificates(mkdtempSync(join(tmpdir(), "lk-node-tls-")));
  const srv = await startServer(binary, certs);
  let passed = 0;
  let failed = 0;
  try {
    for (const check of [checkCommands, checkNoCertificate]) {
      try {
        await check(srv, certs);
        passed++;
      } catch (e) {
        failed++;
        console.log(`FAILED ioredis tls: ${check.name}`, e);
      }
    }
  } finally {
    srv.child.kill("SIGKILL");
    rmSync(certs.dir, { recursive: true, force: true });
  }
  console.log(`ioredis tls: ${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    console.log("ioredis tls: 0 passed, 1 failed");
    process.exit(1);
  },
);
