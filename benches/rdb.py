#!/usr/bin/env python3
"""RDB persistence, latchkey and redis-server side by side in one run (issue 14's
speed targets that RDB alone can answer):

  size     both loaded with the same KEYS keys (strings `key:N` -> `value:N`,
           a tenth of them with a TTL, plus 1,000 hashes, lists, sets and
           sorted sets of 20 elements), SAVE on each: the file sizes.
  load     each restarted on its own file, ROUNDS times alternating: the
           median time from spawn until it answers PING.
  bgsave   redis-benchmark -c 50 SET, then GET (random keys among KEYS,
           200,000 requests, one test per run) against each, once quietly
           and once with a BGSAVE started 0.3 s into the run:
           p50/p99/max latency from redis-benchmark's CSV, and whether the save
           finished inside the run.

FORMAT=aof measures the append-only file instead (Redis's defaults: everysec,
an RDB preamble in the rewritten base): the size of the AOF the writes made
and its load time, BGREWRITEAOF's files and their load time, and the latency
during a BGREWRITEAOF started 0.3 s into each run.

Each server has a directory of its own under one temporary directory (removed
at the end); everything listens on Unix sockets. Release build of latchkey.
Usage:
  [LATCHKEY=binary] [FORMAT=rdb|aof] benches/rdb.py [keys] [rounds] [latency rounds]
                                                   (default 1000000 3 1)
Latency rounds above 1 repeat the bgsave (or rewrite) part, servers alternating, and end
with the median p99 of each test.
"""

import csv
import io
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp_load import LATCHKEY, Conn, build_latchkey, cmd  # noqa: E402

KEYS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
LATENCY_ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 1
FORMAT = os.environ.get("FORMAT", "rdb")
build_latchkey()


def start(name, binary, d, aof=False):
    sock = os.path.join(d, "s.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    t0 = time.monotonic()
    args = [binary, "--port", "0", "--unixsocket", sock, "--save", "",
            "--appendonly", "yes" if aof else "no", "--dir", d, "--loglevel", "warning"]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = t0 + 120
    while True:
        if p.poll() is not None:
            raise RuntimeError("%s exited while starting" % name)
        if os.path.exists(sock):
            try:
                c = Conn(sock)
                if c.call("PING") == b"PONG":
                    return p, sock, c, time.monotonic() - t0
            except (OSError, ValueError):
                pass
        if time.monotonic() > deadline:
            raise RuntimeError("%s did not start" % name)
        time.sleep(0.002)


def stop(p):
    p.send_signal(signal.SIGKILL)
    p.wait()


def populate(c):
    def gen():
        for i in range(KEYS):
            if i % 10 == 0:
                yield cmd(b"SET", b"key:%d" % i, b"value:%d" % i, b"EX", b"100000")
            else:
                yield cmd(b"SET", b"key:%d" % i, b"value:%d" % i)
        for i in range(1000):
            elems = [b"e%d" % j for j in range(20)]
            yield cmd(b"HSET", b"h:%d" % i, *[x for e in elems for x in (e, b"v")])
            yield cmd(b"RPUSH", b"l:%d" % i, *elems)
            yield cmd(b"SADD", b"s:%d" % i, *elems)
            yield cmd(b"ZADD", b"z:%d" % i, *[x for j, e in enumerate(elems) for x in (b"%d" % j, e)])
    n, err = c.pipeline(gen())
    if err is not None:
        raise RuntimeError(err)


def info(c, field):
    text = c.call("INFO", "persistence").decode()
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(field)


# What a background job is started with, and the INFO field that is 1 while it runs.
JOBS = {"bgsave": ("BGSAVE", "rdb_bgsave_in_progress"),
        "rewrite": ("BGREWRITEAOF", "aof_rewrite_in_progress")}


def bench_latency(sock, c, job, test):
    """redis-benchmark's p50/p99/max for `test`, with `job` (a JOBS key, or
    None) started 0.3 s into the run; and how long the job took."""
    n = 200_000
    args = ["redis-benchmark", "-s", sock, "-c", "50", "-n", str(n), "-r", str(KEYS),
            "-t", test, "--csv"]
    bench = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    took = "-"
    if job:
        command, field = JOBS[job]
        time.sleep(0.3)
        t0 = time.monotonic()
        c.call(command)
        while info(c, field) == "1":
            time.sleep(0.01)
        took = "%.2fs" % (time.monotonic() - t0)
    out, _ = bench.communicate()
    rows = list(csv.DictReader(io.StringIO(out)))
    return {r["test"]: (float(r["p50_latency_ms"]), float(r["p99_latency_ms"]),
                        float(r["max_latency_ms"])) for r in rows}, took


def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(d) for f in files if not f.endswith(".sock"))


def median_load(servers, dirs, aof):
    """Restarts each server on its files ROUNDS times, alternating: the median
    seconds to the first PONG per server, and the last DBSIZE."""
    loads = {name: [] for name in servers}
    keys = None
    for r in range(ROUNDS):
        order = list(servers.items()) if r % 2 == 0 else list(servers.items())[::-1]
        for name, binary in order:
            p, sock, c, took = start(name, binary, dirs[name], aof)
            keys = int(c.call("DBSIZE"))
            stop(p)
            loads[name].append(took)
    med = {n: statistics.median(v) for n, v in loads.items()}
    for n in servers:
        print("%-9s load to first PING: median %.3fs (%s)" %
              (n, med[n], ", ".join("%.3f" % x for x in loads[n])))
    print("load time ratio latchkey/redis: %.3f (DBSIZE after load: %d)" %
          (med["latchkey"] / med["redis"], keys))


def latency_rounds(servers, dirs, job, aof):
    """The latency part: each test quietly and with `job`, LATENCY_ROUNDS
    times, servers alternating; the medians when there is more than one."""
    print("%-9s %-8s %-6s %22s %22s %s" % ("server", job + "?", "test", "p50/p99/max ms",
                                           "", "job took"))
    latency = {}
    for r in range(LATENCY_ROUNDS):
        order = list(servers.items()) if r % 2 == 0 else list(servers.items())[::-1]
        for name, binary in order:
            p, sock, c, _ = start(name, binary, dirs[name], aof)
            # One test at a time, so the job overlaps the test it is
            # reported with (redis-benchmark runs its tests one after another).
            for during, test in ((False, "set"), (False, "get"), (True, "set"), (True, "get")):
                got, took = bench_latency(sock, c, job if during else None, test)
                for test, (p50, p99, mx) in got.items():
                    print("%-9s %-8s %-6s %8.3f %8.3f %8.3f   %s" %
                          (name, "during" if during else "none", test.split()[0], p50, p99, mx,
                           took))
                    latency.setdefault((during, test.split()[0], name), []).append(p99)
            stop(p)
    if LATENCY_ROUNDS > 1:
        print("median p99 over %d rounds, ms:" % LATENCY_ROUNDS)
        for (during, test, name), p99s in sorted(latency.items()):
            if name == "latchkey":
                theirs = statistics.median(latency[(during, test, "redis")])
                ours = statistics.median(p99s)
                print("  %-6s %-4s latchkey %.3f redis %.3f ratio %.2f" %
                      ("during" if during else "none", test, ours, theirs, ours / theirs))


def rdb(servers, dirs):
    sizes = {}
    for name, binary in servers.items():
        p, sock, c, _ = start(name, binary, dirs[name])
        populate(c)
        t0 = time.monotonic()
        assert c.call("SAVE") == b"OK"
        save_s = time.monotonic() - t0
        sizes[name] = os.path.getsize(os.path.join(dirs[name], "dump.rdb"))
        print("%-9s SAVE %.2fs, file %d bytes" % (name, save_s, sizes[name]))
        stop(p)
    print("file size ratio latchkey/redis: %.3f" % (sizes["latchkey"] / sizes["redis"]))
    median_load(servers, dirs, False)
    latency_rounds(servers, dirs, "bgsave", False)


def aof(servers, dirs):
    """The same with the append-only file, with Redis's defaults (everysec;
    the rewritten base with an RDB preamble): the AOF the writes made, and
    its load time; BGREWRITEAOF, the rewritten files and their load time;
    the latency during BGREWRITEAOF."""
    commands = {n: d + ".commands" for n, d in dirs.items()}
    for name, binary in servers.items():
        p, sock, c, _ = start(name, binary, dirs[name], True)
        populate(c)
        # Both servers wrote every acknowledged command to the file before
        # replying (everysec syncs later, but a killed process's writes stay).
        stop(p)
        shutil.copytree(dirs[name], commands[name], ignore=shutil.ignore_patterns("*.sock"))
        p, sock, c, _ = start(name, binary, dirs[name], True)
        t0 = time.monotonic()
        c.call("BGREWRITEAOF")
        time.sleep(0.01)
        while info(c, "aof_rewrite_in_progress") == "1":
            time.sleep(0.01)
        took = time.monotonic() - t0
        # Redis deletes the files the rewrite replaced in the background.
        time.sleep(0.5)
        stop(p)
        print("%-9s AOF of the writes %d bytes; BGREWRITEAOF %.2fs, then %d bytes"
              % (name, dir_bytes(commands[name]), took, dir_bytes(dirs[name])))
    for what, where in (("of the writes", commands), ("rewritten", dirs)):
        sizes = {n: dir_bytes(d) for n, d in where.items()}
        print("AOF %s: size ratio latchkey/redis %.3f; loading it:"
              % (what, sizes["latchkey"] / sizes["redis"]))
        median_load(servers, where, True)
    latency_rounds(servers, dirs, "rewrite", True)


def main():
    top = tempfile.mkdtemp(prefix="latchkey-rdb-")
    servers = {"redis": "redis-server", "latchkey": LATCHKEY}
    dirs = {name: os.path.join(top, name) for name in servers}
    try:
        for d in dirs.values():
            os.makedirs(d)
        print("%s: latchkey vs %s, %d string keys + 4,000 collections, %d rounds"
              % (FORMAT.upper(), subprocess.run(["redis-server", "--version"],
                                                capture_output=True, text=True).stdout.split()[2],
                 KEYS, ROUNDS))
        (aof if FORMAT == "aof" else rdb)(servers, dirs)
    finally:
        shutil.rmtree(top, ignore_errors=True)


main()
