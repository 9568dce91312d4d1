#!/usr/bin/env python3
"""Bitmap commands on 16 MB bitmaps, latchkey and redis-server side by side in
one run: both are loaded with the same two bitmaps over a Unix socket, then
redis-benchmark sends one fixed command line to each in turn, in alternating
rounds. Prints the median requests/s, the server's CPU time per request (user +
system from /proc/PID/stat) and the ratios.

Data:  b1, b2   two 16 MB bitmaps of pseudo-random bytes (different seeds),
                written with SETRANGE in 1 MB pieces
Tests: BITCOUNT b1                  (the whole 16 MB)
       BITCOUNT b1 1 -2 BIT         (a bit range: edge masks and the middle)
       BITPOS b1 1 -1048576         (the last 1 MB's first set bit: near)
       BITOP AND d b1 b2            (16 MB result stored at d each time)
       BITOP OR d b1 b2
                (d is overwritten in place after the first call in latchkey)
       SETBIT b1 <a bit near the end> 1     (in place: must not copy 16 MB per call)
       BITFIELD b1 INCRBY u8 #<middle byte> 1
       BITOP OR b2 b2 b1            (the destination is a source: a new 16 MB
                                     value each time)
(Fixed offsets: redis-benchmark's __rand_int__ is zero-padded, which an offset
may not be.)

Usage:
  [PIN=1] benches/bits.py [rounds]     (default 3)
PIN=1 runs both servers on CPU 1 and redis-benchmark on CPU 0.
LATCHKEY=path benchmarks another build (default: the release build, built first).
"""

import os
import random
import statistics
import subprocess
import sys

from resp_load import Servers, build_latchkey, cpu_seconds, cmd

SIZE = 16 * 1024 * 1024
PIECE = 1024 * 1024
BITS = SIZE * 8

# (name, clients, requests per run, -r range or None, command line)
TESTS = [
    ("BITCOUNT 16MB", 4, 400, None, ["BITCOUNT", "b1"]),
    ("BITCOUNT 16MB BIT range", 4, 400, None, ["BITCOUNT", "b1", "1", "-2", "BIT"]),
    ("BITPOS last 1MB", 4, 2000, None, ["BITPOS", "b1", "1", "-1048576"]),
    ("BITOP AND 16MB", 4, 100, None, ["BITOP", "AND", "d", "b1", "b2"]),
    ("BITOP OR 16MB", 4, 100, None, ["BITOP", "OR", "d", "b1", "b2"]),
    ("SETBIT 16MB", 50, 200_000, None, ["SETBIT", "b1", str(BITS - 12345), "1"]),
    ("BITFIELD INCRBY 16MB", 50, 200_000, None,
     ["BITFIELD", "b1", "INCRBY", "u8", "#%d" % (SIZE // 2), "1"]),
    # Last: it changes b2 (to b1 | b2 on the first call).
    ("BITOP OR into a source", 4, 100, None, ["BITOP", "OR", "b2", "b2", "b1"]),
]


def bitmap_data():
    for key, seed in ((b"b1", 1), (b"b2", 2)):
        rng = random.Random(seed)
        for off in range(0, SIZE, PIECE):
            yield cmd(b"SETRANGE", key, off, rng.randbytes(PIECE))


def load(servers, name):
    conn = servers.conn(name)
    try:
        _, error = conn.pipeline(bitmap_data(), batch=4)
        if error is not None:
            raise SystemExit("%s: loading failed: %s" % (name, error))
        lengths = [int(conn.call("STRLEN", k)) for k in ("b1", "b2")]
        if lengths != [SIZE, SIZE]:
            raise SystemExit("%s: the bitmaps are not all there: %s" % (name, lengths))
        return int(conn.call("BITCOUNT", "b1")), int(conn.call("BITOP", "XOR", "x", "b1", "b2"))
    finally:
        conn.close()


def bench(servers, name, clients, requests, rand, line, client_cpu):
    pid = servers.pid(name)
    args = client_cpu + ["redis-benchmark", "-s", servers.sockets[name], "-c", str(clients),
                         "-n", str(requests), "--csv"]
    if rand:
        args += ["-r", str(rand)]
    before = cpu_seconds(pid)
    out = subprocess.run(args + line, capture_output=True, text=True, check=True,
                         timeout=600).stdout
    cpu = cpu_seconds(pid) - before
    rows = [r for r in out.splitlines() if r and not r.startswith('"test"')]
    rps = float(rows[-1].split(",")[1].strip('"'))
    return rps, cpu / requests * 1e6


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    pin = os.environ.get("PIN") == "1"
    build_latchkey()
    client_cpu = ["taskset", "-c", "0"] if pin else []
    version = os.popen("redis-server --version").read().split()[2][2:]
    print("bitmaps: latchkey vs redis-server %s, redis-benchmark on Unix sockets, "
          "%d rounds alternating servers, medians%s"
          % (version, rounds, "; pinned: servers CPU 1, load CPU 0" if pin else ""))
    with Servers(taskset="1" if pin else None) as servers:
        loaded = {name: load(servers, name) for name in Servers.NAMES}
        if loaded["redis"] != loaded["latchkey"]:
            raise SystemExit("the servers disagree on the data: %s" % loaded)
        runs = {}
        for r in range(rounds):
            order = Servers.NAMES if r % 2 == 0 else Servers.NAMES[::-1]
            for test, clients, requests, rand, line in TESTS:
                for name in order:
                    runs.setdefault((test, name), []).append(
                        bench(servers, name, clients, requests, rand, line, client_cpu))
    print("%-24s %10s %10s %6s %9s %9s %6s" % ("", "requests/s", "", "ratio", "CPU us/",
                                              "request", "ratio"))
    print("%-24s %10s %10s %6s %9s %9s %6s" % ("test", "redis", "latchkey", "lk/r", "redis",
                                              "latchkey", "lk/r"))
    for test, _, _, _, _ in TESTS:
        rr = statistics.median(x[0] for x in runs[(test, "redis")])
        rc = statistics.median(x[1] for x in runs[(test, "redis")])
        lr = statistics.median(x[0] for x in runs[(test, "latchkey")])
        lc = statistics.median(x[1] for x in runs[(test, "latchkey")])
        print("%-24s %10.0f %10.0f %6.2f %9.2f %9.2f %6.2f" % (test, rr, lr, lr / rr, rc, lc,
                                                               lc / rc))


if __name__ == "__main__":
    main()
