#!/usr/bin/env python3
"""Soak test: mixed traffic against one latchkey for a while, with clients
killed at random and reconnecting, then checks that nothing leaked.

    target/clients-venv/bin/python benches/soak.py [SECONDS] [LATCHKEY]

Defaults: 600 seconds (the issue's 10 minutes), target/release/latchkey.
Needs redis-py (tests/clients/requirements.txt; test.sh's venv has it).
Listens on 127.0.0.1 only, on a free port; the server is stopped at exit.

Traffic, from WORKERS threads, each on its own connection, each step one of:
- LOCK.ACQUIRE with SESSION (and WAIT) on a small set of contended keys, then
  LOCK.RELEASE, or nothing (the hold ends when the connection is killed);
- LOCK.ACQUIRE with a short lease and no release (the lease runs out);
- EVAL of a lock-release script, SET/GET of values up to 1 MB, LPUSH/LTRIM;
- PUBLISH to channels a SUBSCRIBER thread listens on;
and at random a worker closes its socket abruptly (shutdown, no QUIT) in the
middle of whatever it was doing, then reconnects.

At the end (load stopped, then FLUSHALL): every lock key is checked — no
holder from a connection that is gone is still there past its lease (SESSION
holds of dead clients are released, leases run out), no waiter is left, the
clients CLIENT LIST shows are the ones still open, and the resident size is
back within 10% of where it started (each measured after FLUSHALL and MEMORY
PURGE, which hands the allocator's free pages back, and the start after a
warm-up). Exit status 1 on any failure.
"""

import os
import random
import socket
import subprocess
import sys
import threading
import time

import redis

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 600.0
BINARY = sys.argv[2] if len(sys.argv) > 2 else "target/release/latchkey"
WORKERS = 16
LOCK_KEYS = [f"soak:lock:{i}" for i in range(8)]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Worker(threading.Thread):
    def __init__(self, port, n, stop, stats):
        super().__init__(daemon=True)
        self.port, self.n, self.stop, self.stats = port, n, stop, stats
        self.rng = random.Random(n)

    def connect(self):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)

    def kill(self, r):
        # An abrupt close, as a crashed client: no QUIT.
        try:
            conn = r.connection_pool.get_connection()
            conn._sock.shutdown(socket.SHUT_RDWR)
            conn._sock.close()
        except Exception:
            pass
        self.stats["kills"] += 1

    def run(self):
        r = self.connect()
        owner = f"w{self.n}"
        while not self.stop.is_set():
            try:
                step = self.rng.random()
                key = self.rng.choice(LOCK_KEYS)
                if step < 0.35:
                    tok = r.execute_command(
                        "LOCK.ACQUIRE", key, owner, 5000, "WAIT", 200, "SESSION"
                    )
                    if tok is not None:
                        self.stats["grants"] += 1
                        if self.rng.random() < 0.15:
                            self.kill(r)
                            r = self.connect()
                            continue
                        r.execute_command("LOCK.RELEASE", key, owner)
                elif step < 0.45:
                    r.execute_command("LOCK.ACQUIRE", key + ":lease", owner, 50)
                elif step < 0.60:
                    k = f"soak:str:{self.rng.randrange(200)}"
                    size = self.rng.choice([10, 1000, 100_000, 1_000_000])
                    r.set(k, os.urandom(size // 2).hex())
                    r.get(k)
                    r.eval(RELEASE, 1, k, "x")
                elif step < 0.75:
                    k = f"soak:list:{self.rng.randrange(20)}"
                    r.lpush(k, *[str(i) for i in range(50)])
                    r.ltrim(k, 0, 500)
                elif step < 0.9:
                    r.publish(f"soak:ch:{self.rng.randrange(4)}", "m" * self.rng.randrange(1, 2000))
                else:
                    # Killed mid-command: a blocked BLPOP that never returns.
                    p = r.connection_pool.get_connection()
                    p.send_command("BLPOP", f"soak:never:{self.n}", 0)
                    time.sleep(0.005)
                    self.kill(r)
                    r = self.connect()
                self.stats["ops"] += 1
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                r = self.connect()
            except redis.ResponseError as e:
                self.stats["errors"] += 1
                self.stats.setdefault("last_error", str(e))


def subscriber(port, stop, stats):
    while not stop.is_set():
        try:
            p = redis.Redis(host="127.0.0.1", port=port).pubsub()
            p.psubscribe("soak:ch:*")
            deadline = time.time() + random.uniform(1, 5)
            while time.time() < deadline and not stop.is_set():
                if p.get_message(timeout=0.1):
                    stats["messages"] += 1
            # Gone without unsubscribing.
            p.connection._sock.close()
        except (redis.ConnectionError, OSError):
            time.sleep(0.05)


def main():
    port = free_port()
    server = subprocess.Popen(
        [BINARY, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
    )
    failures = []
    try:
        admin = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(200):
            try:
                admin.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        stop = threading.Event()
        stats = {"ops": 0, "grants": 0, "kills": 0, "errors": 0, "messages": 0}
        threads = [Worker(port, n, stop, stats) for n in range(WORKERS)]
        threads.append(threading.Thread(target=subscriber, args=(port, stop, stats), daemon=True))
        for t in threads:
            t.start()
        warm = min(30.0, SECONDS / 10)
        time.sleep(warm)
        admin.flushall()
        admin.execute_command("MEMORY", "PURGE")
        time.sleep(0.5)
        rss_start = rss_kb(server.pid)
        started = time.time()
        while time.time() - started < SECONDS - warm:
            time.sleep(1)
            if server.poll() is not None:
                failures.append("the server exited during the load")
                break
        stop.set()
        for t in threads:
            t.join(timeout=15)
        # Every lease the load granted is at most 5 s.
        time.sleep(6)
        for key in LOCK_KEYS + [k + ":lease" for k in LOCK_KEYS]:
            info = admin.execute_command("LOCK.INFO", key)
            if info is not None:
                failures.append(f"{key} still held or waited on after every client left: {info}")
        info = admin.info("locks") if hasattr(admin, "info") else {}
        clients = admin.execute_command("CLIENT", "LIST").decode().strip().splitlines()
        if len(clients) != 1:
            failures.append(f"{len(clients)} clients listed, only this one is open: {clients[:5]}")
        blocked = admin.info("clients").get("blocked_clients")
        if blocked:
            failures.append(f"{blocked} clients still blocked")
        admin.flushall()
        admin.execute_command("MEMORY", "PURGE")
        time.sleep(1)
        rss_end = rss_kb(server.pid)
        grew = (rss_end - rss_start) / max(rss_start, 1)
        if grew > 0.10:
            failures.append(f"RSS {rss_start} kB after warm-up, {rss_end} kB at the end (+{grew:.0%})")
        print(
            f"soak {SECONDS:.0f} s: {stats['ops']} ops, {stats['grants']} grants, "
            f"{stats['kills']} clients killed, {stats['messages']} messages, "
            f"{stats['errors']} errors ({stats.get('last_error', '-')}); "
            f"RSS {rss_start} -> {rss_end} kB ({grew:+.1%}); locks info {info}"
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
